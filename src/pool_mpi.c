/* pool_mpi.c: the mpicomm method (see pool_mpi.h): the MPI links between the root and its worker
 * ranks under farm.c and worker.c. Nothing blocks in MPI: sends are non-blocking, and waiting is a
 * probe with a growing nap, so an idle rank burns no core. */
#include "pool_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "departures.h"
#include "farm.h"
#include "sigint.h"
#include "wire.h"
#include "worker.h"

#define NAP_MIN_NS 20000L    /* first nap after the spin */
/* The root's longest nap, and create's: how late a message may be seen. The root spins when a
 * result is due, so only a surprise waits this long. */
#define NAP_MAX_NS 1000000L
#define NAP_JOBS_NS 400000L  /* a worker's longest nap in its first IDLE_LONG seconds idle... */
#define NAP_IDLE_NS 2000000L /* ...and after them: a rank idle that long wakes 500 times a second */
#define IDLE_LONG 1.0        /* seconds: a driver's gaps between rounds are mostly shorter */
#define SPIN_MIN 1e-3        /* seconds of probing before the first nap... */
#define SPIN_MAX 3e-3        /* ...up to this when messages have been coming that fast */
#define SPIN_OVERDUE 50e-6   /* when the expected result is long overdue (jobs of uneven length) */
#define WAIT_WARNING 10.0    /* seconds waiting for the other ranks at create before saying so */

static int world_rank, world_size;

void pool_mpi_init_world(void) {
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
}

int pool_mpi_world_rank(void) { return world_rank; }
int pool_mpi_world_size(void) { return world_size; }

/* ---- sends in flight, shared by both ends ---- */

typedef struct outbox {
  MPI_Request *reqs;
  buf_t *bufs;
  int n, cap;
  double usual_wait; /* moving average of how long a message took to come: how long to spin */
  int waits_for_jobs; /* a worker rank's: what it waits for may come at any moment (nap_cap) */
} outbox;

/* The longest nap of a wait idle for `idle` seconds. The root knows when results are due and
 * spins then. A worker cannot know when its next job comes, and a job sent after a short gap
 * should start within a millisecond: it naps briefly while the gap is short, longer once it is
 * long (each wake costs about 20 us of a core). */
static long nap_cap(const outbox *o, double idle) {
  if (!o->waits_for_jobs) return NAP_MAX_NS;
  return idle < IDLE_LONG ? NAP_JOBS_NS : NAP_IDLE_NS;
}

static void outbox_reap(outbox *o) {
  for (int i = 0; i < o->n;) {
    int done = 0;
    MPI_Test(&o->reqs[i], &done, MPI_STATUS_IGNORE);
    if (!done) {
      i++;
      continue;
    }
    buf_free(&o->bufs[i]);
    o->reqs[i] = o->reqs[--o->n];
    o->bufs[i] = o->bufs[o->n];
  }
}

static void outbox_send(outbox *o, MPI_Comm comm, int dest, int tag, buf_t *msg) {
  outbox_reap(o);
  if (o->n == o->cap) {
    o->cap = o->cap ? o->cap * 2 : 8;
    o->reqs = xrealloc(o->reqs, (size_t)o->cap * sizeof *o->reqs);
    o->bufs = xrealloc(o->bufs, (size_t)o->cap * sizeof *o->bufs);
  }
  o->bufs[o->n] = *msg;
  buf_init(msg);
  MPI_Isend(o->bufs[o->n].data, (int)o->bufs[o->n].len, MPI_BYTE, dest, tag, comm, &o->reqs[o->n]);
  o->n++;
}

/* Wait for what is still in flight, but not for ever: a peer that is gone cannot receive. A send
 * still in flight then is left alone with its buffer (MPI may still read it; cancelling sends is
 * not supported by Open MPI's ob1): a few bytes leaked at the end of an evaluator, not freed
 * memory under MPI's feet. */
static void outbox_drain(outbox *o, double seconds) {
  double until = clock_now() + seconds;
  while (o->n && clock_now() < until) {
    outbox_reap(o);
    struct timespec ts = {0, NAP_MIN_NS};
    if (o->n) nanosleep(&ts, NULL);
  }
  if (o->n) return;
  free(o->reqs);
  free(o->bufs);
  memset(o, 0, sizeof *o);
}

/* Probe for a message from `source` (or any) until `wait` seconds pass (wait < 0: until one comes
 * or the process is interrupted: then the caller decides how long to go on waiting). Returns 1 with the message received into msg, else 0. */
static int probe_recv(MPI_Comm comm, int source, double wait, outbox *o, double expect_at, int *from, int *tag,
                      buf_t *msg) {
  double start = clock_now(), until = wait < 0 ? 0 : start + wait;
  /* Spin while a message is likely soon: right away when the recent waits were short, or around
   * the time the next result is expected (expect_at, from the farm). Nap otherwise, so an idle
   * rank leaves its core to the ranks that work. */
  double spin = o->usual_wait < SPIN_MAX / 3 ? 3 * o->usual_wait : SPIN_MIN;
  if (spin < SPIN_MIN) spin = SPIN_MIN;
  double spin_from = start, spin_until = start + spin;
  if (expect_at > start + 2 * SPIN_MIN) { /* not before the expected time */
    spin_from = expect_at - SPIN_MIN;
    spin_until = expect_at + SPIN_MAX;
  } else if (expect_at > 0 && start > expect_at + SPIN_MAX) { /* long overdue: no sooner now */
    spin_until = start + SPIN_OVERDUE;
  }
  long nap = NAP_MIN_NS;
  for (;;) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(source, MPI_ANY_TAG, comm, &flag, &st);
    if (flag) {
      int count;
      MPI_Get_count(&st, MPI_BYTE, &count);
      msg->len = 0;
      buf_reserve(msg, (size_t)count);
      MPI_Recv(msg->data, count, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, comm, MPI_STATUS_IGNORE);
      msg->len = (size_t)count;
      *from = st.MPI_SOURCE;
      *tag = st.MPI_TAG;
      if (wait != 0) o->usual_wait = 0.8 * o->usual_wait + 0.2 * (clock_now() - start);
      return 1;
    }
    if (wait == 0 || (wait < 0 && sigint_pending())) return 0;
    double now = clock_now();
    if (wait > 0 && now >= until) return 0;
    if (now >= spin_from && now < spin_until) continue;
    outbox_reap(o);
    long ns = nap;
    if (now < spin_from && (spin_from - now) * 1e9 < ns) ns = (long)((spin_from - now) * 1e9);
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
    long cap = nap_cap(o, now - start);
    nap = nap < cap / 2 ? nap * 2 : cap;
  }
}

/* ---- the root's link ---- */

typedef struct root_link {
  link_t base;
  MPI_Comm comm;
  int root;
  outbox out;
} root_link;

static int worker_rank(const root_link *r, int w) { return w < r->root ? w : w + 1; }

static int root_send(link_t *l, int w, int tag, buf_t *msg) {
  root_link *r = (root_link *)l;
  outbox_send(&r->out, r->comm, worker_rank(r, w), tag, msg);
  return 0;
}

static int root_recv(link_t *l, double wait, int *w, int *tag, buf_t *msg) {
  root_link *r = (root_link *)l;
  int from;
  if (!probe_recv(r->comm, MPI_ANY_SOURCE, wait, &r->out, l->expect_at, &from, tag, msg)) return 0;
  *w = from < r->root ? from : from - 1;
  return *w < l->nworkers ? 1 : 0;
}

static int root_rank_of(link_t *l, int w) { return worker_rank((root_link *)l, w); }

static void root_destroy(link_t *l) {
  root_link *r = (root_link *)l;
  outbox_drain(&r->out, sigint_pending() ? 0.05 : 5.0);
  MPI_Comm_free(&r->comm);
  free(r);
}

static const link_ops root_link_ops = {root_send, root_recv, root_rank_of, root_destroy};

/* ---- a worker rank's link ---- */

typedef struct worker_link {
  wlink_t base;
  MPI_Comm comm;
  int root;
  outbox out;
} worker_link;

static int wl_send(wlink_t *l, int tag, buf_t *msg) {
  worker_link *w = (worker_link *)l;
  outbox_send(&w->out, w->comm, w->root, tag, msg);
  return 0;
}

static int wl_recv(wlink_t *l, double wait, int *tag, buf_t *msg) {
  worker_link *w = (worker_link *)l;
  int from;
  return probe_recv(w->comm, w->root, wait, &w->out, 0, &from, tag, msg);
}

static const wlink_ops worker_link_ops = {wl_send, wl_recv};

/* ---- both ---- */

static void stop_rank(MPI_Comm comm, int rank) {
  buf_t m;
  buf_init(&m);
  wire_put_u32(&m, CTRL_STOP);
  wire_put_f64(&m, 0);
  MPI_Send(m.data, (int)m.len, MPI_BYTE, rank, TAG_CTRL, comm);
  buf_free(&m);
}

/* MPI_Comm_dup, which waits for every rank of comm to call create: a rank that never does (create
 * inside `if rank == 0`) would hang the others, so they say what they wait for, and fail once that
 * rank's script has ended without it (departures.h). Returns -1 with err set when interrupted or
 * failed. */
static int dup_everywhere(MPI_Comm comm, int rank, MPI_Comm *dup, char *err, size_t errlen) {
  int nth = departures_count_create(comm);
  MPI_Request req;
  MPI_Comm_idup(comm, dup, &req);
  double start = clock_now(), next_warning = start + WAIT_WARNING;
  long nap = NAP_MIN_NS;
  for (int done = 0; !done;) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) break;
    if (sigint_pending()) {
      snprintf(err, errlen, "interrupted while waiting for every rank to call evaluator.create");
      return -1;
    }
    if (departures_check(comm, nth, err, errlen)) return -1; /* the dup stays pending: the run ends */
    double now = clock_now();
    if (now >= next_warning) {
      fprintf(stderr, "evaluator-lua: rank %d has waited %.0f s for every rank of the communicator to call "
              "evaluator.create(..., \"mpicomm\"): all of them must (write `local ev = evaluator.create(...)` "
              "on every rank and `if ev then` around the driver, not `if rank == 0`)\n", rank, now - start);
      next_warning = now + 6 * WAIT_WARNING;
    }
    struct timespec ts = {0, nap};
    nanosleep(&ts, NULL);
    nap = nap < NAP_MAX_NS / 2 ? nap * 2 : NAP_MAX_NS;
  }
  return 0;
}

/* A worker rank: serve until the root says stop. */
static executor_t *serve(const exec_args *a, MPI_Comm dup, int rank, char *err, size_t errlen) {
  worker_link wl;
  memset(&wl, 0, sizeof wl);
  wl.base.ops = &worker_link_ops;
  wl.base.rank = rank;
  wl.comm = dup;
  wl.root = a->root;
  wl.out.waits_for_jobs = 1;
  int rc = worker_serve(a->runner, &wl.base);
  outbox_drain(&wl.out, rc || sigint_pending() ? 0.05 : 5.0);
  MPI_Comm_free(&dup);
  if (rc) snprintf(err, errlen, "%s", wl.base.err);
  else err[0] = '\0';
  return NULL;
}

executor_t *pool_mpi_new(const exec_args *a, char *err, size_t errlen) {
  int rank, size, root = a->root, num_workers = a->num_workers;
  MPI_Comm_rank(a->comm, &rank);
  MPI_Comm_size(a->comm, &size);
  if (size < 2) {
    snprintf(err, errlen, "the mpicomm method needs at least 2 ranks (a root and a worker), and this communicator "
             "has 1: run it as 'mpirun -np 4 evaluator-lua script.lua', or use the serial, thread or process method");
    return NULL;
  }
  if (root < 0 || root >= size) {
    snprintf(err, errlen, "root = %d is not a rank of the communicator (size %d)", root, size);
    return NULL;
  }
  if (num_workers <= 0) num_workers = size - 1;
  if (num_workers > size - 1) {
    snprintf(err, errlen, "num_workers = %d, but the communicator has only %d ranks besides the root", num_workers,
             size - 1);
    return NULL;
  }
  MPI_Comm dup;
  if (dup_everywhere(a->comm, rank, &dup, err, errlen)) return NULL;
  if (rank != root) return serve(a, dup, rank, err, errlen);
  /* Ranks beyond num_workers serve nothing: release them now. */
  for (int w = num_workers; w < size - 1; w++) stop_rank(dup, w < root ? w : w + 1);
  root_link *r = xmalloc(sizeof *r);
  memset(r, 0, sizeof *r);
  r->base.ops = &root_link_ops;
  r->base.nworkers = num_workers;
  r->comm = dup;
  r->root = root;
  return farm_new(&r->base, &a->cfg, err, errlen);
}
