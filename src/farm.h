/* farm.h: the root's side of every worker pool: a queue of encoded jobs, hand-out to the least
 * busy workers with an adaptive prefetch depth, results back to the bookkeeping, cancel and stop. */
#ifndef EVL_FARM_H
#define EVL_FARM_H

#include "executor.h"
#include "link.h"

/* An executor over link (which it then owns). Greets every worker with cfg and waits for all of
 * them to answer (measuring each one's clock offset). Returns NULL with err set on failure. */
executor_t *farm_new(link_t *link, const exec_config *cfg, char *err, size_t errlen);

#endif
