/* l_job.c: the Lua tables of jobs (see l_job.h). */
#include "l_job.h"

#include <math.h>
#include <string.h>
#include <lauxlib.h>

#include "numfmt.h"
#include "wire.h"

/* "<search_id>.<n>", without lua_pushfstring's generality: this is on every job's path. */
void ljob_push_id(lua_State *L, const char *search_id, uint64_t n) {
  char buf[160];
  size_t len = strlen(search_id);
  if (len > sizeof buf - 25) len = sizeof buf - 25;
  memcpy(buf, search_id, len);
  buf[len++] = '.';
  len += fmt_integer((long long)n, buf + len); /* job numbers < 2^63; 24 bytes left for it */
  lua_pushlstring(L, buf, len);
}

/* With the id and the parameters table on top of the stack: the job's common fields. */
static void set_common(lua_State *L, int job) {
  lua_pushvalue(L, -1);
  lua_setfield(L, job, "args");
  lua_setfield(L, job, "parameters");
  lua_setfield(L, job, "id");
}

int ljob_push_view(lua_State *L, const char *search_id, uint64_t n, const char *params, size_t len) {
  lua_createtable(L, 0, 3);
  int job = lua_gettop(L);
  ljob_push_id(L, search_id, n);
  const char *p = params;
  if (wire_decode(L, &p, params + len)) {
    lua_settop(L, job - 1);
    return -1;
  }
  set_common(L, job);
  return 0;
}

void ljob_push_submitted(lua_State *L, const char *search_id, uint64_t n, int params_idx) {
  params_idx = lua_absindex(L, params_idx);
  lua_createtable(L, 0, 6);
  int job = lua_gettop(L);
  ljob_push_id(L, search_id, n);
  lua_pushvalue(L, params_idx);
  set_common(L, job);
  lua_pushliteral(L, "RUNNING");
  lua_setfield(L, job, "status");
}

/* ---- the objective ---- */

static const char WHAT_TO_RETURN[] =
    "the run function must return a number, an \"F...\" string (a failure), a list of numbers, or "
    "{ objective = ..., metadata = {...} }";

static int is_finite_number(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TNUMBER && (lua_isinteger(L, idx) || isfinite(lua_tonumber(L, idx)));
}

/* A list of numbers: 1..n all numbers, n >= 1, nothing else. Returns n or 0. *finite says whether all are. */
static lua_Integer number_list(lua_State *L, int idx, int *finite) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  *finite = 1;
  if (n == 0) return 0;
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, idx, i);
    if (t != LUA_TNUMBER) n = 0;
    else if (!is_finite_number(L, -1)) *finite = 0;
    lua_pop(L, 1);
    if (!n) return 0;
  }
  lua_pushnil(L);
  int count = 0;
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
  }
  return count == n ? n : 0;
}

/* Push the objective the value at idx stands for; returns why it is not a valid one, or NULL. */
static const char *push_objective_value(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  int finite;
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      if (is_finite_number(L, idx)) lua_pushvalue(L, idx);
      else lua_pushliteral(L, "F"); /* NaN and infinities are failures, as in DeepHyper */
      return NULL;
    case LUA_TSTRING:
      if (lua_tostring(L, idx)[0] != 'F') break; /* only "F..." strings are failures */
      lua_pushvalue(L, idx);
      return NULL;
    case LUA_TTABLE:
      if (number_list(L, idx, &finite)) {
        if (finite) lua_pushvalue(L, idx);
        else lua_pushliteral(L, "F");
        return NULL;
      }
      break;
    default: break;
  }
  lua_pushliteral(L, "F");
  return WHAT_TO_RETURN;
}

/* Push the objective of a run function's output (a value, or a table with `objective`). */
static const char *push_objective(lua_State *L, int out_idx) {
  if (lua_type(L, out_idx) == LUA_TTABLE && lua_getfield(L, out_idx, "objective") != LUA_TNIL) {
    const char *why = push_objective_value(L, -1);
    lua_remove(L, -2);
    return why;
  }
  if (lua_type(L, out_idx) == LUA_TTABLE) lua_pop(L, 1);
  return push_objective_value(L, out_idx);
}

/* ---- finishing ---- */

/* The run function's own metadata (output.metadata) into the table at meta. */
static void copy_user_metadata(lua_State *L, int out_idx, int meta) {
  if (lua_type(L, out_idx) != LUA_TTABLE) return;
  if (lua_getfield(L, out_idx, "metadata") == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, meta);
    }
  }
  lua_pop(L, 1);
}

static void set_time(lua_State *L, int meta, const char *key, double t) {
  lua_pushnumber(L, t);
  lua_setfield(L, meta, key);
}

/* Remote clocks are corrected by an estimate: keep the four in order whatever it missed. */
static void set_times(lua_State *L, int meta, const ljob_times *t) {
  double start = t->start, end = t->end, gather = t->gather;
  if (start < t->submit) end += t->submit - start, start = t->submit;
  if (end < start) end = start;
  if (gather < end) gather = end;
  set_time(L, meta, "timestamp_submit", t->submit - t->t0);
  set_time(L, meta, "timestamp_start", start - t->t0);
  set_time(L, meta, "timestamp_end", end - t->t0);
  set_time(L, meta, "timestamp_gather", gather - t->t0);
}

void ljob_finish(lua_State *L, int job_idx, run_status st, int out_idx, const ljob_times *t) {
  job_idx = lua_absindex(L, job_idx);
  out_idx = lua_absindex(L, out_idx);
  luaL_checkstack(L, 8, NULL);
  lua_createtable(L, 0, 8);
  int meta = lua_gettop(L);
  const char *error;
  if (st == RUN_OK) {
    lua_pushvalue(L, out_idx);
    lua_setfield(L, job_idx, "output");
    copy_user_metadata(L, out_idx, meta); /* first, so the runtime's own keys win a clash */
    error = push_objective(L, out_idx);
  } else {
    lua_pushstring(L, outcome_objective(st));
    error = lua_tostring(L, out_idx);
  }
  lua_setfield(L, job_idx, "objective");
  if (error) {
    lua_pushstring(L, error);
    lua_setfield(L, meta, "error");
  }
  set_times(L, meta, t);
  lua_pushinteger(L, t->rank);
  lua_setfield(L, meta, "rank");
  lua_setfield(L, job_idx, "metadata");
  lua_pushstring(L, outcome_job_status(st));
  lua_setfield(L, job_idx, "status");
}
