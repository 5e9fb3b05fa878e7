/* pool_process.c: the process method (see pool_process.h). Each child talks to the root over a
 * socketpair, messages framed as u32 tag, u32 length, bytes. The children never call MPI and end
 * with _exit: what they inherited from the root (MPI, open files, evaluators) stays the root's. */
#include "pool_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "farm.h"
#include "link.h"
#include "sigint.h"
#include "subprocess.h"
#include "watchdog.h"
#include "wire.h"
#include "worker.h"

typedef struct child {
  pid_t pid;
  int fd;
  buf_t out; /* framed messages not yet written */
  size_t out_done;
  buf_t in;  /* bytes read, not yet a whole message */
} child_t;

typedef struct ppool {
  link_t base;
  child_t *kids;
  runner_t *runner; /* what the children inherit */
  int broken; /* a worker could not be replaced: the pool cannot go on */
} ppool;

/* ---- framing ---- */

static void frame(buf_t *out, int tag, const buf_t *msg) {
  wire_put_u32(out, (uint32_t)tag);
  wire_put_u32(out, (uint32_t)msg->len);
  buf_add(out, msg->data, msg->len);
}

/* A whole message at the front of in: moves it to msg and returns 1. */
static int unframe(buf_t *in, int *tag, buf_t *msg) {
  const char *p = in->data, *end = p + in->len;
  uint32_t t, n;
  if (wire_get_u32(&p, end, &t) || wire_get_u32(&p, end, &n) || (size_t)(end - p) < n) return 0;
  msg->len = 0;
  buf_add(msg, p, n);
  *tag = (int)t;
  size_t used = 8 + n;
  memmove(in->data, in->data + used, in->len - used);
  in->len -= used;
  return 1;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL); /* a dead peer is an error, not SIGPIPE */
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k, n -= (size_t)k;
  }
  return 0;
}

/* ---- the child ---- */

typedef struct child_link {
  wlink_t base;
  int fd;
  buf_t in;
} child_link;

static int cl_send(wlink_t *l, int tag, buf_t *msg) {
  child_link *c = (child_link *)l;
  buf_t out;
  buf_init(&out);
  frame(&out, tag, msg);
  int rc = write_all(c->fd, out.data, out.len);
  buf_free(&out);
  msg->len = 0;
  return rc;
}

static int cl_recv(wlink_t *l, double wait, int *tag, buf_t *msg) {
  child_link *c = (child_link *)l;
  for (;;) {
    if (unframe(&c->in, tag, msg)) return 1;
    int ms = wait < 0 ? (sigint_pending() ? 0 : 100) : (int)(wait * 1000);
    struct pollfd pfd = {c->fd, POLLIN, 0};
    int r = poll(&pfd, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    ssize_t k = read(c->fd, buf_reserve(&c->in, 65536), 65536);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      snprintf(l->err, sizeof l->err, "the root is gone");
      return -1;
    }
    c->in.len += (size_t)k;
  }
}

static const wlink_ops child_link_ops = {cl_send, cl_recv};

static void child_main(ppool *p, int w, int fd, pid_t parent) {
  /* Dies with the root, however it ends (kill -9 included): a worker never outlives its pool. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(1);
  watchdog_start(); /* its commands die with it, not with the pool */
  for (int i = 0; i < p->base.nworkers; i++)
    if (i != w && p->kids[i].fd >= 0) close(p->kids[i].fd);
  guard_after_fork(p->runner->g);
  subprocess_after_fork();
  child_link c;
  memset(&c, 0, sizeof c);
  c.base.ops = &child_link_ops;
  c.base.rank = w + 1;
  c.base.flush_each = 1;
  c.fd = fd;
  buf_init(&c.in);
  int rc = worker_serve(p->runner, &c.base);
  fflush(stdout);
  fflush(stderr);
  _exit(rc ? 1 : 0);
}

/* ---- the root ---- */

static int spawn_child(ppool *p, int w) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -1;
  fflush(stdout); /* nothing buffered is written twice (only the standard streams: fflush(NULL) */
  fflush(stderr); /* would wait on a FILE a thread worker is reading from a slow command) */
  pid_t parent = getpid(), pid = fork();
  if (pid > 0) subprocess_own(pid, 1); /* its death is ours to read, not the orphan reaper's */
  if (pid < 0) {
    close(sv[0]), close(sv[1]);
    return -1;
  }
  if (pid == 0) {
    close(sv[0]);
    child_main(p, w, sv[1], parent);
  }
  close(sv[1]);
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  child_t *k = &p->kids[w];
  k->pid = pid;
  k->fd = sv[0];
  k->out.len = k->out_done = 0;
  k->in.len = 0;
  return 0;
}

static void flush_out(child_t *k) {
  while (k->out_done < k->out.len) {
    ssize_t n = send(k->fd, k->out.data + k->out_done, k->out.len - k->out_done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; /* full (or broken: the read side finds out) */
    k->out_done += (size_t)n;
  }
  k->out.len = k->out_done = 0;
}

static int pp_send(link_t *l, int w, int tag, buf_t *msg) {
  child_t *k = &((ppool *)l)->kids[w];
  frame(&k->out, tag, msg);
  msg->len = 0;
  flush_out(k);
  return 0;
}

/* The child w is gone: say how, and put a new one in its place. */
static void on_child_death(ppool *p, int w, int *tag, buf_t *msg) {
  child_t *k = &p->kids[w];
  int status = 0;
  close(k->fd);
  k->fd = -1;
  kill(k->pid, SIGKILL);
  while (waitpid(k->pid, &status, 0) < 0 && errno == EINTR) {}
  subprocess_own(k->pid, 0);
  msg->len = 0;
  if (WIFSIGNALED(status))
    buf_addf(msg, "worker process %d (pid %d) died in this job: killed by signal %d (%s)", w + 1, (int)k->pid,
             WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    buf_addf(msg, "worker process %d (pid %d) died in this job: it exited with status %d (os.exit?)", w + 1,
             (int)k->pid, WIFEXITED(status) ? WEXITSTATUS(status) : status);
  *tag = TAG_DEAD;
  if (spawn_child(p, w) < 0) {
    k->pid = -1;
    snprintf(p->base.err, sizeof p->base.err, "worker process %d died and could not be replaced: %s", w + 1,
             strerror(errno));
    p->broken = 1;
  }
}

static int pp_recv(link_t *l, double wait, int *w, int *tag, buf_t *msg) {
  ppool *p = (ppool *)l;
  if (p->broken) return -1;
  int n = l->nworkers;
  double until = clock_now() + (wait > 0 ? wait : 0);
  struct pollfd *pfd = xmalloc((size_t)n * sizeof *pfd);
  int rc = 0;
  for (;;) {
    for (int i = 0; i < n; i++)
      if (p->kids[i].fd >= 0 && unframe(&p->kids[i].in, tag, msg)) {
        *w = i, rc = 1;
        goto out;
      }
    for (int i = 0; i < n; i++) {
      pfd[i].fd = p->kids[i].fd;
      pfd[i].events = POLLIN | (p->kids[i].out.len > p->kids[i].out_done ? POLLOUT : 0);
      pfd[i].revents = 0;
    }
    double left = until - clock_now();
    int r = poll(pfd, (nfds_t)n, left > 0 ? (int)(left * 1000) + 1 : 0);
    if (r < 0 && errno != EINTR) break;
    for (int i = 0; i < n && r > 0; i++) {
      if (pfd[i].revents & POLLOUT) flush_out(&p->kids[i]);
      if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t k = read(p->kids[i].fd, buf_reserve(&p->kids[i].in, 65536), 65536);
      if (k > 0) p->kids[i].in.len += (size_t)k;
      else if (k == 0 || errno != EAGAIN) {
        on_child_death(p, i, tag, msg);
        *w = i, rc = 1;
        goto out;
      }
    }
    if (r <= 0 && (clock_now() >= until || sigint_pending())) break;
  }
out:
  free(pfd);
  return rc;
}

static int pp_rank_of(link_t *l, int w) {
  (void)l;
  return w + 1;
}

/* Children still finishing a job when their pool closed (owned: the orphan reaper leaves them). */
static pid_t finishing[256];
static int nfinishing;

static void finishing_add(pid_t pid) {
  if (nfinishing < (int)(sizeof finishing / sizeof *finishing)) finishing[nfinishing++] = pid;
  else subprocess_own(pid, 0); /* reaped as an orphan */
}

void pool_process_wait_all(void) {
  for (int i = 0; i < nfinishing; i++) {
    while (waitpid(finishing[i], NULL, WNOHANG) == 0 && !sigint_pending()) clock_sleep(0.001);
    subprocess_own(finishing[i], 0);
  }
  nfinishing = 0;
}

static void pp_destroy(link_t *l) {
  ppool *p = (ppool *)l;
  double until = clock_now() + 0.05;
  for (int i = 0; i < l->nworkers; i++) {
    child_t *k = &p->kids[i];
    if (k->fd >= 0) {
      fcntl(k->fd, F_SETFL, fcntl(k->fd, F_GETFL) & ~O_NONBLOCK);
      write_all(k->fd, k->out.data + k->out_done, k->out.len - k->out_done);
      close(k->fd);
    }
  }
  /* The children stop on the root's word (or their socket closing). One still in a job (close
   * without waiting) finishes it on its own: the program waits for it at its end. */
  for (int i = 0; i < l->nworkers; i++) {
    child_t *k = &p->kids[i];
    if (k->pid <= 0) continue;
    int gone = 0;
    while (!(gone = waitpid(k->pid, NULL, WNOHANG) != 0) && clock_now() < until) clock_sleep(0.001);
    if (gone) subprocess_own(k->pid, 0);
    else finishing_add(k->pid);
    buf_free(&k->out);
    buf_free(&k->in);
  }
  free(p->kids);
  free(p);
}

static const link_ops process_link_ops = {pp_send, pp_recv, pp_rank_of, pp_destroy};

executor_t *pool_process_new(const exec_args *a, char *err, size_t errlen) {
  int num_workers = a->num_workers > 0 ? a->num_workers : 1;
  ppool *p = xmalloc(sizeof *p);
  memset(p, 0, sizeof *p);
  p->base.ops = &process_link_ops;
  p->base.nworkers = num_workers;
  p->base.respawns = 1; /* a crash takes the job it ran; the farm requeues the ones prefetched */
  p->runner = a->runner;
  p->kids = xmalloc((size_t)num_workers * sizeof *p->kids);
  for (int i = 0; i < num_workers; i++) {
    p->kids[i].fd = -1;
    p->kids[i].pid = -1;
    buf_init(&p->kids[i].out);
    buf_init(&p->kids[i].in);
  }
  for (int i = 0; i < num_workers; i++)
    if (spawn_child(p, i) < 0) {
      snprintf(err, errlen, "cannot start worker process %d: %s", i + 1, strerror(errno));
      p->base.nworkers = i;
      pp_destroy(&p->base);
      return NULL;
    }
  return farm_new(&p->base, &a->cfg, err, errlen);
}
