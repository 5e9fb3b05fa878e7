/* pool_process.h: the process method: num_workers child processes forked from this one, each
 * serving jobs with the run function it inherited. A child that dies fails its job ("F_CRASHED")
 * and is replaced. */
#ifndef EVL_POOL_PROCESS_H
#define EVL_POOL_PROCESS_H

#include "executor.h"

/* Fork the workers (they inherit a->runner: the run function and its upvalues as they are now).
 * Returns NULL with err set on failure. */
executor_t *pool_process_new(const exec_args *a, char *err, size_t errlen);

#endif
