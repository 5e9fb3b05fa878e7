/* storage_redis.h: the Redis server behind evaluator.RedisStorage, Lua module "evaluator.redis"
 * (hiredis): the same handle as evaluator.sqlite's (storage_sqlite.h), shared by the processes of
 * many machines. Writes of one call go in one pipelined MULTI/EXEC, so a call's jobs are stored
 * all together or not at all. */
#ifndef EVL_STORAGE_REDIS_H
#define EVL_STORAGE_REDIS_H

#include <lua.h>

/* The module table: open{host=, port=, password=, db=, timeout=} -> a handle with the methods of
 * evaluator.sqlite's handle (create_search, search_ids, has_search, job_ids, load, reserve, store,
 * release, waiting, after, unfinished, close), and token(). Errors name the server as host:port/db, never the
 * password. A connection that breaks is made again on the next call. */
int luaopen_evaluator_redis(lua_State *L);

#endif
