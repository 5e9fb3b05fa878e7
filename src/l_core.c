/* l_core.c: module "evaluator.core", the Lua face of the C core (see l_core.h). A core object is
 * one evaluator's jobs: it validates and encodes what is submitted, hands it to an executor (or
 * runs it in place for serial), and turns what comes back into finished job tables. */
#include "l_core.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <lauxlib.h>

#include "buf.h"
#include "embedded.h"
#include "jobs.h"
#include "l_csv.h"
#include "pool_process.h"
#include "pool_thread.h"
#include "runner.h"
#include "runtime.h"
#include "storage_sqlite.h"
#include "subprocess.h"
#include "transport.h"
#include "wire.h"
#include "worker.h"

#define CORE_MT "evaluator.Core"
#define POLL_SLICE 0.05 /* seconds between checks of the budget and of Ctrl-C while waiting */

enum { K_SERIAL, K_FARM, K_CUSTOM };

typedef struct core {
  int kind, closed;
  jobs_t jobs;
  executor_t *ex;
  double job_timeout;
  size_t mem_limit;
  double budget;      /* absolute monotonic, 0 = none */
  int budget_spent;   /* the budget ran out and the jobs were told */
  int run_ref, kwargs_ref;
  buf_t serial_queue; /* u32 slots, for serial */
  size_t serial_read;
  char search_id[128];
} core_t;

/* Stack slots while a core method runs: 1 = the core, its pending table (slot -> job) is fetched
 * into PENDING by with_pending. */
#define PENDING 2

static core_t *check_core(lua_State *L) { return luaL_checkudata(L, 1, CORE_MT); }

static void with_pending(lua_State *L) {
  lua_getiuservalue(L, 1, 1);
  lua_insert(L, PENDING);
}

/* ---- finishing jobs ---- */

typedef struct collect_ctx {
  lua_State *L;
  core_t *c;
  int results;  /* stack index of the list being filled */
  lua_Integer count;
} collect_ctx;

static void finish_slot(collect_ctx *x, uint32_t slot, run_status st, int out_idx, double t0, double t1, int rank) {
  lua_State *L = x->L;
  core_t *c = x->c;
  lua_rawgeti(L, PENDING, slot);
  int job = lua_gettop(L);
  jobs_finish(L, &c->jobs, job, st, out_idx, c->jobs.recs[slot].t_submit, t0, t1, now_monotonic(), rank);
  lua_rawseti(L, x->results, ++x->count);
  lua_pushnil(L);
  lua_rawseti(L, PENDING, slot);
  jobs_release(&c->jobs, slot);
}

static void on_result(void *ud, const exec_result *r) {
  collect_ctx *x = ud;
  lua_State *L = x->L;
  const char *p = r->payload + 1, *end = r->payload + r->len;
  run_status st = r->status;
  if (st == RUN_OK) {
    if (wire_decode(L, &p, end)) {
      st = RUN_ERROR;
      lua_pushliteral(L, "the job's result arrived malformed");
    }
  } else {
    const char *msg;
    size_t n;
    if (wire_get_bytes(&p, end, &msg, &n)) lua_pushliteral(L, "(no message)");
    else lua_pushlstring(L, msg, n);
  }
  finish_slot(x, r->slot, st, lua_gettop(L), r->t_start, r->t_end, r->rank);
  lua_pop(L, 1);
}

/* ---- serial: jobs run here, in the root's state, when gathered ---- */

static int serial_next(core_t *c, uint32_t *slot) {
  if (c->serial_read >= c->serial_queue.len) return 0;
  memcpy(slot, c->serial_queue.data + c->serial_read, sizeof *slot);
  c->serial_read += sizeof *slot;
  if (c->serial_read == c->serial_queue.len) c->serial_queue.len = c->serial_read = 0;
  return 1;
}

static void serial_run_one(collect_ctx *x, uint32_t slot, int cancel) {
  lua_State *L = x->L;
  core_t *c = x->c;
  runtime_t *rt = runtime_of(L);
  double t0, t1;
  run_status st;
  if (cancel) {
    lua_pushliteral(L, "job cancelled");
    st = RUN_CANCELLED;
    t0 = t1 = now_monotonic();
  } else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->run_ref);
    lua_rawgeti(L, PENDING, slot);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->kwargs_ref);
    job_limits lim = {c->budget, c->job_timeout, c->mem_limit};
    st = runner_call(L, &rt->guard, &lim, &t0, &t1);
  }
  finish_slot(x, slot, st, lua_gettop(L), t0, t1, cancel ? -1 : transport_world_rank());
  lua_pop(L, 1);
}

/* ---- methods ---- */

static void budget_check(lua_State *L, core_t *c) {
  (void)L;
  if (c->budget > 0 && !c->budget_spent && now_monotonic() >= c->budget) {
    c->budget_spent = 1;
    if (c->ex) c->ex->ops->cancel(c->ex, 1);
  }
}

/* Raise an error located at the user's line: the first Lua frame outside the evaluator modules
 * (the API is called through them, and the user wants to see which of their calls failed). */
static int user_error(lua_State *L, const char *fmt, ...) {
  lua_Debug ar;
  int level = 1;
  for (; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "S", &ar);
    if (*ar.what != 'C' && !embedded_is_module_source(ar.source)) break;
  }
  luaL_where(L, level);
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

static void check_interrupt(lua_State *L) {
  if (!interrupt_pending()) return;
  lua_sethook(L, NULL, 0, 0); /* raised here, not again by the hook Ctrl-C armed */
  user_error(L, "interrupted");
}

/* c:submit(list, want_jobs, first_n): first_n, when given, numbers the jobs (a shared storage
 * hands out the numbers of its search). */
static int core_submit(lua_State *L) {
  core_t *c = check_core(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  int want = lua_toboolean(L, 3);
  lua_Integer first_n = luaL_optinteger(L, 4, -1);
  lua_settop(L, 3);
  with_pending(L); /* list at 3, want at 4 */
  if (c->closed) user_error(L, "submit: the evaluator is closed");
  if (c->budget > 0 && now_monotonic() >= c->budget)
    user_error(L, "TimeoutReached: the search's time budget (set_timeout) is spent; no more jobs can be submitted");
  check_interrupt(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
  lua_pushnil(L);
  while (lua_next(L, 3)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
      const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1);
      user_error(L, "submit expects a list of parameter tables, but got a table with key '%s' "
                    "(to submit one job, write ev:submit({ {x = 1} }))", k);
    }
  }
  /* Encode everything first: nothing of this call is submitted unless all of it can be. */
  buf_t enc;
  buf_init(&enc);
  size_t *ends = xmalloc(((size_t)n + 1) * sizeof *ends);
  char err[512];
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, 3, i);
    int rc = t == LUA_TTABLE ? wire_encode(L, -1, &enc, "parameters", err, sizeof err) : -1;
    lua_pop(L, 1);
    if (rc) {
      buf_free(&enc);
      free(ends);
      if (t != LUA_TTABLE)
        return user_error(L, "submit: element %I is a %s, not a table of parameters", i, lua_typename(L, t));
      return user_error(L, "submit: element %I: %s", i, err);
    }
    ends[i] = enc.len;
  }
  ends[0] = 0;
  if (want) lua_createtable(L, (int)n, 0);
  if (first_n >= 0) c->jobs.next_n = (uint64_t)first_n;
  double now = now_monotonic();
  for (lua_Integer i = 1; i <= n; i++) {
    uint32_t slot = jobs_add(&c->jobs, now);
    uint64_t num = c->jobs.recs[slot].n;
    lua_createtable(L, 0, 8);
    jobs_push_id(L, c->search_id, num);
    lua_setfield(L, -2, "id");
    lua_rawgeti(L, 3, i);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "parameters");
    lua_setfield(L, -2, "args");
    lua_pushliteral(L, "RUNNING");
    lua_setfield(L, -2, "status");
    if (want) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, i);
    }
    if (c->kind == K_CUSTOM) {
      lua_getiuservalue(L, 1, 2);
      lua_pushvalue(L, -2);
      lua_pushinteger(L, slot);
      lua_rawset(L, -3);
      lua_pop(L, 1);
    }
    lua_rawseti(L, PENDING, slot);
    if (c->kind == K_FARM) {
      c->ex->ops->launch(c->ex, slot, num, enc.data + ends[i - 1], ends[i] - ends[i - 1]);
      /* Idle workers start on the first jobs while the rest of a long list is made ready. */
      if (i == c->ex->num_workers && i < n) c->ex->ops->poll(c->ex, 0, NULL, NULL);
    } else if (c->kind == K_SERIAL) {
      buf_compact(&c->serial_queue, &c->serial_read);
      buf_add(&c->serial_queue, &slot, sizeof slot);
    }
  }
  buf_free(&enc);
  free(ends);
  if (c->kind == K_FARM) c->ex->ops->poll(c->ex, 0, NULL, NULL);
  return want ? 1 : 0;
}

/* Gather into the list at x->results until `target` jobs came back, then take what else is ready.
 * Raises "interrupted" on Ctrl-C unless closing (close must bring every job back). */
static void collect(lua_State *L, core_t *c, collect_ctx *x, lua_Integer target, int closing) {
  if (c->kind == K_SERIAL) {
    uint32_t slot;
    while (x->count < target && serial_next(c, &slot)) {
      budget_check(L, c);
      serial_run_one(x, slot, c->budget_spent || (closing && interrupt_pending()));
      if (!closing) check_interrupt(L);
    }
    return;
  }
  if (c->kind != K_FARM) return;
  for (;;) {
    budget_check(L, c);
    double wait = x->count >= target ? 0 : POLL_SLICE;
    if (c->budget > 0 && !c->budget_spent && c->budget - now_monotonic() < wait) wait = c->budget - now_monotonic();
    int got = c->ex->ops->poll(c->ex, wait > 0 ? wait : 0, on_result, x);
    subprocess_reap_orphans();
    if (got < 0) user_error(L, "gather: %s", c->ex->err);
    if (!closing) check_interrupt(L);
    if (x->count >= target && got == 0) return;
  }
}

/* Finished jobs gather into the core's ready list (user value 3), handed over only when the call
 * returns: a job that came back while an error (Ctrl-C) unwound the call is returned by the next. */
static collect_ctx ready_list(lua_State *L, core_t *c) {
  lua_getiuservalue(L, 1, 3);
  collect_ctx x = {L, c, lua_gettop(L), (lua_Integer)lua_rawlen(L, -1)};
  return x;
}

static int hand_over(lua_State *L, const collect_ctx *x) {
  lua_newtable(L);
  lua_setiuservalue(L, 1, 3);
  lua_settop(L, x->results);
  return 1;
}

/* c:collect("ALL" | "BATCH", size) -> list of finished jobs */
static int core_collect(lua_State *L) {
  core_t *c = check_core(L);
  const char *mode = luaL_checkstring(L, 2);
  lua_Integer size = luaL_optinteger(L, 3, 1);
  lua_settop(L, 3);
  with_pending(L);
  collect_ctx x = ready_list(L, c);
  lua_Integer outstanding = (lua_Integer)c->jobs.in_flight + x.count;
  lua_Integer target = strcmp(mode, "ALL") == 0 ? outstanding : (size < outstanding ? size : outstanding);
  collect(L, c, &x, target, 0);
  return hand_over(L, &x);
}

/* c:set_budget(seconds | nil) */
static int core_set_budget(lua_State *L) {
  core_t *c = check_core(L);
  c->budget = lua_isnoneornil(L, 2) ? 0 : now_monotonic() + luaL_checknumber(L, 2);
  c->budget_spent = 0;
  if (c->ex) c->ex->ops->set_budget(c->ex, c->budget);
  return 0;
}

/* c:time_left() -> seconds or nil */
static int core_time_left(lua_State *L) {
  core_t *c = check_core(L);
  if (c->budget <= 0) return 0;
  double left = c->budget - now_monotonic();
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

/* c:now() -> seconds since the evaluator was created */
static int core_now(lua_State *L) {
  core_t *c = check_core(L);
  lua_pushnumber(L, now_monotonic() - c->jobs.t0);
  return 1;
}

static const char *const status_names[] = {"OK", "ERROR", "TIMEOUT", "CANCELLED", "MEMORY", "CRASHED", NULL};

/* c:complete(job, status, value, t_start, t_end, rank) -> job: a custom backend's job is done.
 * t_start and t_end as given by c:now(). */
static int core_complete(lua_State *L) {
  core_t *c = check_core(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  run_status st = (run_status)luaL_checkoption(L, 3, "OK", status_names);
  double t0 = luaL_checknumber(L, 5) + c->jobs.t0, t1 = luaL_checknumber(L, 6) + c->jobs.t0;
  int rank = (int)luaL_optinteger(L, 7, 0);
  lua_settop(L, 7);
  with_pending(L); /* job 3, status 4, value 5 */
  lua_getiuservalue(L, 1, 2); /* job -> slot */
  lua_pushvalue(L, 3);
  lua_rawget(L, -2);
  if (!lua_isinteger(L, -1)) return luaL_error(L, "complete: this job is not running on this evaluator");
  uint32_t slot = (uint32_t)lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, 3);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_newtable(L);
  collect_ctx x = {L, c, lua_gettop(L), 0};
  finish_slot(&x, slot, st, 5, t0, t1, rank);
  lua_rawgeti(L, x.results, 1);
  return 1;
}

/* c:close(wait, cancel) -> the jobs that came back while closing */
static int core_close(lua_State *L) {
  core_t *c = check_core(L);
  int wait = lua_toboolean(L, 2), cancel = lua_toboolean(L, 3);
  lua_settop(L, 3);
  with_pending(L);
  collect_ctx x = ready_list(L, c);
  if (c->closed) return hand_over(L, &x);
  if (interrupt_pending()) wait = 0, cancel = 1; /* Ctrl-C: nothing is worth waiting for */
  if (c->kind == K_FARM) {
    if (cancel) c->ex->ops->cancel(c->ex, !wait);
    if (wait || cancel) collect(L, c, &x, (lua_Integer)c->jobs.in_flight + x.count, 1);
    c->ex->ops->shutdown(c->ex);
    c->ex->ops->destroy(c->ex);
    c->ex = NULL;
  } else if (c->kind == K_SERIAL) {
    uint32_t slot;
    while (serial_next(c, &slot)) serial_run_one(&x, slot, cancel || !wait);
  }
  c->closed = 1;
  return hand_over(L, &x);
}

static int core_gc(lua_State *L) {
  core_t *c = luaL_checkudata(L, 1, CORE_MT);
  if (c->ex) {
    /* Never left open: the workers would wait for ever. */
    c->ex->ops->cancel(c->ex, 1);
    c->ex->ops->shutdown(c->ex);
    c->ex->ops->destroy(c->ex);
    c->ex = NULL;
  }
  jobs_free(&c->jobs);
  buf_free(&c->serial_queue);
  luaL_unref(L, LUA_REGISTRYINDEX, c->run_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, c->kwargs_ref);
  c->run_ref = c->kwargs_ref = LUA_NOREF;
  return 0;
}

/* ---- construction ---- */

static double opt_number(lua_State *L, int t, const char *k, double dflt) {
  double v = dflt;
  if (lua_getfield(L, t, k) != LUA_TNIL) v = luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Registry refs for opts.run and opts.kwargs (an empty table when none): what every worker calls. */
static void ref_run_and_kwargs(lua_State *L, int *run_ref, int *kwargs_ref) {
  lua_getfield(L, 1, "run");
  *run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (lua_getfield(L, 1, "kwargs") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  *kwargs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* A thread worker re-running the script: the create the root made serves; the others are skipped. */
static int serve_in_thread(lua_State *L, runtime_t *rt, int kind) {
  if (rt->creates != rt->serve_at || rt->served) {
    lua_pushnil(L);
    return 1;
  }
  if (kind != 2)
    return luaL_error(L, "evaluator.create call number %d makes a thread pool on the root but not in this worker "
                         "thread: the script must make the same create calls in every thread", rt->creates);
  int run_ref, kwargs_ref;
  ref_run_and_kwargs(L, &run_ref, &kwargs_ref);
  rt->served = 1;
  int rc = worker_serve(L, &rt->guard, rt->worker_link, run_ref, kwargs_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, run_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, kwargs_ref);
  if (rc) return luaL_error(L, "%s", rt->worker_link->err);
  return runtime_worker_done(L);
}

/* core.new{kind=, run=, kwargs=, num_workers=, job_timeout=, job_memory_limit=, comm=, root=,
 *          search_id=} -> core, or nil on a worker rank once its root closed */
static int core_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  static const char *const kinds[] = {"serial", "mpicomm", "thread", "process", "custom", NULL};
  lua_getfield(L, 1, "kind");
  int kind = luaL_checkoption(L, -1, "serial", kinds);
  lua_pop(L, 1);
  runtime_t *rt = runtime_of(L);
  rt->creates++;
  if (rt->worker_link) return serve_in_thread(L, rt, kind);
  core_t *c = lua_newuserdatauv(L, sizeof *c, 3);
  memset(c, 0, sizeof *c);
  c->run_ref = c->kwargs_ref = LUA_NOREF;
  luaL_setmetatable(L, CORE_MT);
  int self = lua_gettop(L);
  lua_newtable(L);
  lua_setiuservalue(L, self, 1);
  lua_newtable(L);
  lua_setiuservalue(L, self, 2);
  lua_newtable(L);
  lua_setiuservalue(L, self, 3);
  c->kind = kind == 0 ? K_SERIAL : kind == 4 ? K_CUSTOM : K_FARM;
  c->job_timeout = opt_number(L, 1, "job_timeout", 0);
  c->mem_limit = (size_t)opt_number(L, 1, "job_memory_limit", 0);
  lua_getfield(L, 1, "search_id");
  snprintf(c->search_id, sizeof c->search_id, "%s", lua_isnil(L, -1) ? "0" : luaL_checkstring(L, -1));
  lua_pop(L, 1);
  jobs_init(&c->jobs, now_monotonic());
  buf_init(&c->serial_queue);
  ref_run_and_kwargs(L, &c->run_ref, &c->kwargs_ref);
  int nw = (int)opt_number(L, 1, "num_workers", 0);
  exec_config cfg = {c->search_id, c->job_timeout, c->mem_limit};
  if (kind == 1) {
    lua_getfield(L, 1, "comm");
    MPI_Comm comm = l_mpi_checkcomm(L, -1);
    lua_pop(L, 1);
    int root = (int)opt_number(L, 1, "root", 0);
    c->ex = transport_create(L, &rt->guard, comm, root, nw, &cfg, c->run_ref, c->kwargs_ref);
    if (!c->ex) {
      c->closed = 1;
      lua_pushnil(L);
      return 1;
    }
  } else if (kind == 2 || kind == 3) {
    char err[256];
    c->ex = kind == 2 ? pool_thread_new(rt, nw, &cfg, err, sizeof err) : pool_process_new(L, &rt->guard, nw, &cfg, c->run_ref, c->kwargs_ref, err, sizeof err);
    if (!c->ex) return luaL_error(L, "%s", err);
  }
  lua_pushvalue(L, self);
  return 1;
}

/* c:num_workers() */
static int core_num_workers(lua_State *L) {
  core_t *c = check_core(L);
  lua_pushinteger(L, c->ex ? c->ex->num_workers : 1);
  return 1;
}

static int l_abort(lua_State *L) {
  int code = (int)luaL_optinteger(L, 1, 1);
  fflush(NULL);
  MPI_Abort(MPI_COMM_WORLD, code);
  return 0;
}

static int l_reap(lua_State *L) {
  (void)L;
  subprocess_reap_orphans();
  return 0;
}

static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  if (s > 0) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
  }
  return 0;
}

/* encode/decode through the wire format: lets tests and storages check "values cross exactly". */
static int l_wire_encode(lua_State *L) {
  buf_t b;
  buf_init(&b);
  char err[512];
  if (wire_encode(L, 1, &b, luaL_optstring(L, 2, "value"), err, sizeof err)) {
    buf_free(&b);
    return luaL_error(L, "%s", err);
  }
  lua_pushlstring(L, b.data, b.len);
  buf_free(&b);
  return 1;
}

static int l_wire_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n), *end = s + n;
  if (wire_decode(L, &s, end) || s != end) return luaL_error(L, "wire_decode: malformed value");
  return 1;
}

int luaopen_evaluator_core(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"submit", core_submit}, {"collect", core_collect}, {"set_budget", core_set_budget},
      {"time_left", core_time_left}, {"counts", core_counts}, {"now", core_now},
      {"complete", core_complete}, {"close", core_close}, {"num_workers", core_num_workers}, {NULL, NULL}};
  if (luaL_newmetatable(L, CORE_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, core_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
      {"new", core_new}, {"abort", l_abort}, {"sleep", l_sleep}, {"reap_orphans", l_reap}, {"wire_encode", l_wire_encode}, {"wire_decode", l_wire_decode},
      {"json_encode", l_json_encode}, {"json_decode", l_json_decode}, {"csv_dump", l_csv_dump}, {"sqlite_open", l_sqlite_open}, {NULL, NULL}};
  luaL_newlib(L, fns);
  l_mpi_push(L);
  lua_setfield(L, -2, "mpi");
  return 1;
}
