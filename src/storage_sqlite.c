/* storage_sqlite.c: evaluator.SQLiteStorage's file, Lua module "evaluator.sqlite" (see
 * storage_sqlite.h). WAL with synchronous=NORMAL: a commit survives kill -9 of any process
 * without an fsync per call. A fast loop's stores go to the handle's journal instead, folded in
 * one transaction every FOLD_S (storage_journal.h). Every statement is prepared once per handle;
 * every step's result is checked; every error path leaves no transaction open. */
#include "storage_sqlite.h"

#include <assert.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>
#include <sqlite3.h>

#include "buf.h"
#include "clock.h"
#include "storage_job.h"
#include "storage_journal.h"
#include "wire.h"

#define DB_MT "evaluator.sqlite"
/* Written into the file's header with the tables: a file without it that holds tables is
 * another program's, refused before anything in it is changed. */
#define APP_ID 0x45564c31 /* "EVL1" */
#define SCHEMA_VERSION 1
/* A fold writes each page to the WAL with a pwrite(), and a checkpoint reads and writes it again:
 * 16 KiB pages take a quarter of the calls of 4 KiB ones (strace of a fast loop's root: 14,500
 * pwrite and 9,400 pread per 100,000 jobs became 3,700 and 2,200). A file made before keeps its size. */
#define PAGE_SIZE_TEXT "16384"
#define WAL_CHECKPOINT_BYTES (4 << 20) /* SQLite's default, 1,000 pages of 4 KiB, kept in bytes */

/* Made by open in a file of an earlier version too (that is all that changed): journals is how
 * far each handle's journal was folded, read when a dead writer's journal is; ident holds the
 * database's random id, which its journals' names carry (storage_journal.h). */
#define JOURNALS_TABLE "CREATE TABLE IF NOT EXISTS journals (name TEXT PRIMARY KEY, folded INTEGER NOT NULL) WITHOUT ROWID;" \
  "CREATE TABLE IF NOT EXISTS ident (id TEXT NOT NULL)"

static const char *const SCHEMA =
    "CREATE TABLE searches (id INTEGER PRIMARY KEY, created REAL NOT NULL);"
    "CREATE TABLE jobs (seq INTEGER PRIMARY KEY, search INTEGER NOT NULL, n INTEGER NOT NULL,"
    " writer TEXT NOT NULL, data BLOB NOT NULL);"
    "CREATE TABLE batches (search INTEGER NOT NULL, first_n INTEGER NOT NULL, next_n INTEGER NOT NULL, writer TEXT NOT NULL,"
    " data BLOB NOT NULL, PRIMARY KEY (search, first_n)) WITHOUT ROWID;"
    "CREATE TABLE resubmitted (search INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (search, n)) WITHOUT ROWID;"
    JOURNALS_TABLE ";"
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
       Q_SUBMIT, Q_CLAIM, Q_STORE, Q_AFTER, Q_UNFINISHED, Q_SETTLED, Q_RELEASE, Q_FOLDED, Q_SET_FOLDED, Q_FORGET, Q_COUNT };
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
    [Q_FOLDED] = "SELECT folded FROM journals WHERE name = ?1",
    [Q_SET_FOLDED] = "INSERT OR REPLACE INTO journals (name, folded) VALUES (?1, ?2)",
    /* only once the file is removed: a journal still there with no record would be folded again */
    [Q_FORGET] = "DELETE FROM journals WHERE name = ?1",
};

/* A store comes within FAST_S of the one before: the loop is fast, and its store goes to the
 * journal, folded once its oldest entry is FOLD_S old (other evaluators see a fast loop's jobs
 * that much later), or holds FOLD_BYTES. A slower loop commits every store, as a read of the
 * database by another process right after would expect. */
#define FAST_S 0.005
#define FOLD_S 0.05
#define FOLD_BYTES ((size_t)4 << 20)
/* A handle that reads the others' jobs folds the journals of writers that died since, every
 * REPLAY_S; after a replay that failed (a damaged journal, a lock held too long), REPLAY_RETRY_S. */
#define REPLAY_S 1.0
#define REPLAY_RETRY_S 30.0

typedef struct db {
  sqlite3 *h;
  sqlite3_stmt *q[Q_COUNT];
  storage_scratch w;
  buf_t entry;       /* the entry of the store call under way */
  buf_t spans, done; /* of the fold under way: its entries (span_t), its finished jobs (job_t) */
  journal_t j;
  double last_store; /* clock_now() at the last store call */
  double next_replay; /* clock_now() from which a read of the others' jobs replays dead journals */
  pid_t pid;         /* the process that opened it: a forked child never closes or folds it */
  char id[17];       /* the database's id (ident) */
  /* of the commit under way: the last jobs row inserted, and whether an entry of another writer
   * than the store's was applied (see commit) */
  sqlite3_int64 last_row;
  int mixed;
  sqlite3_int64 top_row; /* the last jobs row this handle inserted */
  char jwriter[64];      /* the writer of the journal's unfolded entries */
  size_t jwlen;
  char path[512]; /* whole: SQLite opens no longer path (its unix VFS's limit, 512 bytes) */
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
  buf_free(&d->entry);
  buf_free(&d->spans);
  buf_free(&d->done);
  journal_close(&d->j); /* removed only when nothing in it waits to be folded */
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

/* This process's pid, without getpid()'s system call on every store: a forked child learns its
 * own in pthread_atfork's handler. */
static pid_t self_pid;
static pthread_once_t self_pid_once = PTHREAD_ONCE_INIT;
static void note_pid(void) { self_pid = getpid(); }
static void watch_forks(void) {
  note_pid();
  (void)pthread_atfork(NULL, NULL, note_pid); /* fails only without memory: then every call asks */
}
static pid_t current_pid(void) {
  (void)pthread_once(&self_pid_once, watch_forks);
  return self_pid;
}

static db_t *check_db(lua_State *L) {
  db_t *d = luaL_checkudata(L, 1, DB_MT);
  if (!d->h) luaL_error(L, "SQLiteStorage(\"%s\") is closed", d->path);
  /* A forked process's copy shares the parent's connection and journal mapping: writing through
   * it would overwrite the parent's entries. */
  if (d->pid != current_pid())
    luaL_error(L, "SQLiteStorage(\"%s\") was opened by another process (pid %d): open it again in this one", d->path,
               (int)d->pid);
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

static void fold_first(lua_State *L, db_t *d);
static void replay_dead(lua_State *L, db_t *d);
static void replay_now_and_then(db_t *d);

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
  fold_first(L, d);
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
  fold_first(L, d);
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

/* ---- entries: what one store writes, as bytes ------------------------------------------------
 * A store's batches and jobs are made into an entry before any lock is taken; the entry goes to
 * the journal or is applied at once, and a dead writer's journal is applied by the same code:
 *   search i64, writer (u32 length, bytes), batches u32, batch*, jobs u32, job*
 *   batch: first i64, stop i64, count u32, parameters list (u32 length, wire bytes), claims u32,
 *          (search i64, n i64)*
 *   job:   search i64, n i64, record (u32 length, bytes) */

static void put_i64(buf_t *b, int64_t v) { buf_add(b, &v, sizeof v); }
static void put_u32(buf_t *b, uint32_t v) { buf_add(b, &v, sizeof v); }

/* SQLite binds lengths as int */
static void put_bytes(lua_State *L, db_t *d, buf_t *b, const void *p, size_t n) {
  if (n > INT_MAX) luaL_error(L, "SQLiteStorage(\"%s\"): a job of %zu bytes is too large to store", d->path, n);
  put_u32(b, (uint32_t)n);
  buf_add(b, p, n);
}

/* The batches listed at idx ({first, params_list, stop, claimed_ids, encoded} each: jobs
 * submitted since the last store; encoded, when a string, is params_list as wire_encode writes it,
 * kept from the submit) into b. */
static void put_batches(lua_State *L, db_t *d, buf_t *b, int idx) {
  lua_Integer nb = lua_istable(L, idx) ? (lua_Integer)lua_rawlen(L, idx) : 0;
  put_u32(b, (uint32_t)nb);
  for (lua_Integer k = 1; k <= nb; k++) {
    lua_rawgeti(L, idx, k);
    luaL_checktype(L, -1, LUA_TTABLE);
    put_i64(b, int_field(L, 1, "first number"));
    put_i64(b, int_field(L, 3, "block end"));
    lua_rawgeti(L, -1, 2);
    put_u32(b, lua_istable(L, -1) ? (uint32_t)lua_rawlen(L, -1) : 0);
    lua_pop(L, 1);
    char err[256];
    size_t at = b->len;
    put_u32(b, 0); /* the list's length, known once it is encoded */
    size_t elen;
    const char *encoded = lua_rawgeti(L, -1, 5) == LUA_TSTRING ? lua_tolstring(L, -1, &elen) : NULL, *p = encoded;
    /* The core checked each element's depth alone; in the list each is one level deeper, and one
     * at the limit would not read back: such a list is encoded here, which says so. */
    if (encoded && wire_skip(&p, encoded + elen) == 0 && p == encoded + elen) {
      buf_add(b, encoded, elen);
    } else {
      lua_rawgeti(L, -2, 2);
      if (!lua_istable(L, -1) || wire_encode(L, -1, b, "parameters", err, sizeof err))
        luaL_error(L, "SQLiteStorage(\"%s\"): cannot store submitted jobs: %s", d->path, lua_istable(L, -1) ? err : "not a list");
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (b->len - at - 4 > INT_MAX) luaL_error(L, "SQLiteStorage(\"%s\"): a submitted list is too large to store", d->path);
    uint32_t len = (uint32_t)(b->len - at - 4);
    memcpy(b->data + at, &len, sizeof len);
    lua_rawgeti(L, -1, 4);
    lua_Integer nclaims = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
    size_t count_at = b->len;
    uint32_t named = 0;
    put_u32(b, 0);
    for (lua_Integer i = 1; i <= nclaims; i++) {
      sqlite3_int64 old_rowid, old_n;
      lua_rawgeti(L, -1, i);
      if (job_key(L, -1, &old_rowid, &old_n)) {
        put_i64(b, old_rowid);
        put_i64(b, old_n);
        named++;
      }
      lua_pop(L, 1);
    }
    memcpy(b->data + count_at, &named, sizeof named);
    lua_pop(L, 2);
  }
}

/* The entry of store's arguments into d->entry: the batches at bidx, then the count jobs at jidx
 * (encoded first into the scratch space; a job that cannot be encoded at all, or has no id of
 * this storage, is left out). */
static void build_entry(lua_State *L, db_t *d, sqlite3_int64 search, const char *writer, size_t wlen, int jidx,
                        lua_Integer count, int bidx) {
  storage_scratch *w = &d->w;
  storage_scratch_prepare(w, count);
  (void)storage_encode_list(L, jidx, STORE_JOB, NULL, 0, &w->values, w->ends, count);
  buf_t *b = &d->entry;
  b->len = 0;
  put_i64(b, search);
  put_bytes(L, d, b, writer, wlen);
  put_batches(L, d, b, bidx);
  size_t count_at = b->len;
  uint32_t stored = 0;
  put_u32(b, 0);
  for (lua_Integer i = 1; i <= count; i++) {
    sqlite3_int64 rowid, n;
    lua_rawgeti(L, jidx, i);
    lua_getfield(L, -1, "id");
    int named = job_key(L, -1, &rowid, &n);
    lua_pop(L, 2);
    if (!named || w->ends[i] == w->ends[i - 1]) continue;
    put_i64(b, rowid);
    put_i64(b, n);
    put_bytes(L, d, b, w->values.data + w->ends[i - 1], w->ends[i] - w->ends[i - 1]);
    stored++;
  }
  memcpy(b->data + count_at, &stored, sizeof stored);
}

typedef struct entry_reader {
  const char *p, *end;
  int bad; /* a read past the end: the entry is damaged */
} entry_reader;

static const char *get_raw(entry_reader *r, size_t n) {
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = 1;
    return NULL;
  }
  const char *p = r->p;
  r->p += n;
  return p;
}

static int64_t get_i64(entry_reader *r) {
  int64_t v = 0;
  const char *p = get_raw(r, sizeof v);
  if (p) memcpy(&v, p, sizeof v);
  return v;
}

static uint32_t get_u32(entry_reader *r) {
  uint32_t v = 0;
  const char *p = get_raw(r, sizeof v);
  if (p) memcpy(&v, p, sizeof v);
  return v;
}

static const char *get_bytes(entry_reader *r, size_t *n) {
  *n = get_u32(r);
  return get_raw(r, *n);
}

/* Step the write q (bound already: bind_rc holds the binds' first error) to its end and reset it. */
static int exec_write(db_t *d, int q, int bind_rc) {
  if (bind_rc != SQLITE_OK) {
    (void)sqlite3_reset(d->q[q]); /* nothing stepped: nothing to report */
    return bind_rc;
  }
  int rc = sqlite3_step(d->q[q]);
  int reset_rc = sqlite3_reset(d->q[q]);
  if (rc == SQLITE_DONE) return reset_rc;
  return rc == SQLITE_ROW ? SQLITE_MISUSE : rc;
}

/* Text and blobs are bound without a copy (SQLITE_STATIC, a copy was a malloc per job): the
 * bytes, an entry's, outlive the step. */
static int exec_submit(db_t *d, sqlite3_int64 search, sqlite3_int64 first, sqlite3_int64 stop, const char *writer,
                       size_t wlen, const char *params, size_t plen) {
  sqlite3_stmt *s = d->q[Q_SUBMIT];
  int rc = sqlite3_bind_int64(s, 1, search);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, first);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 3, stop);
  if (rc == SQLITE_OK) rc = sqlite3_bind_text(s, 4, writer, (int)wlen, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_bind_blob(s, 5, params, (int)plen, SQLITE_STATIC);
  return exec_write(d, Q_SUBMIT, rc);
}

static int exec_claim(db_t *d, sqlite3_int64 search, sqlite3_int64 n) {
  int rc = sqlite3_bind_int64(d->q[Q_CLAIM], 1, search);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(d->q[Q_CLAIM], 2, n);
  return exec_write(d, Q_CLAIM, rc);
}

static int exec_store(db_t *d, sqlite3_int64 search, sqlite3_int64 n, const char *writer, size_t wlen,
                      const char *data, size_t len) {
  sqlite3_stmt *s = d->q[Q_STORE];
  int rc = sqlite3_bind_int64(s, 1, search);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, n);
  if (rc == SQLITE_OK) rc = sqlite3_bind_text(s, 3, writer, (int)wlen, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_bind_blob(s, 4, data, (int)len, SQLITE_STATIC);
  rc = exec_write(d, Q_STORE, rc);
  if (rc == SQLITE_OK) d->last_row = sqlite3_last_insert_rowid(d->h);
  return rc;
}

/* Returned for bytes that are not an entry (no SQLite result code is negative). */
#define ENTRY_DAMAGED (-1)

/* An entry of a fold, and a finished job's key. */
typedef struct span {
  const char *p;
  size_t n;
} span_t;
typedef struct job {
  sqlite3_int64 search, n;
} job_t;

static int job_cmp(const void *a, const void *b) {
  const job_t *x = a, *y = b;
  if (x->search != y->search) return x->search < y->search ? -1 : 1;
  return x->n < y->n ? -1 : x->n > y->n;
}

/* An entry's head: its search and writer, and the number of batches that follow. */
typedef struct entry_head {
  sqlite3_int64 search;
  const char *writer;
  size_t wlen;
  uint32_t nb;
} entry_head;

static entry_head get_head(entry_reader *r) {
  entry_head h;
  h.search = get_i64(r);
  h.writer = get_bytes(r, &h.wlen);
  h.nb = get_u32(r);
  return h;
}

/* Add the keys of the jobs of the entry at p to d->done. */
static int collect_done(db_t *d, const char *p, size_t n) {
  entry_reader r = {p, p + n, 0};
  entry_head h = get_head(&r);
  size_t len;
  for (uint32_t k = 0; k < h.nb && !r.bad; k++) {
    (void)get_raw(&r, 2 * sizeof(int64_t) + sizeof(uint32_t)); /* first, stop, count */
    (void)get_bytes(&r, &len);
    (void)get_raw(&r, (size_t)get_u32(&r) * 2 * sizeof(int64_t));
  }
  for (uint32_t k = 0, nj = get_u32(&r); k < nj && !r.bad; k++) {
    job_t j;
    j.search = get_i64(&r);
    j.n = get_i64(&r);
    (void)get_bytes(&r, &len);
    buf_add(&d->done, &j, sizeof j);
  }
  return r.bad ? ENTRY_DAMAGED : SQLITE_OK;
}

/* Whether jobs first .. first + count - 1 of search are all among the fold's finished jobs. */
static int all_done(db_t *d, sqlite3_int64 search, sqlite3_int64 first, uint32_t count) {
  const job_t *done = (const job_t *)d->done.data;
  size_t ndone = d->done.len / sizeof *done;
  if (ndone == 0) return 0;
  for (uint32_t i = 0; i < count; i++) {
    job_t key = {search, first + i};
    if (!bsearch(&key, done, ndone, sizeof *done, job_cmp)) return 0;
  }
  return count > 0;
}

/* Write the entry of n bytes at p in the open transaction: its batches as submitted (but not one
 * whose jobs all finished in this fold: nothing of it is unfinished), their claims marked, then
 * its finished jobs; d->mixed is set if its writer is not own (NULL: no matter). Returns an
 * SQLite result code, or ENTRY_DAMAGED. */
static int apply_entry(db_t *d, const char *p, size_t n, const char *own, size_t own_len) {
  entry_reader r = {p, p + n, 0};
  entry_head h = get_head(&r);
  size_t len;
  if (own && (h.wlen != own_len || (h.writer && memcmp(h.writer, own, h.wlen) != 0))) d->mixed = 1;
  int rc = SQLITE_OK;
  for (uint32_t k = 0; rc == SQLITE_OK && !r.bad && k < h.nb; k++) {
    sqlite3_int64 first = get_i64(&r), stop = get_i64(&r);
    uint32_t count = get_u32(&r);
    const char *params = get_bytes(&r, &len);
    uint32_t nclaims = get_u32(&r);
    if (!r.bad && !all_done(d, h.search, first, count))
      rc = exec_submit(d, h.search, first, stop, h.writer, h.wlen, params, len);
    for (uint32_t i = 0; rc == SQLITE_OK && !r.bad && i < nclaims; i++) {
      sqlite3_int64 old_search = get_i64(&r), old_n = get_i64(&r);
      if (!r.bad) rc = exec_claim(d, old_search, old_n);
    }
  }
  for (uint32_t k = 0, nj = r.bad ? 0 : get_u32(&r); rc == SQLITE_OK && !r.bad && k < nj; k++) {
    sqlite3_int64 job_search = get_i64(&r), job_n = get_i64(&r);
    const char *data = get_bytes(&r, &len);
    if (!r.bad) rc = exec_store(d, job_search, job_n, h.writer, h.wlen, data, len);
  }
  return rc == SQLITE_OK && (r.bad || r.p != r.end) ? ENTRY_DAMAGED : rc;
}

/* Record that the journal name is folded up to entry seq, in the open transaction. */
static int set_folded(db_t *d, const char *name, uint64_t seq) {
  int rc = sqlite3_bind_text(d->q[Q_SET_FOLDED], 1, name, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(d->q[Q_SET_FOLDED], 2, (sqlite3_int64)seq);
  return exec_write(d, Q_SET_FOLDED, rc);
}

/* The journal name was removed once folded: its record goes, in a transaction of its own (best
 * effort: a record left behind only takes a row). */
static void forget_journal(db_t *d, const char *name) {
  (void)exec_write(d, Q_FORGET, sqlite3_bind_text(d->q[Q_FORGET], 1, name, -1, SQLITE_STATIC));
}

static void add_span(db_t *d, const char *p, size_t n) {
  span_t e = {p, n};
  buf_add(&d->spans, &e, sizeof e);
}

/* Add the entries in the journal bytes at p (n of them) after number after to the fold; *last:
 * the number of the last. Returns 0, or -1 at damage (*at: where). */
static int add_journal(db_t *d, const char *p, size_t n, uint64_t after, uint64_t *last, size_t *at) {
  const char *q = p, *payload;
  uint64_t seq;
  size_t len;
  int more;
  *last = after;
  while ((more = journal_next(&q, p + n, &seq, &payload, &len)) == 1) {
    if (seq <= after) continue;
    add_span(d, payload, len);
    *last = seq;
  }
  *at = (size_t)(q - p);
  return more;
}

/* Write the fold's entries (d->spans) in the open transaction, in order (own: as apply_entry). */
static int apply_spans(db_t *d, const char *own, size_t own_len) {
  const span_t *e = (const span_t *)d->spans.data;
  size_t count = d->spans.len / sizeof *e;
  int rc = SQLITE_OK;
  d->done.len = 0;
  for (size_t i = 0; rc == SQLITE_OK && i < count; i++) rc = collect_done(d, e[i].p, e[i].n);
  if (d->done.len > 0) qsort(d->done.data, d->done.len / sizeof(job_t), sizeof(job_t), job_cmp);
  for (size_t i = 0; rc == SQLITE_OK && i < count; i++) rc = apply_entry(d, e[i].p, e[i].n, own, own_len);
  d->spans.len = 0;
  return rc;
}

/* Apply this handle's unfolded journal entries, and the store call's entry (with_entry), in the
 * open transaction, and record how far the journal is folded (own: as apply_entry). */
static int apply_journal(db_t *d, int with_entry, const char *own, size_t own_len) {
  journal_t *j = &d->j;
  uint64_t last;
  size_t at;
  d->spans.len = 0;
  int more = add_journal(d, journal_unfolded(j), j->unfolded, 0, &last, &at);
  assert(more == 0 && at == j->unfolded); /* written by this process: whole */
  (void)more;
  if (with_entry) add_span(d, d->entry.data, d->entry.len);
  int rc = apply_spans(d, own, own_len);
  return rc == SQLITE_OK && j->unfolded > 0 ? set_folded(d, j->name, j->seq) : rc;
}

/* In one transaction: when writer is given, a read of the other writers' jobs of the search after
 * row seq (pushed); then this handle's journal, then the store call's entry (with_entry). Returns
 * the last row seen: under the write lock no one else adds rows, so the rows this call adds come
 * last, and the next read need not step over them, unless an entry of another evaluator of this
 * handle was among them. */
static lua_Integer commit(lua_State *L, db_t *d, int with_entry, sqlite3_int64 search, lua_Integer seq,
                          const char *writer, size_t wlen) {
  if (writer) replay_now_and_then(d);
  run(L, d, Q_BEGIN, "cannot write");
  if (writer) seq = push_after(L, d, search, seq, writer, wlen);
  d->last_row = 0;
  d->mixed = !writer;
  int rc = apply_journal(d, with_entry, writer, wlen);
  if (rc != SQLITE_OK) db_fail(L, d, "cannot store the jobs");
  run(L, d, Q_COMMIT, "cannot commit");
  journal_folded(&d->j);
  if (d->last_row > d->top_row) d->top_row = d->last_row;
  return !d->mixed && d->last_row > seq ? d->last_row : seq;
}

/* Before a read: what this handle's journal holds goes into the database first. */
static void fold_first(lua_State *L, db_t *d) {
  if (d->j.unfolded > 0) (void)commit(L, d, 0, 0, 0, NULL, 0);
}

/* release(search_id, stop, used): numbers used .. stop - 1 of this writer's block are given back
 * when no block was reserved after it, so that the next ones follow the last used. */
static int db_release(lua_State *L) {
  db_t *d = check_db(L);
  fold_first(L, d);
  bind_int(L, d, Q_RELEASE, 1, search_rowid(L, 2));
  bind_int(L, d, Q_RELEASE, 2, luaL_checkinteger(L, 3));
  bind_int(L, d, Q_RELEASE, 3, luaL_checkinteger(L, 4));
  run(L, d, Q_RELEASE, "cannot write");
  return 0;
}

/* Whether the journal should take this store of writer's (who has seen the search's jobs up to
 * row seq) at time now, rather than a commit. Not when this handle stored jobs the writer has not
 * seen, nor when another evaluator's wait in the journal: evaluators sharing one storage object
 * see each other's jobs at once, as with MemoryStorage. */
static int journal_takes(db_t *d, double now, const char *writer, size_t wlen, lua_Integer seq) {
  journal_t *j = &d->j;
  int fast = now - d->last_store < FAST_S;
  d->last_store = now;
  if (!fast || !journal_usable(j) || seq < d->top_row || wlen > sizeof d->jwriter) return 0;
  if (j->unfolded == 0) return 1;
  if (wlen != d->jwlen || memcmp(writer, d->jwriter, wlen) != 0) return 0;
  return now - j->since < FOLD_S && j->unfolded < FOLD_BYTES;
}

/* store(search_id, jobs, writer, seq, batches, now) -> what after(search_id, seq, writer) returns:
 * the batches submitted since the last store (stored as submitted, claims marked) and the
 * finished jobs. In a fast loop they go to the journal (the others' jobs are then read at the
 * fold: an empty list and seq come back); otherwise, or when now is true (a wait follows, or
 * close), they are committed with the journal and the others' jobs are read in the same
 * transaction. */
static int db_store(lua_State *L) {
  db_t *d = check_db(L);
  luaL_checktype(L, 3, LUA_TTABLE);
  size_t wlen;
  const char *writer = check_writer(L, 4, &wlen);
  lua_Integer count = (lua_Integer)lua_rawlen(L, 3), seq = luaL_checkinteger(L, 5);
  int now = lua_toboolean(L, 7);
  sqlite3_int64 search = search_rowid(L, 2);
  lua_settop(L, 7);
  build_entry(L, d, search, writer, wlen, 3, count, 6);
  lua_newtable(L); /* before the append: nothing may fail after it */
  char err[256];
  int first = d->j.unfolded == 0;
  if (!now && journal_takes(d, clock_now(), writer, wlen, seq) && journal_append(&d->j, d->entry.data, d->entry.len, err, sizeof err) == 0) {
    if (first) { /* the writer of what the journal holds now (journal_takes) */
      memcpy(d->jwriter, writer, wlen);
      d->jwlen = wlen;
    }
    lua_pushinteger(L, seq);
    return 2;
  } /* a journal that cannot take it (a full disk?): the database may */
  lua_pop(L, 1);
  lua_pushinteger(L, commit(L, d, 1, search, seq, writer, wlen));
  return 2;
}

/* after(search_id, seq, writer) -> the other writers' finished jobs after row seq, last row seen */
static int db_after(lua_State *L) {
  db_t *d = check_db(L);
  lua_Integer seq = luaL_checkinteger(L, 3);
  size_t wlen;
  const char *writer = check_writer(L, 4, &wlen);
  replay_now_and_then(d);
  fold_first(L, d);
  lua_pushinteger(L, push_after(L, d, search_rowid(L, 2), seq, writer, wlen));
  return 2;
}

/* waiting() -> whether this handle's journal holds jobs not in the database yet */
static int db_waiting(lua_State *L) {
  db_t *d = luaL_checkudata(L, 1, DB_MT); /* closed: nothing waits (what did is in the file, or the journal's) */
  lua_pushboolean(L, d->h && d->j.unfolded > 0);
  return 1;
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
  replay_dead(L, d);
  fold_first(L, d);
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

/* close(): what the journal holds is folded (if the database does not take it now, the journal
 * stays for the next process that opens the database), then the handle is closed. Also __gc: it
 * never raises. */
static int db_close(lua_State *L) {
  db_t *d = luaL_checkudata(L, 1, DB_MT);
  if (d->h && d->pid != current_pid()) { /* a forked process-pool worker's copy: the connection and the journal are the root's */
    d->h = NULL;
    journal_forget(&d->j);
    return 0;
  }
  if (d->h) {
    end_work(d);
    if (d->h && d->j.unfolded > 0) {
      int rc = exec_write(d, Q_BEGIN, SQLITE_OK);
      if (rc == SQLITE_OK) rc = apply_journal(d, 0, NULL, 0);
      if (rc == SQLITE_OK) rc = exec_write(d, Q_COMMIT, SQLITE_OK);
      if (rc == SQLITE_OK) journal_folded(&d->j);
      else end_work(d);
    }
    if (d->h && journal_close(&d->j)) forget_journal(d, d->j.name);
    if (d->h) shut(d);
  }
  return 0;
}

/* ---- dead writers' journals, folded by whoever opens the database next ---------------------- */

static int replay_begin(void *ctx, char *err, size_t errlen) {
  db_t *d = ctx;
  if (exec_write(d, Q_BEGIN, SQLITE_OK) == SQLITE_OK) return 0;
  snprintf(err, errlen, "cannot fold the journal of a writer that ended: %s", sqlite3_errmsg(d->h));
  return -1;
}

/* How far the journal name was folded already (0: never), read in the open transaction. */
static int folded_of(db_t *d, const char *name, uint64_t *folded) {
  sqlite3_stmt *s = d->q[Q_FOLDED];
  *folded = 0;
  int rc = sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *folded = (uint64_t)sqlite3_column_int64(s, 0);
  int reset_rc = sqlite3_reset(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? reset_rc : rc;
}

/* The entries of a dead writer's journal that were not folded before, and how far it is folded now. */
static int replay_fold(void *ctx, const char *name, const char *bytes, size_t n, const char *path, char *err,
                       size_t errlen) {
  db_t *d = ctx;
  uint64_t folded, last;
  size_t at;
  d->spans.len = 0;
  int rc = folded_of(d, name, &folded);
  int more = rc == SQLITE_OK ? add_journal(d, bytes, n, folded, &last, &at) : 0;
  if (rc == SQLITE_OK && more == 0) rc = apply_spans(d, NULL, 0);
  if (more < 0 || rc == ENTRY_DAMAGED) {
    if (more < 0)
      snprintf(err, errlen, "the journal %s is damaged at byte %zu: move it away to open the storage "
               "(the jobs in it from that byte on are lost)", path, at);
    else
      snprintf(err, errlen, "the journal %s holds an entry that does not read back: move it away to open the "
               "storage (the jobs in it are lost)", path);
    return -1;
  }
  if (rc == SQLITE_OK && last > folded) rc = set_folded(d, name, last);
  if (rc == SQLITE_OK) return 0;
  snprintf(err, errlen, "cannot fold the journal %s: %s", path, sqlite3_errmsg(d->h));
  return -1;
}

static int replay_end(void *ctx, int rc, char *err, size_t errlen) {
  db_t *d = ctx;
  if (rc == 0 && exec_write(d, Q_COMMIT, SQLITE_OK) != SQLITE_OK) {
    snprintf(err, errlen, "cannot fold the journal of a writer that ended: %s", sqlite3_errmsg(d->h));
    rc = -1;
  }
  if (rc != 0) end_work(d);
  return rc;
}

static void replay_forget(void *ctx, const char *name) { forget_journal(ctx, name); }

static const journal_replay_ops REPLAY = {replay_begin, replay_fold, replay_end, replay_forget};

/* Fold the journals of the database's dead writers (journal_replay), and set when a read of the
 * others' jobs does it next. Returns 0, or -1 with why saying why. */
static int replay(db_t *d, char *why, size_t whylen) {
  int rc = journal_replay(d->path, d->id, &REPLAY, d, why, whylen);
  d->next_replay = clock_now() + (rc ? REPLAY_RETRY_S : REPLAY_S);
  return rc;
}

/* Fold the journals of writers that died since this handle was opened (a peer killed mid-search):
 * before listing unfinished jobs, which would otherwise list jobs finished in them. */
static void replay_dead(lua_State *L, db_t *d) {
  char why[512];
  if (replay(d, why, sizeof why)) luaL_error(L, "SQLiteStorage(\"%s\"): %s", d->path, why);
}

/* Before a read of the others' jobs, now and then: what a writer that died since left in its
 * journal (jobs its gather had returned) reaches the evaluators still running the search, not
 * only the next process that opens the database. Never raises: a replay that fails is tried
 * again later, and the next open names the damaged file. */
static void replay_now_and_then(db_t *d) {
  char ignored[512];
  if (clock_now() >= d->next_replay) (void)replay(d, ignored, sizeof ignored);
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
 * may have done it meanwhile. Its pages are PAGE_SIZE_TEXT bytes (set before the transaction:
 * only an empty file takes it). */
static int create_tables(db_t *d, int *app, int *version, int *objects) {
  int rc = sqlite3_exec(d->h, "PRAGMA page_size = " PAGE_SIZE_TEXT, NULL, NULL, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_exec(d->h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
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

/* The WAL is checkpointed once it holds WAL_CHECKPOINT_BYTES, whatever the file's page size. */
static int set_checkpoint(db_t *d) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(d->h, "PRAGMA page_size", -1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  int page = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  rc = sqlite3_finalize(st);
  if (rc == SQLITE_OK && page > 0) rc = sqlite3_wal_autocheckpoint(d->h, WAL_CHECKPOINT_BYTES / page);
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
  if (rc == SQLITE_OK) rc = set_checkpoint(d);
  return rc;
}

/* The database's id into d->id: SQLITE_OK, SQLITE_DONE when it has none yet, or an error. */
static int read_id(db_t *d) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(d->h, "SELECT id FROM ident", -1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  const char *id = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
  if (id && strlen(id) == 16) snprintf(d->id, sizeof d->id, "%s", id);
  else if (rc == SQLITE_ROW) rc = SQLITE_CORRUPT; /* not an id this program wrote */
  int frc = sqlite3_finalize(st);
  return rc == SQLITE_ROW ? frc : rc;
}

/* Give the database a new random id (in the open transaction). */
static int make_id(db_t *d) {
  if (storage_random_hex(d->id)) return SQLITE_IOERR;
  char sql[64];
  snprintf(sql, sizeof sql, "INSERT INTO ident (id) VALUES ('%s')", d->id); /* 16 hex digits */
  return sqlite3_exec(d->h, sql, NULL, NULL, NULL);
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
  rc = set_wal(d);
  if (rc != SQLITE_OK) return rc;
  snprintf(why, whylen, "cannot add the journals tables");
  rc = sqlite3_exec(d->h, JOURNALS_TABLE, NULL, NULL, NULL);
  if (rc == SQLITE_OK && (rc = read_id(d)) == SQLITE_DONE) { /* none yet: made under the write lock, looking again */
    rc = sqlite3_exec(d->h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK && (rc = read_id(d)) == SQLITE_DONE) rc = make_id(d);
    if (rc == SQLITE_OK) rc = sqlite3_exec(d->h, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(d->h)) (void)sqlite3_exec(d->h, "ROLLBACK", NULL, NULL, NULL);
  }
  return rc;
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
      {"release", db_release}, {"waiting", db_waiting},
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
  char token[17];
  if (storage_random_hex(token)) return luaL_error(L, "SQLiteStorage(\"%s\"): cannot read /dev/urandom", path);
  db_t *d = lua_newuserdatauv(L, sizeof *d, 0);
  memset(d, 0, sizeof *d);
  snprintf(d->path, sizeof d->path, "%s", path);
  d->pid = current_pid();
  journal_init(&d->j, "", "", token); /* none until the database's id is read */
  set_handle_mt(L);
  if (sqlite3_open_v2(path, &d->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    if (!d->h) return luaL_error(L, "SQLiteStorage(\"%s\"): cannot open the file: out of memory", path);
    return open_fail(L, d, "cannot open the file (is its directory there and writable?)", 0);
  }
  if (sqlite3_busy_timeout(d->h, (int)busy_ms) != SQLITE_OK) return open_fail(L, d, "cannot set the busy timeout", 0);
  /* The busy handler covers most waits, but not every one (a WAL switch or recovery racing
   * another process's): those are retried until the same timeout. */
  char why[256];
  double deadline = clock_now() + (double)busy_ms / 1000;
  int rc, refused;
  while (((rc = setup(d, why, sizeof why, &refused)) & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
    if (clock_now() > deadline) break;
    struct timespec nap = {0, 5000000};
    (void)nanosleep(&nap, NULL); /* an interrupted nap only retries sooner */
  }
  if (rc != SQLITE_OK) return open_fail(L, d, why, refused);
  for (int i = 0; i < Q_COUNT; i++)
    if (sqlite3_prepare_v3(d->h, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &d->q[i], NULL) != SQLITE_OK)
      return open_fail(L, d, "cannot prepare a query (is the file damaged?)", 0);
  journal_init(&d->j, path, d->id, token); /* (":memory:": none) */
  if (replay(d, why, sizeof why)) return open_fail(L, d, why, 1);
  return 1;
}

int luaopen_evaluator_sqlite(lua_State *L) {
  static const luaL_Reg funcs[] = {{"open", db_open}, {"token", storage_token}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
