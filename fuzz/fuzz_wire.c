/* fuzz_wire.c: libFuzzer target for the wire decoder and skipper (src/wire.c). Any input: decode
 * and skip never crash and agree (a value decode accepts, skip steps over to the same byte); a
 * value decoded is encoded again and that encoding decodes and skips whole. */
#include <string.h>

#include <lauxlib.h>

#include "fuzz.h"
#include "wire.h"

static lua_State *L;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) L = luaL_newstate();
  const char *start = (const char *)data, *end = start + size, *p = start, *q = start;
  int dec = wire_decode(L, &p, end);
  int skip = wire_skip(&q, end);
  FUZZ_ASSERT(lua_gettop(L) == (dec == 0), "decode pushes one value or nothing");
  if (dec == 0) {
    FUZZ_ASSERT(skip == 0 && p == q, "skip steps over what decode read");
    buf_t b;
    buf_init(&b);
    char err[256];
    FUZZ_ASSERT(wire_encode(L, -1, &b, "v", err, sizeof err) == 0, err);
    const char *r = b.data, *s = b.data;
    FUZZ_ASSERT(wire_decode(L, &r, b.data + b.len) == 0 && r == b.data + b.len, "re-encoding decodes whole");
    FUZZ_ASSERT(wire_skip(&s, b.data + b.len) == 0 && s == r, "re-encoding skips whole");
    buf_free(&b);
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
