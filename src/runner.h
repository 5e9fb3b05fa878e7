/* runner.h: a job in a Lua state. The runner makes the run function's view of the job (l_job.c),
 * calls the run function under the state's guard, and turns what came out into an outcome
 * (outcome.h). With the bindings, it is the only code that speaks Lua: the pools and the worker
 * loop above it move bytes. The same code serves MPI ranks, threads, processes, serial and custom
 * backends (whose jobs are coroutines). */
#ifndef EVL_RUNNER_H
#define EVL_RUNNER_H

#include <stdint.h>
#include <lua.h>

#include "buf.h"
#include "guard.h"
#include "outcome.h"

/* Limits that apply to one job. */
typedef struct job_limits {
  double deadline;         /* absolute monotonic, the search's budget; 0 = none */
  double job_timeout;      /* seconds from the job's start, 0 = none */
  size_t mem_limit;        /* bytes of Lua memory, 0 = none */
} job_limits;

typedef struct runner {
  lua_State *L;
  guard_t *g;
  int run_ref, kwargs_ref; /* registry refs: the run function and its kwargs */
  char search_id[128];
  int gc_mode;             /* the collector's mode before runner_serving(r, 1) */
} runner_t;

/* A runner over L calling the function at fn_idx with the table at kwargs_idx (nil: an empty
 * table) as its second argument. runner_free drops the references. */
void runner_init(runner_t *r, lua_State *L, guard_t *g, int fn_idx, int kwargs_idx);
void runner_free(runner_t *r);
/* The search id job ids are made with ("<search_id>.<n>"). */
void runner_set_search_id(runner_t *r, const char *search_id, size_t len);
/* While a worker serves (on = 1) and after (0): jobs make young garbage, what the generational
 * collector is for (a third fewer instructions per no-op job than the incremental one). */
void runner_serving(runner_t *r, int on);

/* The deadline of a job that started at `start` (0 = none), and why it would be stopped: the
 * search's budget (RUN_CANCELLED) or job_timeout (RUN_TIMEOUT), whichever comes first. */
run_status runner_deadline(const job_limits *lim, double start, double *deadline);

/* Run job number n with the parameters params[0..len) (a wire.h value) under lim: append its
 * outcome to out, set its start and end times (monotonic; the start is OUTCOME_NEVER_STARTED for a
 * job stopped before it began). Returns how it ended. */
run_status runner_run(runner_t *r, uint64_t n, const char *params, size_t len, const job_limits *lim, buf_t *out,
                      double *t_start, double *t_end);

/* A job as a coroutine (custom backends: the function may yield while it waits). runner_co_new
 * returns its handle, or -1 when params is malformed. runner_co_resume resumes it once under lim
 * (start: its first resume) and returns 1 with the outcome appended to out when it is over, 0 when
 * it yielded. runner_co_free forgets it (closing it if it had not ended). */
int runner_co_new(runner_t *r, uint64_t n, const char *params, size_t len);
int runner_co_resume(runner_t *r, int co, const job_limits *lim, double start, buf_t *out);
void runner_co_free(runner_t *r, int co);

#endif
