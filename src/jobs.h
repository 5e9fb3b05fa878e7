/* jobs.h: the root's job bookkeeping: slots for jobs in flight, ids "<search_id>.<n>", counters,
 * and the finished job table (output, objective, metadata with the four timestamps, status). */
#ifndef EVL_JOBS_H
#define EVL_JOBS_H

#include <stdint.h>
#include <lua.h>

#include "interrupt.h"

typedef struct job_rec {
  uint64_t n;
  double t_submit;      /* monotonic */
  uint32_t next_free;   /* free-list link while unused */
  int in_use;
} job_rec;

typedef struct jobs {
  job_rec *recs;
  uint32_t cap, free_head;
  uint64_t next_n;        /* the next job number */
  uint64_t submitted, gathered, in_flight;
  double t0;              /* creation time (monotonic): timestamps count from here */
} jobs_t;

void jobs_init(jobs_t *J, double t0);
void jobs_free(jobs_t *J);
/* Take a slot for a new job submitted at `now`; its number is J->recs[slot].n. */
uint32_t jobs_add(jobs_t *J, double now);
/* Give the slot back once its job is gathered. */
void jobs_release(jobs_t *J, uint32_t slot);

/* Push the job id "<search_id>.<n>". */
void jobs_push_id(lua_State *L, const char *search_id, uint64_t n);

/* Complete the job table at job_idx from what the run function gave (the value at out_idx: the
 * output when st is RUN_OK, else a message). Sets output, objective, metadata (user metadata,
 * timestamps relative to t0 in order, rank, error) and status. Timestamps are monotonic seconds
 * on the root's clock. */
void jobs_finish(lua_State *L, const jobs_t *J, int job_idx, run_status st, int out_idx,
                 double t_submit, double t_start, double t_end, double t_gather, int rank);

/* The objective a run function's output stands for, pushed: a number, a list of numbers, an
 * "F..." string; NaN and infinities become "F". Returns an explanation when the output is not
 * a valid result (then "F" is pushed), or NULL. Also used by custom backends. */
const char *jobs_push_objective(lua_State *L, int out_idx);

#endif
