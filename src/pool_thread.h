/* pool_thread.h: the thread method: num_workers POSIX threads in this process, each with a Lua
 * state of its own that re-runs the script in worker mode and serves jobs at the matching create. */
#ifndef EVL_POOL_THREAD_H
#define EVL_POOL_THREAD_H

#include "executor.h"
#include "runtime.h"

/* Start the threads and wait for each to reach its create (the rt->creates-th). Returns NULL with
 * err set when a thread cannot load or run the script that far. */
executor_t *pool_thread_new(runtime_t *rt, int num_workers, const exec_config *cfg, char *err, size_t errlen);

/* Wait for worker threads still finishing a job (a pool closed without waiting). */
void pool_thread_wait_all(void);

#endif
