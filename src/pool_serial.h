/* pool_serial.h: the serial method: jobs run one at a time in the root's own Lua state, when
 * gathered, through the same runner the workers use (so the run function gets its own copy of
 * the job, as under every other method). */
#ifndef EVL_POOL_SERIAL_H
#define EVL_POOL_SERIAL_H

#include "executor.h"

/* Runs jobs with a->runner, one at a time; metadata.rank is this process's MPI rank. num_workers
 * is kept as given, as DeepHyper's SerialEvaluator keeps it: drivers submit that many at once.
 * Never fails. */
executor_t *pool_serial_new(const exec_args *a, char *err, size_t errlen);

#endif
