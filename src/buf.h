/* buf.h: a growable byte buffer, the one container every encoder writes into.
 * Allocation failure is fatal (xalloc): a runtime that cannot grow a buffer cannot go on. */
#ifndef EVL_BUF_H
#define EVL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct buf {
  char *data;
  size_t len, cap;
} buf_t;

/* Start empty; buf_free releases and returns to empty. */
void buf_init(buf_t *b);
void buf_free(buf_t *b);
/* Make room for n more bytes; returns a pointer to the first free byte. */
char *buf_reserve(buf_t *b, size_t n);
void buf_add(buf_t *b, const void *p, size_t n);
void buf_addc(buf_t *b, char c);
void buf_adds(buf_t *b, const char *s);
/* A buffer read from the front: *read bytes of it are consumed. Moves the rest to the front once the
 * consumed part is large and over half of it, so a queue that never empties stays bounded. */
void buf_compact(buf_t *b, size_t *read);
/* printf-style append. */
void buf_addf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* malloc/realloc that abort with a message on failure. */
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#endif
