/* watchdog.h: what outlives a rank that is killed. A process killed with -9 cleans nothing up, so
 * at start each evaluator-lua process forks a small watchdog that holds one end of a socket pair;
 * the process (and its process-pool children, which inherit the other end) record there the
 * process group of every command a job starts, and forget it when it ends. When every write end is
 * closed (the rank and its children are gone, however they ended), the watchdog kills the groups
 * still recorded and exits. Commands never inherit the socket (close-on-exec). */
#ifndef EVL_WATCHDOG_H
#define EVL_WATCHDOG_H

#include <sys/types.h>

/* Fork the watchdog (early in main, before MPI starts; and in each forked process-pool worker, whose
 * commands then die with it when it crashes). Returns 0, or -1 when it could not be started (the
 * run goes on without one). */
int watchdog_start(void);

/* A command's process group started / ended (async-signal-safe; no-ops without a watchdog). */
void watchdog_add(pid_t pgid);
void watchdog_remove(pid_t pgid);

#endif
