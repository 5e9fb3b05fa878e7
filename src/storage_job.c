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
  if (wire_encode(L, idx, b, "job", err, errlen) == 0) return 0;
  push_storable(L, idx, b, err);
  b->len = 0;
  int rc = wire_encode(L, -1, b, "job", err, errlen);
  lua_pop(L, 1);
  return rc;
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
  const char *s = p, *end = s + n;
  if (!s || wire_decode(L, &s, end)) return -1;
  if (s != end) {
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

int storage_token(lua_State *L) {
  unsigned char r[8];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  ssize_t got = fd < 0 ? -1 : read(fd, r, sizeof r);
  if (fd >= 0) (void)close(fd); /* read-only: nothing to lose on close */
  if (got != (ssize_t)sizeof r) return luaL_error(L, "cannot read /dev/urandom for a writer token");
  char hex[17];
  for (int i = 0; i < 8; i++) snprintf(hex + 2 * i, 3, "%02x", r[i]);
  lua_pushlstring(L, hex, 16);
  return 1;
}
