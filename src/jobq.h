/* jobq.h: a queue of encoded jobs, { u32 slot, u64 n, bytes params } each: the root's queue of
 * jobs not yet handed out (farm, serial) and a worker's queue of jobs it holds. The same layout is
 * what a JOBS message carries, so a worker appends message bodies as they are. */
#ifndef EVL_JOBQ_H
#define EVL_JOBQ_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct jobq {
  buf_t data;
  size_t read;    /* bytes of data already taken */
  uint32_t count; /* jobs in it */
} jobq_t;

void jobq_init(jobq_t *q);
void jobq_free(jobq_t *q);
/* Append one job (params copied). */
void jobq_push(jobq_t *q, uint32_t slot, uint64_t n, const char *params, size_t len);
/* Append `count` jobs already encoded in this layout (a JOBS message's body). */
void jobq_push_encoded(jobq_t *q, const char *p, size_t len, uint32_t count);
/* Take the oldest job; params points into the queue, valid until the next push. Returns -1 when
 * the queue is empty, or malformed (then it is emptied: its own encoder cannot make one). */
int jobq_pop(jobq_t *q, uint32_t *slot, uint64_t *n, const char **params, size_t *len);

/* The slot of the oldest job, without taking it; -1 when the queue is empty. */
int jobq_peek_slot(const jobq_t *q, uint32_t *slot);

/* Empty the queue, appending each job's slot to slots (u32 each): jobs that will never run. */
void jobq_take_slots(jobq_t *q, buf_t *slots);
/* Take out the jobs whose slot is one of listed[0..n) (sorted ascending), appending their slots
 * to slots; the others keep their order. Returns how many were taken. */
uint32_t jobq_take_listed(jobq_t *q, const uint32_t *listed, size_t n, buf_t *slots);
/* Sort slots ascending, as the two functions around this one want them. */
void jobq_sort_slots(uint32_t *slots, size_t n);
/* Whether slot is one of listed[0..n) (sorted ascending). */
int jobq_slot_listed(uint32_t slot, const uint32_t *listed, size_t n);

#endif
