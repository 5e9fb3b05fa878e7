/* storage_sqlite.c: evaluator.SQLiteStorage's file (see storage_sqlite.h). WAL mode and a busy
 * timeout let several processes share it; every job is one row, its table wire-encoded. */
#include "storage_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <sqlite3.h>

#include "buf.h"
#include "wire.h"

#define DB_MT "evaluator.SQLite"

typedef struct db {
  sqlite3 *h;
  char path[512];
} db_t;

static const char *const SCHEMA =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS searches (id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL,"
    " next_n INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, search_id TEXT NOT NULL,"
    " job_id TEXT NOT NULL UNIQUE, n INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS jobs_by_search ON jobs (search_id, seq);";

static db_t *check_db(lua_State *L) {
  db_t *d = luaL_checkudata(L, 1, DB_MT);
  if (!d->h) luaL_error(L, "SQLiteStorage(\"%s\") is closed", d->path);
  return d;
}

static int fail(lua_State *L, db_t *d, const char *what) {
  return luaL_error(L, "SQLiteStorage(\"%s\"): %s: %s", d->path, what, sqlite3_errmsg(d->h));
}

static sqlite3_stmt *prepare(lua_State *L, db_t *d, const char *sql) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(d->h, sql, -1, &st, NULL) != SQLITE_OK) fail(L, d, "cannot prepare a query");
  return st;
}

static void bind_text(sqlite3_stmt *st, int i, lua_State *L, int idx) {
  size_t n;
  const char *s = luaL_tolstring(L, idx, &n);
  sqlite3_bind_text(st, i, s, (int)n, SQLITE_TRANSIENT);
  lua_pop(L, 1);
}

static int db_create_search(lua_State *L) {
  db_t *d = check_db(L);
  if (sqlite3_exec(d->h, "INSERT INTO searches (created) VALUES (julianday('now'))", NULL, NULL, NULL) != SQLITE_OK)
    return fail(L, d, "cannot create a search");
  lua_pushfstring(L, "%I", (lua_Integer)(sqlite3_last_insert_rowid(d->h) - 1));
  return 1;
}

static int db_search_ids(lua_State *L) {
  db_t *d = check_db(L);
  sqlite3_stmt *st = prepare(L, d, "SELECT id - 1 FROM searches ORDER BY id");
  lua_newtable(L);
  for (lua_Integer i = 1; sqlite3_step(st) == SQLITE_ROW; i++) {
    lua_pushfstring(L, "%I", (lua_Integer)sqlite3_column_int64(st, 0));
    lua_rawseti(L, -2, i);
  }
  sqlite3_finalize(st);
  return 1;
}

static int db_has_search(lua_State *L) {
  db_t *d = check_db(L);
  sqlite3_stmt *st = prepare(L, d, "SELECT 1 FROM searches WHERE CAST(id - 1 AS TEXT) = ?");
  bind_text(st, 1, L, 2);
  lua_pushboolean(L, sqlite3_step(st) == SQLITE_ROW);
  sqlite3_finalize(st);
  return 1;
}

static int db_job_ids(lua_State *L) {
  db_t *d = check_db(L);
  sqlite3_stmt *st = prepare(L, d, "SELECT job_id FROM jobs WHERE search_id = ? ORDER BY n");
  bind_text(st, 1, L, 2);
  lua_newtable(L);
  for (lua_Integer i = 1; sqlite3_step(st) == SQLITE_ROW; i++) {
    lua_pushlstring(L, (const char *)sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    lua_rawseti(L, -2, i);
  }
  sqlite3_finalize(st);
  return 1;
}

/* reserve(search_id, count) -> the first of count job numbers no other process will get */
static int db_reserve(lua_State *L) {
  db_t *d = check_db(L);
  lua_Integer count = luaL_checkinteger(L, 3);
  if (sqlite3_exec(d->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return fail(L, d, "cannot write");
  sqlite3_stmt *st = prepare(L, d, "UPDATE searches SET next_n = next_n + ? WHERE CAST(id - 1 AS TEXT) = ? RETURNING next_n");
  sqlite3_bind_int64(st, 1, count);
  bind_text(st, 2, L, 2);
  int rc = sqlite3_step(st);
  lua_Integer next = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  if (sqlite3_exec(d->h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK || next < 0) {
    sqlite3_exec(d->h, "ROLLBACK", NULL, NULL, NULL);
    return fail(L, d, "cannot number new jobs");
  }
  lua_pushinteger(L, next - count);
  return 1;
}

/* Push the job stored in column col of the current row. */
static void push_job(lua_State *L, db_t *d, sqlite3_stmt *st, int col) {
  const char *p = sqlite3_column_blob(st, col), *end = p + sqlite3_column_bytes(st, col);
  if (!p || wire_decode(L, &p, end) || (p != end && (lua_pop(L, 1), 1))) {
    sqlite3_finalize(st);
    luaL_error(L, "SQLiteStorage(\"%s\"): a stored job is damaged", d->path);
  }
}

static int db_load(lua_State *L) {
  db_t *d = check_db(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  sqlite3_stmt *st = prepare(L, d, "SELECT data FROM jobs WHERE job_id = ?");
  lua_newtable(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    sqlite3_reset(st);
    bind_text(st, 1, L, -1);
    if (sqlite3_step(st) == SQLITE_ROW) {
      push_job(L, d, st, 0);
      lua_rawset(L, -3);
    } else {
      lua_pop(L, 1);
    }
  }
  sqlite3_finalize(st);
  return 1;
}

/* store(search_id, jobs): one transaction for the batch. A job is stored without its output when
 * the output cannot be encoded (a serial run function may return anything). */
static int db_store(lua_State *L) {
  db_t *d = check_db(L);
  luaL_checktype(L, 3, LUA_TTABLE);
  if (sqlite3_exec(d->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return fail(L, d, "cannot write");
  sqlite3_stmt *st = prepare(L, d, "INSERT OR REPLACE INTO jobs (search_id, job_id, n, data) VALUES (?, ?, ?, ?)");
  buf_t b;
  buf_init(&b);
  char err[256];
  lua_Integer count = (lua_Integer)lua_rawlen(L, 3);
  for (lua_Integer i = 1; i <= count; i++) {
    lua_rawgeti(L, 3, i);
    int job = lua_gettop(L);
    b.len = 0;
    if (wire_encode(L, job, &b, "job", err, sizeof err)) {
      /* Something in it cannot be stored (a serial run function may return anything): keep the
       * fields that can, and say what was left out in metadata.storage_error. */
      lua_createtable(L, 0, 8);
      static const char *const keep[] = {"id", "parameters", "objective", "metadata", "status", "output", NULL};
      for (const char *const *k = keep; *k; k++) {
        lua_getfield(L, job, *k);
        b.len = 0;
        if (wire_encode(L, -1, &b, *k, err, sizeof err) == 0) lua_setfield(L, -2, *k);
        else lua_pop(L, 1);
      }
      lua_getfield(L, -1, "metadata");
      if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "metadata");
      }
      lua_pushstring(L, err);
      lua_setfield(L, -2, "storage_error");
      lua_pop(L, 1);
      b.len = 0;
      int rc = wire_encode(L, -1, &b, "job", err, sizeof err);
      lua_pop(L, 1);
      if (rc) {
        lua_settop(L, job - 1);
        continue;
      }
    }
    lua_getfield(L, job, "id");
    const char *id = lua_tostring(L, -1);
    const char *dot = id ? strrchr(id, '.') : NULL;
    sqlite3_reset(st);
    bind_text(st, 1, L, 2);
    sqlite3_bind_text(st, 2, id ? id : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, dot ? (sqlite3_int64)strtoll(dot + 1, NULL, 10) : 0);
    sqlite3_bind_blob(st, 4, b.data, (int)b.len, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    lua_pop(L, 2);
    if (rc != SQLITE_DONE) {
      buf_free(&b);
      sqlite3_finalize(st);
      sqlite3_exec(d->h, "ROLLBACK", NULL, NULL, NULL);
      return fail(L, d, "cannot store a job");
    }
  }
  buf_free(&b);
  sqlite3_finalize(st);
  if (sqlite3_exec(d->h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) return fail(L, d, "cannot commit");
  return 0;
}

/* after(search_id, seq) -> the jobs stored after row seq, and the last row seen */
static int db_after(lua_State *L) {
  db_t *d = check_db(L);
  lua_Integer seq = luaL_checkinteger(L, 3);
  sqlite3_stmt *st = prepare(L, d, "SELECT seq, data FROM jobs WHERE search_id = ? AND seq > ? ORDER BY seq");
  bind_text(st, 1, L, 2);
  sqlite3_bind_int64(st, 2, seq);
  lua_newtable(L);
  for (lua_Integer i = 1; sqlite3_step(st) == SQLITE_ROW; i++) {
    seq = sqlite3_column_int64(st, 0);
    push_job(L, d, st, 1);
    lua_rawseti(L, -2, i);
  }
  sqlite3_finalize(st);
  lua_pushinteger(L, seq);
  return 2;
}

static int db_close(lua_State *L) {
  db_t *d = luaL_checkudata(L, 1, DB_MT);
  if (d->h) sqlite3_close_v2(d->h);
  d->h = NULL;
  return 0;
}

int l_sqlite_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  db_t *d = lua_newuserdatauv(L, sizeof *d, 0);
  memset(d, 0, sizeof *d);
  snprintf(d->path, sizeof d->path, "%s", path);
  if (luaL_newmetatable(L, DB_MT)) {
    static const luaL_Reg methods[] = {
        {"create_search", db_create_search}, {"search_ids", db_search_ids}, {"has_search", db_has_search},
        {"job_ids", db_job_ids}, {"load", db_load}, {"reserve", db_reserve}, {"store", db_store}, {"after", db_after},
        {"close", db_close}, {NULL, NULL}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, db_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if (sqlite3_open_v2(path, &d->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
    lua_pushfstring(L, "SQLiteStorage(\"%s\"): cannot open the file: %s", path,
                    d->h ? sqlite3_errmsg(d->h) : "out of memory");
    sqlite3_close_v2(d->h);
    d->h = NULL;
    return lua_error(L);
  }
  sqlite3_busy_timeout(d->h, 10000);
  if (sqlite3_exec(d->h, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) return fail(L, d, "cannot create the tables");
  return 1;
}
