/* farm.c: the root's side of a worker pool (see farm.h). Workers run their jobs in the order they
 * got them, so each worker's in-flight slots are a ring: a result always pops its head. */
#include "farm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "jobq.h"
#include "sigint.h"
#include "wire.h"

#define PIPELINE_SECONDS 0.005 /* work to keep queued at a worker so it never waits for the root */
#define MAX_DEPTH 512
#define MAX_BATCH_BYTES (64u << 20) /* a message stays far below MPI's int-sized counts */

typedef struct wstate {
  uint32_t *ring;
  uint32_t head, count, cap;
  double offset;  /* worker clock minus root clock */
  double started; /* when its oldest job in flight probably started (root clock) */
  jobq_t held;    /* copies of the jobs it holds, when the link replaces dead workers (requeued) */
  int ready;      /* answered HELLO */
  int wanting;    /* in the farm's wants list */
} wstate;

typedef struct farm {
  executor_t ex;
  link_t *link;
  wstate *w;
  jobq_t queue;    /* jobs not yet handed out */
  buf_t cancelled; /* u32 slots cancelled before they were handed out */
  double avg_job;  /* seconds, moving average; <0 until the first result */
  int *wants;      /* workers that may need jobs (got ready, sent results): dispatch looks at
                    * these only, so a message costs the same with 10 workers or 10,000 */
  int nwants;
  uint64_t host_id;
  buf_t hello, msg;
} farm_t;

static void ring_push(wstate *w, uint32_t slot) {
  if (w->count == w->cap) {
    uint32_t cap = w->cap ? w->cap * 2 : 8, *ring = xmalloc(cap * sizeof *ring);
    for (uint32_t i = 0; i < w->count; i++) ring[i] = w->ring[(w->head + i) % w->cap];
    free(w->ring);
    w->ring = ring, w->cap = cap, w->head = 0;
  }
  w->ring[(w->head + w->count++) % w->cap] = slot;
}

static uint32_t ring_pop(wstate *w) {
  uint32_t slot = w->ring[w->head];
  w->head = (w->head + 1) % w->cap;
  w->count--;
  return slot;
}

/* Take slot out of the ring wherever it is; -1 if it is not there. Results come back in the order
 * jobs were sent, except those a worker took out of its queue (cancelled, withdrawn): the ring
 * must keep the running job at its head for on_dead. */
static int ring_remove(wstate *w, uint32_t slot) {
  uint32_t k = 0;
  while (k < w->count && w->ring[(w->head + k) % w->cap] != slot) k++;
  if (k == w->count) return -1;
  if (k == 0) { /* the usual case: in order */
    ring_pop(w);
    return 0;
  }
  for (; k + 1 < w->count; k++) w->ring[(w->head + k) % w->cap] = w->ring[(w->head + k + 1) % w->cap];
  w->count--;
  return 0;
}

static int depth(const farm_t *f) {
  if (f->avg_job < 0 || f->avg_job >= 0.1) return 1;
  double d = 1 + ceil(PIPELINE_SECONDS / (f->avg_job + 1e-7));
  int max = f->link->max_depth ? f->link->max_depth : MAX_DEPTH;
  return d > max ? max : (int)d;
}

/* ---- hand-out ---- */

/* What worker wi is told of the budget: its deadline on the worker's own clock (0 for none). An
 * absolute time, not the seconds left: those would start counting only when the message arrives,
 * so a worker would start jobs after the budget ran out. */
static double budget_for(const farm_t *f, int wi) {
  if (f->ex.budget <= 0) return 0;
  double d = f->ex.budget + f->w[wi].offset;
  return d > 0 ? d : 1e-9; /* a clock that started later: already past */
}

static void send_batch(farm_t *f, int wi, uint32_t k) {
  buf_t *m = &f->msg;
  m->len = 0;
  wire_put_u32(m, k);
  wire_put_f64(m, budget_for(f, wi));
  uint32_t sent = 0;
  for (uint32_t i = 0; i < k && (i == 0 || m->len < MAX_BATCH_BYTES); i++, sent++) {
    uint32_t slot;
    uint64_t n;
    const char *params;
    size_t len;
    if (jobq_pop(&f->queue, &slot, &n, &params, &len)) break;
    wire_put_u32(m, slot);
    wire_put_u64(m, n);
    wire_put_bytes(m, params, len); /* before the queue is touched again */
    if (f->link->respawns) jobq_push(&f->w[wi].held, slot, n, params, len);
    if (f->w[wi].count == 0) f->w[wi].started = clock_now();
    ring_push(&f->w[wi], slot);
  }
  memcpy(m->data, &sent, sizeof sent); /* the count, when the size cap cut the batch short */
  f->link->ops->send(f->link, wi, TAG_JOBS, m);
}

static void want(farm_t *f, int wi) {
  if (f->w[wi].wanting || !f->w[wi].ready) return;
  f->w[wi].wanting = 1;
  f->wants[f->nwants++] = wi;
}

/* Idle workers first, each a fair share of the queue; then top up to the depth the workers that
 * are down to half of it. The half keeps messages large when the root is the bottleneck: topping
 * up one job per result would cost a message per job each way. */
static void dispatch(farm_t *f) {
  if (!f->queue.count || !f->nwants) return;
  int d = depth(f), low = d > 2 ? d / 2 : d - 1;
  for (int pass = 0; pass < 2 && f->queue.count; pass++) {
    int room = 0;
    for (int j = 0; j < f->nwants; j++) {
      wstate *w = &f->w[f->wants[j]];
      if (w->ready && (pass ? (int)w->count <= low : w->count == 0)) room++;
    }
    for (int j = 0; j < f->nwants && f->queue.count && room; j++) {
      int i = f->wants[j];
      wstate *w = &f->w[i];
      if (!w->ready || (pass ? (int)w->count > low : w->count != 0)) continue;
      uint32_t share = (f->queue.count + (uint32_t)room - 1) / (uint32_t)room;
      room--;
      uint32_t k = (uint32_t)d - w->count;
      send_batch(f, i, share < k ? share : k);
    }
  }
  /* Keep only the workers still short of work: the others come back with their next result. */
  int kept = 0;
  for (int j = 0; j < f->nwants; j++) {
    int i = f->wants[j];
    if (f->w[i].ready && (int)f->w[i].count <= low) f->wants[kept++] = i;
    else f->w[i].wanting = 0;
  }
  f->nwants = kept;
}

/* ---- results ---- */

/* A job a worker held is back: its copy is not needed any more (usually the oldest). */
static void forget_held(wstate *w, uint32_t slot) {
  uint32_t oldest;
  uint64_t n;
  const char *params;
  size_t len;
  if (jobq_peek_slot(&w->held, &oldest)) return;
  if (oldest == slot) {
    jobq_pop(&w->held, &oldest, &n, &params, &len);
    return;
  }
  buf_t gone;
  buf_init(&gone);
  jobq_take_listed(&w->held, &slot, 1, &gone);
  buf_free(&gone);
}

static int on_results(farm_t *f, int wi, const buf_t *m, exec_result_fn fn, void *ud) {
  const char *p = m->data, *end = p + m->len;
  wstate *w = &f->w[wi];
  uint32_t count;
  if (wire_get_u32(&p, end, &count)) return 0;
  int rank = f->link->ops->rank_of(f->link, wi);
  for (uint32_t i = 0; i < count; i++) {
    exec_result r;
    if (wire_get_u32(&p, end, &r.slot) || wire_get_f64(&p, end, &r.t_start) || wire_get_f64(&p, end, &r.t_end) ||
        wire_get_bytes(&p, end, &r.outcome, &r.len) || ring_remove(w, r.slot))
      return (int)i;
    forget_held(w, r.slot);
    w->started = r.t_end - w->offset; /* the next one starts as this one ends */
    r.rank = rank;
    if (r.t_start == OUTCOME_NEVER_STARTED) { /* cancelled in the worker's queue, or its budget gone */
      r.t_start = r.t_end;
      r.rank = -1;
    } else {
      double took = r.t_end - r.t_start;
      f->avg_job = f->avg_job < 0 ? took : 0.8 * f->avg_job + 0.2 * took;
    }
    r.t_start -= w->offset, r.t_end -= w->offset;
    fn(ud, &r);
  }
  want(f, wi);
  return (int)count;
}

/* The worker died: its oldest job is the one that crashed; the others it held go back to the
 * queue, from the copies kept for a link that replaces its workers (cancelled without them). */
static int on_dead(farm_t *f, int wi, const buf_t *m, exec_result_fn fn, void *ud) {
  wstate *w = &f->w[wi];
  w->ready = 0;
  int delivered = 0;
  if (w->count) {
    buf_t out;
    buf_init(&out);
    outcome_encode_message(RUN_CRASHED, m->data, m->len, &out);
    double now = clock_now();
    exec_result r = {ring_pop(w), now, now, f->link->ops->rank_of(f->link, wi), out.data, out.len};
    forget_held(w, r.slot);
    fn(ud, &r);
    buf_free(&out);
    delivered = 1;
  }
  while (w->count) {
    uint32_t slot = ring_pop(w), held_slot;
    uint64_t n;
    const char *params;
    size_t len;
    if (jobq_pop(&w->held, &held_slot, &n, &params, &len) == 0) jobq_push(&f->queue, held_slot, n, params, len);
    else wire_put_u32(&f->cancelled, slot);
  }
  /* The link replaced the worker: greet the new one. */
  buf_t hello;
  buf_init(&hello);
  buf_add(&hello, f->hello.data, f->hello.len);
  f->link->ops->send(f->link, wi, TAG_HELLO, &hello);
  buf_free(&hello);
  return delivered;
}

static void on_hello(farm_t *f, int wi, const buf_t *m) {
  const char *p = m->data, *end = p + m->len;
  double sent, theirs;
  uint64_t host;
  if (wire_get_f64(&p, end, &sent) || wire_get_f64(&p, end, &theirs) || wire_get_u64(&p, end, &host)) return;
  double now = clock_now();
  /* One machine has one monotonic clock; across machines, estimate from the round trip. */
  f->w[wi].offset = host == f->host_id ? 0.0 : theirs - (sent + now) / 2;
  f->w[wi].ready = 1;
  want(f, wi);
}

static int handle(farm_t *f, int wi, int tag, exec_result_fn fn, void *ud) {
  switch (tag) {
    case TAG_RESULTS: return on_results(f, wi, &f->msg, fn, ud);
    case TAG_DEAD: return on_dead(f, wi, &f->msg, fn, ud);
    case TAG_HELLO: on_hello(f, wi, &f->msg); return 0;
    default: return 0;
  }
}

/* When the next result is likely: the earliest of the busy workers' start plus a mean job. */
static double next_result_at(const farm_t *f) {
  if (f->avg_job < 0 || f->link->nworkers > 64) return 0; /* a hint, not worth a long scan */
  double at = 0;
  for (int i = 0; i < f->link->nworkers; i++)
    if (f->w[i].count && (at == 0 || f->w[i].started + f->avg_job < at)) at = f->w[i].started + f->avg_job;
  return at;
}

static int farm_poll(executor_t *ex, double wait, exec_result_fn fn, void *ud) {
  farm_t *f = (farm_t *)ex;
  dispatch(f);
  f->link->expect_at = next_result_at(f);
  if (!fn) return 0;
  int delivered = 0;
  delivered += exec_deliver_stopped(&f->cancelled, RUN_CANCELLED, fn, ud);
  double deadline = clock_now() + wait;
  for (;;) {
    int wi, tag;
    double left = delivered ? 0 : deadline - clock_now();
    int rc = f->link->ops->recv(f->link, left > 0 ? left : 0, &wi, &tag, &f->msg);
    if (rc < 0) {
      snprintf(ex->err, sizeof ex->err, "%s", f->link->err);
      return -1;
    }
    if (rc == 0) return delivered;
    delivered += handle(f, wi, tag, fn, ud);
    delivered += exec_deliver_stopped(&f->cancelled, RUN_CANCELLED, fn, ud);
    dispatch(f);
  }
}

/* ---- the rest of the interface ---- */

static void farm_launch(executor_t *ex, uint32_t slot, uint64_t n, const char *params, size_t len) {
  jobq_push(&((farm_t *)ex)->queue, slot, n, params, len);
}

/* A CTRL message to worker wi: op, arg, then the u32 slots of `slots` (CTRL_WITHDRAW), if any. */
static void send_ctrl(farm_t *f, int wi, uint32_t op, double arg, const buf_t *slots) {
  buf_t m;
  buf_init(&m);
  wire_put_u32(&m, op);
  wire_put_f64(&m, arg);
  if (slots) {
    wire_put_u32(&m, (uint32_t)(slots->len / sizeof(uint32_t)));
    buf_add(&m, slots->data, slots->len);
  }
  f->link->ops->send(f->link, wi, TAG_CTRL, &m);
  buf_free(&m);
}

static void farm_set_budget(executor_t *ex, double deadline) {
  farm_t *f = (farm_t *)ex;
  ex->budget = deadline;
  for (int i = 0; i < f->link->nworkers; i++)
    if (f->w[i].count) send_ctrl(f, i, CTRL_BUDGET, budget_for(f, i), NULL);
}

static void farm_cancel(executor_t *ex, int running) {
  farm_t *f = (farm_t *)ex;
  jobq_take_slots(&f->queue, &f->cancelled);
  for (int i = 0; i < f->link->nworkers; i++)
    if (f->w[i].count) send_ctrl(f, i, running ? CTRL_CANCEL_ALL : CTRL_CANCEL_QUEUED, 0, NULL);
}

/* Queued jobs come back cancelled; each worker is told which of the jobs it holds to drop or stop. */
static void farm_withdraw(executor_t *ex, const uint32_t *slots, size_t n) {
  farm_t *f = (farm_t *)ex;
  jobq_take_listed(&f->queue, slots, n, &f->cancelled);
  buf_t mine;
  buf_init(&mine);
  for (int i = 0; i < f->link->nworkers; i++) {
    wstate *w = &f->w[i];
    mine.len = 0;
    for (uint32_t k = 0; k < w->count; k++) {
      uint32_t slot = w->ring[(w->head + k) % w->cap];
      if (jobq_slot_listed(slot, slots, n)) wire_put_u32(&mine, slot);
    }
    if (!mine.len) continue;
    jobq_sort_slots((uint32_t *)(void *)mine.data, mine.len / sizeof *slots);
    send_ctrl(f, i, CTRL_WITHDRAW, 0, &mine);
  }
  buf_free(&mine);
}

/* Jobs never handed out will not run: they come back cancelled through the last poll. */
static void farm_shutdown(executor_t *ex) {
  farm_t *f = (farm_t *)ex;
  jobq_take_slots(&f->queue, &f->cancelled);
  for (int i = 0; i < f->link->nworkers; i++) send_ctrl(f, i, CTRL_STOP, 0, NULL);
}

static void farm_destroy(executor_t *ex) {
  farm_t *f = (farm_t *)ex;
  f->link->ops->destroy(f->link);
  for (int i = 0; i < ex->num_workers; i++) {
    free(f->w[i].ring);
    jobq_free(&f->w[i].held);
  }
  free(f->w);
  free(f->wants);
  jobq_free(&f->queue);
  buf_free(&f->cancelled);
  buf_free(&f->hello);
  buf_free(&f->msg);
  free(f);
}

static const executor_ops farm_ops = {farm_launch,   farm_poll,     farm_set_budget, farm_cancel,
                                      farm_withdraw, farm_shutdown, farm_destroy};

executor_t *farm_new(link_t *link, const exec_config *cfg, char *err, size_t errlen) {
  farm_t *f = xmalloc(sizeof *f);
  memset(f, 0, sizeof *f);
  f->ex.ops = &farm_ops;
  f->ex.num_workers = link->nworkers;
  f->ex.background = 1;
  f->link = link;
  f->avg_job = -1;
  f->host_id = link_host_id();
  f->w = xmalloc((size_t)link->nworkers * sizeof *f->w);
  memset(f->w, 0, (size_t)link->nworkers * sizeof *f->w);
  f->wants = xmalloc((size_t)link->nworkers * sizeof *f->wants);
  jobq_init(&f->queue);
  buf_init(&f->cancelled);
  buf_init(&f->msg);
  buf_init(&f->hello);
  wire_put_f64(&f->hello, clock_now());
  wire_put_f64(&f->hello, cfg->job_timeout);
  wire_put_u64(&f->hello, cfg->mem_limit);
  wire_put_bytes(&f->hello, cfg->search_id, strlen(cfg->search_id));
  for (int i = 0; i < link->nworkers; i++) {
    buf_t m;
    buf_init(&m);
    buf_add(&m, f->hello.data, f->hello.len);
    link->ops->send(link, i, TAG_HELLO, &m);
    buf_free(&m);
  }
  for (int answered = 0; answered < link->nworkers;) {
    int wi, tag;
    int rc = link->ops->recv(link, 1.0, &wi, &tag, &f->msg);
    if (rc < 0 || sigint_pending()) {
      snprintf(err, errlen, "%s", rc < 0 ? link->err : "interrupted");
      farm_shutdown(&f->ex);
      farm_destroy(&f->ex);
      return NULL;
    }
    if (rc == 1 && tag == TAG_HELLO && !f->w[wi].ready) {
      on_hello(f, wi, &f->msg);
      answered++;
    }
  }
  return &f->ex;
}
