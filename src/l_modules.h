/* l_modules.h: the C modules every Lua state of evaluator-lua can require (preloaded by runtime.c):
 * cjson, evaluator.core and the storages' bindings. Add a module by adding a row to l_modules.c. */
#ifndef EVL_L_MODULES_H
#define EVL_L_MODULES_H

#include <lua.h>

typedef struct l_module {
  const char *name; /* as given to require */
  lua_CFunction open;
} l_module;

extern const l_module l_modules[]; /* ends with a NULL name */

#endif
