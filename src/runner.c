/* runner.c: one job in one Lua state (see runner.h). Errors are caught with a message handler that
 * keeps the worker's traceback; a stop raised by the guard passes through it untouched. */
#include "runner.h"

#include <string.h>
#include <lauxlib.h>

#include "subprocess.h"
#include "wire.h"

static int stack_depth(lua_State *L) {
  lua_Debug ar;
  int n = 0;
  while (lua_getstack(L, n, &ar)) n++;
  return n;
}

/* The message and the traceback of the run function's own frames: what called the run function
 * (the runtime, the worker loop, the script's create) is the same for every job and is left out. */
static int traceback_handler(lua_State *L) {
  if (guard_is_stop(L, 1)) return 1;
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) msg = lua_tostring(L, -1);
    else msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  int outer = (int)lua_tointeger(L, lua_upvalueindex(1));
  int levels = stack_depth(L) - outer;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, msg);
  luaL_addstring(&b, "\nstack traceback:");
  lua_Debug ar;
  for (int level = 1; level < levels && lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Slnt", &ar);
    if (ar.currentline > 0) lua_pushfstring(L, "\n\t%s:%d: in ", ar.short_src, ar.currentline);
    else lua_pushfstring(L, "\n\t%s: in ", ar.short_src);
    luaL_addvalue(&b);
    if (*ar.namewhat) lua_pushfstring(L, "%s '%s'", ar.namewhat, ar.name);
    else if (*ar.what == 'm') lua_pushliteral(L, "main chunk");
    else if (*ar.what != 'C') lua_pushfstring(L, "function <%s:%d>", ar.short_src, ar.linedefined);
    else lua_pushliteral(L, "?");
    luaL_addvalue(&b);
    if (ar.istailcall) luaL_addstring(&b, "\n\t(...tail calls...)");
  }
  luaL_pushresult(&b);
  return 1;
}

static const char *stop_message(run_status st) {
  switch (st) {
    case RUN_TIMEOUT: return "job stopped: it ran past job_timeout";
    case RUN_MEMORY: return "job stopped: it went over job_memory_limit";
    default: return "job cancelled";
  }
}

run_status runner_deadline(const job_limits *lim, double start, double *deadline) {
  *deadline = lim->deadline;
  if (lim->job_timeout > 0 && (*deadline == 0 || start + lim->job_timeout < *deadline)) {
    *deadline = start + lim->job_timeout;
    return RUN_TIMEOUT;
  }
  return RUN_CANCELLED;
}

void runner_encode_stopped(run_status st, buf_t *out) {
  const char *msg = stop_message(st);
  buf_addc(out, (char)st);
  wire_put_bytes(out, msg, strlen(msg));
}

run_status runner_call(lua_State *L, guard_t *g, const job_limits *lim, double *t_start, double *t_end) {
  int base = lua_gettop(L) - 2; /* index of the function */
  lua_pushinteger(L, stack_depth(L));
  lua_pushcclosure(L, traceback_handler, 1);
  lua_insert(L, base);
  double start = now_monotonic(), deadline;
  run_status why = runner_deadline(lim, start, &deadline);
  guard_begin(g, deadline, why, lim->mem_limit);
  g->started = start;
  /* A job whose budget is gone before it starts is not run at all. */
  run_status stopped = guard_check_local(g);
  int rc = stopped ? LUA_OK : lua_pcall(L, 2, 1, base);
  run_status ended = guard_end(g);
  subprocess_reap_orphans();
  *t_start = start;
  *t_end = now_monotonic();
  if (stopped) {
    lua_settop(L, base - 1);
    lua_pushstring(L, stop_message(stopped));
    return stopped;
  }
  lua_remove(L, base);
  if (ended != RUN_OK) {
    lua_pop(L, 1);
    lua_pushstring(L, stop_message(ended));
    if (ended == RUN_MEMORY) lua_gc(L, LUA_GCCOLLECT);
    return ended;
  }
  if (rc == LUA_OK) return RUN_OK;
  if (rc == LUA_ERRMEM && !lua_isstring(L, -1)) {
    lua_pop(L, 1);
    lua_pushliteral(L, "not enough memory");
  }
  return RUN_ERROR;
}

void runner_encode_outcome(lua_State *L, run_status st, buf_t *out) {
  size_t mark = out->len;
  buf_addc(out, (char)st);
  if (st == RUN_OK) {
    char err[512];
    if (wire_encode(L, -1, out, "output", err, sizeof err) == 0) {
      lua_pop(L, 1);
      return;
    }
    out->len = mark;
    buf_addc(out, (char)RUN_ERROR);
    size_t n = strlen(err);
    wire_put_bytes(out, err, n);
    lua_pop(L, 1);
    return;
  }
  size_t n;
  const char *msg = lua_tolstring(L, -1, &n);
  if (!msg) msg = "(no message)", n = strlen(msg);
  wire_put_bytes(out, msg, n);
  lua_pop(L, 1);
}
