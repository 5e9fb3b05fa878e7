/* fuzz_json.c: libFuzzer target for the JSON decoder and encoder (src/json.c). Any input: decode
 * never crashes and pushes one value or nothing; a value decoded encodes, the text decodes again,
 * and from then on the text is a fixed point (encode(decode(t)) == t). */
#include <string.h>

#include <lauxlib.h>

#include "fuzz.h"
#include "json.h"

static lua_State *L;

static void encode_top(buf_t *b) {
  char err[256];
  b->len = 0;
  FUZZ_ASSERT(json_encode(L, -1, b, err, sizeof err) == 0, err);
  lua_pop(L, 1);
}

static void decode(const char *s, size_t n) {
  char err[256];
  FUZZ_ASSERT(json_decode(L, s, n, err, sizeof err) == 0, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) L = luaL_newstate();
  char err[256];
  if (json_decode(L, (const char *)data, size, err, sizeof err) == 0) {
    buf_t a, b;
    buf_init(&a);
    buf_init(&b);
    encode_top(&a);
    decode(a.data, a.len);
    encode_top(&a);
    decode(a.data, a.len);
    encode_top(&b);
    FUZZ_ASSERT(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "encode(decode(t)) == t");
    buf_free(&a);
    buf_free(&b);
  }
  FUZZ_ASSERT(lua_gettop(L) == 0, "the stack is left as it was");
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
