/* test_json.c: unit tests of the JSON codec (src/json.c): Python's json semantics (null kept in
 * tables, NaN and Infinity, big integers as floats), sorted keys, escapes, error offsets, the depth
 * limit, and no leak when a memory error strikes in the middle of a decode. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "check.h"
#include "json.h"

/* Decode text, encode the result; the output text goes to out (NUL-terminated). Returns 0, or -1
 * with the decoder's or encoder's message in out. */
static int reencode(lua_State *L, const char *text, char *out, size_t outlen) {
  char err[256];
  if (json_decode(L, text, strlen(text), err, sizeof err)) {
    snprintf(out, outlen, "%s", err);
    return -1;
  }
  buf_t b;
  buf_init(&b);
  int rc = json_encode(L, -1, &b, err, sizeof err);
  lua_pop(L, 1);
  if (rc) snprintf(out, outlen, "%s", err);
  else snprintf(out, outlen, "%.*s", (int)b.len, b.data ? b.data : "");
  buf_free(&b);
  return rc;
}

static void python_semantics(lua_State *L) {
  static const char *const same[][2] = {
      {"[1,null,3]", "[1,null,3]"},
      {"{\"a\":null,\"b\":[null]}", "{\"a\":null,\"b\":[null]}"},
      {"[NaN,Infinity,-Infinity]", "[NaN,Infinity,-Infinity]"},
      {"[9223372036854775807,-9223372036854775808]", "[9223372036854775807,-9223372036854775808]"},
      {"[9223372036854775808,-9223372036854775809]", "[9.223372036854776e+18,-9.223372036854776e+18]"},
      {"[1e400,-1e400,1.0,0.1,-0]", "[Infinity,-Infinity,1.0,0.1,0]"},
      {" { \"z\" : 1 , \"a\" : { \"y\" : [ ] } } ", "{\"a\":{\"y\":[]},\"z\":1}"},
      {"\"\\u00e9\\ud83d\\ude00\\n\\\"\\/\"", "\"\xc3\xa9\xf0\x9f\x98\x80\\n\\\"/\""},
      {"\"\\ud800\"", "\"\\ud800\""},
      {"{}", "[]"},
  };
  char out[256];
  for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
    int rc = reencode(L, same[i][0], out, sizeof out);
    CHECK(rc == 0 && strcmp(out, same[i][1]) == 0, "%s gave %s, expected %s", same[i][0], out, same[i][1]);
  }
  char err[128];
  CHECK(json_decode(L, "null", 4, err, sizeof err) == 0 && lua_isnil(L, -1), "top-level null is nil");
  lua_pop(L, 1);
  CHECK(json_decode(L, "[1,null,3]", 10, err, sizeof err) == 0 && lua_rawlen(L, -1) == 3, "length of [1,null,3]");
  lua_rawgeti(L, -1, 2);
  CHECK(lua_type(L, -1) == LUA_TLIGHTUSERDATA && !lua_touserdata(L, -1), "null is the light userdata NULL");
  lua_pop(L, 2);
  CHECK(json_decode(L, "[9223372036854775807]", 21, err, sizeof err) == 0, "max int");
  lua_rawgeti(L, -1, 1);
  CHECK(lua_isinteger(L, -1) && lua_tointeger(L, -1) == LUA_MAXINTEGER, "max int stays an integer");
  lua_pop(L, 2);
}

static void invalid(lua_State *L) {
  static const char *const bad[][2] = {
      {"", "offset 0: unexpected end of input"},
      {"[1,", "offset 3: unexpected end of input"},
      {"{\"a\" 1}", "offset 5: expected ':'"},
      {"[1] x", "offset 4: unexpected data after the value"},
      {"\"abc", "offset 0: unterminated string"},
      {"nan", "offset 0: unexpected character 'n'"},
      {"[01]", "offset 2: expected ',' or ']'"},
      {"\"\\x\"", "offset 1: invalid escape"},
      {"\"a\x01\"", "offset 2: control character in string"},
  };
  int top = lua_gettop(L);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char err[128] = "";
    int rc = json_decode(L, bad[i][0], strlen(bad[i][0]), err, sizeof err);
    CHECK(rc == -1 && strstr(err, bad[i][1]) && lua_gettop(L) == top, "'%s' gave \"%s\"", bad[i][0], err);
    lua_settop(L, top);
  }
}

static void depth_limit(lua_State *L) {
  char err[128];
  for (int levels = JSON_MAX_DEPTH - 1; levels <= JSON_MAX_DEPTH + 1; levels++) {
    buf_t b;
    buf_init(&b);
    for (int i = 0; i < levels; i++) buf_addc(&b, '[');
    for (int i = 0; i < levels; i++) buf_addc(&b, ']');
    int rc = json_decode(L, b.data, b.len, err, sizeof err);
    CHECK(rc == (levels <= JSON_MAX_DEPTH ? 0 : -1), "decode of %d levels gave %d", levels, rc);
    if (rc == 0) {
      buf_t out;
      buf_init(&out);
      CHECK(json_encode(L, -1, &out, err, sizeof err) == 0 && out.len == b.len, "encode of %d levels", levels);
      buf_free(&out);
      lua_pop(L, 1);
    }
    buf_free(&b);
  }
}

static void encode_errors(lua_State *L) {
  char err[256];
  buf_t b;
  buf_init(&b);
  check_dostring(L, "local t = { a = { b = { 1, 2, print } } }; return t");
  CHECK(json_encode(L, -1, &b, err, sizeof err) == -1 && strstr(err, "value at \"a.b[3]\" is a function"), "%s", err);
  lua_pop(L, 1);
  check_dostring(L, "local t = {}; t.me = t; return t");
  CHECK(json_encode(L, -1, &b, err, sizeof err) == -1 && strstr(err, "cyclic"), "%s", err);
  lua_pop(L, 1);
  buf_free(&b);
}

/* What decode leaves on the C heap when the Lua allocator fails in the middle: its scratch buffer
 * holds a multi-megabyte string when lua_pushlstring cannot copy it. The leak sanitizer this binary
 * is built with reports any such block at exit (and fails the run). */
static int decode_big(lua_State *L) {
  const char *text = lua_touserdata(L, 1);
  char err[128];
  if (json_decode(L, text, strlen(text), err, sizeof err) == 0) lua_pop(L, 1);
  return 0;
}

static void no_leak_on_memory_error(lua_State *L) {
  size_t n = 4 << 20;
  char *text = malloc(n + 16);
  strcpy(text, "{\"s\":\"");
  memset(text + 6, 'x', n);
  strcpy(text + 6 + n, "\"}");
  lua_gc(L, LUA_GCCOLLECT);
  check_mem_limit = lua_gc(L, LUA_GCCOUNT) * 1024 + (1 << 20); /* room for anything but the string */
  int errs = 0;
  for (int i = 0; i < 8; i++) errs += check_pcall(L, decode_big, text) != LUA_OK; /* a memory error, raised again */
  check_mem_limit = 0;
  CHECK(errs == 8, "%d of 8 decodes ran out of Lua memory", errs);
  CHECK(check_pcall(L, decode_big, text) == LUA_OK, "without the cap it decodes");
  free(text);
}

int main(void) {
  lua_State *L = check_lua();
  python_semantics(L);
  invalid(L);
  depth_limit(L);
  encode_errors(L);
  no_leak_on_memory_error(L);
  lua_close(L);
  return check_summary("json");
}
