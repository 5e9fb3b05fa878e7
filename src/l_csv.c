/* l_csv.c: turns the Lua job tables of a batch into a csv_table for csv_append, and wraps json_* for Lua.
 * Every intermediate string is a Lua value anchored on the stack, so raising an error never leaks. */
#include "l_csv.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "buf.h"
#include "csv.h"
#include "json.h"
#include "numfmt.h"

/* Where l_csv_dump keeps its work, after its three arguments. */
enum { ARG_PATH = 1, ARG_JOBS, ARG_FLUSH, S_SEEN, S_COLS, S_ROWS, S_PNAMES, S_MNAMES };

/* Names the value being written, for error messages only: formatted when an error is raised. */
typedef struct where {
  const char *id, *field, *name;
} where_t;

static const char *describe(lua_State *L, const where_t *w) {
  if (!w->name) return lua_pushfstring(L, "job %s: %s", w->id, w->field);
  return lua_pushfstring(L, "job %s: %s \"%s\"", w->id, w->field, w->name);
}

/* A value the CSV cannot hold (a function, a cyclic table...): its cell gets "<type>: <address>",
 * as tostring would write it (without metamethods, which could raise), and a warning goes to
 * stderr. Raising instead would keep the job in jobs_done and fail every later dump with it. */
static void push_unwritable(lua_State *L, int idx, const where_t *w, const char *why) {
  const char *cell = lua_pushfstring(L, "%s: %p", luaL_typename(L, idx), lua_topointer(L, idx));
  fprintf(stderr, "evaluator-lua: warning: dump_jobs_done_to_csv: %s %s: written as \"%s\"\n", describe(L, w), why,
          cell);
  lua_pop(L, 1); /* the description; the cell stays */
}

/* Push the cell text for the value at idx. The C buffer is freed before any error is raised. */
static void push_cell(lua_State *L, int idx, const where_t *w) {
  char num[32];
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: lua_pushvalue(L, idx); return;
  case LUA_TBOOLEAN: lua_pushstring(L, lua_toboolean(L, idx) ? "True" : "False"); return;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx))
      snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
    else
      fmt_double(lua_tonumber(L, idx), num);
    lua_pushstring(L, num);
    return;
  case LUA_TTABLE: {
    char err[256];
    buf_t b;
    buf_init(&b);
    if (json_encode(L, idx, &b, err, sizeof err)) {
      buf_free(&b);
      push_unwritable(L, idx, w, err);
      return;
    }
    lua_pushlstring(L, b.data ? b.data : "", b.len);
    buf_free(&b);
    return;
  }
  case LUA_TLIGHTUSERDATA:
    if (!lua_touserdata(L, idx)) { /* JSON null (evaluator.null): an empty cell, as pandas writes None */
      lua_pushliteral(L, "");
      return;
    }
    /* fall through */
  default: {
    const char *why = lua_pushfstring(L, "is a %s: cannot write it to CSV", luaL_typename(L, idx));
    push_unwritable(L, idx, w, why);
    lua_remove(L, -2);
  }
  }
}

/* Stack: ... name cell. Sets row[name] = cell, recording name as a column the first time it is seen. */
static void set_cell(lua_State *L, int row) {
  lua_pushvalue(L, -2);
  if (lua_rawget(L, S_SEEN) == LUA_TNIL) {
    lua_pushvalue(L, -3);
    lua_pushboolean(L, 1);
    lua_rawset(L, S_SEEN);
    lua_pushvalue(L, -3);
    lua_rawseti(L, S_COLS, (lua_Integer)lua_rawlen(L, S_COLS) + 1);
  }
  lua_pop(L, 1);
  lua_rawset(L, row);
}

/* Push prefix .. the key at idx (a string or a number, which is not converted in place: the key
 * still drives lua_next), refusing NUL bytes that a C column name cannot hold. Names are made once
 * per dump and kept in the cache table at `cache`. */
static void push_name(lua_State *L, const char *prefix, int idx, const char *job, int cache) {
  lua_pushvalue(L, idx);
  if (lua_rawget(L, cache) == LUA_TSTRING) return;
  lua_pop(L, 1);
  char num[32];
  size_t n;
  const char *s = num;
  if (lua_type(L, idx) == LUA_TSTRING)
    s = lua_tolstring(L, idx, &n);
  else if (lua_isinteger(L, idx))
    n = (size_t)snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
  else
    fmt_double(lua_tonumber(L, idx), num), n = strlen(num);
  if (strlen(s) != n) luaL_error(L, "job %s: name \"%s...\" holds a NUL byte", job, s);
  lua_pushfstring(L, "%s%s", prefix, s);
  lua_pushvalue(L, idx);
  lua_pushvalue(L, -2);
  lua_rawset(L, cache);
}

/* Set the job_id cell from the job's id; returns the id as text (left on the stack) for messages. */
static const char *add_job_id(lua_State *L, int job, int row, lua_Integer i) {
  int t = lua_getfield(L, job, "id");
  if (t != LUA_TSTRING && !lua_isinteger(L, -1))
    luaL_error(L, "job #%d: id is a %s, expected a string", (int)i, luaL_typename(L, -1));
  const char *id = lua_tostring(L, -1);
  const char *dot = strrchr(id, '.'), *digits = dot ? dot + 1 : id;
  size_t n = strspn(digits, "0123456789");
  if (n == 0 || digits[n] != '\0' || n > 18) /* 18 digits always fit in int64 */
    luaL_error(L, "job #%d: id \"%s\" does not end with an integer", (int)i, id);
  char num[24];
  snprintf(num, sizeof num, "%lld", strtoll(digits, NULL, 10));
  lua_pushliteral(L, "job_id");
  lua_pushstring(L, num);
  set_cell(L, row);
  return id;
}

/* Columns prefix<key> for job[field]: parameters take string and number keys, metadata its
 * string keys that do not start with "_" (the others are private to the runtime or the user). */
static void add_fields(lua_State *L, int job, int row, const char *id, const char *field, const char *prefix,
                       int is_metadata) {
  int t = lua_getfield(L, job, field), tbl = lua_gettop(L);
  if (t == LUA_TNIL) return;
  if (t != LUA_TTABLE) luaL_error(L, "job %s: %s is a %s, expected a table", id, field, lua_typename(L, t));
  lua_pushnil(L);
  while (lua_next(L, tbl)) {
    int kt = lua_type(L, -2);
    int take = is_metadata ? kt == LUA_TSTRING && lua_tostring(L, -2)[0] != '_'
                           : kt == LUA_TSTRING || kt == LUA_TNUMBER;
    if (take) {
      push_name(L, prefix, -2, id, is_metadata ? S_MNAMES : S_PNAMES);
      where_t w = {id, field, lua_tostring(L, -1) + strlen(prefix)};
      push_cell(L, -2, &w);
      set_cell(L, row);
    } else if (!is_metadata) {
      luaL_error(L, "job %s: %s has a %s key", id, field, luaL_typename(L, -2));
    }
    lua_pop(L, 1);
  }
}

static void add_objective(lua_State *L, int job, int row, const char *id) {
  int t = lua_getfield(L, job, "objective"), obj = lua_gettop(L);
  if (t == LUA_TNUMBER || t == LUA_TSTRING) {
    lua_pushliteral(L, "objective");
    where_t w = {id, "objective", NULL};
    push_cell(L, obj, &w);
    set_cell(L, row);
  } else if (t == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, obj);
    for (lua_Integer k = 1; k <= n; k++) {
      if (lua_rawgeti(L, obj, k) != LUA_TNUMBER)
        luaL_error(L, "job %s: objective[%d] is a %s, expected a number", id, (int)k, luaL_typename(L, -1));
      lua_pushfstring(L, "objective_%d", (int)(k - 1));
      where_t w = {id, "objective", NULL};
      push_cell(L, -2, &w);
      set_cell(L, row);
      lua_pop(L, 1);
    }
  } else if (t != LUA_TNIL) {
    luaL_error(L, "job %s: objective is a %s, expected a number, a string or a list of numbers", id,
               lua_typename(L, t));
  }
}

/* rows[i] = the cells of job i, keyed by column name. */
static void add_job(lua_State *L, lua_Integer i) {
  int base = lua_gettop(L);
  int job = base + 1, row = base + 2;
  if (lua_geti(L, ARG_JOBS, i) != LUA_TTABLE)
    luaL_error(L, "job #%d is a %s, expected a table", (int)i, luaL_typename(L, job));
  lua_newtable(L);
  const char *id = add_job_id(L, job, row, i);
  add_fields(L, job, row, id, "parameters", "p:", 0);
  add_objective(L, job, row, id);
  add_fields(L, job, row, id, "metadata", "m:", 1);
  lua_pushvalue(L, row);
  lua_rawseti(L, S_ROWS, i);
  lua_settop(L, base);
}

/* Pointers into strings anchored in the S_COLS and S_ROWS tables, which stay on the stack (Lua
 * does not move strings) until csv_append has returned. */
static csv_table build_table(lua_State *L, size_t nrows) {
  size_t ncols = lua_rawlen(L, S_COLS);
  if (ncols && nrows > SIZE_MAX / ncols / sizeof(size_t)) luaL_error(L, "too many cells");
  const char **cols = lua_newuserdatauv(L, ncols * sizeof *cols, 0);
  const char **cells = lua_newuserdatauv(L, nrows * ncols * sizeof *cells, 0);
  size_t *lens = lua_newuserdatauv(L, nrows * ncols * sizeof *lens, 0);
  for (size_t c = 0; c < ncols; c++) {
    lua_rawgeti(L, S_COLS, (lua_Integer)c + 1);
    cols[c] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  for (size_t r = 0; r < nrows; r++) {
    lua_rawgeti(L, S_ROWS, (lua_Integer)r + 1);
    for (size_t c = 0; c < ncols; c++) {
      lua_rawgeti(L, S_COLS, (lua_Integer)c + 1);
      lua_rawget(L, -2);
      cells[r * ncols + c] = lua_tolstring(L, -1, &lens[r * ncols + c]);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  return (csv_table){cols, ncols, cells, nrows, lens};
}

int l_csv_dump(lua_State *L) {
  const char *path = luaL_checkstring(L, ARG_PATH);
  luaL_checktype(L, ARG_JOBS, LUA_TTABLE);
  int flush = lua_toboolean(L, ARG_FLUSH);
  lua_settop(L, ARG_FLUSH);
  lua_newtable(L); /* S_SEEN: column name -> true */
  lua_newtable(L); /* S_COLS: column names in order of appearance */
  lua_newtable(L); /* S_ROWS */
  lua_newtable(L); /* S_PNAMES: parameter key -> "p:" .. key */
  lua_newtable(L); /* S_MNAMES: metadata key -> "m:" .. key */
  lua_Integer n = luaL_len(L, ARG_JOBS);
  luaL_checkstack(L, 16, "dump");
  for (lua_Integer i = 1; i <= n; i++) add_job(L, i);
  csv_table t = build_table(L, (size_t)(n > 0 ? n : 0));
  char err[1024];
  if (csv_append(path, &t, flush, err, sizeof err)) return luaL_error(L, "%s", err);
  return 0;
}

int l_json_encode(lua_State *L) {
  char err[256];
  buf_t b;
  luaL_checkany(L, 1);
  buf_init(&b);
  if (json_encode(L, 1, &b, err, sizeof err)) {
    buf_free(&b);
    return luaL_error(L, "encode: %s", err);
  }
  lua_pushlstring(L, b.data ? b.data : "", b.len);
  buf_free(&b);
  return 1;
}

int l_json_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char err[256];
  if (json_decode(L, s, len, err, sizeof err)) return luaL_error(L, "decode: %s", err);
  return 1;
}
