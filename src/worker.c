/* worker.c: the serving loop (see worker.h). Results are batched when jobs are short and sent at
 * once when they are long: a result waits at most FLUSH_AGE, and never behind a long job. */
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "jobq.h"
#include "sigint.h"
#include "wire.h"

#define FLUSH_AGE 0.001   /* seconds a finished result may wait for company */
#define FLUSH_COUNT 64    /* results per message at most */
#define PROBE_EVERY 16    /* short jobs run between two looks for messages from the root */
#define INTERRUPT_GRACE 10.0 /* seconds an interrupted worker waits for its root to say stop */

typedef struct wctx {
  runner_t *r;
  wlink_t *l;
  job_limits lim;
  jobq_t q;          /* jobs sent, not yet run */
  int running;       /* a job runs: its slot is running_slot */
  uint32_t running_slot;
  buf_t results;     /* body after the count */
  uint32_t nresults;
  double first_result, avg_job;
  int stop;
  buf_t msg;
} wctx;

static void flush_results(wctx *w) {
  if (!w->nresults || w->stop) return; /* after STOP the root reads nothing more */
  buf_t m;
  buf_init(&m);
  wire_put_u32(&m, w->nresults);
  buf_add(&m, w->results.data, w->results.len);
  w->l->ops->send(w->l, TAG_RESULTS, &m);
  buf_free(&m);
  w->results.len = 0;
  w->nresults = 0;
}

static void add_result(wctx *w, uint32_t slot, double t0, double t1, const char *outcome, size_t len) {
  if (!w->nresults) w->first_result = t1;
  wire_put_u32(&w->results, slot);
  wire_put_f64(&w->results, t0);
  wire_put_f64(&w->results, t1);
  wire_put_bytes(&w->results, outcome, len);
  w->nresults++;
}

static void on_hello(wctx *w, const buf_t *m) {
  const char *p = m->data, *end = p + m->len, *sid;
  double root_now;
  uint64_t mem;
  size_t n;
  if (wire_get_f64(&p, end, &root_now) || wire_get_f64(&p, end, &w->lim.job_timeout) ||
      wire_get_u64(&p, end, &mem) || wire_get_bytes(&p, end, &sid, &n))
    return;
  w->lim.mem_limit = (size_t)mem;
  runner_set_search_id(w->r, sid, n);
  buf_t r;
  buf_init(&r);
  wire_put_f64(&r, root_now);
  wire_put_f64(&r, clock_now());
  wire_put_u64(&r, link_host_id());
  w->l->ops->send(w->l, TAG_HELLO, &r);
  buf_free(&r);
}

/* deadline: when the search's budget runs out, on this worker's clock (0 for none). */
static void set_budget(wctx *w, double deadline) { w->lim.deadline = deadline; }

/* Every job still queued comes back cancelled, unrun. */
static void cancel_queue(wctx *w) {
  double now = clock_now();
  buf_t out;
  buf_init(&out);
  outcome_encode_stopped(RUN_CANCELLED, &out);
  uint32_t slot;
  uint64_t n;
  const char *params;
  size_t len;
  while (jobq_pop(&w->q, &slot, &n, &params, &len) == 0)
    add_result(w, slot, OUTCOME_NEVER_STARTED, now, out.data, out.len);
  buf_free(&out);
}

/* CTRL_WITHDRAW's list (p..end): the listed jobs still queued come back cancelled, unrun; returns
 * whether the running job is listed too. */
static int withdraw(wctx *w, const char *p, const char *end) {
  uint32_t count;
  if (wire_get_u32(&p, end, &count) || (size_t)(end - p) / sizeof count < count) return 0;
  buf_t listed, taken;
  buf_init(&listed);
  buf_init(&taken);
  buf_add(&listed, p, (size_t)count * sizeof count); /* aligned for the search */
  const uint32_t *slots = (const uint32_t *)(const void *)listed.data;
  jobq_take_listed(&w->q, slots, count, &taken);
  int stop = w->running && jobq_slot_listed(w->running_slot, slots, count);
  buf_t out;
  buf_init(&out);
  outcome_encode_stopped(RUN_CANCELLED, &out);
  double now = clock_now();
  const char *t = taken.data, *tend = t + taken.len;
  uint32_t slot;
  while (wire_get_u32(&t, tend, &slot) == 0) add_result(w, slot, OUTCOME_NEVER_STARTED, now, out.data, out.len);
  buf_free(&out);
  buf_free(&taken);
  buf_free(&listed);
  return stop;
}

/* A control message; returns the run_status the running job must stop with, if any. */
static run_status on_ctrl(wctx *w, const buf_t *m) {
  const char *p = m->data, *end = p + m->len;
  uint32_t op;
  double arg;
  if (wire_get_u32(&p, end, &op) || wire_get_f64(&p, end, &arg)) return RUN_OK;
  switch (op) {
    case CTRL_STOP: w->stop = 1; return RUN_OK;
    case CTRL_CANCEL_QUEUED: cancel_queue(w); return RUN_OK;
    case CTRL_CANCEL_ALL: cancel_queue(w); return RUN_CANCELLED;
    case CTRL_WITHDRAW: return withdraw(w, p, end) ? RUN_CANCELLED : RUN_OK;
    case CTRL_BUDGET: {
      /* The running job's deadline follows the new budget, later as well as sooner. */
      set_budget(w, arg);
      double d;
      run_status why = runner_deadline(&w->lim, w->r->g->started, &d);
      guard_set_deadline(w->r->g, d, why);
      return RUN_OK;
    }
    default: return RUN_OK;
  }
}

static void on_jobs(wctx *w, const buf_t *m) {
  const char *p = m->data, *end = p + m->len;
  uint32_t count;
  double budget;
  if (wire_get_u32(&p, end, &count) || wire_get_f64(&p, end, &budget)) return;
  set_budget(w, budget);
  jobq_push_encoded(&w->q, p, (size_t)(end - p), count);
}

/* Take in one message; returns the stop reason it carries for a running job. */
static run_status take(wctx *w, int tag) {
  switch (tag) {
    case TAG_HELLO: on_hello(w, &w->msg); return RUN_OK;
    case TAG_JOBS: on_jobs(w, &w->msg); return RUN_OK;
    case TAG_CTRL: return on_ctrl(w, &w->msg);
    default: return RUN_OK;
  }
}

/* While a job runs long: read what the root sent, and let finished results go. */
static int poll_during_job(void *ud) {
  wctx *w = ud;
  flush_results(w);
  int tag;
  run_status why = RUN_OK;
  while (!why && w->l->ops->recv(w->l, 0, &tag, &w->msg) == 1) why = take(w, tag);
  return (int)why;
}

static void run_one(wctx *w) {
  uint32_t slot;
  uint64_t n;
  const char *params;
  size_t len;
  if (jobq_pop(&w->q, &slot, &n, &params, &len)) return;
  double t0, t1;
  buf_t out;
  buf_init(&out);
  w->running = 1, w->running_slot = slot;
  runner_run(w->r, n, params, len, &w->lim, &out, &t0, &t1);
  w->running = 0;
  add_result(w, slot, t0, t1, out.data, out.len);
  buf_free(&out);
  double took = t1 - t0;
  w->avg_job = 0.8 * w->avg_job + 0.2 * took;
  /* Send now unless the next job is likely short enough for this result to wait for it. */
  if (w->l->flush_each || w->q.count == 0 || w->nresults >= FLUSH_COUNT || t1 + w->avg_job - w->first_result > FLUSH_AGE)
    flush_results(w);
}

int worker_serve(runner_t *r, wlink_t *l) {
  wctx w;
  memset(&w, 0, sizeof w);
  w.r = r, w.l = l;
  jobq_init(&w.q);
  buf_init(&w.results);
  buf_init(&w.msg);
  guard_set_poll(r->g, poll_during_job, &w);
  runner_serving(r, 1);
  int rc = 0, since_probe = 0;
  double interrupted_at = 0;
  while (!w.stop) {
    int tag;
    if (w.q.count) {
      /* Between jobs, look for control messages without waiting: after every job when jobs are
       * long, every PROBE_EVERY jobs when they take microseconds (a probe costs about one). */
      if (++since_probe >= PROBE_EVERY || w.avg_job > 50e-6) {
        since_probe = 0;
        while (l->ops->recv(l, 0, &tag, &w.msg) == 1) take(&w, tag);
      }
      if (w.q.count) run_one(&w);
      continue;
    }
    flush_results(&w);
    /* Interrupted (Ctrl-C, SIGTERM): jobs still come back cancelled, and the root, interrupted
     * too, closes; a root that does not is given up on after a grace period. */
    if (sigint_pending() && !interrupted_at) interrupted_at = clock_now();
    int got = l->ops->recv(l, interrupted_at ? 0.1 : -1, &tag, &w.msg);
    if (got < 0) {
      if (!l->err[0]) snprintf(l->err, sizeof l->err, "the link to the root failed");
      rc = -1;
      break;
    }
    if (got == 1) take(&w, tag);
    else if (interrupted_at && clock_now() - interrupted_at > INTERRUPT_GRACE) {
      snprintf(l->err, sizeof l->err, "interrupted, and the root did not close the evaluator within %.0f s", INTERRUPT_GRACE);
      rc = -1;
      break;
    }
  }
  flush_results(&w);
  runner_serving(r, 0);
  guard_set_poll(r->g, NULL, NULL);
  jobq_free(&w.q);
  buf_free(&w.results);
  buf_free(&w.msg);
  return rc;
}
