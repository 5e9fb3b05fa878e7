/* sigint.h: Ctrl-C and SIGTERM. The first one marks the process interrupted and stops the job
 * running on the main thread (its guard); the evaluator then cancels and closes, and every rank
 * leaves with 128 + signal. The second ends the process at once. */
#ifndef EVL_SIGINT_H
#define EVL_SIGINT_H

/* Install the handlers (once, in main). */
void sigint_install(void);
/* The signal that interrupted the process (SIGINT, SIGTERM), or 0. Any thread. */
int sigint_pending(void);

#endif
