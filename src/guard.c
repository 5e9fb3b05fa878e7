/* guard.c: stopping a running job (see guard.h). The hook is armed only when the ticker or a
 * signal says so: ordinary jobs run without one and pay nothing. */
#include "guard.h"

#include <string.h>
#include <lauxlib.h>

#include "clock.h"
#include "embedded.h"
#include "sigint.h"
#include "ticker.h"

static _Thread_local guard_t *current;
static char stop_sentinel; /* its address is the error value of a stopped job */

guard_t *guard_current(void) { return current; }

void guard_init(guard_t *g, lua_State *L) {
  memset(g, 0, sizeof *g);
  g->L = L;
  pthread_mutex_init(&g->mu, NULL);
}

/* ---- the hook ---- */

static void stop_hook(lua_State *L, lua_Debug *ar);

static void arm_hook(lua_State *L) {
  lua_sethook(L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

/* The job's own thread and every coroutine it is inside of (async-signal-safe). */
static void arm_all(guard_t *g) {
  arm_hook(g->L);
  for (int i = 0; i < g->co_depth && i < GUARD_MAX_COROUTINES; i++) arm_hook(g->co_stack[i]);
}

void guard_arm(guard_t *g) {
  if (!g || !atomic_load(&g->running)) return;
  double start = clock_now();
  if (start < g->calm_until) return;
  arm_all(g);
  double end = clock_now();
  g->calm_until = end + 9 * (end - start);
}

void guard_stop_now(guard_t *g) {
  pgroups_kill(&g->groups);
  arm_all(g);
}

/* Whether the evaluator module is anywhere on the stack (a C function it called, a callback). */
static int in_evaluator_module(lua_State *L) {
  lua_Debug ar;
  for (int level = 0; lua_getstack(L, level, &ar); level++)
    if (lua_getinfo(L, "S", &ar) && embedded_is_module_source(ar.source)) return 1;
  return 0;
}

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  guard_t *g = current;
  if (g && atomic_load(&g->running)) {
    run_status why = guard_check(g);
    if (why) guard_raise(L, g, why);
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  /* Outside a job only Ctrl-C arms the hook: the driver sees an ordinary error it may catch. Not
   * while the evaluator module is on the stack, though (it must not stop half way through handing
   * jobs over or writing a CSV): look again a little later, or let its next call raise. */
  if (sigint_pending() && in_evaluator_module(L)) {
    lua_sethook(L, stop_hook, LUA_MASKCOUNT, 1000);
    return;
  }
  lua_sethook(L, NULL, 0, 0);
  if (sigint_pending()) luaL_error(L, "interrupted");
}

/* ---- one job ---- */

void guard_attach(guard_t *g) {
  g->owner = pthread_self();
  current = g;
  ticker_add(g);
}

void guard_detach(guard_t *g) {
  ticker_remove(g);
  pthread_mutex_destroy(&g->mu);
  if (current == g) current = NULL;
}

void guard_after_fork(guard_t *g) {
  pthread_mutex_init(&g->mu, NULL); /* the ticker may have held it at the fork */
  ticker_after_fork();
  guard_attach(g);
}

void guard_begin(guard_t *g, double deadline, run_status why, size_t mem_limit) {
  pthread_mutex_lock(&g->mu);
  atomic_store(&g->deadline, deadline);
  atomic_store(&g->deadline_why, (int)why);
  g->raised = RUN_OK;
  memcap_arm(&g->mem, mem_limit);
  pgroups_clear(&g->groups);
  atomic_store(&g->cancel, 0); /* a late stop meant for the job before */
  g->co_depth = 0;
  atomic_fetch_add(&g->job_seq, 1);
  atomic_store(&g->running, 1);
  pthread_mutex_unlock(&g->mu);
}

run_status guard_end(guard_t *g) {
  pthread_mutex_lock(&g->mu);
  atomic_store(&g->running, 0);
  pthread_mutex_unlock(&g->mu);
  lua_sethook(g->L, NULL, 0, 0);
  int mem_hit = memcap_disarm(&g->mem);
  run_status why = g->raised;
  /* Stopped from outside (the ticker killed its command) just as it returned: still stopped. */
  if (!why) why = (run_status)atomic_load(&g->cancel);
  if (why || sigint_pending()) pgroups_reap(&g->groups, 0.5);
  if (!why && mem_hit) why = RUN_MEMORY;
  g->raised = RUN_OK;
  atomic_store(&g->deadline, 0.0);
  atomic_store(&g->cancel, 0);
  pgroups_clear(&g->groups);
  return why;
}

void guard_set_deadline(guard_t *g, double deadline, run_status why) {
  atomic_store(&g->deadline_why, (int)why);
  atomic_store(&g->deadline, deadline);
}

void guard_set_poll(guard_t *g, int (*poll)(void *ud), void *ud) {
  g->poll = poll;
  g->poll_ud = ud;
  atomic_store(&g->polls, poll != NULL);
}

void guard_cancel(guard_t *g, run_status why) {
  int expected = 0;
  atomic_compare_exchange_strong(&g->cancel, &expected, (int)why);
}

/* The running job's deadline passed: stop it (with g->mu held: the job is still the one running). */
static int past_deadline(guard_t *g, double now) {
  double deadline = atomic_load(&g->deadline);
  if (deadline <= 0 || now < deadline) return 0;
  guard_cancel(g, (run_status)atomic_load(&g->deadline_why));
  return 1;
}

int guard_tick(guard_t *g, double now) {
  pthread_mutex_lock(&g->mu); /* the job looked at stays the running one until we are done */
  int nudge = 0;
  if (atomic_load(&g->running)) {
    unsigned long seq = atomic_load(&g->job_seq);
    int stop = atomic_load(&g->cancel) || sigint_pending() || past_deadline(g, now);
    /* A subprocess may be what the job waits on: kill it from here, where no read blocks us. */
    if (stop) pgroups_kill(&g->groups);
    nudge = stop || (atomic_load(&g->polls) && seq == g->ticked_seq);
    g->ticked_seq = seq;
  }
  pthread_mutex_unlock(&g->mu);
  return nudge;
}

/* ---- checks and the stop ---- */

run_status guard_check_local(guard_t *g) {
  if (g->raised) return g->raised;
  int why = atomic_load(&g->cancel);
  if (!why && sigint_pending()) why = RUN_CANCELLED;
  double deadline = atomic_load(&g->deadline);
  if (!why && deadline > 0 && clock_now() >= deadline) why = atomic_load(&g->deadline_why);
  return (run_status)why;
}

run_status guard_check(guard_t *g) {
  run_status why = guard_check_local(g);
  if (!why && g->poll) why = (run_status)g->poll(g->poll_ud);
  return why;
}

int guard_raise(lua_State *L, guard_t *g, run_status why) {
  g->raised = why;
  guard_stop_now(g);
  arm_hook(L);
  lua_pushlightuserdata(L, &stop_sentinel);
  return lua_error(L);
}

int guard_is_stop(lua_State *L, int idx) { return lua_touserdata(L, idx) == &stop_sentinel; }

int guard_stopping(const guard_t *g) { return g->raised != RUN_OK; }

/* ---- commands and coroutines ---- */

int guard_add_group(guard_t *g, pid_t pgid) {
  if (!atomic_load(&g->running)) return 0; /* the driver's own command: not a job's */
  return pgroups_add(&g->groups, pgid);
}

void guard_remove_group(guard_t *g, pid_t pgid) {
  /* A stopped job keeps its groups: the command's own children may still be there to reap. */
  if (g->raised || atomic_load(&g->cancel)) return;
  pgroups_remove(&g->groups, pgid);
}

int guard_enter_co(guard_t *g, lua_State *L, lua_State *co) {
  if (!g || g->co_depth >= GUARD_MAX_COROUTINES) return 0;
  g->co_stack[g->co_depth] = co;
  g->co_depth++;
  if (g->raised || lua_gethook(L) == stop_hook) arm_hook(co); /* a stop already under way */
  return 1;
}

void guard_leave_co(guard_t *g, lua_State *L, int tracked) {
  if (!g) return;
  if (tracked) g->co_depth--;
  if (g->raised) arm_hook(L); /* stopped inside: go on stopping out here */
}
