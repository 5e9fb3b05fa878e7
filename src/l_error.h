/* l_error.h: the one way an error of the evaluator API is placed: at the user's line, the first
 * Lua frame outside the evaluator's own modules (the API is called through them, and the user
 * wants to see which of their calls failed). C raises with lerr_user; the Lua modules with
 * core.raise (l_error_push_lib). */
#ifndef EVL_L_ERROR_H
#define EVL_L_ERROR_H

#include <lua.h>

/* Raise the formatted message (lua_pushfstring's format) at the user's line. Does not return. */
int lerr_user(lua_State *L, const char *fmt, ...);

/* core.raise(message): raise message at the user's line. A message that starts with the location
 * of an evaluator module's own line ("lua/evaluator/x.lua:12: ") has it replaced. */
int lerr_raise(lua_State *L);

#endif
