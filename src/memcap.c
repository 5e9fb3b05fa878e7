/* memcap.c: the capped Lua allocator (see memcap.h). */
#include "memcap.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* AddressSanitizer sees every block only if every block is malloc's; ThreadSanitizer delivers a
 * signal (the ticker's, which stops a job) only inside a call it intercepts, such as malloc. */
#define POOLED 0
#else
#define POOLED 1
#endif

/* Whether a block of n bytes (n > 0) is a small one, and its size class. */
static int is_small(size_t n) { return POOLED && n <= MEMCAP_SMALL; }
static size_t size_class(size_t n) { return (n - 1) / MEMCAP_GRAIN; }

/* A small block of class c from a new slab; NULL when malloc has none. */
static void *carve(memcap_t *m, size_t c) {
  size_t n = (c + 1) * MEMCAP_GRAIN;
  if ((size_t)(m->fresh_end - m->fresh) < n) {
    char *slab = malloc(MEMCAP_SLAB); /* the rest of the old one is wasted: under 256 bytes */
    if (!slab) return NULL;
    *(void **)slab = m->slabs;
    m->slabs = slab;
    m->fresh = slab + MEMCAP_GRAIN; /* the link, keeping blocks MEMCAP_GRAIN-aligned */
    m->fresh_end = slab + MEMCAP_SLAB;
  }
  void *p = m->fresh;
  m->fresh += n;
  return p;
}

static void *small_get(memcap_t *m, size_t n) {
  size_t c = size_class(n);
  void *p = m->pool[c];
  if (!p) return carve(m, c);
  m->pool[c] = *(void **)p;
  return p;
}

static void block_free(memcap_t *m, void *p, size_t n) {
  if (!is_small(n)) {
    free(p);
    return;
  }
  size_t c = size_class(n);
  *(void **)p = m->pool[c];
  m->pool[c] = p;
}

/* The state is closed: every small block is back in a list, so the slabs can go. */
static void free_slabs(memcap_t *m) {
  while (m->slabs) {
    void *next = *(void **)m->slabs;
    free(m->slabs);
    m->slabs = next;
  }
  memset(m->pool, 0, sizeof m->pool);
  m->fresh = m->fresh_end = NULL;
}

/* A block of n bytes holding the first bytes of p (old of them, 0 = none); NULL (p kept) when
 * none can be had. */
static void *block_resize(memcap_t *m, void *p, size_t old, size_t n) {
  if (old && !is_small(old) && !is_small(n)) return realloc(p, n);
  if (old && is_small(old) && is_small(n) && size_class(old) == size_class(n)) return p;
  void *q = is_small(n) ? small_get(m, n) : malloc(n);
  if (!q || !old) return q;
  memcpy(q, p, old < n ? old : n);
  block_free(m, p, old);
  return q;
}

void *memcap_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  memcap_t *m = ud;
  size_t old = ptr ? osize : 0;
  assert(!ptr || old > 0); /* Lua tells the size of every block it frees or resizes */
  if (nsize == 0) {
    if (ptr) block_free(m, ptr, old);
    m->used -= old;
    if (m->used == 0) free_slabs(m);
    return NULL;
  }
  size_t after = m->used + (nsize - old);
  if (nsize > old && m->limit && after > m->base && after - m->base > m->limit) { /* no overflow */
    m->hit = 1;
    return NULL;
  }
  void *q = block_resize(m, ptr, old, nsize);
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
