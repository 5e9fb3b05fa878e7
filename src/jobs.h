/* jobs.h: the root's job bookkeeping, Lua-free: a slot per job in flight (its number and submit
 * time), the next job number, and the counters. Slots are recycled through a free list, so memory
 * stays flat however many jobs a search runs. */
#ifndef EVL_JOBS_H
#define EVL_JOBS_H

#include <stdint.h>

typedef struct job_rec {
  uint64_t n;           /* the job number: the id is "<search_id>.<n>" */
  double t_submit;      /* monotonic */
  uint32_t next_free;   /* free-list link while unused */
  uint32_t batch;       /* the submit call that made it (jobs_t.batch then) */
  unsigned in_use : 1;
  unsigned withdrawn : 1; /* taken back (its submit failed): its outcome is dropped when it comes */
} job_rec;

typedef struct jobs {
  job_rec *recs;
  uint32_t cap, free_head;
  uint64_t next_n;        /* the next job number */
  uint64_t submitted, gathered, in_flight; /* in_flight leaves withdrawn jobs out */
  uint32_t batch;         /* counts submit calls: new jobs are stamped with it */
  double t0;              /* creation time (monotonic): timestamps count from here */
} jobs_t;

void jobs_init(jobs_t *J, double t0);
void jobs_free(jobs_t *J);
/* Take a slot for a new job submitted at `now`; its number is J->recs[slot].n. */
uint32_t jobs_add(jobs_t *J, double now);
/* Give the slot back once its job came back (it counts as gathered once handed to the user). */
void jobs_release(jobs_t *J, uint32_t slot);
/* Take back a job in flight whose submit failed: it no longer counts as submitted nor in flight;
 * its slot stays taken until its outcome comes back (then jobs_release). */
void jobs_withdraw(jobs_t *J, uint32_t slot);

#endif
