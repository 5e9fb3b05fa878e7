/* jobq.c: a queue of encoded jobs (see jobq.h). */
#include "jobq.h"

#include <stdlib.h>

#include "wire.h"

void jobq_init(jobq_t *q) {
  buf_init(&q->data);
  q->read = 0;
  q->count = 0;
}

void jobq_free(jobq_t *q) {
  buf_free(&q->data);
  q->read = 0;
  q->count = 0;
}

/* Before the queue grows: what was taken from its front is dropped. */
static void compact(jobq_t *q) {
  if (q->count == 0) q->data.len = q->read = 0;
  else buf_compact(&q->data, &q->read);
}

void jobq_push(jobq_t *q, uint32_t slot, uint64_t n, const char *params, size_t len) {
  compact(q);
  wire_put_u32(&q->data, slot);
  wire_put_u64(&q->data, n);
  wire_put_bytes(&q->data, params, len);
  q->count++;
}

void jobq_push_encoded(jobq_t *q, const char *p, size_t len, uint32_t count) {
  compact(q);
  buf_add(&q->data, p, len);
  q->count += count;
}

int jobq_pop(jobq_t *q, uint32_t *slot, uint64_t *n, const char **params, size_t *len) {
  if (q->count == 0) return -1;
  const char *p = q->data.data + q->read, *end = q->data.data + q->data.len;
  if (wire_get_u32(&p, end, slot) || wire_get_u64(&p, end, n) || wire_get_bytes(&p, end, params, len)) {
    q->count = 0;
    q->data.len = q->read = 0;
    return -1;
  }
  q->read = (size_t)(p - q->data.data);
  q->count--;
  return 0;
}

int jobq_peek_slot(const jobq_t *q, uint32_t *slot) {
  const char *p = q->data.data + q->read;
  return q->count ? wire_get_u32(&p, q->data.data + q->data.len, slot) : -1;
}

void jobq_take_slots(jobq_t *q, buf_t *slots) {
  uint32_t slot;
  uint64_t n;
  const char *params;
  size_t len;
  while (jobq_pop(q, &slot, &n, &params, &len) == 0) wire_put_u32(slots, slot);
}

static int slot_order(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

void jobq_sort_slots(uint32_t *slots, size_t n) { qsort(slots, n, sizeof *slots, slot_order); }

int jobq_slot_listed(uint32_t slot, const uint32_t *listed, size_t n) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (listed[mid] == slot) return 1;
    if (listed[mid] < slot) lo = mid + 1;
    else hi = mid;
  }
  return 0;
}

uint32_t jobq_take_listed(jobq_t *q, const uint32_t *listed, size_t n, buf_t *slots) {
  jobq_t kept;
  jobq_init(&kept);
  uint32_t slot, taken = 0;
  uint64_t num;
  const char *params;
  size_t len;
  while (jobq_pop(q, &slot, &num, &params, &len) == 0) {
    if (jobq_slot_listed(slot, listed, n)) {
      wire_put_u32(slots, slot);
      taken++;
    } else {
      jobq_push(&kept, slot, num, params, len);
    }
  }
  jobq_free(q);
  *q = kept;
  return taken;
}
