/* l_coroutine.h: coroutine.resume and coroutine.wrap that record the coroutine while it runs, so
 * that a stop (timeout, budget, Ctrl-C) reaches Lua code a job runs inside a coroutine. */
#ifndef EVL_L_COROUTINE_H
#define EVL_L_COROUTINE_H

#include <lua.h>

/* Replace coroutine.resume and coroutine.wrap in L (after the standard libraries are open). */
void lco_install(lua_State *L);

#endif
