/* watchdog.c: the per-process watchdog (see watchdog.h). Records are one struct each, one datagram
 * of a SOCK_SEQPACKET pair: atomic, whichever process or thread sends them, and a watchdog killed
 * by hand makes a send fail (MSG_NOSIGNAL), not the run die of SIGPIPE. */
#include "watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <linux/close_range.h>
#include <unistd.h>

#define MAX_GROUPS 4096

typedef struct record {
  int add; /* 1 = started, 0 = ended */
  pid_t pgid;
} record;

static int wfd = -1; /* the write end, in the watched processes */

static void send_record(int add, pid_t pgid) {
  if (wfd < 0 || pgid <= 0) return;
  record r = {add, pgid};
  ssize_t n;
  do n = send(wfd, &r, sizeof r, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
}

void watchdog_add(pid_t pgid) { send_record(1, pgid); }
void watchdog_remove(pid_t pgid) { send_record(0, pgid); }

/* The watchdog itself: detached from the terminal's signals and from the run's standard streams
 * (mpirun waits for those to close), it reads records until the last writer is gone. */
static void watch(int rfd) {
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL); /* only SIGKILL ends it before its job is done */
  setpgid(0, 0);
  prctl(PR_SET_NAME, "evl-watchdog");
  int null = open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; fd++) dup2(null, fd);
  if (rfd != 3) { /* keep only the pipe, as fd 3 */
    dup2(rfd, 3);
    rfd = 3;
  }
  close_range(4, ~0U, 0);
  static pid_t groups[MAX_GROUPS];
  int n = 0;
  record r;
  for (;;) {
    ssize_t got = read(rfd, &r, sizeof r);
    if (got < 0 && errno == EINTR) continue;
    if (got != (ssize_t)sizeof r) break; /* every writer is gone */
    if (r.add) {
      if (n < MAX_GROUPS) groups[n++] = r.pgid;
      continue;
    }
    for (int i = 0; i < n; i++)
      if (groups[i] == r.pgid) {
        groups[i] = groups[--n];
        break;
      }
  }
  for (int i = 0; i < n; i++) kill(-groups[i], SIGKILL);
  _exit(0);
}

int watchdog_start(void) {
  if (wfd >= 0) { /* a forked process-pool worker: a watchdog of its own, for its own commands */
    close(wfd);
    wfd = -1;
  }
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds) < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    close(fds[1]);
    watch(fds[0]);
  }
  close(fds[0]);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  wfd = fds[1];
  return 0;
}
