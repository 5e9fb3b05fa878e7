/* wire.c: the binary encoding of Lua values (see wire.h). A value is a one-byte tag and a body;
 * a table lists its 1..n sequence first, so the decoder can size the new table in one go. */
#include "wire.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>

/* W_NULL is JSON's null inside a table (the light userdata NULL: cjson.null, evaluator.null). */
enum { W_NIL = 'n', W_NULL = 'N', W_FALSE = 'f', W_TRUE = 't', W_INT = 'i', W_FLOAT = 'd', W_STR = 's', W_TABLE = 'T' };

#define DEPTH_WHY "tables may nest at most " WIRE_MAX_DEPTH_TEXT " levels deep"
#define WIRE_FAST_DEPTH 16 /* deeper than this, encoding starts again with a cycle check */

/* One reservation per value, not per field: encoding is on every job's path (submit). */
static inline void put_raw(buf_t *b, char tag, const void *v, size_t n) {
  char *d = buf_reserve(b, 1 + n);
  d[0] = tag;
  memcpy(d + 1, v, n);
  b->len += 1 + n;
}

static inline void put_str(buf_t *b, const char *s, uint32_t n) {
  char *d = buf_reserve(b, 5 + (size_t)n);
  d[0] = W_STR;
  memcpy(d + 1, &n, 4);
  memcpy(d + 5, s, n);
  b->len += 5 + (size_t)n;
}

void wire_put_u32(buf_t *b, uint32_t v) { buf_add(b, &v, sizeof v); }
void wire_put_u64(buf_t *b, uint64_t v) { buf_add(b, &v, sizeof v); }
void wire_put_f64(buf_t *b, double v) { buf_add(b, &v, sizeof v); }

void wire_put_bytes(buf_t *b, const char *s, size_t n) {
  wire_put_u32(b, (uint32_t)n);
  buf_add(b, s, n);
}

static int get_raw(const char **p, const char *end, void *v, size_t n) {
  if ((size_t)(end - *p) < n) return -1;
  memcpy(v, *p, n);
  *p += n;
  return 0;
}

int wire_get_u32(const char **p, const char *end, uint32_t *v) { return get_raw(p, end, v, sizeof *v); }
int wire_get_u64(const char **p, const char *end, uint64_t *v) { return get_raw(p, end, v, sizeof *v); }
int wire_get_f64(const char **p, const char *end, double *v) { return get_raw(p, end, v, sizeof *v); }

int wire_get_bytes(const char **p, const char *end, const char **s, size_t *n) {
  uint32_t len;
  if (wire_get_u32(p, end, &len) || (size_t)(end - *p) < len) return -1;
  *s = *p, *n = len;
  *p += len;
  return 0;
}

/* ---- encoding ---- */

/* The path from the root value to the one being encoded, kept only to name it in errors. */
typedef struct path {
  const struct path *up;
  lua_State *L;
  int key; /* stack index of the key, 0 at the root */
} path_t;

typedef struct enc {
  lua_State *L;
  buf_t *b;
  const char *name;
  char *err;
  size_t errlen;
  int seen; /* stack index of the table of tables on the current path (cycle check) */
} enc_t;

static void key_render(lua_State *L, int key, int dot, buf_t *out) {
  if (lua_type(L, key) == LUA_TSTRING)
    buf_addf(out, "%s%s", dot ? "." : "", lua_tostring(L, key));
  else if (lua_isinteger(L, key))
    buf_addf(out, "[%lld]", (long long)lua_tointeger(L, key));
  else
    buf_addf(out, "[%s]", luaL_typename(L, key));
}

/* name, then the keys from the root down; a path of more than PATH_SHOWN keys keeps its first
 * PATH_SHOWN - 1 and its last: "parameters.deep.n.n…(195 more)…n". */
#define PATH_SHOWN 4
static void path_render(const path_t *pt, const char *name, buf_t *out) {
  const path_t *keys[WIRE_MAX_DEPTH + 2];
  size_t n = 0;
  for (; pt && pt->key; pt = pt->up) {
    assert(n < sizeof keys / sizeof *keys);
    keys[n++] = pt;
  }
  buf_adds(out, name);
  size_t more = n > PATH_SHOWN + 1 ? n - PATH_SHOWN : 0;
  for (size_t i = 0; i < n; i++) {
    const path_t *k = keys[n - 1 - i];
    if (more && i == PATH_SHOWN - 1) buf_addf(out, "\u2026(%zu more)\u2026", more);
    if (more && i >= PATH_SHOWN - 1 && i + 1 < n) continue;
    key_render(k->L, k->key, !(more && i + 1 == n), out);
  }
}

static int enc_fail(enc_t *e, const path_t *pt, const char *what, const char *why) {
  buf_t where;
  buf_init(&where);
  path_render(pt, e->name, &where);
  buf_addc(&where, '\0');
  snprintf(e->err, e->errlen, "%s %s: %s", where.data, what, why);
  buf_free(&where);
  return -1;
}

static const char SENDABLE[] = "only strings, numbers, booleans and tables of them can be sent";

static int enc_value(enc_t *e, int idx, const path_t *pt, int depth);

/* Returned by the fast pass (no cycle check) when a value is deeper than WIRE_FAST_DEPTH. */
#define TOO_DEEP_FOR_FAST (-2)

static int enc_table(enc_t *e, int idx, const path_t *pt, int depth) {
  lua_State *L = e->L;
  if (!e->seen && depth > WIRE_FAST_DEPTH) return TOO_DEEP_FOR_FAST;
  if (depth >= WIRE_MAX_DEPTH) return enc_fail(e, pt, "is nested too deeply", DEPTH_WHY);
  if (!lua_checkstack(L, 8)) return enc_fail(e, pt, "is nested too deeply", "Lua stack overflow");
  if (e->seen) {
    if (lua_rawgetp(L, e->seen, lua_topointer(L, idx)) != LUA_TNIL) {
      lua_pop(L, 1);
      return enc_fail(e, pt, "is a cyclic table", SENDABLE);
    }
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
    lua_rawsetp(L, e->seen, lua_topointer(L, idx));
  }

  /* The sequence part 1..n first (holes travel as nil), then the other keys, each once: their
   * count is patched in at the end, so the table is walked once. */
  lua_Integer narr = (lua_Integer)lua_rawlen(L, idx);
  if (narr > UINT32_MAX) return enc_fail(e, pt, "is a table too long to send", "at most 2^32 - 1 elements");
  uint32_t counts[2] = {(uint32_t)narr, 0};
  put_raw(e->b, W_TABLE, counts, sizeof counts);
  size_t count_at = e->b->len - sizeof counts[1];
  for (lua_Integer i = 1; i <= narr; i++) {
    lua_pushinteger(L, i);
    path_t sub = {pt, L, lua_gettop(L)};
    lua_rawgeti(L, idx, i);
    int rc = enc_value(e, lua_gettop(L), &sub, depth + 1);
    lua_pop(L, 2);
    if (rc) return rc;
  }
  uint32_t nrest = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int key = lua_gettop(L) - 1;
    if (lua_isinteger(L, key) && lua_tointeger(L, key) >= 1 && lua_tointeger(L, key) <= narr) {
      lua_pop(L, 1);
      continue;
    }
    path_t sub = {pt, L, key};
    int rc = enc_value(e, key, &sub, depth + 1);
    if (!rc) rc = enc_value(e, key + 1, &sub, depth + 1);
    if (rc) {
      lua_pop(L, 2);
      return rc;
    }
    lua_pop(L, 1);
    nrest++;
  }
  memcpy(e->b->data + count_at, &nrest, sizeof nrest);
  if (e->seen) {
    lua_pushnil(L);
    lua_rawsetp(L, e->seen, lua_topointer(L, idx));
  }
  return 0;
}

/* Values that are not tables: 0, or -1 (nothing appended) for another type or a string too long. */
static inline int enc_scalar(lua_State *L, int type, int idx, buf_t *b) {
  switch (type) {
    case LUA_TNIL: buf_addc(b, W_NIL); return 0;
    case LUA_TBOOLEAN: buf_addc(b, lua_toboolean(L, idx) ? W_TRUE : W_FALSE); return 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        uint64_t v = (uint64_t)lua_tointeger(L, idx);
        put_raw(b, W_INT, &v, sizeof v);
      } else {
        double v = lua_tonumber(L, idx);
        put_raw(b, W_FLOAT, &v, sizeof v);
      }
      return 0;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      if (n > UINT32_MAX) return -1;
      put_str(b, s, (uint32_t)n);
      return 0;
    }
    default: return -1;
  }
}

int wire_encode_scalar(lua_State *L, int idx, buf_t *b) { return enc_scalar(L, lua_type(L, idx), idx, b); }

static int enc_value(enc_t *e, int idx, const path_t *pt, int depth) {
  lua_State *L = e->L;
  int type = lua_type(L, idx);
  if (enc_scalar(L, type, idx, e->b) == 0) return 0;
  switch (type) {
    case LUA_TSTRING: return enc_fail(e, pt, "is a string over 4 GiB", "strings must be shorter");
    case LUA_TTABLE: return enc_table(e, idx, pt, depth);
    case LUA_TLIGHTUSERDATA:
      if (!lua_touserdata(L, idx)) return buf_addc(e->b, W_NULL), 0;
      /* fall through */
    default: {
      char what[64];
      snprintf(what, sizeof what, "is a %s", luaL_typename(L, idx));
      return enc_fail(e, pt, what, SENDABLE);
    }
  }
}

void wire_put_list_head(buf_t *b, uint32_t n) {
  uint32_t counts[2] = {n, 0};
  put_raw(b, W_TABLE, counts, sizeof counts);
}

/* Parameters are shallow: encode without a cycle check first, and only a value deeper than
 * WIRE_FAST_DEPTH (maybe a cycle) is encoded again with one. */
int wire_encode(lua_State *L, int idx, buf_t *b, const char *name, char *err, size_t errlen) {
  idx = lua_absindex(L, idx);
  enc_t e = {L, b, name, err, errlen, 0};
  path_t root = {NULL, L, 0};
  size_t mark = b->len;
  int top = lua_gettop(L);
  int rc = enc_value(&e, idx, &root, 0);
  if (rc != TOO_DEEP_FOR_FAST) return rc;
  lua_settop(L, top);
  b->len = mark;
  lua_newtable(L);
  e.seen = lua_gettop(L);
  rc = enc_value(&e, idx, &root, 0);
  lua_settop(L, top);
  return rc;
}

/* ---- decoding ---- */

static int dec_value(lua_State *L, const char **p, const char *end, int depth);

/* Whether the encoded value at p can be a table key (not nil, not NaN), read from its bytes: a
 * string key, the usual one, costs no call into Lua. */
static int key_ok(const char *p, const char *end) {
  if (p >= end || *p == W_NIL) return 0;
  if (*p != W_FLOAT) return 1;
  double v;
  if ((size_t)(end - p) < 1 + sizeof v) return 0;
  memcpy(&v, p + 1, sizeof v);
  return v == v;
}

static int dec_table(lua_State *L, const char **p, const char *end, int depth) {
  uint32_t narr, nrest;
  if (depth >= WIRE_MAX_DEPTH || wire_get_u32(p, end, &narr) || wire_get_u32(p, end, &nrest)) return -1;
  /* Every element takes at least one byte: refuse counts the buffer cannot hold. */
  if ((uint64_t)narr + 2 * (uint64_t)nrest > (uint64_t)(end - *p)) return -1;
  if (!lua_checkstack(L, 4)) return -1;
  lua_createtable(L, (int)narr, (int)nrest);
  for (uint32_t i = 1; i <= narr; i++) {
    if (dec_value(L, p, end, depth + 1)) goto fail;
    lua_rawseti(L, -2, i);
  }
  for (uint32_t i = 0; i < nrest; i++) {
    if (!key_ok(*p, end) || dec_value(L, p, end, depth + 1)) goto fail;
    if (dec_value(L, p, end, depth + 1)) {
      lua_pop(L, 1);
      goto fail;
    }
    lua_rawset(L, -3);
  }
  return 0;
fail:
  lua_pop(L, 1);
  return -1;
}

static int dec_value(lua_State *L, const char **p, const char *end, int depth) {
  if (*p >= end) return -1;
  char tag = *(*p)++;
  switch (tag) {
    case W_NIL: lua_pushnil(L); return 0;
    case W_NULL: lua_pushlightuserdata(L, NULL); return 0;
    case W_FALSE: lua_pushboolean(L, 0); return 0;
    case W_TRUE: lua_pushboolean(L, 1); return 0;
    case W_INT: {
      uint64_t v;
      if (wire_get_u64(p, end, &v)) return -1;
      lua_pushinteger(L, (lua_Integer)v);
      return 0;
    }
    case W_FLOAT: {
      double v;
      if (wire_get_f64(p, end, &v)) return -1;
      lua_pushnumber(L, v);
      return 0;
    }
    case W_STR: {
      const char *s;
      size_t n;
      if (wire_get_bytes(p, end, &s, &n)) return -1;
      lua_pushlstring(L, s, n);
      return 0;
    }
    case W_TABLE: return dec_table(L, p, end, depth);
    default: return -1;
  }
}

int wire_decode(lua_State *L, const char **p, const char *end) { return dec_value(L, p, end, 0); }

static int skip_value(const char **p, const char *end, int depth) {
  if (*p >= end) return -1;
  uint32_t narr, nrest;
  const char *s;
  size_t n;
  switch (*(*p)++) {
    case W_NIL: case W_NULL: case W_FALSE: case W_TRUE: return 0;
    case W_INT: case W_FLOAT: return (size_t)(end - *p) < 8 ? -1 : (*p += 8, 0);
    case W_STR: return wire_get_bytes(p, end, &s, &n);
    case W_TABLE:
      if (depth >= WIRE_MAX_DEPTH || wire_get_u32(p, end, &narr) || wire_get_u32(p, end, &nrest)) return -1;
      for (uint64_t i = 0; i < (uint64_t)narr + 2 * (uint64_t)nrest; i++)
        if (skip_value(p, end, depth + 1)) return -1;
      return 0;
    default: return -1;
  }
}

int wire_skip(const char **p, const char *end) { return skip_value(p, end, 0); }

int wire_get_list_head(const char **p, const char *end, uint32_t n) {
  const char *q = *p;
  uint32_t narr, nrest;
  if (q >= end || *q++ != W_TABLE || wire_get_u32(&q, end, &narr) || wire_get_u32(&q, end, &nrest)) return -1;
  if (narr != n || nrest != 0) return -1;
  *p = q;
  return 0;
}
