/* pgroups.c: a job's process groups (see pgroups.h). */
#include "pgroups.h"

#include <signal.h>
#include <sys/wait.h>

#include "clock.h"

void pgroups_clear(pgroups_t *p) {
  int n = atomic_load(&p->n);
  for (int i = 0; i < n; i++) atomic_store(&p->pgid[i], 0);
  atomic_store(&p->n, 0);
}

int pgroups_add(pgroups_t *p, pid_t pgid) {
  int n = atomic_load(&p->n);
  for (int i = 0; i < n; i++)
    if (atomic_load(&p->pgid[i]) == 0) {
      atomic_store(&p->pgid[i], pgid);
      return 0;
    }
  if (n == PGROUPS_MAX) return -1;
  atomic_store(&p->pgid[n], pgid);
  atomic_store(&p->n, n + 1);
  return 0;
}

void pgroups_remove(pgroups_t *p, pid_t pgid) {
  int n = atomic_load(&p->n);
  for (int i = 0; i < n; i++)
    if (atomic_load(&p->pgid[i]) == pgid) atomic_store(&p->pgid[i], 0);
}

void pgroups_kill(pgroups_t *p) {
  int n = atomic_load(&p->n);
  for (int i = 0; i < n; i++) {
    pid_t g = atomic_load(&p->pgid[i]);
    if (g > 0) kill(-g, SIGKILL);
  }
}

void pgroups_reap(pgroups_t *p, double seconds) {
  pgroups_kill(p);
  int n = atomic_load(&p->n);
  double until = clock_now() + seconds;
  while (clock_now() < until) {
    int alive = 0;
    for (int i = 0; i < n; i++) {
      pid_t g = atomic_load(&p->pgid[i]);
      if (g <= 0) continue;
      while (waitpid(-g, NULL, WNOHANG) > 0) {}
      if (kill(-g, 0) == 0) alive = 1;
    }
    if (!alive) break;
    clock_sleep(0.001);
  }
}
