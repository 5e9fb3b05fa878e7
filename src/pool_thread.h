/* pool_thread.h: the thread method: num_workers POSIX threads in this process, each with a Lua
 * state of its own that re-runs the script in worker mode and serves jobs at the matching create. */
#ifndef EVL_POOL_THREAD_H
#define EVL_POOL_THREAD_H

#include "executor.h"
#include "runner.h"
#include "runtime.h"

/* Start the threads and wait for each to reach its create (the a->rt->creates-th). Returns NULL
 * with err set when a thread cannot load or run the script that far. */
executor_t *pool_thread_new(const exec_args *a, char *err, size_t errlen);

/* In a worker thread re-running the script (rt->worker_link set), at each evaluator.create: the
 * create the root made the pool at serves jobs with r until the pool closes (returns 1: unwind the
 * script); the others do nothing (returns 0: create gives nil). Returns -1 with err set when the
 * serving create is not a thread pool's (is_thread_pool = 0) or the link failed. */
int pool_thread_serve(runtime_t *rt, runner_t *r, int is_thread_pool, char *err, size_t errlen);

/* Wait for worker threads still finishing a job (a pool closed without waiting). */
void pool_thread_wait_all(void);

#endif
