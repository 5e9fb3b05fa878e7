/* executor.h: the one interface between the root's bookkeeping (l_core.c) and whatever runs the
 * jobs: the serial executor (pool_serial.c, jobs run in the root's own state), custom backends
 * (pool_custom.c, jobs as coroutines there), and the pools of workers (farm.c over the links of
 * pool_thread.c, pool_process.c, pool_mpi.c). Jobs go in encoded; outcomes come out encoded, with
 * times on the root's clock. Every method is one of these; nothing above this interface knows
 * which. */
#ifndef EVL_EXECUTOR_H
#define EVL_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>
#include <mpi.h>

#include "buf.h"
#include "outcome.h"

struct runner;
struct runtime;

/* One finished job as the executor hands it back; valid only during the callback. */
typedef struct exec_result {
  uint32_t slot;
  double t_start, t_end; /* monotonic, root clock */
  int rank;              /* metadata.rank: -1 for a job that never started */
  const char *outcome;   /* outcome.h bytes */
  size_t len;
} exec_result;

typedef void (*exec_result_fn)(void *ud, const exec_result *r);

typedef struct executor executor_t;

typedef struct executor_ops {
  /* Queue job number n (params encoded by wire.c; copied) in slot. */
  void (*launch)(executor_t *ex, uint32_t slot, uint64_t n, const char *params, size_t len);
  /* Start queued jobs and deliver finished ones through fn, waiting up to `wait` seconds for the
   * first (with fn NULL: only start what can start). Returns how many were delivered, or -1 with
   * ex->err set when the workers are lost. */
  int (*poll)(executor_t *ex, double wait, exec_result_fn fn, void *ud);
  /* The whole search's deadline changed (absolute monotonic, 0 = none): tell running jobs. */
  void (*set_budget)(executor_t *ex, double deadline);
  /* Stop jobs: queued ones come back RUN_CANCELLED without running; running ones too when
   * `running` is set. Their outcomes still arrive through poll. */
  void (*cancel)(executor_t *ex, int running);
  /* Take back the jobs in slots[0..n) (sorted ascending), the last ones launched, whose submit
   * failed: queued ones never run, a running one is stopped. Each still comes back through poll
   * (cancelled, or finished if it ended first); the caller drops what comes. */
  void (*withdraw)(executor_t *ex, const uint32_t *slots, size_t n);
  /* Release the workers. Jobs that cannot finish any more come back through one last poll. */
  void (*shutdown)(executor_t *ex);
  void (*destroy)(executor_t *ex);
} executor_ops;

struct executor {
  const executor_ops *ops;
  int num_workers;
  int background;          /* jobs run while the root does other work (the worker pools): a long
                            * submit polls it as it goes, so workers start before the list is read */
  double budget;           /* absolute monotonic deadline of the search, 0 = none */
  char err[256];
};

/* What every worker needs to know about the evaluator it serves, sent once at start. */
typedef struct exec_config {
  const char *search_id;
  double job_timeout;      /* seconds, 0 = none */
  size_t mem_limit;        /* bytes, 0 = none */
} exec_config;

/* What an executor is made from. */
typedef struct exec_args {
  exec_config cfg;
  struct runner *runner;   /* the run function in the calling state */
  struct runtime *rt;      /* the calling state's runtime */
  int num_workers;         /* 0 = the method's default */
  MPI_Comm comm;           /* mpicomm only */
  int root;                /* mpicomm only */
} exec_args;

/* Every method's constructor. Returns the executor, or NULL: with err set on failure, or with
 * err empty on a rank or thread that served as a worker until its root closed (mpicomm). */
typedef executor_t *(*exec_new_fn)(const exec_args *a, char *err, size_t errlen);

/* Deliver the jobs in slots (u32 each) as stopped with why, never started (rank -1), and empty
 * slots. Returns how many. */
int exec_deliver_stopped(buf_t *slots, run_status why, exec_result_fn fn, void *ud);

#endif
