/* jobs.c: the root's job bookkeeping (see jobs.h). */
#include "jobs.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void jobs_init(jobs_t *J, double t0) {
  memset(J, 0, sizeof *J);
  J->free_head = UINT32_MAX;
  J->t0 = t0;
}

void jobs_free(jobs_t *J) {
  free(J->recs);
  J->recs = NULL;
  J->cap = 0;
}

uint32_t jobs_add(jobs_t *J, double now) {
  if (J->free_head == UINT32_MAX) {
    uint32_t old = J->cap, cap = old ? old * 2 : 256;
    J->recs = xrealloc(J->recs, cap * sizeof *J->recs);
    for (uint32_t i = cap; i-- > old;) {
      J->recs[i].next_free = J->free_head;
      J->recs[i].in_use = 0;
      J->free_head = i;
    }
    J->cap = cap;
  }
  uint32_t slot = J->free_head;
  job_rec *r = &J->recs[slot];
  J->free_head = r->next_free;
  r->n = J->next_n++;
  r->t_submit = now;
  r->batch = J->batch;
  r->in_use = 1;
  r->withdrawn = 0;
  J->submitted++;
  J->in_flight++;
  return slot;
}

void jobs_release(jobs_t *J, uint32_t slot) {
  job_rec *r = &J->recs[slot];
  assert(slot < J->cap && r->in_use);
  r->in_use = 0;
  r->next_free = J->free_head;
  J->free_head = slot;
  if (!r->withdrawn) J->in_flight--;
}

void jobs_withdraw(jobs_t *J, uint32_t slot) {
  job_rec *r = &J->recs[slot];
  assert(slot < J->cap && r->in_use && !r->withdrawn);
  r->withdrawn = 1;
  J->in_flight--;
  J->submitted--;
}
