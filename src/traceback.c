/* traceback.c: tracebacks of chosen frames (see traceback.h). */
#include "traceback.h"

#include <lauxlib.h>

enum { TB_FIRST = 10, TB_LAST = 11 }; /* levels shown at each end of a deep stack, as lauxlib */

int tb_levels(lua_State *L) {
  lua_Debug ar;
  int li = 1, le = 1;
  while (lua_getstack(L, le, &ar)) li = le, le *= 2;
  while (li < le) {
    int m = (li + le) / 2;
    if (lua_getstack(L, m, &ar)) li = m + 1;
    else le = m;
  }
  return le;
}

static void add_frame(luaL_Buffer *b, lua_State *L, const lua_Debug *ar) {
  if (ar->currentline > 0) lua_pushfstring(L, "\n\t%s:%d: in ", ar->short_src, ar->currentline);
  else lua_pushfstring(L, "\n\t%s: in ", ar->short_src);
  luaL_addvalue(b);
  if (*ar->namewhat) lua_pushfstring(L, "%s '%s'", ar->namewhat, ar->name);
  else if (*ar->what == 'm') lua_pushliteral(L, "main chunk");
  else if (*ar->what != 'C') lua_pushfstring(L, "function <%s:%d>", ar->short_src, ar->linedefined);
  else lua_pushliteral(L, "?");
  luaL_addvalue(b);
  if (ar->istailcall) luaL_addstring(b, "\n\t(...tail calls...)");
}

void tb_push(lua_State *L, const char *msg, int first, int end, tb_keep keep) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, msg);
  luaL_addstring(&b, "\nstack traceback:");
  lua_Debug ar;
  for (int level = first; level < end && lua_getstack(L, level, &ar); level++) {
    if (level == first + TB_FIRST && end - level > TB_LAST + 1) {
      int skip = end - level - TB_LAST;
      lua_pushfstring(L, "\n\t...\t(skipping %d levels)", skip);
      luaL_addvalue(&b);
      level += skip - 1;
      continue;
    }
    if (!lua_getinfo(L, "Slnt", &ar)) continue;
    if (!keep || keep(L, level, &ar)) add_frame(&b, L, &ar);
  }
  luaL_pushresult(&b);
}
