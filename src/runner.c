/* runner.c: a job in a Lua state (see runner.h). Errors are caught with a message handler that
 * keeps the run function's own frames of the traceback, bounded as luaL_traceback bounds it; a
 * stop raised by the guard passes through it untouched. */
#include "runner.h"

#include <string.h>
#include <lauxlib.h>

#include "clock.h"
#include "l_job.h"
#include "subprocess.h"
#include "traceback.h"
#include "wire.h"


void runner_init(runner_t *r, lua_State *L, guard_t *g, int fn_idx, int kwargs_idx) {
  kwargs_idx = lua_absindex(L, kwargs_idx);
  memset(r, 0, sizeof *r);
  r->L = L;
  r->g = g;
  memcpy(r->search_id, "0", 2);
  lua_pushvalue(L, fn_idx);
  r->run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (lua_isnoneornil(L, kwargs_idx)) lua_newtable(L);
  else lua_pushvalue(L, kwargs_idx);
  r->kwargs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void runner_free(runner_t *r) {
  if (!r->L) return;
  luaL_unref(r->L, LUA_REGISTRYINDEX, r->run_ref);
  luaL_unref(r->L, LUA_REGISTRYINDEX, r->kwargs_ref);
  r->L = NULL;
}

void runner_set_search_id(runner_t *r, const char *search_id, size_t len) {
  if (len >= sizeof r->search_id) len = sizeof r->search_id - 1;
  memcpy(r->search_id, search_id, len);
  r->search_id[len] = '\0';
}

void runner_serving(runner_t *r, int on) {
  if (on) r->gc_mode = lua_gc(r->L, LUA_GCGEN, 0, 0);
  else lua_gc(r->L, r->gc_mode, 0, 0);
}

run_status runner_deadline(const job_limits *lim, double start, double *deadline) {
  *deadline = lim->deadline;
  if (lim->job_timeout > 0 && (*deadline == 0 || start + lim->job_timeout < *deadline)) {
    *deadline = start + lim->job_timeout;
    return RUN_TIMEOUT;
  }
  return RUN_CANCELLED;
}

/* ---- tracebacks ---- */

/* The message and the traceback of the run function's own frames: what called the run function
 * (the runtime, the worker loop, the script's create) is the same for every job and is left out. */
static int traceback_handler(lua_State *L) {
  if (guard_is_stop(L, 1)) return 1;
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) msg = lua_tostring(L, -1);
    else msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  tb_push(L, msg, 1, tb_levels(L) - (int)lua_tointeger(L, lua_upvalueindex(1)), NULL);
  return 1;
}

/* ---- one call ---- */

/* Call the function under the guard with the two values above it (job, kwargs) on the stack,
 * popping the three. On RUN_OK leaves the output; otherwise leaves a message. */
static run_status call_guarded(runner_t *r, const job_limits *lim, double *t_start, double *t_end) {
  lua_State *L = r->L;
  guard_t *g = r->g;
  int base = lua_gettop(L) - 2; /* index of the function */
  lua_pushinteger(L, tb_levels(L));
  lua_pushcclosure(L, traceback_handler, 1);
  lua_insert(L, base);
  double start = clock_now(), deadline;
  run_status why = runner_deadline(lim, start, &deadline);
  guard_begin(g, deadline, why, lim->mem_limit);
  g->started = start;
  /* A job whose budget is gone before it starts is not run at all. */
  run_status stopped = guard_check_local(g);
  int rc = stopped ? LUA_OK : lua_pcall(L, 2, 1, base);
  run_status ended = guard_end(g);
  subprocess_reap_orphans();
  *t_end = clock_now();
  *t_start = stopped ? OUTCOME_NEVER_STARTED : start;
  if (stopped || ended) {
    lua_settop(L, base - 1);
    lua_pushstring(L, outcome_stop_message(stopped ? stopped : ended));
    if (ended == RUN_MEMORY) lua_gc(L, LUA_GCCOLLECT);
    return stopped ? stopped : ended;
  }
  lua_remove(L, base);
  if (rc == LUA_OK) return RUN_OK;
  if (rc == LUA_ERRMEM && !lua_isstring(L, -1)) {
    lua_pop(L, 1);
    lua_pushliteral(L, "not enough memory");
  }
  return RUN_ERROR;
}

/* Append the outcome for the value on top of the stack (the output when st is RUN_OK, else the
 * message) and pop it. An output that cannot be encoded turns the job into RUN_ERROR. */
static run_status encode_outcome(lua_State *L, run_status st, buf_t *out) {
  size_t mark = out->len;
  if (st == RUN_OK) {
    char err[512];
    buf_addc(out, (char)RUN_OK);
    int rc = wire_encode(L, -1, out, "output", err, sizeof err);
    lua_pop(L, 1);
    if (rc == 0) return RUN_OK;
    out->len = mark;
    outcome_encode_message(RUN_ERROR, err, strlen(err), out);
    return RUN_ERROR;
  }
  size_t n;
  const char *msg = lua_tolstring(L, -1, &n);
  if (!msg) msg = "(no message)", n = strlen(msg);
  outcome_encode_message(st, msg, n, out);
  lua_pop(L, 1);
  return st;
}

static const char MALFORMED[] = "the job's parameters arrived malformed";

run_status runner_run(runner_t *r, uint64_t n, const char *params, size_t len, const job_limits *lim, buf_t *out,
                      double *t_start, double *t_end) {
  lua_State *L = r->L;
  luaL_checkstack(L, 8, NULL);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->run_ref);
  if (ljob_push_view(L, r->search_id, n, params, len)) {
    lua_pop(L, 1);
    *t_start = *t_end = clock_now();
    outcome_encode_message(RUN_ERROR, MALFORMED, sizeof MALFORMED - 1, out);
    return RUN_ERROR;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->kwargs_ref);
  return encode_outcome(L, call_guarded(r, lim, t_start, t_end), out);
}

/* ---- jobs as coroutines ---- */

int runner_co_new(runner_t *r, uint64_t n, const char *params, size_t len) {
  lua_State *L = r->L;
  luaL_checkstack(L, 8, NULL);
  lua_State *co = lua_newthread(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->run_ref);
  if (ljob_push_view(L, r->search_id, n, params, len)) {
    lua_pop(L, 2);
    return -1;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->kwargs_ref);
  lua_xmove(L, co, 3);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

int runner_co_resume(runner_t *r, int ref, const job_limits *lim, double start, buf_t *out) {
  lua_State *L = r->L;
  guard_t *g = r->g;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_State *co = lua_tothread(L, -1);
  lua_pop(L, 1); /* the registry keeps it */
  int first = lua_status(co) == LUA_OK, nres;
  double deadline;
  run_status why = runner_deadline(lim, start, &deadline);
  guard_begin(g, deadline, why, lim->mem_limit);
  g->started = start;
  run_status stopped = guard_check_local(g);
  int tracked = stopped ? 0 : guard_enter_co(g, L, co);
  int rc = stopped ? LUA_OK : lua_resume(co, L, first ? 2 : 0, &nres);
  if (!stopped) guard_leave_co(g, L, tracked);
  run_status ended = guard_end(g);
  subprocess_reap_orphans();
  lua_sethook(co, NULL, 0, 0);
  if (stopped || ended) {
    outcome_encode_stopped(stopped ? stopped : ended, out);
    return 1;
  }
  if (rc == LUA_YIELD) {
    lua_pop(co, nres);
    return 0;
  }
  if (rc == LUA_OK) {
    if (nres == 0) lua_pushnil(L);
    else lua_xmove(co, L, 1);
    encode_outcome(L, RUN_OK, out);
    return 1;
  }
  const char *msg = lua_tostring(co, -1);
  luaL_traceback(L, co, msg ? msg : "(error object is not a string)", 0);
  encode_outcome(L, RUN_ERROR, out);
  return 1;
}

void runner_co_free(runner_t *r, int ref) {
  lua_State *L = r->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_State *co = lua_tothread(L, -1);
  if (co && lua_status(co) == LUA_YIELD) lua_resetthread(co); /* its to-be-closed variables */
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, ref);
}
