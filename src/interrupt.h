/* interrupt.h: stopping a running job for real. A guard belongs to one Lua state: it carries the
 * job's deadline, a cancel request, a memory cap, and the process groups the job spawned. */
#ifndef EVL_INTERRUPT_H
#define EVL_INTERRUPT_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>
#include <lua.h>

/* Why a job stopped, as it travels back to the root. */
typedef enum run_status {
  RUN_OK = 0,     /* returned a value */
  RUN_ERROR,      /* raised a Lua error: objective "F", metadata.error */
  RUN_TIMEOUT,    /* over job_timeout: CANCELLED, "F_TIMEOUT" */
  RUN_CANCELLED,  /* budget ran out, closed, interrupted: CANCELLED, "F_CANCELLED" */
  RUN_MEMORY,     /* over job_memory_limit: "F_MEMORY" */
  RUN_CRASHED     /* the worker process died: "F_CRASHED" */
} run_status;

#define GUARD_MAX_GROUPS 64
#define GUARD_MAX_COROUTINES 32

typedef struct guard {
  lua_State *L;
  /* Set by the owner thread around a job. */
  atomic_int running;
  atomic_ulong job_seq;
  double started;           /* when the job started (monotonic) */
  double deadline;          /* monotonic seconds, 0 = none */
  run_status deadline_why;  /* RUN_TIMEOUT or RUN_CANCELLED */
  /* Set by anyone (root thread, ticker, signal handler): a run_status to stop with. */
  atomic_int cancel;
  run_status raised;        /* what the hook raised, sticky until the job ends */
  /* Called by the owner thread while a job runs long (hook tick, subprocess wait): lets a
   * transport look for a cancel message. Returns a run_status or 0. */
  int (*poll)(void *ud);
  void *poll_ud;
  /* Lua memory accounting (the state's allocator). */
  size_t mem_used, mem_base, mem_limit;
  int mem_hit;
  /* Process groups spawned by the current job, killed if it is stopped. */
  atomic_int ngroups;
  pid_t groups[GUARD_MAX_GROUPS];
  /* Coroutines the job is running (resumed and not yet back): Lua hooks are per thread, so a stop
   * arms theirs too (interrupt_install_coroutines). */
  lua_State *co_stack[GUARD_MAX_COROUTINES];
  volatile sig_atomic_t co_depth;
  /* Ticker bookkeeping. */
  pthread_t owner;
  unsigned long ticked_seq;
  struct guard *next;
} guard_t;

/* Monotonic clock in seconds. */
double now_monotonic(void);

/* The allocator for lua_newstate; ud is the guard. Enforces mem_limit while a job runs. */
void *guard_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* Register/unregister a guard with the ticker thread (started on first use). The owner is the
 * calling thread: ticks are delivered to it as a signal that arms the Lua hook. */
void guard_attach(guard_t *g);
void guard_detach(guard_t *g);
/* In a child just forked: the ticker thread did not come along; start afresh with g alone. */
void guard_after_fork(guard_t *g);

/* Around one job on the owner thread. deadline is absolute monotonic (0 = none). */
void guard_begin(guard_t *g, double deadline, run_status deadline_why, size_t mem_limit);
/* Ends the job: disarms the hook, lifts the memory cap. Returns what stopped it (RUN_OK if nothing). */
run_status guard_end(guard_t *g);

/* Ask the job running under g to stop (any thread, async-signal-safe). */
void guard_cancel(guard_t *g, run_status why);

/* On the owner thread: the reason this job must stop now, or 0. Polls the transport. */
run_status guard_check(guard_t *g);
/* The same without polling the transport: what is known here already (cancel, deadline, Ctrl-C). */
run_status guard_check_local(guard_t *g);
/* Raise the stop error in L (does not return). Re-arms the hook so the run function's own
 * pcall cannot swallow it. */
int guard_raise(lua_State *L, guard_t *g, run_status why);
/* True if the error value at idx is the stop sentinel raised by guard_raise. */
int guard_is_stop(lua_State *L, int idx);

/* Track a process group spawned by the current job (killed when the job is stopped). Returns -1
 * when GUARD_MAX_GROUPS commands are running at once already. */
int guard_add_group(guard_t *g, pid_t pgid);
void guard_remove_group(guard_t *g, pid_t pgid);
void guard_kill_groups(guard_t *g);

/* The guard of the calling thread's current Lua state (thread-local). */
guard_t *guard_current(void);
void guard_set_current(guard_t *g);

/* Replace coroutine.resume and coroutine.wrap in L so that a job running Lua code inside a
 * coroutine can be stopped as well. */
void interrupt_install_coroutines(lua_State *L);

/* Ctrl-C / SIGTERM: the first sets the interrupted flag and arms the hook of the current state,
 * the second ends the process at once (128 + signal). */
void interrupt_install_signal_handlers(void);
/* The signal that interrupted us (SIGINT, SIGTERM) or 0. */
int interrupt_pending(void);

#endif
