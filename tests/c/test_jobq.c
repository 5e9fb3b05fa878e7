/* test_jobq.c: unit tests of the queue of encoded jobs (src/jobq.c): order kept through pushes and
 * pops, and taking out listed slots (what a failed submit withdraws) wherever they sit. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "jobq.h"

/* Push jobs with slots[0..n), job number 100 + slot, params "p<slot>". */
static void push_all(jobq_t *q, const uint32_t *slots, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char p[16];
    int len = snprintf(p, sizeof p, "p%u", (unsigned)slots[i]);
    jobq_push(q, slots[i], 100 + slots[i], p, (size_t)len);
  }
}

/* Pop everything; checks each job is intact and its slot is want[i]. */
static void expect_queue(jobq_t *q, const uint32_t *want, size_t n) {
  CHECK(q->count == n, "count %u, want %zu", (unsigned)q->count, n);
  for (size_t i = 0; i < n; i++) {
    uint32_t slot;
    uint64_t num;
    const char *params;
    size_t len;
    char p[16];
    if (jobq_pop(q, &slot, &num, &params, &len)) {
      CHECK(0, "job %zu missing", i);
      return;
    }
    int plen = snprintf(p, sizeof p, "p%u", (unsigned)slot);
    CHECK(slot == want[i], "job %zu: slot %u, want %u", i, (unsigned)slot, (unsigned)want[i]);
    CHECK(num == 100 + slot && len == (size_t)plen && memcmp(params, p, len) == 0, "job %zu damaged", i);
  }
  uint32_t slot;
  CHECK(jobq_peek_slot(q, &slot) == -1, "the queue is not empty after %zu jobs", n);
}

static void take_listed(void) {
  uint32_t slots[] = {7, 3, 9, 1, 4, 12};
  uint32_t listed[] = {12, 3, 9, 40};
  jobq_sort_slots(listed, 4);
  CHECK(listed[0] == 3 && listed[1] == 9 && listed[2] == 12 && listed[3] == 40, "sorted %u %u %u %u",
        (unsigned)listed[0], (unsigned)listed[1], (unsigned)listed[2], (unsigned)listed[3]);
  CHECK(jobq_slot_listed(9, listed, 4) && jobq_slot_listed(40, listed, 4), "listed slots found");
  CHECK(!jobq_slot_listed(4, listed, 4) && !jobq_slot_listed(0, listed, 0), "unlisted slots not found");

  jobq_t q;
  jobq_init(&q);
  push_all(&q, slots, 6);
  uint32_t slot;
  uint64_t num;
  const char *params;
  size_t len;
  CHECK(jobq_pop(&q, &slot, &num, &params, &len) == 0 && slot == 7, "the oldest first");
  buf_t taken;
  buf_init(&taken);
  CHECK(jobq_take_listed(&q, listed, 4, &taken) == 3, "three listed jobs were queued");
  CHECK(taken.len == 3 * sizeof(uint32_t), "their slots are appended");
  uint32_t got[3];
  memcpy(got, taken.data, sizeof got);
  CHECK(got[0] == 3 && got[1] == 9 && got[2] == 12, "in queue order: %u %u %u", (unsigned)got[0],
        (unsigned)got[1], (unsigned)got[2]);
  CHECK(jobq_peek_slot(&q, &slot) == 0 && slot == 1, "the oldest left is 1, got %u", (unsigned)slot);
  uint32_t more[] = {20, 21};
  push_all(&q, more, 2);
  uint32_t want[] = {1, 4, 20, 21};
  expect_queue(&q, want, 4);

  CHECK(jobq_take_listed(&q, listed, 4, &taken) == 0, "nothing to take from an empty queue");
  buf_free(&taken);
  jobq_free(&q);
}

int main(void) {
  take_listed();
  return check_summary("test_jobq");
}
