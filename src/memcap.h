/* memcap.h: the allocator of every Lua state, counting its bytes, and refusing to grow past a cap
 * while one job runs (job_memory_limit). Used only by the state's own thread. */
#ifndef EVL_MEMCAP_H
#define EVL_MEMCAP_H

#include <stddef.h>

typedef struct memcap {
  size_t used;  /* bytes the state holds */
  size_t base;  /* what it held when the cap was armed */
  size_t limit; /* bytes a job may add, 0 = none */
  int hit;      /* a growth was refused since the cap was armed */
} memcap_t;

/* lua_Alloc with ud = the memcap_t. */
void *memcap_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* From now on, refuse growth past what is held now + limit (0 = no cap). */
void memcap_arm(memcap_t *m, size_t limit);
/* Lift the cap; returns whether it refused anything while armed. */
int memcap_disarm(memcap_t *m);

#endif
