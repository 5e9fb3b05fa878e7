/* pgroups.h: the process groups one job's commands run in (os.execute, io.popen: each command a
 * group of its own), so that stopping the job kills them, grandchildren included. Written by the
 * job's thread, read by the ticker thread and by signal handlers: every field is atomic. */
#ifndef EVL_PGROUPS_H
#define EVL_PGROUPS_H

#include <stdatomic.h>
#include <sys/types.h>

#define PGROUPS_MAX 64

typedef struct pgroups {
  atomic_int n;                   /* slots in use at the front of pgid (some may be 0: freed) */
  _Atomic pid_t pgid[PGROUPS_MAX];
} pgroups_t;

/* Forget every group (a new job). */
void pgroups_clear(pgroups_t *p);
/* Record a group; -1 when PGROUPS_MAX commands run at once already. */
int pgroups_add(pgroups_t *p, pid_t pgid);
/* The command ended normally: its group is no longer the job's. */
void pgroups_remove(pgroups_t *p, pid_t pgid);
/* SIGKILL every recorded group (async-signal-safe). */
void pgroups_kill(pgroups_t *p);
/* Kill every group and reap what comes back, for up to `seconds`: no process, nor zombie, is
 * left (the process is a child subreaper, so the commands' own children come back here too). */
void pgroups_reap(pgroups_t *p, double seconds);

#endif
