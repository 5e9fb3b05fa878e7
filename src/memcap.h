/* memcap.h: the allocator of every Lua state, counting its bytes, and refusing to grow past a cap
 * while one job runs (job_memory_limit). Used only by the state's own thread. */
#ifndef EVL_MEMCAP_H
#define EVL_MEMCAP_H

#include <stddef.h>

/* Blocks of up to MEMCAP_SMALL bytes (a job's tables, strings, closures) are carved from slabs of
 * MEMCAP_SLAB bytes and kept, once freed, in a free list per size class (MEMCAP_GRAIN bytes apart):
 * each costs a few instructions instead of malloc's and free's hundreds, a fifth of a no-op job's
 * cost. Freed small blocks are reused by the same state, not returned to malloc; every slab is freed
 * when the state is closed. Under AddressSanitizer and ThreadSanitizer every block is malloc's. */
#define MEMCAP_GRAIN 16
#define MEMCAP_SMALL 256
#define MEMCAP_SLAB 65536

typedef struct memcap {
  size_t used;  /* bytes the state holds */
  size_t base;  /* what it held when the cap was armed */
  size_t limit; /* bytes a job may add, 0 = none */
  int hit;      /* a growth was refused since the cap was armed */
  void *pool[MEMCAP_SMALL / MEMCAP_GRAIN]; /* free small blocks by size class, linked through their first word */
  void *slabs;  /* the slabs, linked through their first word */
  char *fresh;  /* the current slab's unused part: [fresh, fresh_end) */
  char *fresh_end;
} memcap_t;

/* lua_Alloc with ud = the memcap_t (zeroed before the state is made). When the state is closed
 * (it holds nothing), the slabs are freed. */
void *memcap_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* From now on, refuse growth past what is held now + limit (0 = no cap). */
void memcap_arm(memcap_t *m, size_t limit);
/* Lift the cap; returns whether it refused anything while armed. */
int memcap_disarm(memcap_t *m);

#endif
