/* pool_serial.c: the serial method (see pool_serial.h). A poll that may wait runs the oldest
 * queued job and delivers it; one that may not wait runs nothing, so gather("BATCH", n) runs
 * exactly the jobs it returns. */
#include "pool_serial.h"

#include <stdlib.h>
#include <string.h>

#include "jobq.h"
#include "pool_mpi.h"
#include "runner.h"

typedef struct serial {
  executor_t ex;
  runner_t *runner;
  job_limits lim;
  jobq_t queue;
  buf_t cancelled; /* u32 slots */
  buf_t out;
} serial_t;

static void serial_launch(executor_t *ex, uint32_t slot, uint64_t n, const char *params, size_t len) {
  jobq_push(&((serial_t *)ex)->queue, slot, n, params, len);
}

static int serial_poll(executor_t *ex, double wait, exec_result_fn fn, void *ud) {
  serial_t *s = (serial_t *)ex;
  if (!fn) return 0;
  int delivered = exec_deliver_stopped(&s->cancelled, RUN_CANCELLED, fn, ud);
  uint32_t slot;
  uint64_t n;
  const char *params;
  size_t len;
  if (delivered || wait <= 0 || jobq_pop(&s->queue, &slot, &n, &params, &len)) return delivered;
  exec_result r = {slot, 0, 0, pool_mpi_world_rank(), NULL, 0};
  s->out.len = 0;
  s->lim.deadline = ex->budget;
  runner_run(s->runner, n, params, len, &s->lim, &s->out, &r.t_start, &r.t_end);
  if (r.t_start == OUTCOME_NEVER_STARTED) r.t_start = r.t_end, r.rank = -1;
  r.outcome = s->out.data, r.len = s->out.len;
  fn(ud, &r);
  return 1;
}

static void serial_set_budget(executor_t *ex, double deadline) { ex->budget = deadline; }

/* No job runs between two polls: cancelling one is cancelling the queue. */
static void serial_cancel(executor_t *ex, int running) {
  (void)running;
  serial_t *s = (serial_t *)ex;
  jobq_take_slots(&s->queue, &s->cancelled);
}

/* Jobs run only in a poll that may wait, never within a submit: what is withdrawn is queued. */
static void serial_withdraw(executor_t *ex, const uint32_t *slots, size_t n) {
  serial_t *s = (serial_t *)ex;
  jobq_take_listed(&s->queue, slots, n, &s->cancelled);
}

/* Nothing would run what is left: it comes back cancelled. */
static void serial_shutdown(executor_t *ex) { serial_cancel(ex, 1); }

static void serial_destroy(executor_t *ex) {
  serial_t *s = (serial_t *)ex;
  jobq_free(&s->queue);
  buf_free(&s->cancelled);
  buf_free(&s->out);
  free(s);
}

static const executor_ops serial_ops = {serial_launch,   serial_poll,     serial_set_budget, serial_cancel,
                                        serial_withdraw, serial_shutdown, serial_destroy};

executor_t *pool_serial_new(const exec_args *a, char *err, size_t errlen) {
  (void)err, (void)errlen;
  serial_t *s = xmalloc(sizeof *s);
  memset(s, 0, sizeof *s);
  s->ex.ops = &serial_ops;
  s->ex.num_workers = a->num_workers > 0 ? a->num_workers : 1; /* as DeepHyper: how many to keep submitted */
  s->runner = a->runner;
  s->lim.job_timeout = a->cfg.job_timeout;
  s->lim.mem_limit = a->cfg.mem_limit;
  jobq_init(&s->queue);
  buf_init(&s->cancelled);
  buf_init(&s->out);
  return &s->ex;
}
