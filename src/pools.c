/* pools.c: placeholder for the thread and process methods until they land. */
#include "pools.h"

#include <stdio.h>

executor_t *pool_thread_new(runtime_t *rt, int num_workers, const exec_config *cfg, char *err, size_t errlen) {
  (void)rt, (void)num_workers, (void)cfg;
  snprintf(err, errlen, "the thread method is not implemented yet: use \"serial\" or \"mpicomm\"");
  return NULL;
}

executor_t *pool_process_new(lua_State *L, guard_t *g, int num_workers, const exec_config *cfg, int run_ref,
                             int kwargs_ref, char *err, size_t errlen) {
  (void)L, (void)g, (void)num_workers, (void)cfg, (void)run_ref, (void)kwargs_ref;
  snprintf(err, errlen, "the process method is not implemented yet: use \"serial\" or \"mpicomm\"");
  return NULL;
}
