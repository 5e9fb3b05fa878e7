/* subprocess.h: os.execute and io.popen for jobs that can be stopped. Each command runs in a process
 * group of its own, so stopping a job kills the command and everything it started. */
#ifndef EVL_SUBPROCESS_H
#define EVL_SUBPROCESS_H

#include <sys/types.h>
#include <lua.h>

/* Replace os.execute and io.popen in L (after the standard libraries are open). */
void subprocess_install(lua_State *L);

/* The process is a child subreaper (main.c): commands' orphans come back to it when they end.
 * Reap those zombies, and only those: a child some os.execute or io.popen still waits for is left
 * alone. Cheap when nothing ended (one flag read). */
void subprocess_reap_orphans(void);
/* Mark a child that its creator waits for itself (owned_now = 1), or no longer (0). */
void subprocess_own(pid_t pid, int owned_now);
void subprocess_init(void);
/* In a child just forked from a process with threads. */
void subprocess_after_fork(void);

#endif
