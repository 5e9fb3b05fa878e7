/* transport.h: the mpicomm method's MPI links (root <-> worker ranks) under farm.c and worker.c,
 * and the cached MPI world (rank, size) that threads may read without calling MPI. */
#ifndef EVL_TRANSPORT_H
#define EVL_TRANSPORT_H

#include <mpi.h>
#include <lua.h>

#include "executor.h"
#include "interrupt.h"

/* The MPI world as seen when the process started (cached: threads may ask without calling MPI). */
int transport_world_rank(void);
int transport_world_size(void);
void transport_init_world(void);

/* Collective over comm: every rank of comm calls it. On the root (rank `root` of comm) returns an
 * executor serving jobs with the first num_workers other ranks. On every other rank, serves jobs
 * with the run function (registry ref run_ref, called as run(job, kwargs)) in L until the root
 * shuts down, then returns NULL. A Lua error is raised on failure. */
executor_t *transport_create(lua_State *L, guard_t *g, MPI_Comm comm, int root, int num_workers,
                             const exec_config *cfg, int run_ref, int kwargs_ref);

#endif
