/* interrupt.c: deadlines, cancel requests, the memory cap and Ctrl-C, for every Lua state.
 * A ticker thread looks at the running jobs every TICK and, when one must stop or poll, sends its
 * thread a signal whose handler arms a Lua hook (as lua.c does for Ctrl-C): ordinary jobs pay nothing. */
#include "interrupt.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lauxlib.h>

#include "embedded.h"

#define TICK_NS 20000000L /* 20 ms: well inside the 0.5 s a budget may overrun */

static pthread_mutex_t ticker_lock = PTHREAD_MUTEX_INITIALIZER;
static guard_t *guards;
static int ticker_started;
static _Thread_local guard_t *current;
static volatile sig_atomic_t interrupted;
static char stop_sentinel; /* its address is the error value of a stopped job */

double now_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

guard_t *guard_current(void) { return current; }
void guard_set_current(guard_t *g) { current = g; }
int interrupt_pending(void) { return interrupted; }

/* ---- memory ---- */

void *guard_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  guard_t *g = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    g->mem_used -= old;
    return NULL;
  }
  if (nsize > old && g->mem_limit && atomic_load_explicit(&g->running, memory_order_relaxed) &&
      g->mem_used + (nsize - old) > g->mem_base + g->mem_limit) {
    g->mem_hit = 1;
    return NULL;
  }
  void *q = realloc(ptr, nsize);
  if (q) g->mem_used = g->mem_used - old + nsize;
  return q;
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

run_status guard_check_local(guard_t *g) {
  if (g->raised) return g->raised;
  int why = atomic_load(&g->cancel);
  if (!why && interrupted) why = RUN_CANCELLED;
  if (!why && g->deadline > 0 && now_monotonic() >= g->deadline) why = g->deadline_why;
  return (run_status)why;
}

run_status guard_check(guard_t *g) {
  run_status why = guard_check_local(g);
  if (!why && g->poll) why = (run_status)g->poll(g->poll_ud);
  return why;
}

int guard_raise(lua_State *L, guard_t *g, run_status why) {
  g->raised = why;
  guard_kill_groups(g);
  arm_all(g);
  arm_hook(L);
  lua_pushlightuserdata(L, &stop_sentinel);
  return lua_error(L);
}

int guard_is_stop(lua_State *L, int idx) { return lua_touserdata(L, idx) == &stop_sentinel; }

/* Whether the evaluator module is anywhere on the stack (a C function it called, a callback). */
static int in_evaluator_module(lua_State *L) {
  lua_Debug ar;
  for (int level = 0; lua_getstack(L, level, &ar); level++)
    if (lua_getinfo(L, "S", &ar) && embedded_is_module_source(ar.source)) return 1;
  return 0;
}

static void stop_hook(lua_State *L, lua_Debug *ar) {
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
  (void)ar;
  if (interrupted && in_evaluator_module(L)) {
    lua_sethook(L, stop_hook, LUA_MASKCOUNT, 1000);
    return;
  }
  lua_sethook(L, NULL, 0, 0);
  if (interrupted) luaL_error(L, "interrupted");
}

/* ---- jobs ---- */

void guard_begin(guard_t *g, double deadline, run_status deadline_why, size_t mem_limit) {
  g->deadline = deadline;
  g->deadline_why = deadline_why;
  g->raised = RUN_OK;
  g->mem_hit = 0;
  g->mem_base = g->mem_used;
  g->mem_limit = mem_limit;
  atomic_store(&g->ngroups, 0);
  atomic_store(&g->cancel, 0); /* a late stop meant for the job before */
  g->co_depth = 0;
  atomic_fetch_add(&g->job_seq, 1);
  atomic_store(&g->running, 1);
}

/* Kill what a stopped job spawned and collect it: no process, nor zombie, outlives the job. The
 * process is a child subreaper (main.c), so the commands' own children come back to it too. */
static void reap_groups(guard_t *g) {
  int n = atomic_load(&g->ngroups);
  for (int i = 0; i < n; i++)
    if (g->groups[i] > 0) kill(-g->groups[i], SIGKILL);
  double until = now_monotonic() + 0.5;
  while (now_monotonic() < until) {
    int alive = 0;
    for (int i = 0; i < n; i++)
      if (g->groups[i] > 0 && kill(-g->groups[i], 0) == 0) alive = 1;
    if (!alive) break;
    for (int i = 0; i < n; i++)
      if (g->groups[i] > 0) waitpid(-g->groups[i], NULL, WNOHANG);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

run_status guard_end(guard_t *g) {
  atomic_store(&g->running, 0);
  lua_sethook(g->L, NULL, 0, 0);
  if (g->raised || atomic_load(&g->cancel) || interrupted) reap_groups(g);
  run_status why = g->raised;
  /* Stopped from outside (the ticker killed its command) just as it returned: still stopped. */
  if (!why) why = (run_status)atomic_load(&g->cancel);
  if (!why && g->mem_hit) why = RUN_MEMORY;
  g->raised = RUN_OK;
  g->deadline = 0;
  atomic_store(&g->cancel, 0);
  atomic_store(&g->ngroups, 0);
  return why;
}

void guard_cancel(guard_t *g, run_status why) {
  int expected = 0;
  atomic_compare_exchange_strong(&g->cancel, &expected, (int)why);
}

/* ---- process groups ---- */

int guard_add_group(guard_t *g, pid_t pgid) {
  int n = atomic_load(&g->ngroups);
  for (int i = 0; i < n; i++)
    if (g->groups[i] == 0) {
      g->groups[i] = pgid;
      return 0;
    }
  if (n == GUARD_MAX_GROUPS) return -1;
  g->groups[n] = pgid;
  atomic_store(&g->ngroups, n + 1);
  return 0;
}

void guard_remove_group(guard_t *g, pid_t pgid) {
  /* A stopped job keeps its groups: the command's own children may still be there to reap. */
  if (g->raised || atomic_load(&g->cancel)) return;
  int n = atomic_load(&g->ngroups);
  for (int i = 0; i < n; i++)
    if (g->groups[i] == pgid) g->groups[i] = 0;
}

void guard_kill_groups(guard_t *g) {
  int n = atomic_load(&g->ngroups);
  for (int i = 0; i < n; i++)
    if (g->groups[i] > 0) kill(-g->groups[i], SIGKILL);
}

/* ---- the ticker ---- */

static int tick_signal(void) { return SIGRTMIN + 3; }

static void on_tick(int sig) {
  (void)sig;
  guard_t *g = current;
  if (g && atomic_load(&g->running)) arm_all(g);
}

static int must_stop(guard_t *g, double now, unsigned long seq) {
  if (atomic_load(&g->cancel) || interrupted) return 1;
  double deadline = g->deadline;
  run_status why = g->deadline_why;
  /* The job may have ended (and the next begun) since seq was read: stop only the one it was. */
  if (deadline > 0 && now >= deadline && atomic_load(&g->job_seq) == seq && atomic_load(&g->running)) {
    guard_cancel(g, why);
    return 1;
  }
  return 0;
}

static void *ticker_main(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  for (;;) {
    struct timespec ts = {0, TICK_NS};
    nanosleep(&ts, NULL);
    double now = now_monotonic();
    pthread_mutex_lock(&ticker_lock);
    for (guard_t *g = guards; g; g = g->next) {
      if (!atomic_load(&g->running)) continue;
      unsigned long seq = atomic_load(&g->job_seq);
      int stop = must_stop(g, now, seq);
      /* A subprocess may be what the job waits on: kill it from here, where no read blocks us. */
      if (stop) guard_kill_groups(g);
      /* Signal a job that must stop, or that has run a whole tick and may have a cancel to read. */
      if (stop || (g->poll && seq == g->ticked_seq)) pthread_kill(g->owner, tick_signal());
      g->ticked_seq = seq;
    }
    pthread_mutex_unlock(&ticker_lock);
  }
  return NULL;
}

void guard_attach(guard_t *g) {
  g->owner = pthread_self();
  current = g;
  pthread_mutex_lock(&ticker_lock);
  if (!ticker_started) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_tick;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(tick_signal(), &sa, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, ticker_main, NULL) == 0) {
      pthread_detach(t);
      ticker_started = 1;
    }
  }
  g->next = guards;
  guards = g;
  pthread_mutex_unlock(&ticker_lock);
}

void guard_after_fork(guard_t *g) {
  pthread_mutex_init(&ticker_lock, NULL);
  guards = NULL;
  ticker_started = 0;
  guard_attach(g);
}

void guard_detach(guard_t *g) {
  pthread_mutex_lock(&ticker_lock);
  for (guard_t **p = &guards; *p; p = &(*p)->next)
    if (*p == g) {
      *p = g->next;
      break;
    }
  pthread_mutex_unlock(&ticker_lock);
  if (current == g) current = NULL;
}

/* ---- coroutines ---- */

/* coroutine.resume, recording the coroutine while it runs so that a stop reaches it. */
static int co_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  guard_t *g = current;
  int tracked = g && g->co_depth < GUARD_MAX_COROUTINES;
  if (tracked) {
    g->co_stack[g->co_depth] = co;
    g->co_depth++;
    if (lua_gethook(L) == stop_hook) arm_hook(co); /* a stop already under way */
  }
  lua_pushvalue(L, lua_upvalueindex(1)); /* the standard resume */
  lua_insert(L, 1);
  int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  if (tracked) g->co_depth--;
  if (rc != LUA_OK) return lua_error(L);
  if (g && g->raised) arm_hook(L); /* stopped inside: go on stopping out here */
  return lua_gettop(L);
}

/* coroutine.wrap over that resume, with the standard one's error handling. */
static const char wrap_source[] =
    "local create, resume, close, pack, unpack = ...\n"
    "return function(f)\n"
    "  local co = create(f)\n"
    "  return function(...)\n"
    "    local r = pack(resume(co, ...))\n"
    "    if r[1] then return unpack(r, 2, r.n) end\n"
    "    if coroutine.status(co) == 'dead' then close(co) end\n"
    "    error(r[2], type(r[2]) == 'string' and 2 or 0)\n"
    "  end\n"
    "end\n";

void interrupt_install_coroutines(lua_State *L) {
  lua_getglobal(L, "coroutine");
  lua_getfield(L, -1, "resume");
  lua_pushcclosure(L, co_resume, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "resume");
  if (luaL_loadbuffer(L, wrap_source, sizeof wrap_source - 1, "=coroutine.wrap") == LUA_OK) {
    lua_getfield(L, -3, "create");
    lua_pushvalue(L, -3);
    lua_getfield(L, -5, "close");
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "pack");
    lua_getfield(L, -2, "unpack");
    lua_remove(L, -3);
    lua_call(L, 5, 1);
    lua_setfield(L, -3, "wrap");
  } else {
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

/* ---- Ctrl-C and SIGTERM ---- */

static void on_interrupt(int sig) {
  if (interrupted) _exit(128 + sig); /* the second one ends at once */
  interrupted = sig;
  guard_t *g = current;
  if (g) {
    guard_kill_groups(g);
    arm_all(g);
  }
}

void interrupt_install_signal_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_interrupt;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}
