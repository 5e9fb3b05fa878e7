/* clock.h: the runtime's one clock. Deadlines, budgets and job timestamps are all monotonic
 * seconds from it, so that they compare across threads and ranks of one machine. */
#ifndef EVL_CLOCK_H
#define EVL_CLOCK_H

/* Monotonic seconds (CLOCK_MONOTONIC). */
double clock_now(void);

/* Sleep for `seconds` (nothing for seconds <= 0). Returns early on a signal. */
void clock_sleep(double seconds);

#endif
