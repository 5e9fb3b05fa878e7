/* executor.h: the interface between the root's bookkeeping and whatever runs the jobs (MPI ranks,
 * threads, processes). Jobs go in encoded; results come out encoded, with times on the root's clock. */
#ifndef EVL_EXECUTOR_H
#define EVL_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#include "interrupt.h"

/* One finished job as the executor hands it back. payload holds the runner's outcome encoding:
 * the status byte, then the output (RUN_OK) or the message. Valid only during the callback. */
typedef struct exec_result {
  uint32_t slot;
  run_status status;
  double t_start, t_end; /* monotonic, root clock */
  int rank;
  const char *payload;
  size_t len;
} exec_result;

typedef void (*exec_result_fn)(void *ud, const exec_result *r);

/* What every worker needs to know about the evaluator it serves, sent once at start. */
typedef struct exec_config {
  const char *search_id;
  double job_timeout;      /* seconds, 0 = none */
  size_t mem_limit;        /* bytes, 0 = none */
} exec_config;

typedef struct executor executor_t;

typedef struct executor_ops {
  /* Queue a job (params encoded by wire.c; copied). */
  void (*launch)(executor_t *ex, uint32_t slot, uint64_t n, const char *params, size_t len);
  /* Hand out queued jobs and deliver finished ones through fn, waiting up to `wait` seconds for
   * the first. Returns how many were delivered, or -1 with ex->err set when the workers are lost. */
  int (*poll)(executor_t *ex, double wait, exec_result_fn fn, void *ud);
  /* The whole search's deadline changed (absolute monotonic, 0 = none): tell running jobs. */
  void (*set_budget)(executor_t *ex, double deadline);
  /* Stop jobs: queued ones come back RUN_CANCELLED without running; running ones too when
   * `running` is set. Their results still arrive through poll. */
  void (*cancel)(executor_t *ex, int running);
  /* Release the workers (every result should have been polled first). */
  void (*shutdown)(executor_t *ex);
  void (*destroy)(executor_t *ex);
} executor_ops;

struct executor {
  const executor_ops *ops;
  int num_workers;
  double budget;           /* absolute monotonic deadline of the search, 0 = none */
  char err[256];
};

#endif
