/* pool_mpi.h: the mpicomm method: the root hands jobs to the other ranks of a communicator, which
 * serve them inside evaluator.create until the root closes. Also the cached MPI world (rank, size)
 * that threads may read without calling MPI. */
#ifndef EVL_POOL_MPI_H
#define EVL_POOL_MPI_H

#include "executor.h"

/* The MPI world as seen when the process started (cached: threads may ask without calling MPI). */
void pool_mpi_init_world(void);
int pool_mpi_world_rank(void);
int pool_mpi_world_size(void);

/* Collective over a->comm: every rank of it calls it. On the root (rank a->root of comm) returns an
 * executor serving jobs with the first num_workers other ranks. On every other rank, serves jobs
 * with a->runner until the root shuts down, then returns NULL with err empty (or err set when the
 * link failed). */
executor_t *pool_mpi_new(const exec_args *a, char *err, size_t errlen);

#endif
