/* ticker.h: the thread that looks at every running job each TICK (20 ms) and signals the thread
 * of one that must stop or poll (guard_tick decides); the signal's handler arms that thread's Lua
 * hook. One ticker per process, started with the first guard. */
#ifndef EVL_TICKER_H
#define EVL_TICKER_H

struct guard;

/* Register g (its owner is the calling thread) / unregister it. */
void ticker_add(struct guard *g);
void ticker_remove(struct guard *g);
/* In a child just forked: the ticker thread did not come along; start with no guards. */
void ticker_after_fork(void);

#endif
