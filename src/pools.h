/* pools.h: the thread and process methods: executors whose workers live in this process (threads,
 * each with its own Lua state) or in child processes forked from it. */
#ifndef EVL_POOLS_H
#define EVL_POOLS_H

#include <lua.h>

#include "executor.h"
#include "runtime.h"

/* num_workers threads, each re-running the script in worker mode (see pool_thread.c). */
executor_t *pool_thread_new(runtime_t *rt, int num_workers, const exec_config *cfg, char *err, size_t errlen);

/* num_workers child processes forked from this one: they inherit the run function as it is. */
executor_t *pool_process_new(lua_State *L, guard_t *g, int num_workers, const exec_config *cfg, int run_ref,
                             int kwargs_ref, char *err, size_t errlen);

#endif
