/* traceback.h: tracebacks that show some frames only (the user's, or a run function's), bounded as
 * luaL_traceback bounds them; luaL_traceback itself can only show every frame. */
#ifndef EVL_TRACEBACK_H
#define EVL_TRACEBACK_H

#include <lua.h>

/* The first level that is not on L's stack (levels 1 .. tb_levels(L) - 1 are), found by bisection
 * as luaL_traceback finds it: lua_getstack(L, n) walks n frames. */
int tb_levels(lua_State *L);

/* Whether to show the frame at `level`, whose lua_getinfo "Slnt" is in ar. */
typedef int (*tb_keep)(lua_State *L, int level, const lua_Debug *ar);

/* Push msg, "\nstack traceback:" and the frames at levels first .. end - 1 that keep accepts (all
 * when keep is NULL). A deep stack shows its first 10 and last 11 levels only, so the work is
 * bounded (a message handler cannot be stopped). */
void tb_push(lua_State *L, const char *msg, int first, int end, tb_keep keep);

#endif
