/* worker.h: the serving loop every worker runs (an MPI rank, a thread, a child process): greet the
 * root, run the jobs it sends in order, send results back in batches, obey cancel and stop. */
#ifndef EVL_WORKER_H
#define EVL_WORKER_H

#include <lua.h>

#include "interrupt.h"
#include "link.h"

/* Serve until the root says stop. The run function and its kwargs are registry refs in L.
 * Returns 0, or -1 with l->err set when the link failed or the process was interrupted. */
int worker_serve(lua_State *L, guard_t *g, wlink_t *l, int run_ref, int kwargs_ref);

#endif
