/* test_wire.c: unit tests of the wire codec (src/wire.c): exact round trips, one depth limit for
 * encode, decode and skip, key paths in errors, malformed buffers refused without a trace, and a
 * list put together from its encoded values (a submit's, for the storage) as wire_encode writes it,
 * split again as the storage would have encoded its values (storage_split_list). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "check.h"
#include "storage_job.h"
#include "wire.h"

/* Runs Lua source that returns one value and encodes it; returns wire_encode's status. */
static int encode_src(lua_State *L, const char *src, buf_t *b, char *err, size_t errlen) {
  check_dostring(L, src);
  int rc = wire_encode(L, -1, b, "parameters", err, errlen);
  lua_pop(L, 1);
  return rc;
}

/* Lua's own deep comparison, bit-exact for floats and subtype-exact for numbers. */
static const char *SAME =
    "local function same(a, b)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) == 'number' then\n"
    "    if math.type(a) ~= math.type(b) then return false end\n"
    "    if a ~= a then return b ~= b end\n"
    "    return string.pack('<n', a) == string.pack('<n', b) or math.type(a) == 'integer' and a == b\n"
    "  end\n"
    "  if type(a) ~= 'table' then return a == b end\n"
    "  for k, v in pairs(a) do if not same(v, rawget(b, k)) then return false end end\n"
    "  for k in pairs(b) do if rawget(a, k) == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "return same\n";

static void round_trips(lua_State *L) {
  static const char *const values[] = {
      "return 0", "return math.maxinteger", "return math.mininteger", "return -0.0", "return 0/0",
      "return 1e-310", "return math.huge", "return 0.1", "return 'a\\0b'", "return ''",
      "return '\\255\\254'", "return true", "return false", "return {}",
      "return {1, 2.0, '3', {4}, false, [10] = 'ten', [-1] = 'm', [1.5] = 'f', ['1'] = 's'}",
      "return {1, nil, 3}", "return {n = {n = {n = {}}}}", "return {a = string.rep('x', 100000)}",
  };
  check_dostring(L, SAME);
  int same = lua_gettop(L);
  lua_pushlightuserdata(L, NULL);
  lua_setglobal(L, "null");
  for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
    buf_t b;
    buf_init(&b);
    char err[256];
    check_dostring(L, values[i]);
    int rc = wire_encode(L, -1, &b, "v", err, sizeof err);
    CHECK(rc == 0, "%s: %s", values[i], err);
    const char *p = b.data, *end = b.data + b.len;
    CHECK(wire_decode(L, &p, end) == 0 && p == end, "%s: decode", values[i]);
    lua_pushvalue(L, same);
    lua_insert(L, -3);
    lua_call(L, 2, 1);
    CHECK(lua_toboolean(L, -1), "%s came back different", values[i]);
    lua_pop(L, 1);
    p = b.data;
    CHECK(wire_skip(&p, end) == 0 && p == end, "%s: skip", values[i]);
    buf_free(&b);
  }
  lua_settop(L, same - 1);
}

/* wire_put_list_head and the values one by one: the bytes of wire_encode of the list; the head
 * reads back for its length only. */
static void list_from_values(lua_State *L) {
  buf_t whole, parts, one;
  buf_init(&whole);
  buf_init(&parts);
  buf_init(&one);
  char err[256];
  check_dostring(L, "return { {x = 1, act = 'relu'}, {x = 2.5, lr = {0.1, 0.2}}, {} }");
  CHECK(wire_encode(L, -1, &whole, "list", err, sizeof err) == 0, "%s", err);
  wire_put_list_head(&parts, 3);
  for (int i = 1; i <= 3; i++) {
    lua_rawgeti(L, -1, i);
    one.len = 0;
    CHECK(wire_encode(L, -1, &one, "parameters", err, sizeof err) == 0, "%s", err);
    buf_add(&parts, one.data, one.len);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  CHECK(parts.len == whole.len && memcmp(parts.data, whole.data, whole.len) == 0, "the same bytes as the list's");
  buf_t split, encoded;
  buf_init(&split);
  buf_init(&encoded);
  size_t split_ends[4], encoded_ends[4];
  check_dostring(L, "return { {x = 1, act = 'relu'}, {x = 2.5, lr = {0.1, 0.2}}, {} }");
  CHECK(storage_encode_list(L, -1, STORE_PARAMETERS, "w", 1, &encoded, encoded_ends, 3) == 0, "encoded");
  lua_pop(L, 1);
  CHECK(storage_split_list(parts.data, parts.len, 3, "w", 1, &split, split_ends) == 0, "split");
  CHECK(split.len == encoded.len && memcmp(split.data, encoded.data, split.len) == 0 &&
            memcmp(split_ends, encoded_ends, sizeof split_ends) == 0,
        "the split values are the ones the storage would have encoded");
  CHECK(storage_split_list(parts.data, parts.len, 2, "w", 1, &split, split_ends) == -1, "not a list of 2");
  CHECK(storage_split_list(parts.data, parts.len - 1, 3, "w", 1, &split, split_ends) == -1, "cut short");
  buf_free(&split);
  buf_free(&encoded);
  const char *p = parts.data, *end = parts.data + parts.len;
  CHECK(wire_get_list_head(&p, end, 2) == -1 && p == parts.data, "a head of 3 is not one of 2");
  CHECK(wire_get_list_head(&p, end, 3) == 0 && wire_skip(&p, end) == 0, "the head, then the first value");
  p = one.data; /* {}: a table, but a list of 0 values only with nothing else in it */
  CHECK(wire_get_list_head(&p, one.data + one.len, 0) == 0, "an empty table is a list of 0");
  p = one.data;
  CHECK(wire_get_list_head(&p, one.data + 3, 0) == -1, "a head cut short");
  buf_free(&whole);
  buf_free(&parts);
  buf_free(&one);
}

static void null_crosses(lua_State *L) {
  buf_t b;
  buf_init(&b);
  char err[256];
  lua_createtable(L, 3, 0);
  lua_pushinteger(L, 1), lua_rawseti(L, -2, 1);
  lua_pushlightuserdata(L, NULL), lua_rawseti(L, -2, 2);
  lua_pushinteger(L, 3), lua_rawseti(L, -2, 3);
  CHECK(wire_encode(L, -1, &b, "v", err, sizeof err) == 0, "%s", err);
  lua_pop(L, 1);
  const char *p = b.data;
  CHECK(wire_decode(L, &p, b.data + b.len) == 0, "decode");
  CHECK(lua_rawlen(L, -1) == 3, "length %zu", (size_t)lua_rawlen(L, -1));
  lua_rawgeti(L, -1, 2);
  CHECK(lua_type(L, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL, "null came back as %s",
        luaL_typename(L, -1));
  lua_pop(L, 2);
  int x;
  lua_pushlightuserdata(L, &x); /* any other light userdata is not sendable */
  b.len = 0;
  CHECK(wire_encode(L, -1, &b, "v", err, sizeof err) == -1 && strstr(err, "is a userdata"), "%s", err);
  lua_pop(L, 1);
  buf_free(&b);
}

/* A value of `levels` nested tables, built by hand so that the encoder is not needed. */
static void nested_bytes(buf_t *b, int levels) {
  for (int i = 0; i < levels; i++) {
    buf_addc(b, 'T');
    wire_put_u32(b, i + 1 < levels ? 1 : 0);
    wire_put_u32(b, 0);
  }
}

static void one_depth_limit(lua_State *L) {
  char src[160], err[512];
  for (int levels = WIRE_MAX_DEPTH - 2; levels <= WIRE_MAX_DEPTH + 3; levels++) {
    buf_t b;
    buf_init(&b);
    snprintf(src, sizeof src, "local t = {}; for _ = 2, %d do t = { n = t } end; return { deep = t }", levels - 1);
    int enc = encode_src(L, src, &b, err, sizeof err);
    int want = levels <= WIRE_MAX_DEPTH ? 0 : -1;
    CHECK(enc == want, "encode of %d levels gave %d", levels, enc);
    buf_t raw;
    buf_init(&raw);
    nested_bytes(&raw, levels);
    const char *p = raw.data;
    int top = lua_gettop(L);
    int dec = wire_decode(L, &p, raw.data + raw.len);
    CHECK(dec == want, "decode of %d levels gave %d", levels, dec);
    CHECK(lua_gettop(L) == top + (dec == 0), "decode of %d levels left the stack at %d", levels, lua_gettop(L) - top);
    lua_settop(L, top);
    p = raw.data;
    CHECK(wire_skip(&p, raw.data + raw.len) == want, "skip of %d levels", levels);
    if (levels == WIRE_MAX_DEPTH + 1) {
      char expect[128];
      snprintf(expect, sizeof expect, "parameters.deep.n.n\u2026(%d more)\u2026n is nested too deeply", levels - 5);
      CHECK(strstr(err, expect) != NULL, "message %s", err);
    }
    buf_free(&b);
    buf_free(&raw);
  }
}

static void error_paths(lua_State *L) {
  buf_t b;
  buf_init(&b);
  char err[512];
  CHECK(encode_src(L, "return { a = { b = { c = print } } }", &b, err, sizeof err) == -1 &&
            strstr(err, "parameters.a.b.c is a function"),
        "%s", err);
  CHECK(encode_src(L, "return { list = { 1, 2, { f = io.stdout } } }", &b, err, sizeof err) == -1 &&
            strstr(err, "parameters.list[3].f is a userdata"),
        "%s", err);
  CHECK(encode_src(L, "local t = {}; local u = t; for i = 1, 30 do u.x = {}; u = u.x end; u.back = t; return t", &b,
                   err, sizeof err) == -1 &&
            strstr(err, "is a cyclic table"),
        "%s", err);
  CHECK(encode_src(L, "return { [print] = 1 }", &b, err, sizeof err) == -1 && strstr(err, "[function] is a function"),
        "%s", err);
  buf_free(&b);
}

/* Every prefix of a valid buffer, and every single-byte change of it, is refused or decoded whole,
 * leaving the stack as it was on refusal. */
static void malformed(lua_State *L) {
  buf_t b;
  buf_init(&b);
  char err[256];
  CHECK(encode_src(L, "return { 1, 'two', { 3.5, x = { true, false } }, k = 'v' }", &b, err, sizeof err) == 0, "%s",
        err);
  int top = lua_gettop(L), bad = 0;
  for (size_t n = 0; n < b.len; n++) {
    const char *p = b.data;
    if (wire_decode(L, &p, b.data + n) != -1 || lua_gettop(L) != top) bad++;
    lua_settop(L, top);
    p = b.data;
    if (wire_skip(&p, b.data + n) != -1) bad++;
  }
  CHECK(bad == 0, "%d truncated buffers were accepted", bad);
  for (size_t i = 0; i < b.len; i++)
    for (int v = 0; v < 256; v += 7) {
      char *copy = malloc(b.len);
      memcpy(copy, b.data, b.len);
      copy[i] = (char)v;
      const char *p = copy, *q = copy;
      int d = wire_decode(L, &p, copy + b.len), s = wire_skip(&q, copy + b.len);
      if (d == 0) lua_pop(L, 1);
      if (lua_gettop(L) != top || (d == 0 && s != 0) || (d == 0 && p != q)) bad++;
      lua_settop(L, top);
      free(copy);
    }
  CHECK(bad == 0, "%d changed buffers: decode and skip disagreed or the stack moved", bad);
  buf_t huge;
  buf_init(&huge);
  buf_addc(&huge, 'T');
  wire_put_u32(&huge, 0xFFFFFFFFu);
  wire_put_u32(&huge, 0xFFFFFFFFu);
  const char *p = huge.data;
  CHECK(wire_decode(L, &p, huge.data + huge.len) == -1, "a count past the buffer");
  buf_free(&huge);
  buf_free(&b);
}

int main(void) {
  lua_State *L = check_lua();
  round_trips(L);
  list_from_values(L);
  null_crosses(L);
  one_depth_limit(L);
  error_paths(L);
  malformed(L);
  lua_close(L);
  return check_summary("wire");
}
