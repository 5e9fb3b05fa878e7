/* sigint.c: Ctrl-C and SIGTERM (see sigint.h). */
#include "sigint.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "guard.h"

/* Written in a signal handler, read by every thread: a lock-free atomic is safe for both. */
static atomic_int interrupted;

int sigint_pending(void) { return atomic_load_explicit(&interrupted, memory_order_relaxed); }

static void on_interrupt(int sig) {
  int saved = errno; /* the interrupted code may be about to read it */
  if (atomic_exchange(&interrupted, sig)) _exit(128 + sig); /* the second one ends at once */
  guard_t *g = guard_current();
  if (g) guard_stop_now(g);
  errno = saved;
}

void sigint_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_interrupt;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}
