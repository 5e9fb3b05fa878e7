/* storage_sqlite.c: evaluator.SQLiteStorage's file, Lua module "evaluator.sqlite" (see
 * storage_sqlite.h). WAL with synchronous=NORMAL: a commit survives kill -9 of any process
 * without an fsync per call. Every statement is prepared once per handle; every step's result
 * is checked; every error path leaves no transaction open. */
#include "storage_sqlite.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <lauxlib.h>
#include <sqlite3.h>

#include "buf.h"
#include "storage_job.h"
#include "wire.h"

#define DB_MT "evaluator.sqlite"
/* Written into the file's header with the tables: a file without it that holds tables is
 * another program's, refused before anything in it is changed. */
#define APP_ID 0x45564c31 /* "EVL1" */
#define SCHEMA_VERSION 1

static const char *const SCHEMA =
    "CREATE TABLE searches (id INTEGER PRIMARY KEY, created REAL NOT NULL);"
    "CREATE TABLE jobs (seq INTEGER PRIMARY KEY, search INTEGER NOT NULL, n INTEGER NOT NULL,"
    " writer TEXT NOT NULL, data BLOB NOT NULL);"
    "CREATE TABLE batches (search INTEGER NOT NULL, first_n INTEGER NOT NULL, next_n INTEGER NOT NULL, writer TEXT NOT NULL,"
    " data BLOB NOT NULL, PRIMARY KEY (search, first_n)) WITHOUT ROWID;"
    "CREATE TABLE resubmitted (search INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (search, n)) WITHOUT ROWID;"
    "PRAGMA application_id = 1163283505;" /* APP_ID */
    "PRAGMA user_version = 1;";           /* SCHEMA_VERSION */

/* jobs: finished jobs; seq (the row id) is the order in which they were stored, which is what
 * after() follows. batches: one row per submit, its parameter list (jobs first_n, first_n + 1,
 * ...), and next_n the end of the block of numbers it was given (reserve); a job of a batch
 * that is neither in jobs nor in resubmitted is unfinished. Jobs are named
 * by (search row, n), and every write appends to the right of its b-tree: a transaction touches
 * few pages, and finishing a job writes one row. jobs has no index on (search, n): it doubled the
 * cost of storing a job, and the reads that look jobs up by number (load_jobs, export, resume)
 * scan the search's rows once instead. */
enum { Q_BEGIN, Q_COMMIT, Q_NEW_SEARCH, Q_SEARCH_IDS, Q_HAS_SEARCH, Q_JOB_NUMBERS, Q_LOAD, Q_RESERVE,
       Q_SUBMIT, Q_CLAIM, Q_STORE, Q_AFTER, Q_UNFINISHED, Q_SETTLED, Q_RELEASE, Q_COUNT };
static const char *const SQL[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_NEW_SEARCH] = "INSERT INTO searches (created) VALUES (julianday('now')) RETURNING id",
    [Q_SEARCH_IDS] = "SELECT id FROM searches ORDER BY id",
    [Q_HAS_SEARCH] = "SELECT 1 FROM searches WHERE id = ?1",
    [Q_JOB_NUMBERS] = "SELECT DISTINCT n FROM jobs WHERE search = ?1 ORDER BY n",
    [Q_LOAD] = "SELECT n, data FROM jobs WHERE search = ?1",
    /* the last block's end, read under the write lock: no counter row to rewrite per block */
    [Q_RESERVE] = "SELECT next_n FROM batches WHERE search = ?1 ORDER BY first_n DESC LIMIT 1",
    /* a batch replaces the empty row that reserved its block (see reserve) */
    [Q_SUBMIT] = "INSERT OR REPLACE INTO batches (search, first_n, next_n, writer, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_CLAIM] = "INSERT OR IGNORE INTO resubmitted (search, n) VALUES (?1, ?2)",
    [Q_STORE] = "INSERT INTO jobs (search, n, writer, data) VALUES (?1, ?2, ?3, ?4)",
    [Q_AFTER] = "SELECT seq, writer = ?3, data FROM jobs NOT INDEXED WHERE seq > ?2 AND search = ?1 ORDER BY seq",
    [Q_UNFINISHED] = "SELECT first_n, data FROM batches WHERE search = ?1 AND writer <> ?2 ORDER BY first_n",
    [Q_SETTLED] = "SELECT 1 FROM resubmitted WHERE search = ?1 AND n = ?2",
    /* the unused end of a block, given back when no block was reserved after it */
    [Q_RELEASE] = "UPDATE batches SET next_n = ?3 WHERE search = ?1 AND next_n = ?2"
                  " AND first_n = (SELECT max(first_n) FROM batches WHERE search = ?1)",
};

typedef struct db {
  sqlite3 *h;
  sqlite3_stmt *q[Q_COUNT];
  storage_scratch w;
  char path[512];
} db_t;

/* ---- errors: named, and never with a transaction left open ---------------------------------- */

static void shut(db_t *d) {
  for (int i = 0; i < Q_COUNT; i++) {
    (void)sqlite3_finalize(d->q[i]); /* returns the statement's last error, already reported */
    d->q[i] = NULL;
  }
  (void)sqlite3_close_v2(d->h); /* _v2 defers the close until nothing uses the handle: cannot fail */
  d->h = NULL;
  storage_scratch_free(&d->w);
}

/* Reset every statement and roll back an open transaction, so that a failed call holds no lock. */
static void end_work(db_t *d) {
  for (int i = 0; i < Q_COUNT; i++)
    if (d->q[i]) (void)sqlite3_reset(d->q[i]); /* returns the last step's error, already reported */
  if (d->h && !sqlite3_get_autocommit(d->h) && sqlite3_exec(d->h, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
    shut(d); /* a transaction that cannot be ended must not hold the lock: drop the connection */
}

static int db_fail(lua_State *L, db_t *d, const char *what) {
  lua_pushfstring(L, "SQLiteStorage(\"%s\"): %s: %s", d->path, what, d->h ? sqlite3_errmsg(d->h) : "closed");
  end_work(d);
  return lua_error(L);
}

static void check_rc(lua_State *L, db_t *d, int rc, const char *what) {
  if (rc != SQLITE_OK) db_fail(L, d, what);
}

/* One step of statement q: SQLITE_ROW or SQLITE_DONE. Anything else (a damaged page, a full disk,
 * a lock held past the busy timeout) is raised: a failed step never reads as a shorter result. */
static int step(lua_State *L, db_t *d, int q, const char *what) {
  int rc = sqlite3_step(d->q[q]);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) db_fail(L, d, what);
  return rc;
}

/* Runs the write q to its end and makes it ready for the next use. */
static void run(lua_State *L, db_t *d, int q, const char *what) {
  if (step(L, d, q, what) != SQLITE_DONE) db_fail(L, d, what);
  check_rc(L, d, sqlite3_reset(d->q[q]), what);
}

static db_t *check_db(lua_State *L) {
  db_t *d = luaL_checkudata(L, 1, DB_MT);
  if (!d->h) luaL_error(L, "SQLiteStorage(\"%s\") is closed", d->path);
  /* Only a Lua memory error can leave a call between BEGIN and COMMIT: end it here. */
  if (!sqlite3_get_autocommit(d->h)) end_work(d);
  if (!d->h) luaL_error(L, "SQLiteStorage(\"%s\") is closed", d->path);
  return d;
}

/* ---- search ids: the one place that maps them to rows --------------------------------------- */

/* A search's id is its row's id less one, so that the first search is "0", as in MemoryStorage. */
static void push_search_id(lua_State *L, sqlite3_int64 rowid) {
  lua_pushfstring(L, "%I", (lua_Integer)(rowid - 1));
}

/* The row of search id s (decimal digits, as push_search_id writes them); 0, which no row has, for
 * anything else. */
static sqlite3_int64 rowid_of(const char *s, size_t len) {
  if (!s || len == 0 || len > 18 || (s[0] == '0' && len > 1)) return 0;
  sqlite3_int64 v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (s[i] - '0');
  }
  return v + 1;
}

static sqlite3_int64 search_rowid(lua_State *L, int idx) {
  size_t len = 0;
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;
  return rowid_of(s, len);
}

/* The search row and number of the job id at idx ("<search_id>.<n>"); 0 if it is none. */
static int job_key(lua_State *L, int idx, sqlite3_int64 *rowid, sqlite3_int64 *n) {
  size_t len = 0;
  const char *id = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;
  const char *dot = id ? memrchr(id, '.', len) : NULL;
  if (!dot) return 0;
  *rowid = rowid_of(id, (size_t)(dot - id));
  *n = storage_job_number(id, len);
  return *rowid > 0 && *n >= 0;
}

/* Push the id of job n of the search in row rowid. */
static void push_job_id(lua_State *L, sqlite3_int64 rowid, sqlite3_int64 n) {
  assert(rowid > 0 && n >= 0);
  lua_pushfstring(L, "%I.%I", (lua_Integer)(rowid - 1), (lua_Integer)n);
}

/* ---- binding and reading -------------------------------------------------------------------- */

static void bind_int(lua_State *L, db_t *d, int q, int i, sqlite3_int64 v) {
  check_rc(L, d, sqlite3_bind_int64(d->q[q], i, v), "cannot bind a value");
}

/* Text and blobs are bound without a copy (SQLITE_STATIC, a copy was a malloc per job): every
 * statement is bound right before it is stepped, from a Lua string of the call or the handle's
 * scratch buffer, which live until the statement is reset; its next use binds it again. */
static void bind_text(lua_State *L, db_t *d, int q, int i, const char *s, size_t n) {
  check_rc(L, d, sqlite3_bind_text(d->q[q], i, s, (int)n, SQLITE_STATIC), "cannot bind a value");
}

static void bind_blob(lua_State *L, db_t *d, int q, int i, const void *p, size_t n) {
  check_rc(L, d, sqlite3_bind_blob(d->q[q], i, p, (int)n, SQLITE_STATIC), "cannot bind a value");
}

/* Push the value stored in column col of q's current row, or raise naming the damage. */
static void push_stored(lua_State *L, db_t *d, int q, int col) {
  const void *p = sqlite3_column_blob(d->q[q], col);
  size_t n = (size_t)sqlite3_column_bytes(d->q[q], col);
  if (storage_decode(L, p, n)) {
    end_work(d);
    luaL_error(L, "SQLiteStorage(\"%s\"): a stored job is damaged (it does not decode)", d->path);
  }
}

/* ---- the handle's methods ------------------------------------------------------------------- */

static int db_create_search(lua_State *L) {
  db_t *d = check_db(L);
  if (step(L, d, Q_NEW_SEARCH, "cannot create a search") != SQLITE_ROW) db_fail(L, d, "cannot create a search");
  sqlite3_int64 rowid = sqlite3_column_int64(d->q[Q_NEW_SEARCH], 0);
  if (step(L, d, Q_NEW_SEARCH, "cannot create a search") != SQLITE_DONE) db_fail(L, d, "cannot create a search");
  check_rc(L, d, sqlite3_reset(d->q[Q_NEW_SEARCH]), "cannot create a search");
  push_search_id(L, rowid);
  return 1;
}

static int db_search_ids(lua_State *L) {
  db_t *d = check_db(L);
  lua_newtable(L);
  for (lua_Integer i = 1; step(L, d, Q_SEARCH_IDS, "cannot read the searches") == SQLITE_ROW; i++) {
    push_search_id(L, sqlite3_column_int64(d->q[Q_SEARCH_IDS], 0));
    lua_rawseti(L, -2, i);
  }
  check_rc(L, d, sqlite3_reset(d->q[Q_SEARCH_IDS]), "cannot read the searches");
  return 1;
}

static int db_has_search(lua_State *L) {
  db_t *d = check_db(L);
  bind_int(L, d, Q_HAS_SEARCH, 1, search_rowid(L, 2));
  lua_pushboolean(L, step(L, d, Q_HAS_SEARCH, "cannot read the searches") == SQLITE_ROW);
  check_rc(L, d, sqlite3_reset(d->q[Q_HAS_SEARCH]), "cannot read the searches");
  return 1;
}

static int db_job_ids(lua_State *L) {
  db_t *d = check_db(L);
  sqlite3_int64 rowid = search_rowid(L, 2);
  bind_int(L, d, Q_JOB_NUMBERS, 1, rowid);
  lua_newtable(L);
  for (lua_Integer i = 1; step(L, d, Q_JOB_NUMBERS, "cannot read the jobs") == SQLITE_ROW; i++) {
    push_job_id(L, rowid, sqlite3_column_int64(d->q[Q_JOB_NUMBERS], 0));
    lua_rawseti(L, -2, i);
  }
  check_rc(L, d, sqlite3_reset(d->q[Q_JOB_NUMBERS]), "cannot read the jobs");
  return 1;
}

/* load(job_ids) -> {id = job}: the ids grouped by search, each search's rows read once. */
static int db_load(lua_State *L) {
  db_t *d = check_db(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_newtable(L); /* 3: id -> job */
  lua_newtable(L); /* 4: search row -> { n -> id } */
  lua_Integer count = (lua_Integer)lua_rawlen(L, 2);
  for (lua_Integer i = 1; i <= count; i++) {
    sqlite3_int64 rowid, n;
    lua_rawgeti(L, 2, i);
    if (job_key(L, -1, &rowid, &n)) { /* an id this storage does not give holds no job */
      if (lua_rawgeti(L, 4, rowid) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawseti(L, 4, rowid);
      }
      lua_pushvalue(L, -2);
      lua_rawseti(L, -2, n);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    bind_int(L, d, Q_LOAD, 1, lua_tointeger(L, -2));
    while (step(L, d, Q_LOAD, "cannot read a job") == SQLITE_ROW) {
      if (lua_rawgeti(L, -1, sqlite3_column_int64(d->q[Q_LOAD], 0)) != LUA_TSTRING) {
        lua_pop(L, 1);
        continue;
      }
      push_stored(L, d, Q_LOAD, 1);
      lua_rawset(L, 3);
    }
    check_rc(L, d, sqlite3_reset(d->q[Q_LOAD]), "cannot read a job");
    lua_pop(L, 1);
  }
  lua_settop(L, 3);
  return 1;
}

/* The writer token at idx: the mark of the evaluator whose rows these are. */
static const char *check_writer(lua_State *L, int idx, size_t *len) {
  return luaL_checklstring(L, idx, len);
}

/* Raise (no transaction left open) unless the search in row rowid exists. */
static void check_search(lua_State *L, db_t *d, sqlite3_int64 rowid, int sid_idx) {
  bind_int(L, d, Q_HAS_SEARCH, 1, rowid);
  int known = step(L, d, Q_HAS_SEARCH, "cannot read the searches") == SQLITE_ROW;
  check_rc(L, d, sqlite3_reset(d->q[Q_HAS_SEARCH]), "cannot read the searches");
  if (!known) {
    end_work(d);
    luaL_error(L, "SQLiteStorage(\"%s\") holds no search '%s'", d->path, lua_tostring(L, sid_idx));
  }
}

/* reserve(search_id, writer, count, resume_at, old_stop) -> first of count job numbers no other
 * process gets, in one transaction. When no block was reserved since this writer's last one
 * (the last reserved number is still old_stop), the block starts at resume_at, the first number
 * of that block not used: a lone writer's numbers have no gaps. The block is recorded by an empty
 * batch row at its first number, which the first batch submitted in it replaces. */
static int db_reserve(lua_State *L) {
  db_t *d = check_db(L);
  size_t wlen;
  luaL_checkstring(L, 2);
  const char *writer = check_writer(L, 3, &wlen);
  lua_Integer count = luaL_checkinteger(L, 4), resume_at = luaL_checkinteger(L, 5), old_stop = luaL_checkinteger(L, 6);
  luaL_argcheck(L, count > 0, 4, "count must be positive");
  sqlite3_int64 rowid = search_rowid(L, 2);
  lua_settop(L, 6);
  storage_scratch *w = &d->w;
  storage_scratch_prepare(w, 0);
  lua_newtable(L);
  char err[128];
  int bad = wire_encode(L, -1, &w->values, "parameters", err, sizeof err);
  assert(bad == 0); /* an empty table always encodes */
  (void)bad;
  run(L, d, Q_BEGIN, "cannot write");
  check_search(L, d, rowid, 2);
  bind_int(L, d, Q_RESERVE, 1, rowid);
  sqlite3_int64 last = 0; /* a search's first block */
  if (step(L, d, Q_RESERVE, "cannot number new jobs") == SQLITE_ROW) last = sqlite3_column_int64(d->q[Q_RESERVE], 0);
  check_rc(L, d, sqlite3_reset(d->q[Q_RESERVE]), "cannot number new jobs");
  sqlite3_int64 first = old_stop >= 0 && last == old_stop ? resume_at : last;
  bind_int(L, d, Q_SUBMIT, 1, rowid);
  bind_int(L, d, Q_SUBMIT, 2, first);
  bind_int(L, d, Q_SUBMIT, 3, first + count);
  bind_text(L, d, Q_SUBMIT, 4, writer, wlen);
  bind_blob(L, d, Q_SUBMIT, 5, w->values.data, w->values.len);
  run(L, d, Q_SUBMIT, "cannot number new jobs");
  run(L, d, Q_COMMIT, "cannot commit");
  lua_pushinteger(L, (lua_Integer)first);
  return 1;
}

/* An integer field of the table on top, or raise naming it. */
static lua_Integer int_field(lua_State *L, int i, const char *what) {
  lua_rawgeti(L, -1, i);
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  lua_pop(L, 1);
  if (!ok) luaL_error(L, "SQLiteStorage: a submitted batch has no %s", what);
  return v;
}

/* Store the batches listed at idx ({first, params_list, stop, claimed_ids} each: jobs submitted
 * since the last write) as submitted, in the open transaction; claimed ids are marked. */
static void write_batches(lua_State *L, db_t *d, int idx, sqlite3_int64 rowid, const char *writer, size_t wlen) {
  lua_Integer nb = lua_istable(L, idx) ? (lua_Integer)lua_rawlen(L, idx) : 0;
  buf_t *b = &d->w.ids; /* unused by the SQLite storage otherwise */
  for (lua_Integer k = 1; k <= nb; k++) {
    lua_rawgeti(L, idx, k);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_Integer first = int_field(L, 1, "first number"), stop = int_field(L, 3, "block end");
    char err[256];
    b->len = 0;
    lua_rawgeti(L, -1, 2);
    if (!lua_istable(L, -1) || wire_encode(L, -1, b, "parameters", err, sizeof err)) {
      end_work(d);
      luaL_error(L, "SQLiteStorage(\"%s\"): cannot store submitted jobs: %s", d->path, lua_istable(L, -1) ? err : "not a list");
    }
    lua_pop(L, 1);
    bind_int(L, d, Q_SUBMIT, 1, rowid);
    bind_int(L, d, Q_SUBMIT, 2, first);
    bind_int(L, d, Q_SUBMIT, 3, stop);
    bind_text(L, d, Q_SUBMIT, 4, writer, wlen);
    bind_blob(L, d, Q_SUBMIT, 5, b->data, b->len);
    run(L, d, Q_SUBMIT, "cannot store the submitted jobs");
    lua_rawgeti(L, -1, 4);
    lua_Integer nclaims = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
    for (lua_Integer i = 1; i <= nclaims; i++) {
      sqlite3_int64 old_rowid, old_n;
      lua_rawgeti(L, -1, i);
      if (job_key(L, -1, &old_rowid, &old_n)) {
        bind_int(L, d, Q_CLAIM, 1, old_rowid);
        bind_int(L, d, Q_CLAIM, 2, old_n);
        run(L, d, Q_CLAIM, "cannot mark a resubmitted job");
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 2);
  }
}

/* release(search_id, stop, used): numbers used .. stop - 1 of this writer's block are given back
 * when no block was reserved after it, so that the next ones follow the last used. */
static int db_release(lua_State *L) {
  db_t *d = check_db(L);
  bind_int(L, d, Q_RELEASE, 1, search_rowid(L, 2));
  bind_int(L, d, Q_RELEASE, 2, luaL_checkinteger(L, 3));
  bind_int(L, d, Q_RELEASE, 3, luaL_checkinteger(L, 4));
  run(L, d, Q_RELEASE, "cannot write");
  return 0;
}

/* Push the finished jobs of other writers stored after row seq in the search in row rowid; returns
 * the last row seen (this writer's own rows are stepped over without being decoded). */
static lua_Integer push_after(lua_State *L, db_t *d, sqlite3_int64 rowid, lua_Integer seq, const char *writer, size_t wlen) {
  bind_int(L, d, Q_AFTER, 1, rowid);
  bind_int(L, d, Q_AFTER, 2, seq);
  bind_text(L, d, Q_AFTER, 3, writer, wlen);
  lua_newtable(L);
  lua_Integer i = 0;
  while (step(L, d, Q_AFTER, "cannot read the jobs") == SQLITE_ROW) {
    seq = sqlite3_column_int64(d->q[Q_AFTER], 0);
    if (sqlite3_column_int(d->q[Q_AFTER], 1)) continue;
    push_stored(L, d, Q_AFTER, 2);
    lua_rawseti(L, -2, ++i);
  }
  check_rc(L, d, sqlite3_reset(d->q[Q_AFTER]), "cannot read the jobs");
  return seq;
}

/* store(search_id, jobs, writer, seq, batches) -> what after(search_id, seq, writer) returns, read
 * in the same transaction that stores the batches submitted since the last write (write_batches)
 * and the finished jobs: a round of submit and gather costs one transaction. The others' rows are
 * read before this call's are written: under the write lock no one else adds any, so this call's
 * rows come last, and the next call need not step over them. */
static int db_store(lua_State *L) {
  db_t *d = check_db(L);
  luaL_checktype(L, 3, LUA_TTABLE);
  size_t wlen;
  const char *writer = check_writer(L, 4, &wlen);
  lua_Integer count = (lua_Integer)lua_rawlen(L, 3), seq = luaL_checkinteger(L, 5);
  sqlite3_int64 search = search_rowid(L, 2);
  lua_settop(L, 6);
  storage_scratch *w = &d->w;
  storage_scratch_prepare(w, count);
  (void)storage_encode_list(L, 3, STORE_JOB, NULL, 0, &w->values, w->ends, count); /* one that cannot be at all is left out */
  run(L, d, Q_BEGIN, "cannot write");
  write_batches(L, d, 6, search, writer, wlen);
  seq = push_after(L, d, search, seq, writer, wlen);
  for (lua_Integer i = 1; i <= count; i++) {
    sqlite3_int64 rowid, n;
    lua_rawgeti(L, 3, i);
    lua_getfield(L, -1, "id");
    int named = job_key(L, -1, &rowid, &n);
    lua_pop(L, 2);
    if (!named || w->ends[i] == w->ends[i - 1]) continue;
    bind_int(L, d, Q_STORE, 1, rowid);
    bind_int(L, d, Q_STORE, 2, n);
    bind_text(L, d, Q_STORE, 3, writer, wlen);
    bind_blob(L, d, Q_STORE, 4, w->values.data + w->ends[i - 1], w->ends[i] - w->ends[i - 1]);
    run(L, d, Q_STORE, "cannot store a job");
    seq = (lua_Integer)sqlite3_last_insert_rowid(d->h);
  }
  run(L, d, Q_COMMIT, "cannot commit");
  lua_pushinteger(L, seq);
  return 2;
}

/* after(search_id, seq, writer) -> the other writers' finished jobs after row seq, last row seen */
static int db_after(lua_State *L) {
  db_t *d = check_db(L);
  lua_Integer seq = luaL_checkinteger(L, 3);
  size_t wlen;
  const char *writer = check_writer(L, 4, &wlen);
  lua_pushinteger(L, push_after(L, d, search_rowid(L, 2), seq, writer, wlen));
  return 2;
}

/* Push a set of the numbers of the finished jobs of the search in row rowid. */
static void push_finished(lua_State *L, db_t *d, sqlite3_int64 rowid) {
  bind_int(L, d, Q_JOB_NUMBERS, 1, rowid);
  lua_newtable(L);
  while (step(L, d, Q_JOB_NUMBERS, "cannot read the jobs") == SQLITE_ROW) {
    lua_pushboolean(L, 1);
    lua_rawseti(L, -2, sqlite3_column_int64(d->q[Q_JOB_NUMBERS], 0));
  }
  check_rc(L, d, sqlite3_reset(d->q[Q_JOB_NUMBERS]), "cannot read the jobs");
}

/* Whether job n of the search in row rowid finished (in the set at finished) or was submitted again. */
static int settled(lua_State *L, db_t *d, int finished, sqlite3_int64 rowid, sqlite3_int64 n) {
  int done = lua_rawgeti(L, finished, n) != LUA_TNIL;
  lua_pop(L, 1);
  if (done) return 1;
  bind_int(L, d, Q_SETTLED, 1, rowid);
  bind_int(L, d, Q_SETTLED, 2, n);
  int yes = step(L, d, Q_SETTLED, "cannot read the jobs") == SQLITE_ROW;
  check_rc(L, d, sqlite3_reset(d->q[Q_SETTLED]), "cannot read the jobs");
  return yes;
}

/* unfinished(search_id, writer) -> {id =, parameters =} of the jobs other writers submitted and
 * that neither finished nor were submitted again, by number. */
static int db_unfinished(lua_State *L) {
  db_t *d = check_db(L);
  size_t wlen;
  const char *writer = check_writer(L, 3, &wlen);
  sqlite3_int64 rowid = search_rowid(L, 2);
  lua_settop(L, 3);
  push_finished(L, d, rowid); /* 4 */
  bind_int(L, d, Q_UNFINISHED, 1, rowid);
  bind_text(L, d, Q_UNFINISHED, 2, writer, wlen);
  lua_newtable(L);
  int out = lua_gettop(L);
  lua_Integer k = 0;
  while (step(L, d, Q_UNFINISHED, "cannot read the jobs") == SQLITE_ROW) {
    sqlite3_int64 first = sqlite3_column_int64(d->q[Q_UNFINISHED], 0);
    push_stored(L, d, Q_UNFINISHED, 1);
    if (!lua_istable(L, -1)) {
      end_work(d);
      return luaL_error(L, "SQLiteStorage(\"%s\"): a stored batch is damaged (not a list)", d->path);
    }
    lua_Integer count = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= count; i++) {
      if (settled(L, d, 4, rowid, first + i - 1)) continue;
      lua_createtable(L, 0, 2);
      push_job_id(L, rowid, first + i - 1);
      lua_setfield(L, -2, "id");
      lua_rawgeti(L, -2, i);
      lua_setfield(L, -2, "parameters");
      lua_rawseti(L, out, ++k);
    }
    lua_pop(L, 1);
  }
  check_rc(L, d, sqlite3_reset(d->q[Q_UNFINISHED]), "cannot read the jobs");
  lua_settop(L, out);
  return 1;
}

static int db_close(lua_State *L) {
  db_t *d = luaL_checkudata(L, 1, DB_MT);
  if (d->h) {
    end_work(d);
    if (d->h) shut(d);
  }
  return 0;
}

/* ---- opening: any number of processes at once, on a new or an existing file ---------------- */

/* What the file holds: its application id, schema version and number of schema objects, read in
 * one statement (one snapshot). Returns an SQLite result code. */
static int read_header(db_t *d, int *app, int *version, int *objects) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(d->h,
      "SELECT (SELECT application_id FROM pragma_application_id),"
      " (SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_master)", -1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *app = sqlite3_column_int(st, 0);
    *version = sqlite3_column_int(st, 1);
    *objects = sqlite3_column_int(st, 2);
    rc = SQLITE_OK;
  }
  int frc = sqlite3_finalize(st);
  return rc != SQLITE_OK ? rc : frc;
}

/* Make an empty file ours under the write lock, looking again once it is held: another process
 * may have done it meanwhile. */
static int create_tables(db_t *d, int *app, int *version, int *objects) {
  int rc = sqlite3_exec(d->h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc == SQLITE_OK) rc = read_header(d, app, version, objects);
  if (rc == SQLITE_OK && *app == 0 && *objects == 0) {
    rc = sqlite3_exec(d->h, SCHEMA, NULL, NULL, NULL);
    *app = APP_ID;
    *version = SCHEMA_VERSION;
  }
  if (rc == SQLITE_OK) rc = sqlite3_exec(d->h, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK && !sqlite3_get_autocommit(d->h))
    (void)sqlite3_exec(d->h, "ROLLBACK", NULL, NULL, NULL); /* the open fails and closes the handle anyway */
  return rc;
}

static int set_wal(db_t *d) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(d->h, "PRAGMA journal_mode=WAL", -1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
  /* An in-memory database (":memory:") stays in memory: nothing to share, nothing to recover. */
  int ok = mode && (strcmp(mode, "wal") == 0 || strcmp(mode, "memory") == 0);
  int frc = sqlite3_finalize(st);
  if (rc == SQLITE_ROW) rc = ok ? frc : SQLITE_CANTOPEN;
  if (rc == SQLITE_OK) rc = sqlite3_exec(d->h, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
  return rc;
}

/* Check the file, create the tables if it is empty, switch to WAL. Returns an SQLite result code
 * (SQLITE_BUSY or SQLITE_LOCKED: try again) and says in why what failed; *refused when the file
 * is not ours (why is then the whole reason, not SQLite's). */
static int setup(db_t *d, char *why, size_t whylen, int *refused) {
  *refused = 0;
  int app = 0, version = 0, objects = 0;
  snprintf(why, whylen, "cannot read the file");
  int rc = read_header(d, &app, &version, &objects);
  if (rc == SQLITE_OK && app == 0 && objects == 0) {
    snprintf(why, whylen, "cannot create the tables");
    rc = create_tables(d, &app, &version, &objects);
  }
  if (rc != SQLITE_OK) return rc;
  if (app != APP_ID) {
    snprintf(why, whylen, "is not an evaluator-lua storage (it holds %d tables or indexes of another "
             "program); refused, nothing in it was changed", objects);
    *refused = 1;
    return SQLITE_NOTADB;
  }
  if (version != SCHEMA_VERSION) {
    snprintf(why, whylen, "was written by another version of evaluator-lua (schema %d, this one reads %d)",
             version, SCHEMA_VERSION);
    *refused = 1;
    return SQLITE_NOTADB;
  }
  snprintf(why, whylen, "cannot switch to WAL mode");
  return set_wal(d);
}

static double now_s(void) {
  struct timespec ts;
  (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* CLOCK_MONOTONIC always exists on Linux */
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Raise why (with SQLite's reason unless refused) and close the handle that could not be opened. */
static int open_fail(lua_State *L, db_t *d, const char *why, int refused) {
  if (refused) lua_pushfstring(L, "SQLiteStorage(\"%s\"): %s", d->path, why);
  else lua_pushfstring(L, "SQLiteStorage(\"%s\"): %s: %s", d->path, why, sqlite3_errmsg(d->h));
  shut(d);
  return lua_error(L);
}

/* Set the handle's metatable (made on first use) on the userdata on top. */
static void set_handle_mt(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"create_search", db_create_search}, {"search_ids", db_search_ids}, {"has_search", db_has_search},
      {"job_ids", db_job_ids}, {"load", db_load}, {"reserve", db_reserve}, {"store", db_store},
      {"release", db_release},
      {"after", db_after}, {"unfinished", db_unfinished}, {"close", db_close}, {NULL, NULL}};
  if (luaL_newmetatable(L, DB_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, db_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
}

/* open(path, busy_ms) -> handle */
static int db_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer busy_ms = luaL_optinteger(L, 2, 10000);
  luaL_argcheck(L, busy_ms >= 0 && busy_ms <= 3600000, 2, "busy timeout out of range");
  db_t *d = lua_newuserdatauv(L, sizeof *d, 0);
  memset(d, 0, sizeof *d);
  snprintf(d->path, sizeof d->path, "%s", path);
  set_handle_mt(L);
  if (sqlite3_open_v2(path, &d->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    if (!d->h) return luaL_error(L, "SQLiteStorage(\"%s\"): cannot open the file: out of memory", path);
    return open_fail(L, d, "cannot open the file (is its directory there and writable?)", 0);
  }
  if (sqlite3_busy_timeout(d->h, (int)busy_ms) != SQLITE_OK) return open_fail(L, d, "cannot set the busy timeout", 0);
  /* The busy handler covers most waits, but not every one (a WAL switch or recovery racing
   * another process's): those are retried until the same timeout. */
  char why[256];
  double deadline = now_s() + (double)busy_ms / 1000;
  int rc, refused;
  while (((rc = setup(d, why, sizeof why, &refused)) & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
    if (now_s() > deadline) break;
    struct timespec nap = {0, 5000000};
    (void)nanosleep(&nap, NULL); /* an interrupted nap only retries sooner */
  }
  if (rc != SQLITE_OK) return open_fail(L, d, why, refused);
  for (int i = 0; i < Q_COUNT; i++)
    if (sqlite3_prepare_v3(d->h, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &d->q[i], NULL) != SQLITE_OK)
      return open_fail(L, d, "cannot prepare a query (is the file damaged?)", 0);
  return 1;
}

int luaopen_evaluator_sqlite(lua_State *L) {
  static const luaL_Reg funcs[] = {{"open", db_open}, {"token", storage_token}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
