/* pool_process.h: the process method: num_workers child processes forked from this one, each
 * serving jobs with the run function it inherited. A child that dies fails its job ("F_CRASHED")
 * and is replaced. */
#ifndef EVL_POOL_PROCESS_H
#define EVL_POOL_PROCESS_H

#include <lua.h>

#include "executor.h"
#include "interrupt.h"

/* Fork the workers (run function and kwargs are registry refs in L, which they inherit).
 * Returns NULL with err set on failure. */
executor_t *pool_process_new(lua_State *L, guard_t *g, int num_workers, const exec_config *cfg, int run_ref,
                             int kwargs_ref, char *err, size_t errlen);

#endif
