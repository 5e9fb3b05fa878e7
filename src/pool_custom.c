/* pool_custom.c: custom backends' jobs as coroutines (see pool_custom.h). Every job launched is
 * resumed on each round, in the order submitted: a backend runs as many at once as it lets wait. */
#include "pool_custom.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "jobq.h"
#include "runner.h"
#include "wire.h"

#define NAP 0.001 /* seconds between rounds when no job finished */

typedef struct cjob {
  uint32_t slot;
  int co;         /* runner_co handle */
  double started; /* first resume, 0 = not yet */
} cjob;

typedef struct custom {
  executor_t ex;
  runner_t *runner;
  job_limits lim;
  cjob *jobs;
  int n, cap;
  buf_t cancelled; /* u32 slots */
  buf_t out;
} custom_t;

static void custom_launch(executor_t *ex, uint32_t slot, uint64_t n, const char *params, size_t len) {
  custom_t *c = (custom_t *)ex;
  int co = runner_co_new(c->runner, n, params, len);
  if (co < 0) { /* the root encoded it: cannot happen but by memory corruption */
    wire_put_u32(&c->cancelled, slot);
    return;
  }
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 16;
    c->jobs = xrealloc(c->jobs, (size_t)c->cap * sizeof *c->jobs);
  }
  c->jobs[c->n++] = (cjob){slot, co, 0};
}

/* Resume every job once; deliver those that ended. */
static int round_once(custom_t *c, exec_result_fn fn, void *ud) {
  int delivered = 0, kept = 0;
  c->lim.deadline = c->ex.budget;
  for (int i = 0; i < c->n; i++) {
    cjob j = c->jobs[i];
    if (!j.started) j.started = clock_now();
    c->out.len = 0;
    if (!runner_co_resume(c->runner, j.co, &c->lim, j.started, &c->out)) {
      c->jobs[kept++] = j;
      continue;
    }
    runner_co_free(c->runner, j.co);
    exec_result r = {j.slot, j.started, clock_now(), 0, c->out.data, c->out.len};
    fn(ud, &r);
    delivered++;
  }
  c->n = kept;
  return delivered;
}

static int custom_poll(executor_t *ex, double wait, exec_result_fn fn, void *ud) {
  custom_t *c = (custom_t *)ex;
  if (!fn) return 0;
  int delivered = exec_deliver_stopped(&c->cancelled, RUN_CANCELLED, fn, ud);
  double until = clock_now() + wait;
  while (!delivered && c->n) {
    delivered = round_once(c, fn, ud);
    if (delivered || clock_now() >= until) break;
    clock_sleep(NAP);
  }
  return delivered;
}

static void custom_set_budget(executor_t *ex, double deadline) { ex->budget = deadline; }

/* Free the jobs `drop` picks; they come back cancelled through the next poll. The others keep
 * their order. */
static void drop_jobs(custom_t *c, int (*drop)(const cjob *j, const void *arg), const void *arg) {
  int kept = 0;
  for (int i = 0; i < c->n; i++) {
    if (!drop(&c->jobs[i], arg)) {
      c->jobs[kept++] = c->jobs[i];
      continue;
    }
    runner_co_free(c->runner, c->jobs[i].co);
    wire_put_u32(&c->cancelled, c->jobs[i].slot);
  }
  c->n = kept;
}

/* arg: whether running jobs go too. */
static int not_started_or_all(const cjob *j, const void *arg) { return !j->started || *(const int *)arg; }

static void custom_cancel(executor_t *ex, int running) { drop_jobs((custom_t *)ex, not_started_or_all, &running); }

typedef struct slot_list {
  const uint32_t *slots;
  size_t n;
} slot_list;

static int listed(const cjob *j, const void *arg) {
  const slot_list *l = arg;
  return jobq_slot_listed(j->slot, l->slots, l->n);
}

static void custom_withdraw(executor_t *ex, const uint32_t *slots, size_t n) {
  slot_list l = {slots, n};
  drop_jobs((custom_t *)ex, listed, &l);
}

/* Nothing would resume what is left: it comes back cancelled. */
static void custom_shutdown(executor_t *ex) { custom_cancel(ex, 1); }

static void custom_destroy(executor_t *ex) {
  custom_t *c = (custom_t *)ex;
  for (int i = 0; i < c->n; i++) runner_co_free(c->runner, c->jobs[i].co);
  free(c->jobs);
  buf_free(&c->cancelled);
  buf_free(&c->out);
  free(c);
}

static const executor_ops custom_ops = {custom_launch,   custom_poll,     custom_set_budget, custom_cancel,
                                        custom_withdraw, custom_shutdown, custom_destroy};

executor_t *pool_custom_new(const exec_args *a, char *err, size_t errlen) {
  (void)err, (void)errlen;
  custom_t *c = xmalloc(sizeof *c);
  memset(c, 0, sizeof *c);
  c->ex.ops = &custom_ops;
  c->ex.num_workers = a->num_workers > 0 ? a->num_workers : 1;
  c->runner = a->runner;
  c->lim.job_timeout = a->cfg.job_timeout;
  c->lim.mem_limit = a->cfg.mem_limit;
  buf_init(&c->cancelled);
  buf_init(&c->out);
  return &c->ex;
}
