/* pool_thread.c: the thread method (see pool_thread.h). Root and workers exchange the protocol's
 * messages through mutex-guarded queues; values cross as wire.c bytes, never as shared Lua data. */
#include "pool_thread.h"

#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "farm.h"
#include "link.h"
#include "sigint.h"
#include "worker.h"

typedef struct msg_node {
  struct msg_node *next;
  int w, tag;
  buf_t msg;
} msg_node;

typedef struct msgq {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  msg_node *head, *tail;
} msgq;

typedef struct tpool tpool;

typedef struct tworker {
  wlink_t base;
  tpool *pool;
  int w;
  msgq inbox;
  pthread_t thread;
  int started;
} tworker;

struct tpool {
  link_t base;
  msgq inbox; /* from every worker */
  tworker *workers;
  const char *script;
  int serve_at;
  pthread_mutex_t fatal_mu;
  char fatal[256]; /* the first worker that could not start says why */
};

/* Worker threads alive, in every pool: the program waits for them at its end. */
static atomic_int live_threads;

void pool_thread_wait_all(void) {
  while (atomic_load(&live_threads) > 0 && !sigint_pending()) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

/* ---- queues ---- */

static void msgq_init(msgq *q) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&q->cv, &attr);
  pthread_condattr_destroy(&attr);
  pthread_mutex_init(&q->mu, NULL);
  q->head = q->tail = NULL;
}

static void msgq_destroy(msgq *q) {
  for (msg_node *n = q->head, *next; n; n = next) {
    next = n->next;
    buf_free(&n->msg);
    free(n);
  }
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->cv);
}

static void msgq_push(msgq *q, int w, int tag, buf_t *msg) {
  msg_node *n = xmalloc(sizeof *n);
  n->next = NULL, n->w = w, n->tag = tag, n->msg = *msg;
  buf_init(msg);
  pthread_mutex_lock(&q->mu);
  if (q->tail) q->tail->next = n;
  else q->head = n;
  q->tail = n;
  pthread_cond_signal(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

/* Pop one message, waiting up to `wait` seconds (or until *stop becomes non-zero). */
static int msgq_pop(msgq *q, double wait, const char *stop, int *w, int *tag, buf_t *msg) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  double t = (double)until.tv_sec + (double)until.tv_nsec * 1e-9 + (wait > 0 ? wait : 0);
  until.tv_sec = (time_t)t;
  until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
  pthread_mutex_lock(&q->mu);
  while (!q->head && wait > 0 && !(stop && *stop))
    if (pthread_cond_timedwait(&q->cv, &q->mu, &until)) break;
  msg_node *n = q->head;
  if (n) {
    q->head = n->next;
    if (!q->head) q->tail = NULL;
  }
  pthread_mutex_unlock(&q->mu);
  if (!n) return 0;
  if (w) *w = n->w;
  *tag = n->tag;
  buf_free(msg);
  *msg = n->msg;
  free(n);
  return 1;
}

/* ---- the worker threads ---- */

static int tw_send(wlink_t *l, int tag, buf_t *msg) {
  tworker *t = (tworker *)l;
  msgq_push(&t->pool->inbox, t->w, tag, msg);
  return 0;
}

static int tw_recv(wlink_t *l, double wait, int *tag, buf_t *msg) {
  tworker *t = (tworker *)l;
  /* "For ever" is in slices, so a Ctrl-C is noticed (worker.c decides what to do with it). */
  if (wait < 0) wait = sigint_pending() ? 0 : 0.1;
  return msgq_pop(&t->inbox, wait, NULL, NULL, tag, msg);
}

static const wlink_ops thread_wlink_ops = {tw_send, tw_recv};

static void set_fatal(tpool *p, int w, const char *why) {
  pthread_mutex_lock(&p->fatal_mu);
  if (!p->fatal[0]) snprintf(p->fatal, sizeof p->fatal, "thread worker %d: %s", w + 1, why);
  pthread_mutex_unlock(&p->fatal_mu);
  pthread_mutex_lock(&p->inbox.mu);
  pthread_cond_broadcast(&p->inbox.cv);
  pthread_mutex_unlock(&p->inbox.mu);
}

static void *thread_main(void *arg) {
  tworker *t = arg;
  tpool *p = t->pool;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* Ctrl-C is the main thread's to handle */
  runtime_t rt;
  memset(&rt, 0, sizeof rt);
  rt.script = p->script;
  rt.worker_link = &t->base;
  rt.serve_at = p->serve_at;
  if (runtime_open(&rt)) {
    set_fatal(p, t->w, "cannot create a Lua state: out of memory");
    atomic_fetch_sub(&live_threads, 1);
    return NULL;
  }
  runtime_set_args(&rt);
  char why[200];
  if (runtime_load(&rt) != LUA_OK) {
    snprintf(why, sizeof why, "cannot re-read the script to run it in this thread: %s", runtime_message(&rt));
    set_fatal(p, t->w, why);
  } else if (runtime_run(&rt) != LUA_OK) {
    snprintf(why, sizeof why, "%s", runtime_message(&rt));
    set_fatal(p, t->w, why);
  } else if (!rt.served) {
    snprintf(why, sizeof why, "the script ended without reaching its evaluator.create call number %d, "
             "which the root made (every worker re-runs the script up to it)", p->serve_at);
    set_fatal(p, t->w, why);
  }
  runtime_close(&rt);
  atomic_fetch_sub(&live_threads, 1);
  return NULL;
}

/* ---- the root's link ---- */

static int tp_send(link_t *l, int w, int tag, buf_t *msg) {
  tpool *p = (tpool *)l;
  msgq_push(&p->workers[w].inbox, -1, tag, msg);
  return 0;
}

static int tp_recv(link_t *l, double wait, int *w, int *tag, buf_t *msg) {
  tpool *p = (tpool *)l;
  int got = msgq_pop(&p->inbox, wait, p->fatal, w, tag, msg);
  if (!got && p->fatal[0]) {
    snprintf(l->err, sizeof l->err, "%s", p->fatal);
    return -1;
  }
  return got;
}

static int tp_rank_of(link_t *l, int w) {
  (void)l;
  return w + 1;
}

static void tp_destroy(link_t *l) {
  tpool *p = (tpool *)l;
  int stuck = 0;
  for (int i = 0; i < l->nworkers; i++) {
    if (!p->workers[i].started) continue;
    /* A worker still in a job (close without waiting) is left to finish on its own. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 50000000;
    if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
    if (pthread_timedjoin_np(p->workers[i].thread, NULL, &until)) {
      pthread_detach(p->workers[i].thread);
      stuck = 1;
    }
  }
  if (stuck) return; /* its queues may still be in use: left allocated */
  for (int i = 0; i < l->nworkers; i++) msgq_destroy(&p->workers[i].inbox);
  msgq_destroy(&p->inbox);
  pthread_mutex_destroy(&p->fatal_mu);
  free(p->workers);
  free(p);
}

static const link_ops thread_link_ops = {tp_send, tp_recv, tp_rank_of, tp_destroy};

executor_t *pool_thread_new(const exec_args *a, char *err, size_t errlen) {
  runtime_t *rt = a->rt;
  int num_workers = a->num_workers > 0 ? a->num_workers : 1;
  tpool *p = xmalloc(sizeof *p);
  memset(p, 0, sizeof *p);
  p->base.ops = &thread_link_ops;
  p->base.nworkers = num_workers;
  p->script = rt->script;
  p->serve_at = rt->creates;
  msgq_init(&p->inbox);
  pthread_mutex_init(&p->fatal_mu, NULL);
  p->workers = xmalloc((size_t)num_workers * sizeof *p->workers);
  memset(p->workers, 0, (size_t)num_workers * sizeof *p->workers);
  for (int i = 0; i < num_workers; i++) {
    tworker *t = &p->workers[i];
    t->base.ops = &thread_wlink_ops;
    t->base.rank = i + 1;
    t->pool = p;
    t->w = i;
    msgq_init(&t->inbox);
    atomic_fetch_add(&live_threads, 1);
    t->started = pthread_create(&t->thread, NULL, thread_main, t) == 0;
    if (!t->started) atomic_fetch_sub(&live_threads, 1);
    if (!t->started) {
      set_fatal(p, i, "cannot start a thread");
      break;
    }
  }
  return farm_new(&p->base, &a->cfg, err, errlen);
}

int pool_thread_serve(runtime_t *rt, runner_t *r, int is_thread_pool, char *err, size_t errlen) {
  if (rt->creates != rt->serve_at || rt->served) return 0;
  if (!is_thread_pool) {
    snprintf(err, errlen, "evaluator.create call number %d makes a thread pool on the root but not in this worker "
             "thread: the script must make the same create calls in every thread", rt->creates);
    return -1;
  }
  rt->served = 1;
  if (worker_serve(r, rt->worker_link)) {
    snprintf(err, errlen, "%s", rt->worker_link->err);
    return -1;
  }
  return 1;
}
