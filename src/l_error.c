/* l_error.c: errors placed at the user's line (see l_error.h). */
#include "l_error.h"

#include <stdarg.h>
#include <string.h>
#include <lauxlib.h>

#include "embedded.h"

/* Push "file:line: " of the first frame outside the evaluator modules ("" when there is none). */
static void push_user_where(lua_State *L) {
  lua_Debug ar;
  int level = 1;
  for (; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "S", &ar);
    if (*ar.what != 'C' && !embedded_is_module_source(ar.source)) break;
  }
  luaL_where(L, level);
}

int lerr_user(lua_State *L, const char *fmt, ...) {
  push_user_where(L);
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

/* Past "lua/evaluator/x.lua:12: " at the start of msg, or msg itself. */
static const char *without_module_where(const char *msg) {
  const char *prefix = EMBEDDED_SOURCE_PREFIX + 1; /* the chunk name without its '@' */
  if (strncmp(msg, prefix, strlen(prefix)) != 0) return msg;
  const char *p = strchr(msg, ':');
  if (!p || p[1] < '0' || p[1] > '9') return msg;
  for (p++; *p >= '0' && *p <= '9'; p++) {}
  return p[0] == ':' && p[1] == ' ' ? p + 2 : msg;
}

int lerr_raise(lua_State *L) {
  const char *msg = luaL_checkstring(L, 1);
  return lerr_user(L, "%s", without_module_where(msg));
}
