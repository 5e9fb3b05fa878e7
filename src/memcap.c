/* memcap.c: the capped Lua allocator (see memcap.h). */
#include "memcap.h"

#include <stdlib.h>

void *memcap_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  memcap_t *m = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    m->used -= old;
    return NULL;
  }
  size_t after = m->used + (nsize - old);
  if (nsize > old && m->limit && after > m->base && after - m->base > m->limit) { /* no overflow */
    m->hit = 1;
    return NULL;
  }
  void *q = realloc(ptr, nsize);
  if (q) m->used = m->used - old + nsize;
  return q;
}

void memcap_arm(memcap_t *m, size_t limit) {
  m->base = m->used;
  m->limit = limit;
  m->hit = 0;
}

int memcap_disarm(memcap_t *m) {
  m->limit = 0;
  int hit = m->hit;
  m->hit = 0;
  return hit;
}
