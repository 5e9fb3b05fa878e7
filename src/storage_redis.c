/* storage_redis.c: evaluator.RedisStorage's server, Lua module "evaluator.redis" (see
 * storage_redis.h). Keys, for a search s:
 *   evl:next_search   counter; search k's id is "k - 1", kept in the sorted set evl:searches
 *   evl:s:<s>:n       the next job number no block holds (blocks: RESERVE_SCRIPT)
 *   evl:s:<s>:sub     job id -> value, jobs submitted and not finished
 *   evl:s:<s>:jobs    job id -> value, finished jobs
 *   evl:s:<s>:done    list of values, finished jobs in the order they were stored
 * A value is one byte (the writer's length), the writer token, then the wire encoding. */
#include "storage_redis.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <hiredis/hiredis.h>
#include <lauxlib.h>

#include "buf.h"
#include "numfmt.h"
#include "storage_job.h"

#define RD_MT "evaluator.redis"
#define MAX_KEY 160

typedef struct rd {
  redisContext *c; /* NULL until connected, and again once a connection broke */
  char host[256];
  int port, db;
  char *password; /* kept only to connect again; never in a message */
  struct timeval timeout;
  char name[300]; /* host:port/db, for messages */
  storage_scratch w;
  buf_t cmd; /* the command being sent, in Redis's protocol (format) */
} rd_t;

/* ---- connection and errors ------------------------------------------------------------------ */

static int rd_fail(lua_State *L, rd_t *r, const char *what, const char *why) {
  return luaL_error(L, "RedisStorage(%s): %s: %s", r->name, what, why);
}

/* A broken connection is dropped (and made again by the next call): hiredis cannot resume one. */
static int io_fail(lua_State *L, rd_t *r, const char *what) {
  char why[160];
  snprintf(why, sizeof why, "the server does not answer (%s)", r->c && r->c->errstr[0] ? r->c->errstr : "no reply");
  if (r->c) redisFree(r->c);
  r->c = NULL;
  return rd_fail(L, r, what, why);
}

static redisReply *checked_reply(lua_State *L, rd_t *r, void *reply, const char *what) {
  redisReply *rep = reply;
  if (!rep) io_fail(L, r, what);
  if (rep->type == REDIS_REPLY_ERROR) {
    char why[256];
    snprintf(why, sizeof why, "%s", rep->str);
    freeReplyObject(rep);
    rd_fail(L, r, what, why);
  }
  return rep;
}

/* ---- a pipeline: commands appended, replies read together ----------------------------------- */

typedef struct args {
  const char **v;
  size_t *len;
  int n, cap;
} args_t;

static void args_add(args_t *a, const char *s, size_t len) {
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 16;
    a->v = xrealloc(a->v, (size_t)a->cap * sizeof *a->v);
    a->len = xrealloc(a->len, (size_t)a->cap * sizeof *a->len);
  }
  a->v[a->n] = s;
  a->len[a->n++] = len;
}

static void args_free(args_t *a) {
  free(a->v);
  free(a->len);
  memset(a, 0, sizeof *a);
}

/* n in decimal into b: on the path of every job (ids) and every argument (counts), where
 * snprintf cost more than the rest of the formatting. */
static void add_decimal(buf_t *b, uint64_t n) {
  char digits[24];
  buf_add(b, digits, fmt_integer((long long)n, digits)); /* counts and job numbers < 2^63 */
}

/* "<tag><n>\r\n", a count of Redis's protocol (RESP), into out. */
static void put_count(buf_t *out, char tag, size_t n) {
  buf_addc(out, tag);
  add_decimal(out, n);
  buf_add(out, "\r\n", 2);
}

/* Append the command of argc strings to the connection's output, formatted here: hiredis's own
 * formatting (redisAppendCommandArgv: sdscatfmt for every argument) cost a third of a store. */
static void send_command(lua_State *L, rd_t *r, int argc, const char *const *argv, const size_t *lens) {
  buf_t *out = &r->cmd;
  out->len = 0;
  put_count(out, '*', (size_t)argc);
  for (int i = 0; i < argc; i++) {
    put_count(out, '$', lens[i]);
    buf_add(out, argv[i], lens[i]);
    buf_add(out, "\r\n", 2);
  }
  if (redisAppendFormattedCommand(r->c, out->data, out->len) != REDIS_OK) io_fail(L, r, "cannot send a command");
}

/* Append the command in a to the connection's output (hiredis copies it), then empty a. */
static void append(lua_State *L, rd_t *r, args_t *a) {
  int n = a->n;
  a->n = 0;
  send_command(L, r, n, a->v, a->len);
}

/* Read the replies of n appended commands; every one is checked; the last is returned. */
static redisReply *read_replies(lua_State *L, rd_t *r, int n, const char *what) {
  redisReply *last = NULL;
  for (int i = 0; i < n; i++) {
    void *rep = NULL;
    if (redisGetReply(r->c, &rep) != REDIS_OK) rep = NULL;
    if (last) freeReplyObject(last);
    last = NULL;
    last = checked_reply(L, r, rep, what);
  }
  return last;
}

/* One command, its reply checked (the caller frees it): a pipeline of one, so that every reply
 * is read and checked in one place (read_replies). */
static redisReply *command(lua_State *L, rd_t *r, int argc, const char **argv, const size_t *lens, const char *what) {
  send_command(L, r, argc, argv, lens);
  return read_replies(L, r, 1, what);
}

static void connect_rd(lua_State *L, rd_t *r) {
  if (r->c) return;
  redisContext *c = redisConnectWithTimeout(r->host, r->port, r->timeout);
  if (!c) rd_fail(L, r, "cannot connect", "out of memory");
  if (c->err || redisSetTimeout(c, r->timeout) != REDIS_OK) {
    char why[160];
    snprintf(why, sizeof why, "%s", c->errstr[0] ? c->errstr : "cannot set the timeout");
    redisFree(c);
    rd_fail(L, r, "cannot connect to the server", why);
  }
  r->c = c;
  if (r->password) {
    const char *argv[] = {"AUTH", r->password};
    size_t lens[] = {4, strlen(r->password)};
    redisReply *rep = redisCommandArgv(c, 2, argv, lens);
    if (!rep) io_fail(L, r, "cannot log in");
    int refused = rep->type == REDIS_REPLY_ERROR;
    freeReplyObject(rep);
    if (refused) {
      redisFree(r->c);
      r->c = NULL;
      rd_fail(L, r, "cannot log in", "the server refused the password");
    }
  }
  if (r->db != 0) {
    char db[16];
    snprintf(db, sizeof db, "%d", r->db);
    const char *argv[] = {"SELECT", db};
    size_t lens[] = {6, strlen(db)};
    freeReplyObject(command(L, r, 2, argv, lens, "cannot select the database"));
  }
}

static rd_t *check_rd(lua_State *L) {
  rd_t *r = luaL_checkudata(L, 1, RD_MT);
  if (!r->host[0]) luaL_error(L, "RedisStorage is closed");
  connect_rd(L, r);
  return r;
}

/* ---- keys and values -------------------------------------------------------------------------- */

/* The key evl:s:<search_id>:<what> into key; raises for a search id too long to be one. */
static size_t search_key(lua_State *L, char *key, const char *sid, size_t sid_len, const char *what) {
  int n = snprintf(key, MAX_KEY, "evl:s:%.*s:%s", (int)sid_len, sid, what);
  if (n < 0 || n >= MAX_KEY) luaL_error(L, "RedisStorage: search id too long (%d bytes)", (int)sid_len);
  return (size_t)n;
}

/* The value prefix of writer w: its length in one byte, then w. */
static size_t writer_prefix(lua_State *L, int idx, char *out) {
  size_t len;
  const char *w = luaL_checklstring(L, idx, &len);
  luaL_argcheck(L, len < 64, idx, "writer token too long");
  out[0] = (char)len;
  memcpy(out + 1, w, len);
  return len + 1;
}

/* Push the job stored in value v (n bytes); *own says whether writer prefix p (plen bytes) wrote
 * it, and then nothing is pushed. Raises on damaged bytes. */
static void push_value(lua_State *L, rd_t *r, const char *v, size_t n, const char *p, size_t plen, int *own) {
  size_t skip = n > 0 ? (size_t)(unsigned char)v[0] + 1 : 1;
  if (skip > n) rd_fail(L, r, "a stored job is damaged", "it has no writer");
  *own = p && skip == plen && memcmp(v, p, plen) == 0;
  if (*own) return;
  if (storage_decode(L, v + skip, n - skip)) rd_fail(L, r, "a stored job is damaged", "it does not decode");
}

static int cmp_ids(const void *a, const void *b) {
  const redisReply *x = *(redisReply *const *)a, *y = *(redisReply *const *)b;
  int64_t m = storage_job_number(x->str, x->len), n = storage_job_number(y->str, y->len);
  return m < n ? -1 : m > n;
}

/* ---- the handle's methods --------------------------------------------------------------------- */

static int rd_create_search(lua_State *L) {
  rd_t *r = check_rd(L);
  const char *incr[] = {"INCR", "evl:next_search"};
  size_t incr_len[] = {4, 15};
  redisReply *rep = command(L, r, 2, incr, incr_len, "cannot create a search");
  long long k = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
  freeReplyObject(rep);
  if (k < 1) rd_fail(L, r, "cannot create a search", "evl:next_search is not a counter");
  char id[24];
  snprintf(id, sizeof id, "%lld", k - 1);
  const char *zadd[] = {"ZADD", "evl:searches", id, id};
  size_t zadd_len[] = {4, 12, strlen(id), strlen(id)};
  freeReplyObject(command(L, r, 4, zadd, zadd_len, "cannot create a search"));
  lua_pushstring(L, id);
  return 1;
}

/* Push the strings of a list reply as a Lua list. */
static void push_strings(lua_State *L, const redisReply *rep) {
  lua_createtable(L, (int)rep->elements, 0);
  for (size_t i = 0; i < rep->elements; i++) {
    lua_pushlstring(L, rep->element[i]->str, rep->element[i]->len);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static int rd_search_ids(lua_State *L) {
  rd_t *r = check_rd(L);
  const char *argv[] = {"ZRANGE", "evl:searches", "0", "-1"};
  size_t lens[] = {6, 12, 1, 2};
  redisReply *rep = command(L, r, 4, argv, lens, "cannot read the searches");
  push_strings(L, rep);
  freeReplyObject(rep);
  return 1;
}

static int rd_has_search(lua_State *L) {
  rd_t *r = check_rd(L);
  size_t len;
  const char *sid = luaL_checklstring(L, 2, &len);
  const char *argv[] = {"ZSCORE", "evl:searches", sid};
  size_t lens[] = {6, 12, len};
  redisReply *rep = command(L, r, 3, argv, lens, "cannot read the searches");
  lua_pushboolean(L, rep->type != REDIS_REPLY_NIL);
  freeReplyObject(rep);
  return 1;
}

/* job_ids(search_id): the finished jobs' ids, by number. */
static int rd_job_ids(lua_State *L) {
  rd_t *r = check_rd(L);
  size_t len;
  const char *sid = luaL_checklstring(L, 2, &len);
  char key[MAX_KEY];
  const char *argv[] = {"HKEYS", key};
  size_t lens[] = {5, search_key(L, key, sid, len, "jobs")};
  redisReply *rep = command(L, r, 2, argv, lens, "cannot read the jobs");
  qsort(rep->element, rep->elements, sizeof *rep->element, cmp_ids);
  push_strings(L, rep);
  freeReplyObject(rep);
  return 1;
}

/* load(job_ids) -> {id = job}: one HGET a job, pipelined. */
static int rd_load(lua_State *L) {
  rd_t *r = check_rd(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
  lua_newtable(L);
  args_t a = {0};
  int sent = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    size_t len;
    lua_rawgeti(L, 2, i);
    const char *id = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    const char *dot = id ? strrchr(id, '.') : NULL;
    char key[MAX_KEY];
    if (dot && (size_t)(dot - id) < 64) {
      args_add(&a, "HGET", 4);
      args_add(&a, key, search_key(L, key, id, (size_t)(dot - id), "jobs"));
      args_add(&a, id, len);
      append(L, r, &a);
      sent++;
    }
    lua_pop(L, 1);
  }
  args_free(&a);
  for (lua_Integer i = 1; i <= n && sent > 0; i++) {
    lua_rawgeti(L, 2, i);
    const char *id = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    const char *dot = id ? strrchr(id, '.') : NULL;
    if (!dot || dot - id >= 64) {
      lua_pop(L, 1);
      continue;
    }
    redisReply *rep = read_replies(L, r, 1, "cannot read a job");
    sent--;
    int own;
    if (rep->type == REDIS_REPLY_STRING) {
      push_value(L, r, rep->str, rep->len, NULL, 0, &own);
      lua_rawset(L, -3);
    } else {
      lua_pop(L, 1);
    }
    freeReplyObject(rep);
  }
  return 1;
}

/* Append "CMD key" and then, for each element of w that could be encoded, its id and/or its
 * value (with_id, with_value). Returns the number of commands appended: 0 or 1. */
static int append_list(lua_State *L, rd_t *r, const char *cmd, const char *key, size_t klen,
                       const storage_scratch *w, lua_Integer n, int with_id, int with_value) {
  args_t a = {0};
  args_add(&a, cmd, strlen(cmd));
  args_add(&a, key, klen);
  for (lua_Integer i = 1; i <= n; i++) {
    if (w->ends[i] == w->ends[i - 1]) continue;
    if (with_id) args_add(&a, w->ids.data + w->id_ends[i - 1], w->id_ends[i] - w->id_ends[i - 1]);
    if (with_value) args_add(&a, w->values.data + w->ends[i - 1], w->ends[i] - w->ends[i - 1]);
  }
  int k = a.n > 2;
  if (k) append(L, r, &a);
  args_free(&a);
  return k;
}

static void append_word(lua_State *L, rd_t *r, const char *word) {
  args_t a = {0};
  args_add(&a, word, strlen(word));
  append(L, r, &a);
  args_free(&a);
}

/* The replies of MULTI, k queued commands and EXEC, all checked: EXEC's, a list of the k
 * commands' replies (the caller frees it). */
static redisReply *read_transaction(lua_State *L, rd_t *r, int k, const char *what) {
  redisReply *exec = read_replies(L, r, k + 2, what);
  int ok = exec->type == REDIS_REPLY_ARRAY && exec->elements == (size_t)k;
  for (size_t i = 0; ok && i < exec->elements; i++)
    if (exec->element[i]->type == REDIS_REPLY_ERROR) ok = 0;
  if (!ok) {
    freeReplyObject(exec);
    rd_fail(L, r, what, "the transaction failed");
  }
  return exec;
}

/* Reserves a block of job numbers in one atomic step (see storage_sqlite.c's reserve: the block
 * follows the writer's last one when no one reserved since). KEYS: the counter; ARGV: count,
 * resume_at, old_stop. */
static const char *const RESERVE_SCRIPT =
    "local c, at, old = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]) "
    "local last = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "local first = (old >= 0 and last == old) and at or last "
    "redis.call('SET', KEYS[1], string.format('%d', first + c)) "
    "return first";

/* Gives back the end of a block no one reserved after. KEYS: the counter; ARGV: stop, used. */
static const char *const RELEASE_SCRIPT =
    "if tonumber(redis.call('GET', KEYS[1]) or '-1') == tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[2]) end "
    "return 0";

/* Add the strings of the list at idx to a; returns how many. */
static int add_strings(lua_State *L, args_t *a, int idx) {
  lua_Integer n = lua_istable(L, idx) ? (lua_Integer)lua_rawlen(L, idx) : 0;
  int added = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    size_t len;
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *s = lua_tolstring(L, -1, &len);
      args_add(a, s, len);
      added++;
    }
    lua_pop(L, 1); /* the string stays alive: the list holds it */
  }
  return added;
}

/* EVAL of script on the counter of search sid with the integer arguments v[0..n-1]; its reply. */
static long long eval_counter(lua_State *L, rd_t *r, const char *script, const char *sid, size_t sid_len,
                              const lua_Integer *v, int n, const char *what) {
  char key[MAX_KEY], num[3][24];
  assert(n <= 3);
  args_t a = {0};
  args_add(&a, "EVAL", 4);
  args_add(&a, script, strlen(script));
  args_add(&a, "1", 1);
  args_add(&a, key, search_key(L, key, sid, sid_len, "n"));
  for (int i = 0; i < n; i++) {
    snprintf(num[i], sizeof num[i], "%lld", (long long)v[i]);
    args_add(&a, num[i], strlen(num[i]));
  }
  append(L, r, &a);
  args_free(&a);
  redisReply *rep = read_replies(L, r, 1, what);
  long long out = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
  freeReplyObject(rep);
  if (out < 0) rd_fail(L, r, what, "the counter is not a number");
  return out;
}

/* reserve(search_id, writer, count, resume_at, old_stop) -> the first of count job numbers no
 * other process gets: see storage_sqlite.h. */
static int rd_reserve(lua_State *L) {
  rd_t *r = check_rd(L);
  size_t sid_len;
  const char *sid = luaL_checklstring(L, 2, &sid_len);
  lua_Integer v[3] = {luaL_checkinteger(L, 4), luaL_checkinteger(L, 5), luaL_checkinteger(L, 6)};
  luaL_argcheck(L, v[0] > 0, 4, "count must be positive");
  lua_pushinteger(L, (lua_Integer)eval_counter(L, r, RESERVE_SCRIPT, sid, sid_len, v, 3, "cannot number new jobs"));
  return 1;
}

/* release(search_id, stop, used): see storage_sqlite.h. */
static int rd_release(lua_State *L) {
  rd_t *r = check_rd(L);
  size_t sid_len;
  const char *sid = luaL_checklstring(L, 2, &sid_len);
  lua_Integer v[2] = {luaL_checkinteger(L, 3), luaL_checkinteger(L, 4)};
  (void)eval_counter(L, r, RELEASE_SCRIPT, sid, sid_len, v, 2, "cannot write");
  return 0;
}

/* Append, inside a MULTI, the writes of the batches listed at idx ({first, params_list, stop,
 * claimed_ids, encoded} each; encoded: the list as the core encoded it, when a string): their
 * jobs stored as submitted, claimed ids no longer unfinished. Returns the number of commands
 * appended. */
static int append_batches(lua_State *L, rd_t *r, int idx, const char *sid, size_t sid_len, const char *skey, size_t sl,
                          const char *prefix, size_t plen) {
  lua_Integer nb = lua_istable(L, idx) ? (lua_Integer)lua_rawlen(L, idx) : 0;
  storage_scratch *w = &r->w;
  int k = 0;
  for (lua_Integer b = 1; b <= nb; b++) {
    lua_rawgeti(L, idx, b);
    lua_rawgeti(L, -1, 1);
    lua_Integer first = lua_tointeger(L, -1);
    lua_rawgeti(L, -2, 2);
    lua_Integer n = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
    storage_scratch_prepare(w, n);
    size_t elen;
    const char *encoded = lua_rawgeti(L, -3, 5) == LUA_TSTRING ? lua_tolstring(L, -1, &elen) : NULL; /* the batch, under first and list */
    if (!encoded || storage_split_list(encoded, elen, n, prefix, plen, &w->values, w->ends))
      (void)storage_encode_list(L, -2, STORE_PARAMETERS, prefix, plen, &w->values, w->ends, n); /* not the core's: encoded here */
    lua_pop(L, 1);
    for (lua_Integer i = 1; i <= n; i++) { /* "<search_id>.<n>" */
      buf_add(&w->ids, sid, sid_len);
      buf_addc(&w->ids, '.');
      add_decimal(&w->ids, (uint64_t)(first + i - 1)); /* numbers from reserve are >= 0 */
      w->id_ends[i] = w->ids.len;
    }
    k += append_list(L, r, "HSET", skey, sl, w, n, 1, 1);
    args_t a = {0};
    args_add(&a, "HDEL", 4);
    args_add(&a, skey, sl);
    lua_rawgeti(L, -3, 4);
    if (add_strings(L, &a, -1) > 0) {
      append(L, r, &a);
      k++;
    }
    args_free(&a);
    lua_pop(L, 4);
  }
  return k;
}

/* Append LRANGE of the finished jobs after the first seq (the reply push_after reads). */
static void append_after(lua_State *L, rd_t *r, const char *sid, size_t sid_len, lua_Integer seq) {
  char key[MAX_KEY], from[24];
  snprintf(from, sizeof from, "%lld", (long long)seq);
  args_t a = {0};
  args_add(&a, "LRANGE", 6);
  args_add(&a, key, search_key(L, key, sid, sid_len, "done"));
  args_add(&a, from, strlen(from));
  args_add(&a, "-1", 2);
  append(L, r, &a);
  args_free(&a);
}

/* Push the other writers' jobs in LRANGE's reply rep, and then last (the number seen). */
static void push_others(lua_State *L, rd_t *r, const redisReply *rep, const char *prefix, size_t plen, lua_Integer last) {
  lua_newtable(L);
  lua_Integer k = 0;
  for (size_t i = 0; i < rep->elements; i++) {
    int own;
    push_value(L, r, rep->element[i]->str, rep->element[i]->len, prefix, plen, &own);
    if (!own) lua_rawseti(L, -2, ++k);
  }
  lua_pushinteger(L, last);
}

/* Read append_after's reply; push the other writers' jobs in it and the number seen. */
static void push_after(lua_State *L, rd_t *r, lua_Integer seq, const char *prefix, size_t plen) {
  redisReply *rep = read_replies(L, r, 1, "cannot read the jobs");
  push_others(L, r, rep, prefix, plen, seq + (lua_Integer)rep->elements);
  freeReplyObject(rep);
}

/* store(search_id, jobs, writer, seq, batches): the batches submitted since the last write and
 * the finished jobs, in one MULTI/EXEC, and what after(search_id, seq, writer) returns, in the
 * same round trip. */
static int rd_store(lua_State *L) {
  rd_t *r = check_rd(L);
  size_t sid_len;
  const char *sid = luaL_checklstring(L, 2, &sid_len);
  luaL_checktype(L, 3, LUA_TTABLE);
  char prefix[65], jkey[MAX_KEY], dkey[MAX_KEY], skey[MAX_KEY];
  size_t plen = writer_prefix(L, 4, prefix);
  size_t jl = search_key(L, jkey, sid, sid_len, "jobs"), dl = search_key(L, dkey, sid, sid_len, "done");
  size_t sl = search_key(L, skey, sid, sid_len, "sub");
  lua_Integer n = (lua_Integer)lua_rawlen(L, 3), seq = luaL_checkinteger(L, 5);
  lua_settop(L, 6);
  storage_scratch *w = &r->w;
  append_word(L, r, "MULTI");
  int k = append_batches(L, r, 6, sid, sid_len, skey, sl, prefix, plen);
  storage_scratch_prepare(w, n);
  (void)storage_encode_list(L, 3, STORE_JOB, prefix, plen, &w->values, w->ends, n); /* one that cannot be at all is left out */
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, i);
    lua_getfield(L, -1, "id");
    size_t len = 0;
    const char *id = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : "";
    buf_add(&w->ids, id, len);
    w->id_ends[i] = w->ids.len;
    lua_pop(L, 2);
  }
  k += append_list(L, r, "HSET", jkey, jl, w, n, 1, 1);
  /* The others' new jobs are read in the transaction, before this call's are pushed: they are
   * not sent back, and RPUSH's reply (the list's length) is the number seen. */
  int at_range = k++;
  append_after(L, r, sid, sid_len, seq);
  int at_push = k, pushed = append_list(L, r, "RPUSH", dkey, dl, w, n, 0, 1);
  k += pushed;
  k += append_list(L, r, "HDEL", skey, sl, w, n, 1, 0);
  append_word(L, r, "EXEC");
  redisReply *exec = read_transaction(L, r, k, "cannot store jobs");
  const redisReply *range = exec->element[at_range], *len = pushed ? exec->element[at_push] : NULL;
  if (range->type != REDIS_REPLY_ARRAY || (len && len->type != REDIS_REPLY_INTEGER)) {
    freeReplyObject(exec);
    rd_fail(L, r, "cannot store jobs", "unexpected replies");
  }
  push_others(L, r, range, prefix, plen, len ? (lua_Integer)len->integer : seq + (lua_Integer)range->elements);
  freeReplyObject(exec);
  return 2;
}

/* after(search_id, seq, writer) -> the other writers' finished jobs stored after the first seq,
 * and the number seen. */
static int rd_after(lua_State *L) {
  rd_t *r = check_rd(L);
  size_t sid_len;
  const char *sid = luaL_checklstring(L, 2, &sid_len);
  lua_Integer seq = luaL_checkinteger(L, 3);
  char prefix[65];
  size_t plen = writer_prefix(L, 4, prefix);
  append_after(L, r, sid, sid_len, seq);
  push_after(L, r, seq, prefix, plen);
  return 2;
}

typedef struct pair {
  redisReply *key, *value;
} pair_t;

static int cmp_pairs(const void *a, const void *b) { return cmp_ids(&((const pair_t *)a)->key, &((const pair_t *)b)->key); }

/* unfinished(search_id, writer) -> {id =, parameters =} of other writers' jobs never finished,
 * by number. */
static int rd_unfinished(lua_State *L) {
  rd_t *r = check_rd(L);
  size_t sid_len;
  const char *sid = luaL_checklstring(L, 2, &sid_len);
  char prefix[65], key[MAX_KEY];
  size_t plen = writer_prefix(L, 3, prefix);
  const char *argv[] = {"HGETALL", key};
  size_t lens[] = {7, search_key(L, key, sid, sid_len, "sub")};
  redisReply *rep = command(L, r, 2, argv, lens, "cannot read the jobs");
  size_t m = rep->elements / 2;
  /* HGETALL lists key, value, key, value: sort the pairs by job number in place. */
  assert(sizeof(pair_t) == 2 * sizeof(redisReply *));
  if (m > 0) qsort(rep->element, m, sizeof(pair_t), cmp_pairs); /* an empty hash's list may be NULL */
  lua_newtable(L);
  lua_Integer k = 0;
  for (size_t i = 0; i < m; i++) {
    redisReply *id = rep->element[2 * i], *v = rep->element[2 * i + 1];
    int own;
    lua_createtable(L, 0, 2);
    push_value(L, r, v->str, v->len, prefix, plen, &own);
    if (own) {
      lua_pop(L, 1);
      continue;
    }
    lua_setfield(L, -2, "parameters");
    lua_pushlstring(L, id->str, id->len);
    lua_setfield(L, -2, "id");
    lua_rawseti(L, -2, ++k);
  }
  freeReplyObject(rep);
  return 1;
}

static int rd_close(lua_State *L) {
  rd_t *r = luaL_checkudata(L, 1, RD_MT);
  if (r->c) redisFree(r->c);
  r->c = NULL;
  if (r->password) {
    memset(r->password, 0, strlen(r->password));
    free(r->password);
    r->password = NULL;
  }
  r->host[0] = '\0';
  storage_scratch_free(&r->w);
  buf_free(&r->cmd);
  return 0;
}

/* waiting() -> false: every store is one round trip, nothing waits in this process */
static int rd_waiting(lua_State *L) {
  lua_pushboolean(L, 0);
  return 1;
}

static void set_handle_mt(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"create_search", rd_create_search}, {"search_ids", rd_search_ids}, {"has_search", rd_has_search},
      {"job_ids", rd_job_ids}, {"load", rd_load}, {"reserve", rd_reserve}, {"store", rd_store},
      {"release", rd_release}, {"waiting", rd_waiting},
      {"after", rd_after}, {"unfinished", rd_unfinished}, {"close", rd_close}, {NULL, NULL}};
  if (luaL_newmetatable(L, RD_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, rd_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
}

/* open{host=, port=, password=, db=, timeout=} -> handle, connected (a server that is down is an
 * error here, not at the first job). */
static int rd_open(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  rd_t *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  set_handle_mt(L);
  lua_getfield(L, 1, "host");
  snprintf(r->host, sizeof r->host, "%s", luaL_optstring(L, -1, "127.0.0.1"));
  lua_getfield(L, 1, "port");
  r->port = (int)luaL_optinteger(L, -1, 6379);
  lua_getfield(L, 1, "db");
  r->db = (int)luaL_optinteger(L, -1, 0);
  lua_getfield(L, 1, "timeout");
  double t = luaL_optnumber(L, -1, 10);
  lua_getfield(L, 1, "password");
  if (!lua_isnil(L, -1)) r->password = xstrdup(luaL_checkstring(L, -1));
  lua_pop(L, 5);
  r->timeout.tv_sec = (time_t)t;
  r->timeout.tv_usec = (suseconds_t)((t - (double)(time_t)t) * 1e6);
  snprintf(r->name, sizeof r->name, "%s:%d/%d", r->host, r->port, r->db);
  connect_rd(L, r);
  return 1;
}

int luaopen_evaluator_redis(lua_State *L) {
  static const luaL_Reg funcs[] = {{"open", rd_open}, {"token", storage_token}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
