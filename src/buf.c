/* buf.c: the growable byte buffer and the allocation wrappers that never return NULL. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "evaluator-lua: out of memory (%zu bytes)\n", n);
    abort();
  }
  return p;
}

void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fprintf(stderr, "evaluator-lua: out of memory (%zu bytes)\n", n);
    abort();
  }
  return q;
}

char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(xmalloc(n), s, n);
}

void buf_init(buf_t *b) { b->data = NULL, b->len = b->cap = 0; }

void buf_free(buf_t *b) {
  free(b->data);
  buf_init(b);
}

char *buf_reserve(buf_t *b, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n) cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
  }
  return b->data + b->len;
}

void buf_add(buf_t *b, const void *p, size_t n) {
  if (n == 0) return;
  memcpy(buf_reserve(b, n), p, n);
  b->len += n;
}

void buf_addc(buf_t *b, char c) {
  *buf_reserve(b, 1) = c;
  b->len++;
}

void buf_adds(buf_t *b, const char *s) { buf_add(b, s, strlen(s)); }

void buf_compact(buf_t *b, size_t *read) {
  if (*read < 65536 || *read < b->len / 2) return;
  memmove(b->data, b->data + *read, b->len - *read);
  b->len -= *read;
  *read = 0;
}

void buf_addf(buf_t *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    buf_add(b, small, (size_t)n);
    return;
  }
  char *p = buf_reserve(b, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}
