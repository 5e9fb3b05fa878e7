/* l_modules.c: the table of C modules preloaded into every Lua state (see l_modules.h). */
#include "l_modules.h"

#include "l_core.h"
#include "storage_redis.h"
#include "storage_sqlite.h"

extern int luaopen_cjson(lua_State *L);

const l_module l_modules[] = {
    {"cjson", luaopen_cjson},
    {"evaluator.core", luaopen_evaluator_core},
    {"evaluator.sqlite", luaopen_evaluator_sqlite},
    {"evaluator.redis", luaopen_evaluator_redis},
    {NULL, NULL},
};
