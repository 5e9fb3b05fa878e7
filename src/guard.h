/* guard.h: stopping a running job for real. A guard belongs to one Lua state and its thread: it
 * carries the running job's deadline, a cancel request, the memory cap and the process groups the
 * job spawned. A stop is raised from a Lua hook (armed by a signal: the ticker's, or Ctrl-C's) and
 * raised again at every instruction, so the run function's own pcall cannot swallow it. */
#ifndef EVL_GUARD_H
#define EVL_GUARD_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <lua.h>

#include "memcap.h"
#include "outcome.h"
#include "pgroups.h"

#define GUARD_MAX_COROUTINES 32

typedef struct guard {
  lua_State *L;
  pthread_mutex_t mu;       /* a job's start and end vs the ticker's stop: it never kills the next job's commands */
  memcap_t mem;             /* the state's allocator counts here (memcap_alloc's ud) */
  pgroups_t groups;         /* the running job's commands */
  /* Written by the owner thread around a job; read by the ticker. */
  atomic_int running;
  atomic_ulong job_seq;
  _Atomic double deadline;  /* monotonic seconds, 0 = none */
  atomic_int deadline_why;  /* RUN_TIMEOUT or RUN_CANCELLED */
  atomic_int polls;         /* poll is set: the ticker nudges a long job to call it */
  /* Set by anyone (root thread, ticker, signal handler): a run_status to stop with. */
  atomic_int cancel;
  /* The owner thread's alone. */
  double started;           /* when the job started (monotonic) */
  run_status raised;        /* what the hook raised, sticky until the job ends */
  int (*poll)(void *ud);    /* lets a transport look for a cancel message; returns a run_status or 0 */
  void *poll_ud;
  /* Coroutines the job is inside of (resumed, not yet back): hooks are per coroutine, so a stop
   * arms theirs too. Read by signal handlers on the owner thread. */
  lua_State *co_stack[GUARD_MAX_COROUTINES];
  volatile sig_atomic_t co_depth;
  /* The ticker signal handler's (owner thread): arming walks every frame of the stack, which at
   * hundreds of thousands of frames (a recursion without end) costs more than a tick; no arming
   * again before this time keeps the job running 90 % of the time whatever its depth. */
  double calm_until;
  /* The ticker's. */
  pthread_t owner;
  unsigned long ticked_seq;
  struct guard *next;
} guard_t;

/* Set up g for the Lua state L (zeroes it). */
void guard_init(guard_t *g, lua_State *L);

/* The guard of the calling thread's Lua state (thread-local), or NULL. */
guard_t *guard_current(void);

/* Make g the calling thread's guard and register it with the ticker; guard_detach undoes both. */
void guard_attach(guard_t *g);
void guard_detach(guard_t *g);
/* In a child just forked: the ticker thread did not come along; start afresh with g alone. */
void guard_after_fork(guard_t *g);

/* Around one job, on the owner thread. deadline is absolute monotonic (0 = none), why what it
 * stops the job with. guard_end returns what stopped the job (RUN_OK if nothing), after killing
 * and reaping the commands of a stopped job. */
void guard_begin(guard_t *g, double deadline, run_status why, size_t mem_limit);
run_status guard_end(guard_t *g);
/* The running job's deadline changed (the budget was moved). */
void guard_set_deadline(guard_t *g, double deadline, run_status why);
/* Set the transport's poll (or NULL). */
void guard_set_poll(guard_t *g, int (*poll)(void *ud), void *ud);

/* Ask the job running under g to stop (any thread, async-signal-safe). */
void guard_cancel(guard_t *g, run_status why);
/* Kill the job's commands and arm its hooks now (async-signal-safe): Ctrl-C. */
void guard_stop_now(guard_t *g);
/* Arm the hooks of the job running under g, if one runs (async-signal-safe): the ticker's signal.
 * Not again before nine times what the last arming cost has passed (see calm_until). */
void guard_arm(guard_t *g);
/* For the ticker, every tick: whether g's thread must be signalled (a job that must stop, or that
 * has run a whole tick and should poll). Kills a stopping job's commands from there. */
int guard_tick(guard_t *g, double now);

/* On the owner thread: the reason this job must stop now, or 0. guard_check also polls the
 * transport; guard_check_local looks only at what is known here (cancel, deadline, Ctrl-C). */
run_status guard_check(guard_t *g);
run_status guard_check_local(guard_t *g);
/* Raise the stop error in L (does not return). */
int guard_raise(lua_State *L, guard_t *g, run_status why);
/* True if the error value at idx is the stop raised by guard_raise. */
int guard_is_stop(lua_State *L, int idx);
/* Whether the job running under g is being stopped. */
int guard_stopping(const guard_t *g);

/* A command the job started (its process group) and its end. guard_add_group returns -1 when the
 * job runs PGROUPS_MAX commands already: the caller refuses the command rather than lose it. */
int guard_add_group(guard_t *g, pid_t pgid);
void guard_remove_group(guard_t *g, pid_t pgid);

/* A coroutine the job resumes, and its return (for l_coroutine.c). guard_enter_co returns whether
 * it was tracked (pass that to guard_leave_co). */
int guard_enter_co(guard_t *g, lua_State *L, lua_State *co);
void guard_leave_co(guard_t *g, lua_State *L, int tracked);

#endif
