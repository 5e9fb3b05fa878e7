/* l_csv.c: turns the Lua job tables of a batch into a csv_table for csv_append, and wraps json_* for Lua.
 * The cells are taken straight from the job tables (no Lua table per row) into the table's arrays:
 * Lua strings in place, numbers and JSON formatted into C blocks that never move, all owned by a
 * userdata, so raising an error never leaks. */
#include "l_csv.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "buf.h"
#include "csv.h"
#include "json.h"
#include "numfmt.h"

/* Where l_csv_dump keeps its work, after its three arguments: the dump's C state (a userdata,
 * freed by __gc whatever error is raised), the column names in order of appearance, caches that
 * map a parameter key, a metadata key or any column name to its column number (1-based), and the
 * values read from the jobs, kept alive until the file is written. */
enum { ARG_PATH = 1, ARG_JOBS, ARG_FLUSH, S_STATE, S_COLS, S_PCOLS, S_MCOLS, S_NCOLS, S_ANCHOR, S_FIELDS };

/* The job fields read, as Lua strings at S_FIELDS + F_*: made once, not looked up by C text per job. */
enum { F_ID, F_PARAMETERS, F_OBJECTIVE, F_METADATA, F_COUNT };
static const char *const FIELD_NAMES[F_COUNT] = {"id", "parameters", "objective", "metadata"};

/* Column numbers of parameter (kind 0) and metadata (kind 1) keys by the address of the key's
 * string: Lua interns short strings, so one address is one key for the whole dump (the jobs table
 * keeps every key alive); a key not found here goes through the Lua cache tables. */
enum { KEY_SLOTS = 256 };
typedef struct key_slot {
  const void *key;
  size_t col;
} key_slot;

/* The keys of the kind's previous table in lua_next's order, for its first ORDER keys: tables of
 * one shape give their keys in one order, so the i-th key is usually the one seen i-th before. */
enum { ORDER = 16 };

/* objective_0 .. objective_<OBJ_COLS-1> keep their column numbers in the state; later ones go
 * through the Lua cache. */
enum { OBJ_COLS = 16 };

/* A block of texts made by the dump (numbers, JSON): cells point into it, so it never moves. */
typedef struct block {
  struct block *next;
  char data[];
} block_t;
enum { BLOCK_BYTES = 1 << 16 };

typedef struct dump_state {
  key_slot keys[2][KEY_SLOTS];
  key_slot order[2][ORDER];
  size_t col_job_id, col_objective, col_obj[OBJ_COLS]; /* 0: not made yet */
  /* The job being read may make its fields on access (it has a metatable, or the jobs list has one
   * and the job itself may be made on access): get_field anchors them. */
  int list_has_mt, job_has_mt;
  lua_Integer anchored; /* entries in S_ANCHOR */
  /* The csv_table's arrays, filled as the jobs are read: row r's cell for column col (1-based) at
   * r * stride + col - 1, stride >= the columns made so far (it grows by re-laying the rows out);
   * a row's later cell for a column wins. */
  size_t nrows, row, stride;
  const char **cells;
  size_t *lens;
  unsigned char *plain; /* a number's text: never quoted */
  block_t *blocks;      /* the newest first */
  char *room;           /* free bytes of the newest block */
  size_t room_left;
} dump_state;

static void state_free(dump_state *st) {
  free(st->cells);
  free(st->lens);
  free(st->plain);
  for (block_t *b = st->blocks, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  memset(st, 0, sizeof *st);
}

static int state_gc(lua_State *L) {
  state_free(luaL_checkudata(L, 1, "evaluator.csv_dump"));
  return 0;
}

/* Push job[field], kept alive for the whole dump when it is a string or a table: cells point into
 * its strings, and keys are known by their address, so a job whose fields are made on access
 * (an __index that builds them) must not see them collected before the file is written. A job
 * without a metatable holds its fields itself (and the jobs table holds it): no anchor needed. */
static int get_field(lua_State *L, dump_state *st, int job, int field) {
  lua_pushvalue(L, S_FIELDS + field);
  int t = st->job_has_mt ? lua_gettable(L, job) : lua_rawget(L, job);
  if (st->job_has_mt && (t == LUA_TSTRING || t == LUA_TTABLE)) {
    lua_pushvalue(L, -1);
    lua_rawseti(L, S_ANCHOR, ++st->anchored);
  }
  return t;
}

/* The slot of key in the kind's table: the one holding it, or the empty one to fill; NULL when full. */
static key_slot *key_slot_of(dump_state *st, int kind, const void *key) {
  size_t h = (size_t)(((uintptr_t)key >> 4) * 0x9E3779B97F4A7C15ULL >> 56);
  for (size_t i = 0; i < KEY_SLOTS; i++) {
    key_slot *s = &st->keys[kind][(h + i) % KEY_SLOTS];
    if (s->key == key || !s->key) return s;
  }
  return NULL;
}

/* The arrays for nrows rows of stride cells, the rows up to the current one laid out again from
 * the old stride (cleared beyond it). */
static void lay_out(dump_state *st, size_t stride) {
  if (stride && st->nrows > SIZE_MAX / sizeof(size_t) / stride) {
    fprintf(stderr, "evaluator-lua: out of memory (%zu cells)\n", st->nrows);
    abort();
  }
  size_t n = st->nrows * stride, keep = st->stride < stride ? st->stride : stride;
  const char **cells = xmalloc(n * sizeof *cells + 1);
  size_t *lens = xmalloc(n * sizeof *lens + 1);
  unsigned char *plain = xmalloc(n + 1);
  for (size_t r = 0; st->stride && r <= st->row; r++) {
    memcpy(cells + r * stride, st->cells + r * st->stride, keep * sizeof *cells);
    memcpy(lens + r * stride, st->lens + r * st->stride, keep * sizeof *lens);
    memcpy(plain + r * stride, st->plain + r * st->stride, keep);
    for (size_t c = keep; c < stride; c++) {
      cells[r * stride + c] = NULL, lens[r * stride + c] = 0, plain[r * stride + c] = 0;
    }
  }
  free(st->cells), free(st->lens), free(st->plain);
  st->cells = cells, st->lens = lens, st->plain = plain, st->stride = stride;
}

static void widen(dump_state *st, size_t col) { lay_out(st, col > 2 * st->stride ? col : 2 * st->stride); }

/* The cell of column col in the current row. */
static inline void set_cell(dump_state *st, size_t col, const char *text, size_t len, int plain) {
  if (col > st->stride) widen(st, col);
  size_t at = st->row * st->stride + col - 1;
  st->cells[at] = text, st->lens[at] = len, st->plain[at] = (unsigned char)plain;
}

/* Start row r: every cell empty. */
static void start_row(dump_state *st, size_t r) {
  st->row = r;
  memset(st->cells + r * st->stride, 0, st->stride * sizeof *st->cells);
  memset(st->lens + r * st->stride, 0, st->stride * sizeof *st->lens);
  memset(st->plain + r * st->stride, 0, st->stride);
}

static void new_block(dump_state *st, size_t n) {
  size_t size = n > BLOCK_BYTES ? n : BLOCK_BYTES;
  block_t *b = xmalloc(sizeof *b + size);
  b->next = st->blocks, st->blocks = b;
  st->room = b->data, st->room_left = size;
}

/* A text made by the dump: room for n bytes at the returned address, then keep_text(len <= n). */
static inline char *text_room(dump_state *st, size_t n) {
  if (st->room_left < n) new_block(st, n);
  return st->room;
}

static inline void keep_text(dump_state *st, size_t len) { st->room += len, st->room_left -= len; }

static void add_text_copy(dump_state *st, size_t col, const char *s, size_t len) {
  char *o = text_room(st, len);
  memcpy(o, s, len);
  keep_text(st, len);
  set_cell(st, col, o, len, 0);
}

/* Names the value being written, for error messages only: formatted when an error is raised. */
typedef struct where {
  const char *id, *field;
  size_t col, skip; /* the key is column col's name past its prefix of skip bytes; col 0: none */
} where_t;

static const char *describe(lua_State *L, const where_t *w) {
  if (!w->col) return lua_pushfstring(L, "job %s: %s", w->id, w->field);
  lua_rawgeti(L, S_COLS, (lua_Integer)w->col);
  const char *s = lua_pushfstring(L, "job %s: %s \"%s\"", w->id, w->field, lua_tostring(L, -1) + w->skip);
  lua_remove(L, -2);
  return s;
}

/* A value the CSV cannot hold (a function, a cyclic table...): its cell gets "<type>: <address>",
 * as tostring would write it (without metamethods, which could raise), and a warning goes to
 * stderr. Raising instead would keep the job in jobs_done and fail every later dump with it. */
static void add_unwritable(lua_State *L, dump_state *st, size_t col, int idx, const where_t *w, const char *why) {
  size_t n;
  const char *cell = lua_pushfstring(L, "%s: %p", luaL_typename(L, idx), lua_topointer(L, idx));
  fprintf(stderr, "evaluator-lua: warning: dump_jobs_done_to_csv: %s %s: written as \"%s\"\n", describe(L, w), why,
          cell);
  cell = lua_tolstring(L, -2, &n);
  add_text_copy(st, col, cell, n);
  lua_pop(L, 2);
}

/* The cell of column col for the number at idx: its text in the arena, flagged plain (digits, '.',
 * '-', "e+", "nan", "inf": never quoted). Apart from add_value, the path of most cells, kept small. */
static void add_number(lua_State *L, dump_state *st, size_t col, int idx) {
  char *o = text_room(st, 32);
  size_t n = lua_isinteger(L, idx) ? fmt_integer(lua_tointeger(L, idx), o) : fmt_double(lua_tonumber(L, idx), o);
  keep_text(st, n);
  set_cell(st, col, o, n, 1);
}

/* The cell of column col for the value at idx, of type type (kept where it is). */
static void add_value(lua_State *L, dump_state *st, size_t col, int idx, int type, const where_t *w) {
  size_t n;
  switch (type) {
  case LUA_TSTRING: {
    const char *s = lua_tolstring(L, idx, &n);
    set_cell(st, col, s, n, 0);
    return;
  }
  case LUA_TBOOLEAN:
    set_cell(st, col, lua_toboolean(L, idx) ? "True" : "False", lua_toboolean(L, idx) ? 4 : 5, 0);
    return;
  case LUA_TNUMBER:
    add_number(L, st, col, idx);
    return;
  case LUA_TTABLE: {
    char err[256];
    buf_t json;
    buf_init(&json);
    if (json_encode(L, idx, &json, err, sizeof err)) {
      buf_free(&json);
      add_unwritable(L, st, col, idx, w, err);
      return;
    }
    add_text_copy(st, col, json.data ? json.data : "", json.len); /* the buffer may move: the blocks do not */
    buf_free(&json);
    return;
  }
  case LUA_TLIGHTUSERDATA:
    if (!lua_touserdata(L, idx)) { /* JSON null (evaluator.null): an empty cell, as pandas writes None */
      set_cell(st, col, "", 0, 0);
      return;
    }
    /* fall through */
  default: {
    const char *why = lua_pushfstring(L, "is a %s: cannot write it to CSV", luaL_typename(L, idx));
    add_unwritable(L, st, col, idx, w, why);
    lua_pop(L, 1);
  }
  }
}

/* The column number of the name on top of the stack (popped), made a column the first time. */
static size_t column_of_name(lua_State *L) {
  lua_pushvalue(L, -1);
  if (lua_rawget(L, S_NCOLS) == LUA_TNUMBER) {
    size_t col = (size_t)lua_tointeger(L, -1);
    lua_pop(L, 2);
    return col;
  }
  lua_pop(L, 1);
  size_t col = (size_t)lua_rawlen(L, S_COLS) + 1;
  lua_pushvalue(L, -1);
  lua_rawseti(L, S_COLS, (lua_Integer)col);
  lua_pushinteger(L, (lua_Integer)col);
  lua_rawset(L, S_NCOLS);
  return col;
}

/* Which table of a job add_fields reads: the kind indexes dump_state.keys. */
enum { PARAMS = 0, METADATA = 1 };

/* column_of_key's slow path, once per key and dump: the name made from the key (a number in its
 * text form), refusing NUL bytes that a C column name cannot hold; 0 for a metadata key starting
 * with "_" (private to the runtime or the user). Cached in the Lua table of the kind and in slot. */
static size_t column_of_new_key(lua_State *L, int kind, int kt, int idx, const char *job, key_slot *slot) {
  int cache = kind == METADATA ? S_MCOLS : S_PCOLS;
  size_t col;
  lua_pushvalue(L, idx);
  if (lua_rawget(L, cache) == LUA_TNUMBER) {
    col = (size_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
  } else {
    lua_pop(L, 1);
    char num[32];
    size_t n;
    const char *s = num;
    if (kt == LUA_TSTRING)
      s = lua_tolstring(L, idx, &n);
    else if (lua_isinteger(L, idx))
      n = fmt_integer(lua_tointeger(L, idx), num);
    else
      n = fmt_double(lua_tonumber(L, idx), num);
    if (kind == METADATA && s[0] == '_') {
      col = 0;
    } else {
      if (strlen(s) != n) luaL_error(L, "job %s: name \"%s...\" holds a NUL byte", job, s);
      lua_pushfstring(L, "%s%s", kind == METADATA ? "m:" : "p:", s);
      col = column_of_name(L);
    }
    lua_pushvalue(L, idx);
    lua_pushinteger(L, (lua_Integer)col);
    lua_rawset(L, cache);
  }
  if (slot) *slot = (key_slot){lua_topointer(L, idx), col};
  return col;
}

/* The column number of the kind's prefix .. the key at idx, of type kt (a string or a number, which
 * is not converted in place: the key still drives lua_next); 0: not written. */
static size_t column_of_key(lua_State *L, dump_state *st, int kind, int kt, int idx, const char *job) {
  key_slot *slot = kt == LUA_TSTRING ? key_slot_of(st, kind, lua_topointer(L, idx)) : NULL;
  return slot && slot->key ? slot->col : column_of_new_key(L, kind, kt, idx, job, slot);
}

/* The column number of name, kept in *cached (0 until the column is made). */
static size_t column_of(lua_State *L, size_t *cached, const char *name) {
  if (!*cached) {
    lua_pushstring(L, name);
    *cached = column_of_name(L);
  }
  return *cached;
}

/* The job_id cell from the job's id; returns the id as text (left on the stack) for messages. */
static const char *add_job_id(lua_State *L, dump_state *st, int job, lua_Integer i) {
  int t = get_field(L, st, job, F_ID);
  if (t != LUA_TSTRING && !lua_isinteger(L, -1))
    luaL_error(L, "job #%d: id is a %s, expected a string", (int)i, luaL_typename(L, -1));
  size_t len;
  const char *id = lua_tolstring(L, -1, &len), *digits = id + len;
  while (digits > id && digits[-1] >= '0' && digits[-1] <= '9') digits--; /* the digits after the last '.' */
  size_t n = (size_t)(id + len - digits);
  if (n == 0 || n > 18 || (digits > id && digits[-1] != '.') || strlen(id) != len) /* 18 digits fit in int64 */
    luaL_error(L, "job #%d: id \"%s\" does not end with an integer", (int)i, id);
  while (n > 1 && digits[0] == '0') digits++, n--; /* the integer's text: "007" is 7 */
  size_t col = column_of(L, &st->col_job_id, "job_id");
  /* A string id is the job table's own; an integer's text is a new string, gone after this job. */
  if (t == LUA_TSTRING) set_cell(st, col, digits, n, 1); /* digits only: plain */
  else add_text_copy(st, col, digits, n);
  return id;
}

/* The slot of the i-th key of a table of the kind, at address kp (lua_topointer: NULL for a number),
 * when it is a string key seen before: found by its address alone, the case of every key after the
 * first job, first at the place the kind's previous table had it, else by hash. No live object of
 * another type can have a live string's address (a light userdata key holding one, which no code
 * makes, would be taken for that string). NULL for a key not seen yet. */
static const key_slot *seen_key(dump_state *st, int kind, size_t i, const void *kp) {
  if (!kp) return NULL;
  key_slot *guess = i < ORDER ? &st->order[kind][i] : NULL;
  if (guess && guess->key == kp) return guess;
  const key_slot *slot = key_slot_of(st, kind, kp);
  if (!slot || !slot->key) return NULL;
  if (guess) *guess = *slot;
  return slot;
}

/* Columns "p:<key>" (kind PARAMS) or "m:<key>" (METADATA) for job[field]: parameters take string and
 * number keys, metadata its string keys that do not start with "_". */
static void add_fields(lua_State *L, dump_state *st, int job, const char *id, int kind) {
  int t = get_field(L, st, job, kind == PARAMS ? F_PARAMETERS : F_METADATA), tbl = lua_gettop(L);
  const char *field = FIELD_NAMES[kind == PARAMS ? F_PARAMETERS : F_METADATA];
  if (t == LUA_TNIL) return;
  if (t != LUA_TTABLE) luaL_error(L, "job %s: %s is a %s, expected a table", id, field, lua_typename(L, t));
  lua_pushnil(L);
  for (size_t i = 0; lua_next(L, tbl); i++) { /* the key at tbl + 1, its value at tbl + 2 */
    const key_slot *seen = seen_key(st, kind, i, lua_topointer(L, tbl + 1));
    int kt = seen ? LUA_TSTRING : lua_type(L, tbl + 1);
    if (kt == LUA_TSTRING || (kind == PARAMS && kt == LUA_TNUMBER)) {
      size_t col = seen ? seen->col : column_of_key(L, st, kind, kt, tbl + 1, id);
      int vt = col ? lua_type(L, tbl + 2) : LUA_TNIL;
      if (vt == LUA_TNUMBER) {
        add_number(L, st, col, tbl + 2);
      } else if (col) {
        where_t w = {id, field, col, 2};
        add_value(L, st, col, tbl + 2, vt, &w);
      }
    } else if (kind == PARAMS) {
      luaL_error(L, "job %s: %s has a %s key", id, field, luaL_typename(L, tbl + 1));
    }
    lua_settop(L, tbl + 1);
  }
}

static void add_objective(lua_State *L, dump_state *st, int job, const char *id) {
  int t = get_field(L, st, job, F_OBJECTIVE), obj = lua_gettop(L);
  where_t w = {id, "objective", 0, 0};
  if (t == LUA_TNUMBER || t == LUA_TSTRING) {
    add_value(L, st, column_of(L, &st->col_objective, "objective"), obj, t, &w);
  } else if (t == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, obj);
    for (lua_Integer k = 1; k <= n; k++) {
      if (lua_rawgeti(L, obj, k) != LUA_TNUMBER)
        luaL_error(L, "job %s: objective[%d] is a %s, expected a number", id, (int)k, luaL_typename(L, -1));
      size_t col;
      if (k <= OBJ_COLS && st->col_obj[k - 1]) {
        col = st->col_obj[k - 1];
      } else {
        lua_pushfstring(L, "objective_%d", (int)(k - 1));
        col = column_of_name(L);
        if (k <= OBJ_COLS) st->col_obj[k - 1] = col;
      }
      add_number(L, st, col, obj + 1);
      lua_pop(L, 1);
    }
  } else if (t != LUA_TNIL) {
    luaL_error(L, "job %s: objective is a %s, expected a number, a string or a list of numbers", id,
               lua_typename(L, t));
  }
}

/* The cells of job i. */
static void add_job(lua_State *L, dump_state *st, lua_Integer i) {
  int base = lua_gettop(L), job = base + 1;
  if ((st->list_has_mt ? lua_geti(L, ARG_JOBS, i) : lua_rawgeti(L, ARG_JOBS, i)) != LUA_TTABLE)
    luaL_error(L, "job #%d is a %s, expected a table", (int)i, luaL_typename(L, job));
  start_row(st, (size_t)i - 1);
  st->job_has_mt = st->list_has_mt;
  if (lua_getmetatable(L, job)) {
    st->job_has_mt = 1;
    lua_pop(L, 1);
  }
  const char *id = add_job_id(L, st, job, i);
  add_fields(L, st, job, id, PARAMS);
  add_objective(L, st, job, id);
  add_fields(L, st, job, id, METADATA);
  lua_settop(L, base);
}

/* The csv_table of the cells found: column names anchored in S_COLS (on the stack until
 * csv_append has returned), the rows packed to the number of columns when the stride outgrew it. */
static csv_table build_table(lua_State *L, dump_state *st) {
  size_t ncols = lua_rawlen(L, S_COLS);
  const char **cols = lua_newuserdatauv(L, ncols * sizeof *cols, 0);
  for (size_t c = 0; c < ncols; c++) {
    lua_rawgeti(L, S_COLS, (lua_Integer)c + 1);
    cols[c] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  for (size_t r = 1; st->stride != ncols && r < st->nrows; r++) { /* ncols < stride: forward moves */
    memmove(st->cells + r * ncols, st->cells + r * st->stride, ncols * sizeof *st->cells);
    memmove(st->lens + r * ncols, st->lens + r * st->stride, ncols * sizeof *st->lens);
    memmove(st->plain + r * ncols, st->plain + r * st->stride, ncols);
  }
  return (csv_table){cols, ncols, st->cells, st->nrows, st->lens, st->plain};
}

int l_csv_dump(lua_State *L) {
  const char *path = luaL_checkstring(L, ARG_PATH);
  luaL_checktype(L, ARG_JOBS, LUA_TTABLE);
  int flush = lua_toboolean(L, ARG_FLUSH);
  lua_settop(L, ARG_FLUSH);
  lua_Integer n = luaL_len(L, ARG_JOBS);
  if (n <= 0) return 0;
  if ((lua_Unsigned)n > SIZE_MAX / sizeof(size_t)) return luaL_error(L, "too many jobs");
  dump_state *st = lua_newuserdatauv(L, sizeof *st, 0); /* S_STATE */
  memset(st, 0, sizeof *st);
  if (luaL_newmetatable(L, "evaluator.csv_dump")) {
    lua_pushcfunction(L, state_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, S_STATE);
  lua_newtable(L); /* S_COLS */
  lua_newtable(L); /* S_PCOLS */
  lua_newtable(L); /* S_MCOLS */
  lua_newtable(L); /* S_NCOLS */
  lua_newtable(L); /* S_ANCHOR: filled only for jobs with a metatable */
  luaL_checkstack(L, 16, "dump");
  st->list_has_mt = lua_getmetatable(L, ARG_JOBS);
  lua_settop(L, S_ANCHOR);
  for (int f = 0; f < F_COUNT; f++) lua_pushstring(L, FIELD_NAMES[f]); /* S_FIELDS.. */
  /* The first job alone in arrays of 16 columns (more if it has more), then all of them in rows of
   * its columns: most batches hold jobs of one shape, whose rows are then never laid out again. */
  st->nrows = 1;
  lay_out(st, 16);
  for (lua_Integer i = 1; i <= n; i++) {
    add_job(L, st, i);
    if (i == 1) {
      st->nrows = (size_t)n;
      lay_out(st, lua_rawlen(L, S_COLS));
    }
  }
  csv_table t = build_table(L, st);
  char err[1024];
  int rc = csv_append(path, &t, flush, err, sizeof err);
  state_free(st);
  if (rc) return luaL_error(L, "%s", err);
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
