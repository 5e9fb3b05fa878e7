/* runner.h: one job in one Lua state: the call of the run function under its guard, and the
 * classification of what came out. The same code serves MPI ranks, threads, processes and serial. */
#ifndef EVL_RUNNER_H
#define EVL_RUNNER_H

#include <lua.h>

#include "buf.h"
#include "interrupt.h"

/* Limits that apply to one job. */
typedef struct job_limits {
  double deadline;         /* absolute monotonic from the job's budget, 0 = none */
  double job_timeout;      /* seconds from the job's start, 0 = none */
  size_t mem_limit;        /* bytes of Lua memory, 0 = none */
} job_limits;

/* Call run(job, kwargs) with the three values on top of L's stack (function, job, kwargs), popping
 * them. On RUN_OK leaves the output on the stack; otherwise leaves a string (error message and
 * traceback, or why the job was stopped). Sets *t_start and *t_end (monotonic). */
run_status runner_call(lua_State *L, guard_t *g, const job_limits *lim, double *t_start, double *t_end);

/* The deadline of a job that started at `start` (0 = none), and why it would be stopped: the
 * search's budget (RUN_CANCELLED) or job_timeout (RUN_TIMEOUT), whichever comes first. */
run_status runner_deadline(const job_limits *lim, double start, double *deadline);

/* Encode the outcome of a job stopped with st (never run, or stopped), as runner_encode_outcome
 * would: the status byte and the message that says why. */
void runner_encode_stopped(run_status st, buf_t *out);

/* Encode the outcome left on the stack by runner_call (and pop it): the status byte and the
 * output (RUN_OK) or message. An output that cannot be encoded turns the job into RUN_ERROR. */
void runner_encode_outcome(lua_State *L, run_status st, buf_t *out);

#endif
