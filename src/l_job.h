/* l_job.h: every Lua table that stands for a job is made here, and only here: the root's job
 * (made at submit, completed when it comes back) and the view a run function (or a custom
 * backend's execute) gets, a copy of the parameters under every method. */
#ifndef EVL_L_JOB_H
#define EVL_L_JOB_H

#include <stdint.h>
#include <lua.h>

#include "outcome.h"

/* Push the job id "<search_id>.<n>". */
void ljob_push_id(lua_State *L, const char *search_id, uint64_t n);

/* Push what the run function gets: { id =, parameters =, args = } with the parameters decoded
 * from params[0..len) (a wire.h value): its own copy. Returns -1 (nothing pushed) if malformed. */
int ljob_push_view(lua_State *L, const char *search_id, uint64_t n, const char *params, size_t len);

/* Push the root's table of a job just submitted with the parameters table at params_idx:
 * { id =, parameters =, args =, status = "RUNNING" }. */
void ljob_push_submitted(lua_State *L, const char *search_id, uint64_t n, int params_idx);

/* The times of a finished job, monotonic seconds on the root's clock, and where it ran. */
typedef struct ljob_times {
  double t0; /* the evaluator's creation: timestamps count from here */
  double submit, start, end, gather;
  int rank;
} ljob_times;

/* Complete the root's job table at job_idx from how it ended: st, and the value at out_idx (the
 * output when st is RUN_OK, else the message). Sets output, objective, metadata (the run
 * function's own metadata, the four timestamps in order, rank, error) and status. */
void ljob_finish(lua_State *L, int job_idx, run_status st, int out_idx, const ljob_times *t);

#endif
