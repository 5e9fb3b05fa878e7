/* ticker.c: the ticker thread (see ticker.h). Its signal is SIGRTMIN+3: a thread in a blocking C
 * call may see EINTR from it while a long job runs (SA_RESTART restarts most calls). */
#include "ticker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "clock.h"
#include "guard.h"

#define TICK 0.02 /* seconds: well inside the 0.5 s a budget may overrun */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static guard_t *guards;
static int started;

static int tick_signal(void) { return SIGRTMIN + 3; }

static void on_tick(int sig) {
  (void)sig;
  int saved = errno; /* lua_sethook does not set it, but keep the interrupted code's value whatever */
  guard_arm(guard_current());
  errno = saved;
}

static void *ticker_main(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  for (;;) {
    clock_sleep(TICK);
    double now = clock_now();
    pthread_mutex_lock(&lock);
    for (guard_t *g = guards; g; g = g->next)
      if (guard_tick(g, now)) pthread_kill(g->owner, tick_signal());
    pthread_mutex_unlock(&lock);
  }
  return NULL;
}

/* With lock held. */
static void start(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_tick;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(tick_signal(), &sa, NULL);
  pthread_t t;
  if (pthread_create(&t, NULL, ticker_main, NULL) == 0) {
    pthread_detach(t);
    started = 1;
  }
}

void ticker_add(guard_t *g) {
  pthread_mutex_lock(&lock);
  if (!started) start();
  g->next = guards;
  guards = g;
  pthread_mutex_unlock(&lock);
}

void ticker_remove(guard_t *g) {
  pthread_mutex_lock(&lock);
  for (guard_t **p = &guards; *p; p = &(*p)->next)
    if (*p == g) {
      *p = g->next;
      break;
    }
  pthread_mutex_unlock(&lock);
}

void ticker_after_fork(void) {
  pthread_mutex_init(&lock, NULL);
  guards = NULL;
  started = 0;
}
