/* worker.h: the serving loop every worker runs (an MPI rank, a thread, a child process): greet the
 * root, run the jobs it sends in order, send results back in batches, obey cancel and stop. */
#ifndef EVL_WORKER_H
#define EVL_WORKER_H

#include "link.h"
#include "runner.h"

/* Serve until the root says stop, running each job with r. Returns 0, or -1 with l->err set
 * when the link failed or the process was interrupted. */
int worker_serve(runner_t *r, wlink_t *l);

#endif
