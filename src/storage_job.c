/* storage_job.c: a job's stored form, shared by storage_sqlite.c and storage_redis.c (see
 * storage_job.h). */
#include "storage_job.h"

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>

#include "wire.h"

/* The fields of a job worth keeping when the whole table cannot be encoded. */
static const char *const KEEP[] = {"id", "parameters", "objective", "metadata", "status", "output", NULL};

/* ---- the stored form of a job: a record, not a generic table ---------------------------------
 * Every finished job is written once, on the root, on the path of every gather: a generic table
 * walk spelled out every key ("timestamp_submit" took 21 bytes) and encoded args, the
 * same table as parameters, twice. A record names the fields the core sets by one byte and keeps
 * the rest as they are, so that decoding gives back the same table:
 *   'J' field* END
 *   field: F_ID..F_OUTPUT wire-value | F_ARGS wire-value | F_ARGS_SAME (args is the parameters
 *          table) | F_META meta | F_OTHER wire-key wire-value
 *   meta:  (M_SUBMIT..M_GATHER f64 | M_RANK i64 | M_OTHER wire-key wire-value)* END
 * 'J' is no wire tag, so a value stored before records existed still decodes as what it is. */
#define JOB_RECORD 'J'
enum { REC_END = 0, F_OTHER, F_ID, F_PARAMETERS, F_STATUS, F_OBJECTIVE, F_OUTPUT, F_ARGS, F_META, F_ARGS_SAME };
enum { M_OTHER = 1, M_SUBMIT, M_START, M_END, M_GATHER, M_RANK };
typedef struct name {
  const char *s;
  size_t n;
} name_t;
#define NAME(lit) {lit, sizeof lit - 1}
static const name_t FIELD[] = {[F_ID] = NAME("id"), [F_PARAMETERS] = NAME("parameters"), [F_STATUS] = NAME("status"),
                               [F_OBJECTIVE] = NAME("objective"), [F_OUTPUT] = NAME("output"), [F_ARGS] = NAME("args"),
                               [F_META] = NAME("metadata")};
static const name_t META[] = {[M_SUBMIT] = NAME("timestamp_submit"), [M_START] = NAME("timestamp_start"),
                              [M_END] = NAME("timestamp_end"), [M_GATHER] = NAME("timestamp_gather"),
                              [M_RANK] = NAME("rank")};

/* The field names as this Lua state holds them. A string this short is interned: its text is at one
 * address in its state, so a key is a name when its text pointer is the name's (compared by
 * content, the names cost more than the rest of a job's record). The strings are kept in the
 * registry under NAMES_KEY; anchor tells a state that holds them from a new one. */
#define NAMES_KEY "evaluator.storage_job.names"
typedef struct interned {
  const void *anchor;
  const char *field[F_META + 1], *meta[M_RANK + 1];
} interned_t;
static _Thread_local interned_t interned; /* a thread pool's states are their threads' own */

static const interned_t *names_of(lua_State *L) {
  int t = lua_getfield(L, LUA_REGISTRYINDEX, NAMES_KEY);
  const void *anchor = lua_topointer(L, -1);
  lua_pop(L, 1);
  if (t == LUA_TTABLE && anchor == interned.anchor) return &interned;
  interned_t made = {0}; /* into the cache only once anchored: a memory error on the way leaves it as it was */
  lua_createtable(L, F_META + M_RANK, 0);
  for (int c = F_ID; c <= F_META; c++) {
    made.field[c] = lua_pushlstring(L, FIELD[c].s, FIELD[c].n);
    lua_rawseti(L, -2, c);
  }
  for (int c = M_SUBMIT; c <= M_RANK; c++) {
    made.meta[c] = lua_pushlstring(L, META[c].s, META[c].n);
    lua_rawseti(L, -2, F_META + c);
  }
  made.anchor = lua_topointer(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, NAMES_KEY);
  interned = made;
  return &interned;
}

/* The code of the string key at idx among names[first..last], or 0. */
static int key_code(lua_State *L, int idx, const char *const *names, int first, int last) {
  if (lua_type(L, idx) != LUA_TSTRING) return 0;
  const char *k = lua_tostring(L, idx);
  for (int c = first; c <= last; c++)
    if (names[c] == k) return c;
  return 0;
}

/* An entry written as it is: its key, then its value. */
static int put_entry(lua_State *L, int key, buf_t *b, char *err, size_t errlen) {
  if (wire_encode(L, key, b, "job", err, errlen)) return -1;
  return wire_encode(L, key + 1, b, "job", err, errlen);
}

/* The metadata table at idx as a meta record: the runtime's timestamps and rank by code. */
static int put_meta(lua_State *L, int idx, const interned_t *in, buf_t *b, char *err, size_t errlen) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int key = lua_gettop(L) - 1, code = key_code(L, key, in->meta, M_SUBMIT, M_RANK), rc = 0;
    if (code == M_RANK && lua_isinteger(L, -1)) {
      int64_t v = (int64_t)lua_tointeger(L, -1);
      buf_addc(b, M_RANK);
      buf_add(b, &v, sizeof v);
    } else if (code && code != M_RANK && lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      double v = lua_tonumber(L, -1);
      buf_addc(b, (char)code);
      buf_add(b, &v, sizeof v);
    } else {
      buf_addc(b, M_OTHER);
      rc = put_entry(L, key, b, err, errlen);
    }
    if (rc) {
      lua_pop(L, 2);
      return -1;
    }
    lua_pop(L, 1);
  }
  buf_addc(b, REC_END);
  return 0;
}

/* The job table at idx as a record into b; -1 (err says why) if a value cannot be encoded. */
static int put_record(lua_State *L, int idx, buf_t *b, char *err, size_t errlen) {
  const interned_t *in = names_of(L);
  lua_pushlstring(L, FIELD[F_PARAMETERS].s, FIELD[F_PARAMETERS].n);
  lua_rawget(L, idx);
  int params = lua_gettop(L), rc = 0;
  buf_addc(b, JOB_RECORD);
  lua_pushnil(L);
  while (rc == 0 && lua_next(L, idx)) {
    int key = lua_gettop(L) - 1, code = key_code(L, key, in->field, F_ID, F_META);
    if (code == F_ARGS && lua_rawequal(L, -1, params)) {
      buf_addc(b, F_ARGS_SAME);
    } else if (code == F_META && lua_istable(L, -1)) {
      buf_addc(b, F_META);
      rc = put_meta(L, key + 1, in, b, err, errlen);
    } else if (code && code != F_META) {
      buf_addc(b, (char)code);
      if (wire_encode_scalar(L, -1, b) != 0) rc = wire_encode(L, -1, b, "job", err, errlen);
    } else {
      buf_addc(b, F_OTHER);
      rc = put_entry(L, key, b, err, errlen);
    }
    lua_pop(L, rc ? 2 : 1);
  }
  lua_pop(L, 1);
  buf_addc(b, REC_END);
  return rc;
}

/* Pushes a copy of the job at idx holding only what encodes, with metadata.storage_error = why. */
static void push_storable(lua_State *L, int job, buf_t *b, const char *why) {
  char err[256];
  lua_createtable(L, 0, 8);
  for (const char *const *k = KEEP; *k; k++) {
    lua_getfield(L, job, *k);
    b->len = 0;
    if (wire_encode(L, -1, b, *k, err, sizeof err) == 0) lua_setfield(L, -2, *k);
    else lua_pop(L, 1);
  }
  if (lua_getfield(L, -1, "metadata") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "metadata");
  }
  lua_pushstring(L, why);
  lua_setfield(L, -2, "storage_error");
  lua_pop(L, 1);
}

int storage_encode_job(lua_State *L, int idx, buf_t *b, char *err, size_t errlen) {
  idx = lua_absindex(L, idx);
  b->len = 0;
  if (!lua_checkstack(L, 8)) {
    snprintf(err, errlen, "job: Lua stack overflow");
    return -1;
  }
  if (put_record(L, idx, b, err, errlen) == 0) return 0;
  b->len = 0;
  (void)wire_encode(L, idx, b, "job", err, errlen); /* fails as the record did: the whole job's path in err */
  push_storable(L, idx, b, err);
  b->len = 0;
  int rc = put_record(L, lua_gettop(L), b, err, errlen);
  lua_pop(L, 1);
  return rc;
}

/* ---- reading a record back ---- */

typedef struct reader {
  const char *p, *end;
} reader_t;

static int get_byte(reader_t *r, int *c) {
  if (r->p >= r->end) return -1;
  *c = (unsigned char)*r->p++;
  return 0;
}

/* Push the wire value at r. */
static int get_value(lua_State *L, reader_t *r) { return wire_decode(L, &r->p, r->end); }

/* Push a key and its value, as put_entry wrote them; a key that no table can hold is damage. */
static int get_entry(lua_State *L, reader_t *r) {
  if (get_value(L, r)) return -1;
  int bad = lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1));
  if (bad || get_value(L, r)) {
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

/* Push the metadata table of a meta record. */
static int get_meta(lua_State *L, reader_t *r) {
  lua_createtable(L, 0, 6);
  for (;;) {
    int code;
    if (get_byte(r, &code)) break;
    if (code == REC_END) return 0;
    if (code == M_OTHER) {
      if (get_entry(L, r)) break;
      lua_rawset(L, -3);
      continue;
    }
    if (code < M_SUBMIT || code > M_RANK || (size_t)(r->end - r->p) < 8) break;
    if (code == M_RANK) {
      int64_t v;
      memcpy(&v, r->p, sizeof v);
      lua_pushinteger(L, (lua_Integer)v);
    } else {
      double v;
      memcpy(&v, r->p, sizeof v);
      lua_pushnumber(L, v);
    }
    r->p += 8;
    lua_setfield(L, -2, META[code].s);
  }
  lua_pop(L, 1);
  return -1;
}

/* Push the job of a record (r past its JOB_RECORD byte). */
static int get_record(lua_State *L, reader_t *r) {
  if (!lua_checkstack(L, 8)) return -1;
  lua_createtable(L, 0, 8);
  int args_same = 0;
  for (;;) {
    int code, rc = 0;
    if (get_byte(r, &code)) break;
    if (code == REC_END) {
      if (!args_same) return 0;
      if (lua_getfield(L, -1, "parameters") == LUA_TNIL) break; /* F_ARGS_SAME is written only with parameters */
      lua_setfield(L, -2, "args");
      return 0;
    }
    if (code == F_OTHER) {
      if (get_entry(L, r)) break;
      lua_rawset(L, -3);
      continue;
    }
    if (code == F_ARGS_SAME) {
      args_same = 1;
      continue;
    }
    if (code < F_ID || code > F_META) break;
    rc = code == F_META ? get_meta(L, r) : get_value(L, r);
    if (rc) break;
    lua_setfield(L, -2, FIELD[code].s);
  }
  lua_pop(L, 1);
  return -1;
}

/* One element of a list for storage_encode_list into b (emptied first); 0, or -1 if it cannot be. */
static int encode_one(lua_State *L, int idx, int kind, buf_t *b) {
  char err[256];
  b->len = 0;
  if (lua_type(L, idx) != LUA_TTABLE) return -1;
  if (kind == STORE_JOB) return storage_encode_job(L, idx, b, err, sizeof err);
  return wire_encode(L, idx, b, "parameters", err, sizeof err);
}

lua_Integer storage_encode_list(lua_State *L, int idx, int kind, const char *prefix, size_t len, buf_t *b,
                                size_t *ends, lua_Integer n) {
  assert(n >= 0 && (prefix || len == 0));
  idx = lua_absindex(L, idx);
  buf_t one;
  buf_init(&one);
  ends[0] = b->len = 0;
  lua_Integer failed = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (encode_one(L, -1, kind, &one) == 0) {
      buf_add(b, prefix, len);
      buf_add(b, one.data, one.len);
    } else {
      failed++;
    }
    lua_pop(L, 1);
    ends[i] = b->len;
  }
  buf_free(&one);
  return failed;
}

int storage_split_list(const char *p, size_t len, lua_Integer n, const char *prefix, size_t plen, buf_t *b,
                       size_t *ends) {
  const char *end = p + len;
  ends[0] = b->len = 0;
  if (n < 0 || (uint64_t)n > UINT32_MAX || wire_get_list_head(&p, end, (uint32_t)n)) return -1;
  for (lua_Integer i = 1; i <= n; i++) {
    const char *value = p;
    if (wire_skip(&p, end)) return -1;
    buf_add(b, prefix, plen);
    buf_add(b, value, (size_t)(p - value));
    ends[i] = b->len;
  }
  return p == end ? 0 : -1;
}

void storage_scratch_prepare(storage_scratch *s, lua_Integer n) {
  assert(n >= 0);
  if ((size_t)n > s->cap || !s->ends) {
    s->cap = (size_t)n > 2 * s->cap ? (size_t)n : 2 * s->cap + 16;
    s->ends = xrealloc(s->ends, (s->cap + 1) * sizeof *s->ends);
    s->id_ends = xrealloc(s->id_ends, (s->cap + 1) * sizeof *s->id_ends);
  }
  s->values.len = s->ids.len = 0;
  s->ends[0] = s->id_ends[0] = 0;
}

void storage_scratch_free(storage_scratch *s) {
  buf_free(&s->values);
  buf_free(&s->ids);
  free(s->ends);
  free(s->id_ends);
  memset(s, 0, sizeof *s);
}

int storage_decode(lua_State *L, const void *p, size_t n) {
  reader_t r = {p, (const char *)p + n};
  if (!r.p || r.p == r.end) return -1;
  int rc = *r.p == JOB_RECORD ? (r.p++, get_record(L, &r)) : get_value(L, &r);
  if (rc) return -1;
  if (r.p != r.end) {
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

int64_t storage_job_number(const char *id, size_t len) {
  const char *dot = NULL;
  for (size_t i = len; i-- > 0;)
    if (id[i] == '.') {
      dot = id + i;
      break;
    }
  size_t digits = dot ? (size_t)(id + len - dot - 1) : 0;
  if (digits == 0 || digits > 18) return -1; /* 18 digits cannot overflow */
  int64_t n = 0;
  for (const char *c = dot + 1; c < id + len; c++) {
    if (*c < '0' || *c > '9') return -1;
    n = n * 10 + (*c - '0');
  }
  return n;
}

int storage_random_hex(char hex[17]) {
  unsigned char r[8];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  ssize_t got = fd < 0 ? -1 : read(fd, r, sizeof r);
  if (fd >= 0) (void)close(fd); /* read-only: nothing to lose on close */
  if (got != (ssize_t)sizeof r) return -1;
  for (int i = 0; i < 8; i++) snprintf(hex + 2 * i, 3, "%02x", r[i]);
  return 0;
}

int storage_token(lua_State *L) {
  char hex[17];
  if (storage_random_hex(hex)) return luaL_error(L, "cannot read /dev/urandom for a writer token");
  lua_pushlstring(L, hex, 16);
  return 1;
}
