/* l_core.c: module "evaluator.core", the binding between the Lua API and the C core (see
 * l_core.h). A core object is one evaluator: its jobs (jobs.c), the run function (runner.c) and an
 * executor (executor.h) that runs them, whatever the method. It validates and encodes what is
 * submitted, hands it to the executor, and completes the job tables of what comes back. */
#include "l_core.h"

#include <float.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <lauxlib.h>

#include "buf.h"
#include "clock.h"
#include "jobq.h"
#include "jobs.h"
#include "l_csv.h"
#include "l_error.h"
#include "l_job.h"
#include "pool_custom.h"
#include "pool_mpi.h"
#include "pool_process.h"
#include "pool_serial.h"
#include "pool_thread.h"
#include "runner.h"
#include "runtime.h"
#include "sigint.h"
#include "subprocess.h"
#include "wire.h"

#define CORE_MT "evaluator.Core"
#define POLL_SLICE 0.05 /* seconds between checks of the budget and of Ctrl-C while waiting */
#define STOP_GRACE 5.0  /* seconds an interrupted close waits for stopped jobs to come back */
#define SUBMIT_LOOK 0.001 /* seconds between looks at the workers while a long submit is read */

/* The methods: every one is an executor (executor.h); nothing below knows which it is. */
static const struct method {
  const char *name;
  exec_new_fn make;
} methods[] = {
    {"serial", pool_serial_new}, {"thread", pool_thread_new}, {"process", pool_process_new},
    {"mpicomm", pool_mpi_new},   {"custom", pool_custom_new}, {NULL, NULL},
};

typedef struct core {
  executor_t *ex;     /* NULL once closed */
  jobs_t jobs;
  runner_t runner;
  double budget;      /* absolute monotonic, 0 = none */
  int budget_spent;   /* the budget ran out and the jobs were told */
  char search_id[128];
  buf_t enc;          /* the job a submit is encoding */
  buf_t list_enc;     /* a submit's whole list, encoded, when its caller stores it (submit's keep) */
} core_t;

/* A core's user values: its jobs in flight (slot -> job table), and the ready list. */
enum { UV_PENDING = 1, UV_READY = 2 };
/* Stack slots while a core method runs: 1 = the core, PENDING = its jobs in flight. */
#define PENDING 2

static core_t *check_core(lua_State *L) { return luaL_checkudata(L, 1, CORE_MT); }

static void with_pending(lua_State *L) {
  lua_getiuservalue(L, 1, UV_PENDING);
  lua_insert(L, PENDING);
}

/* ---- finished jobs ---- */

/* Finished jobs gather into the core's ready list, handed over only when the call returns: a job
 * that came back while an error (Ctrl-C) unwound the call is returned by the next one. */
typedef struct collect_ctx {
  lua_State *L;
  core_t *c;
  int results;  /* stack index of the ready list */
  lua_Integer count;
  int early;    /* while a submit runs: stack index of its own jobs that already came back */
  lua_Integer nearly;
} collect_ctx;

static collect_ctx ready_list(lua_State *L, core_t *c) {
  lua_getiuservalue(L, 1, UV_READY);
  collect_ctx x = {L, c, lua_gettop(L), (lua_Integer)lua_rawlen(L, -1), 0, 0};
  return x;
}

static int hand_over(lua_State *L, const collect_ctx *x) {
  x->c->jobs.gathered += (uint64_t)x->count;
  lua_newtable(L);
  lua_setiuservalue(L, 1, UV_READY);
  lua_settop(L, x->results);
  return 1;
}

/* Push what an outcome carries: the output (RUN_OK) or the message; returns the status. */
static run_status push_outcome(lua_State *L, const exec_result *r) {
  run_status st;
  const char *body, *msg;
  size_t len, n;
  if (outcome_split(r->outcome, r->len, &st, &body, &len)) {
    lua_pushliteral(L, "the job's outcome arrived malformed");
    return RUN_ERROR;
  }
  const char *p = body;
  if (st == RUN_OK) {
    if (wire_decode(L, &p, body + len) == 0) return RUN_OK;
    lua_pushliteral(L, "the job's result arrived malformed");
    return RUN_ERROR;
  }
  if (wire_get_bytes(&p, body + len, &msg, &n)) lua_pushliteral(L, "(no message)");
  else lua_pushlstring(L, msg, n);
  return st;
}

static void on_result(void *ud, const exec_result *r) {
  collect_ctx *x = ud;
  lua_State *L = x->L;
  core_t *c = x->c;
  const job_rec *rec = &c->jobs.recs[r->slot];
  if (rec->withdrawn) { /* its submit failed: nothing of it is the user's */
    jobs_release(&c->jobs, r->slot);
    return;
  }
  run_status st = push_outcome(L, r);
  lua_rawgeti(L, PENDING, r->slot);
  ljob_times t = {c->jobs.t0, rec->t_submit, r->t_start, r->t_end, clock_now(), r->rank};
  ljob_finish(L, -1, st, -2, &t);
  if (x->early && rec->batch == c->jobs.batch) {
    if (!x->nearly) { /* made at the first: a short submit never needs it */
      lua_newtable(L);
      lua_replace(L, x->early);
    }
    lua_rawseti(L, x->early, ++x->nearly);
  } else {
    lua_rawseti(L, x->results, ++x->count);
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_rawseti(L, PENDING, r->slot);
  jobs_release(&c->jobs, r->slot);
}

static void budget_check(core_t *c) {
  if (c->budget > 0 && !c->budget_spent && clock_now() >= c->budget) {
    c->budget_spent = 1;
    c->ex->ops->cancel(c->ex, 1);
  }
}

static void check_interrupt(lua_State *L) {
  if (!sigint_pending()) return;
  lua_sethook(L, NULL, 0, 0); /* raised here, not again by the hook Ctrl-C armed */
  lerr_user(L, "interrupted");
}

/* Gather into x until `target` jobs came back, then take what else is ready. Raises "interrupted"
 * on Ctrl-C unless closing (close must bring every job back); gives up at give_up (monotonic, 0 =
 * never). */
static void collect(lua_State *L, core_t *c, collect_ctx *x, lua_Integer target, int closing, double give_up) {
  for (;;) {
    if (give_up > 0 && clock_now() >= give_up) return;
    budget_check(c);
    double wait = x->count >= target ? 0 : POLL_SLICE, now = clock_now();
    if (c->budget > 0 && !c->budget_spent && c->budget - now < wait) wait = c->budget - now;
    if (give_up > 0 && give_up - now < wait) wait = give_up - now;
    int got = c->ex->ops->poll(c->ex, wait > 0 ? wait : 0, on_result, x);
    subprocess_reap_orphans();
    if (got < 0) lerr_user(L, "gather: %s", c->ex->err);
    if (!closing) check_interrupt(L);
    if (x->count >= target && got == 0) return;
  }
}

/* ---- methods ---- */

/* The key of the table at idx that makes it no list (keys 1..n), pushed; or nothing and 0. */
static int push_non_list_key(lua_State *L, int idx, lua_Integer n) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) return 1;
  }
  return 0;
}

/* A submit failed: every job it launched is withdrawn (stopped where it started, its outcome
 * dropped when it comes), the ones already back are dropped, and the counters and numbers are
 * as before the call. Nothing of the call is submitted. Its jobs still out are the slots stamped
 * with this call's batch (a rare path: a scan of the slots, as abandon_in_flight does). */
static void submit_undo(lua_State *L, core_t *c, collect_ctx *x, uint64_t first_n) {
  buf_t out; /* u32 slots, ascending as withdraw wants them */
  buf_init(&out);
  for (uint32_t slot = 0; slot < c->jobs.cap; slot++) {
    const job_rec *r = &c->jobs.recs[slot];
    if (!r->in_use || r->withdrawn || r->batch != c->jobs.batch) continue;
    jobs_withdraw(&c->jobs, slot);
    lua_pushnil(L);
    lua_rawseti(L, PENDING, slot); /* a key the table has: no allocation, no error */
    wire_put_u32(&out, slot);
  }
  c->jobs.submitted -= (uint64_t)x->nearly;
  c->jobs.next_n = first_n;
  x->early = 0;
  if (out.len) c->ex->ops->withdraw(c->ex, (const uint32_t *)(const void *)out.data, out.len / sizeof(uint32_t));
  buf_free(&out);
}

/* A submitted list holds only keys 1..n: checked after its jobs were launched (it takes a walk of
 * the whole list), so a long one's first jobs start at once. */
static void submit_check_list(lua_State *L, core_t *c, collect_ctx *x, lua_Integer n, uint64_t first_n) {
  if (!push_non_list_key(L, 3, n)) return;
  submit_undo(L, c, x, first_n);
  const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1);
  lerr_user(L, "submit expects a list of parameter tables, but got a table with key '%s' "
               "(to submit one job, write ev:submit({ {x = 1} }))", k);
}

/* Encode element i of the list into c->enc, or undo the call and raise naming it. Leaves the
 * element on the stack. */
static void submit_encode(lua_State *L, core_t *c, collect_ctx *x, lua_Integer i, uint64_t first_n) {
  char err[512];
  int t = lua_rawgeti(L, 3, i);
  c->enc.len = 0;
  if (t == LUA_TTABLE && wire_encode(L, -1, &c->enc, "parameters", err, sizeof err) == 0) return;
  submit_undo(L, c, x, first_n);
  if (t != LUA_TTABLE) lerr_user(L, "submit: element %I is a %s, not a table of parameters", i, lua_typename(L, t));
  lerr_user(L, "submit: element %I: %s", i, err);
}

/* While a long list is read: take what came back and start more, so workers are not idle. */
static void submit_look(lua_State *L, core_t *c, collect_ctx *x, uint64_t first_n) {
  int got = c->ex->ops->poll(c->ex, 0, on_result, x);
  if (got >= 0 && !sigint_pending()) return;
  submit_undo(L, c, x, first_n);
  if (got < 0) lerr_user(L, "submit: %s", c->ex->err);
  check_interrupt(L);
}

/* c:submit(list, want_jobs, first_n, keep) -> the jobs' tables when want_jobs (else nil), and
 * when keep, the list as wire_encode writes it (the encoding the jobs were sent with: a storage
 * keeps it without encoding the list again). first_n, when given, numbers the jobs (a shared
 * storage hands out the numbers of its search). Jobs start as the list is read (the first as soon
 * as a worker takes it, however long the list); an element that cannot be sent withdraws those
 * already launched, so nothing of a call is submitted unless all of it is. */
static int core_submit(lua_State *L) {
  core_t *c = check_core(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  int want = lua_toboolean(L, 3), keep = lua_toboolean(L, 5);
  lua_Integer first_n = luaL_optinteger(L, 4, -1);
  lua_settop(L, 2);
  with_pending(L); /* list at 3 */
  if (!c->ex) lerr_user(L, "submit: the evaluator is closed");
  if (c->budget > 0 && clock_now() >= c->budget)
    lerr_user(L, "TimeoutReached: the search's time budget (set_timeout) is spent; no more jobs can be submitted");
  check_interrupt(L);
  double now = clock_now(), look_at = now + SUBMIT_LOOK;
  lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
  if (want) lua_createtable(L, (int)n, 0); /* 4: the jobs, returned when wanted */
  else lua_pushnil(L);
  lua_pushnil(L); /* 5: jobs of this call that came back during it (a table once one has) */
  collect_ctx x = ready_list(L, c);
  x.early = 5;
  if (first_n >= 0) c->jobs.next_n = (uint64_t)first_n;
  uint64_t first = c->jobs.next_n;
  c->jobs.batch++;
  keep = keep && (uint64_t)n <= UINT32_MAX;
  if (keep) {
    c->list_enc.len = 0;
    wire_put_list_head(&c->list_enc, (uint32_t)n);
  }
  for (lua_Integer i = 1; i <= n; i++) {
    submit_encode(L, c, &x, i, first);
    if (keep) buf_add(&c->list_enc, c->enc.data, c->enc.len);
    uint32_t slot = jobs_add(&c->jobs, now);
    uint64_t num = c->jobs.recs[slot].n;
    ljob_push_submitted(L, c->search_id, num, -1);
    lua_remove(L, -2);
    if (want) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, 4, i);
    }
    lua_rawseti(L, PENDING, slot);
    c->ex->ops->launch(c->ex, slot, num, c->enc.data, c->enc.len);
    /* Idle workers start on the first jobs while the rest of a long list is read. */
    if (i == c->ex->num_workers && i < n) c->ex->ops->poll(c->ex, 0, NULL, NULL);
    else if (c->ex->background && (i & 15) == 0 && clock_now() >= look_at) {
      submit_look(L, c, &x, first);
      look_at = clock_now() + SUBMIT_LOOK;
    }
  }
  submit_check_list(L, c, &x, n, first);
  for (lua_Integer j = 1; j <= x.nearly; j++) {
    lua_rawgeti(L, 5, j);
    lua_rawseti(L, x.results, ++x.count);
  }
  c->ex->ops->poll(c->ex, 0, NULL, NULL);
  lua_settop(L, 4);
  if (!keep) return want ? 1 : 0;
  lua_pushlstring(L, c->list_enc.data, c->list_enc.len);
  return 2;
}

/* c:collect("ALL" | "BATCH", size, within) -> list of finished jobs (what came back within
 * `within` seconds, when given) */
static int core_collect(lua_State *L) {
  core_t *c = check_core(L);
  const char *mode = luaL_checkstring(L, 2);
  lua_Integer size = luaL_optinteger(L, 3, 1);
  double within = luaL_optnumber(L, 4, 0);
  lua_settop(L, 3);
  with_pending(L);
  collect_ctx x = ready_list(L, c);
  if (!c->ex) return hand_over(L, &x);
  lua_Integer outstanding = (lua_Integer)c->jobs.in_flight + x.count;
  lua_Integer target = strcmp(mode, "ALL") == 0 ? outstanding : (size < outstanding ? size : outstanding);
  collect(L, c, &x, target, 0, within > 0 ? clock_now() + within : 0);
  return hand_over(L, &x);
}

/* c:set_budget(seconds | nil) */
static int core_set_budget(lua_State *L) {
  core_t *c = check_core(L);
  c->budget = lua_isnoneornil(L, 2) ? 0 : clock_now() + luaL_checknumber(L, 2);
  c->budget_spent = 0;
  if (c->ex) c->ex->ops->set_budget(c->ex, c->budget);
  return 0;
}

/* c:time_left() -> seconds or nil */
static int core_time_left(lua_State *L) {
  core_t *c = check_core(L);
  if (c->budget <= 0) return 0;
  double left = c->budget - clock_now();
  lua_pushnumber(L, left > 0 ? left : 0);
  return 1;
}

/* c:counts() -> submitted, gathered, in flight */
static int core_counts(lua_State *L) {
  core_t *c = check_core(L);
  lua_pushinteger(L, (lua_Integer)c->jobs.submitted);
  lua_pushinteger(L, (lua_Integer)c->jobs.gathered);
  lua_pushinteger(L, (lua_Integer)c->jobs.in_flight);
  return 3;
}

/* c:num_workers() */
static int core_num_workers(lua_State *L) {
  core_t *c = check_core(L);
  lua_pushinteger(L, c->ex ? c->ex->num_workers : 1);
  return 1;
}

/* Jobs that did not come back (their worker is stuck or gone) come back cancelled. */
static void abandon_in_flight(core_t *c, collect_ctx *x) {
  static const char why[] = "job cancelled: its worker did not stop it in time";
  buf_t out;
  buf_init(&out);
  outcome_encode_message(RUN_CANCELLED, why, sizeof why - 1, &out);
  double now = clock_now();
  for (uint32_t slot = 0; c->jobs.in_flight > 0 && slot < c->jobs.cap; slot++) {
    if (!c->jobs.recs[slot].in_use) continue;
    exec_result r = {slot, now, now, -1, out.data, out.len};
    on_result(x, &r);
  }
  buf_free(&out);
}

static void release(core_t *c) {
  if (!c->ex) return;
  c->ex->ops->destroy(c->ex);
  c->ex = NULL;
}

/* c:close(wait, cancel) -> the jobs that came back while closing */
static int core_close(lua_State *L) {
  core_t *c = check_core(L);
  int wait = lua_toboolean(L, 2), cancel = lua_toboolean(L, 3);
  lua_settop(L, 3);
  with_pending(L);
  collect_ctx x = ready_list(L, c);
  if (!c->ex) return hand_over(L, &x);
  int interrupted = sigint_pending() != 0;
  if (interrupted) wait = 0, cancel = 1; /* Ctrl-C: nothing is worth waiting for */
  if (cancel) c->ex->ops->cancel(c->ex, !wait);
  /* Interrupted, the process is on its way out: a worker stuck where no stop reaches (inside a C
   * call) is not waited for beyond STOP_GRACE. */
  double give_up = interrupted ? clock_now() + STOP_GRACE : 0;
  if (wait || cancel) collect(L, c, &x, (lua_Integer)c->jobs.in_flight + x.count, 1, give_up);
  c->ex->ops->shutdown(c->ex);
  collect(L, c, &x, x.count, 1, 0); /* what the shutdown gave back */
  abandon_in_flight(c, &x);
  release(c);
  return hand_over(L, &x);
}

static int core_gc(lua_State *L) {
  core_t *c = luaL_checkudata(L, 1, CORE_MT);
  if (c->ex) { /* never left open: the workers would wait for ever */
    c->ex->ops->cancel(c->ex, 1);
    c->ex->ops->shutdown(c->ex);
  }
  release(c);
  jobs_free(&c->jobs);
  runner_free(&c->runner);
  buf_free(&c->enc);
  buf_free(&c->list_enc);
  return 0;
}

/* ---- construction ---- */

/* opts[k] as a number in [lo, hi] (0 when absent), checked before any cast; range says it in words. */
static double opt_number(lua_State *L, const char *k, double lo, double hi, const char *range) {
  double v = 0;
  if (lua_getfield(L, 1, k) != LUA_TNIL) {
    v = luaL_checknumber(L, -1);
    if (!(v >= lo && v <= hi)) lerr_user(L, "%s must be %s, got %s", k, range, lua_tostring(L, -1));
  }
  lua_pop(L, 1);
  return v;
}

static int method_index(lua_State *L) {
  lua_getfield(L, 1, "kind");
  const char *names[sizeof methods / sizeof *methods];
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) names[i] = methods[i].name;
  int k = luaL_checkoption(L, -1, NULL, names);
  lua_pop(L, 1);
  return k;
}

/* A thread worker re-running the script: the create the root made its pool at serves; the others
 * give nil. */
static int create_in_worker_thread(lua_State *L, runtime_t *rt, core_t *c, int k) {
  char err[256];
  int rc = pool_thread_serve(rt, &c->runner, methods[k].make == pool_thread_new, err, sizeof err);
  if (rc < 0) return luaL_error(L, "%s", err);
  if (rc > 0) return runtime_worker_done(L);
  lua_pushnil(L);
  return 1;
}

/* core.new{kind=, run=, kwargs=, num_workers=, job_timeout=, job_memory_limit=, comm=, root=,
 *          search_id=} -> core, or nil on a worker rank once its root closed */
static int core_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  int k = method_index(L);
  runtime_t *rt = runtime_of(L);
  rt->creates++;
  exec_args a;
  memset(&a, 0, sizeof a);
  a.num_workers = (int)opt_number(L, "num_workers", 1, INT_MAX, "an integer from 1 to 2^31-1");
  a.cfg.job_timeout = opt_number(L, "job_timeout", 0, DBL_MAX, "a finite number of seconds");
  a.cfg.mem_limit = (size_t)opt_number(L, "job_memory_limit", 1, 0x1p60, "a number of bytes from 1 to 2^60");
  a.root = (int)opt_number(L, "root", 0, INT_MAX, "a rank from 0 to 2^31-1");
  lua_getfield(L, 1, "comm");
  a.comm = l_mpi_checkcomm(L, -1);
  core_t *c = lua_newuserdatauv(L, sizeof *c, 2);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, CORE_MT);
  int self = lua_gettop(L);
  for (int uv = UV_PENDING; uv <= UV_READY; uv++) {
    lua_newtable(L);
    lua_setiuservalue(L, self, uv);
  }
  lua_getfield(L, 1, "search_id");
  snprintf(c->search_id, sizeof c->search_id, "%s", lua_isnil(L, -1) ? "0" : luaL_checkstring(L, -1));
  lua_getfield(L, 1, "run");
  lua_getfield(L, 1, "kwargs");
  runner_init(&c->runner, L, &rt->guard, -2, -1);
  runner_set_search_id(&c->runner, c->search_id, strlen(c->search_id));
  lua_settop(L, self);
  jobs_init(&c->jobs, clock_now());
  if (rt->worker_link) return create_in_worker_thread(L, rt, c, k);
  a.cfg.search_id = c->search_id;
  a.runner = &c->runner;
  a.rt = rt;
  char err[512] = "";
  c->ex = methods[k].make(&a, err, sizeof err);
  if (!c->ex && err[0]) return lerr_user(L, "%s", err);
  if (!c->ex) lua_pushnil(L); /* a worker rank whose root has closed */
  return 1;
}

/* core.file_mtime(path) -> the wall-clock time (seconds) path was last written, or nil. */
static int l_file_mtime(lua_State *L) {
  struct stat st;
  if (lstat(luaL_checkstring(L, 1), &st) != 0) return 0;
  lua_pushnumber(L, (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec * 1e-9);
  return 1;
}

/* core.dir_claim(dir) -> whether no other live process had claimed dir: this process then holds a
 * shared lock on it (flock on the directory) until it ends, so a run starting later sees it at work
 * there. nil when dir cannot be opened. */
static int l_dir_claim(lua_State *L) {
  int fd = open(luaL_checkstring(L, 1), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return 0;
  int alone = flock(fd, LOCK_EX | LOCK_NB) == 0;
  flock(fd, LOCK_SH); /* held, and fd kept open, for the rest of the process's life */
  lua_pushboolean(L, alone);
  return 1;
}

/* core.started_at: the wall-clock time this process first loaded the module (a file last written
 * before it is a previous run's). */
static double started_at;
static pthread_once_t started_once = PTHREAD_ONCE_INIT;

static void note_start(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  started_at = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* core.in_worker_thread() -> whether this state is a thread pool's worker re-running the script
 * (its creates serve or give nil: nothing there keeps jobs or makes searches). */
static int l_in_worker_thread(lua_State *L) {
  lua_pushboolean(L, runtime_of(L)->worker_link != NULL);
  return 1;
}

static int l_abort(lua_State *L) {
  int code = (int)luaL_optinteger(L, 1, 1);
  fflush(NULL);
  MPI_Abort(MPI_COMM_WORLD, code);
  return 0;
}

int luaopen_evaluator_core(lua_State *L) {
  static const luaL_Reg core_methods[] = {
      {"submit", core_submit}, {"collect", core_collect}, {"set_budget", core_set_budget},
      {"time_left", core_time_left}, {"counts", core_counts}, {"close", core_close},
      {"num_workers", core_num_workers}, {NULL, NULL}};
  if (luaL_newmetatable(L, CORE_MT)) {
    luaL_newlib(L, core_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, core_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
      {"new", core_new}, {"abort", l_abort}, {"raise", lerr_raise}, {"json_encode", l_json_encode},
      {"json_decode", l_json_decode}, {"csv_dump", l_csv_dump},
      {"file_mtime", l_file_mtime}, {"dir_claim", l_dir_claim}, {"in_worker_thread", l_in_worker_thread}, {NULL, NULL}};
  luaL_newlib(L, fns);
  pthread_once(&started_once, note_start);
  lua_pushnumber(L, started_at);
  lua_setfield(L, -2, "started_at");
  l_mpi_push(L);
  lua_setfield(L, -2, "mpi");
  return 1;
}
