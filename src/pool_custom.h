/* pool_custom.h: custom backends (Evaluator:extend): each job runs the backend's execute as a
 * coroutine in the root's Lua state, resumed on every poll until it returns; it may yield while it
 * waits on something outside (a command, a file). Ids, timestamps (start = first resume),
 * job_timeout, budgets, cancel and close are the core's, as for every method. */
#ifndef EVL_POOL_CUSTOM_H
#define EVL_POOL_CUSTOM_H

#include "executor.h"

/* Jobs run a->runner's function (the backend's execute) as coroutines. Never fails. */
executor_t *pool_custom_new(const exec_args *a, char *err, size_t errlen);

#endif
