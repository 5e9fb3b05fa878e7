/* outcome.h: how a job ended, in one place: the status codes, what each means to the user
 * (objective, job status, message), and the bytes an outcome travels as between a worker and the
 * root. Layout: one status byte, then for RUN_OK the output (a wire.h value), else the message
 * (wire.h bytes). */
#ifndef EVL_OUTCOME_H
#define EVL_OUTCOME_H

#include <stddef.h>

#include "buf.h"

typedef enum run_status {
  RUN_OK = 0,     /* returned a value */
  RUN_ERROR,      /* raised a Lua error (or returned no valid result): objective "F", metadata.error */
  RUN_TIMEOUT,    /* over job_timeout: CANCELLED, "F_TIMEOUT" */
  RUN_CANCELLED,  /* budget ran out, closed, interrupted: CANCELLED, "F_CANCELLED" */
  RUN_MEMORY,     /* over job_memory_limit: "F_MEMORY" */
  RUN_CRASHED     /* the worker process died: "F_CRASHED" */
} run_status;

/* The start time of a job that never started (cancelled while queued, or its budget gone before
 * it began): it is reported with metadata.rank -1. No monotonic clock reads 0. */
#define OUTCOME_NEVER_STARTED 0.0

/* The objective a job that did not return a valid result gets: "F", "F_TIMEOUT", ... */
const char *outcome_objective(run_status st);
/* The job's status as the user sees it: "CANCELLED" (stopped: timeout, budget, close) or "DONE". */
const char *outcome_job_status(run_status st);
/* Why a job stopped by the runtime stopped ("job cancelled", "job stopped: it ran past job_timeout"). */
const char *outcome_stop_message(run_status st);

/* Append the outcome of a job that failed (st != RUN_OK) with message msg[0..n). */
void outcome_encode_message(run_status st, const char *msg, size_t n, buf_t *out);
/* Append the outcome of a job stopped with st, with outcome_stop_message(st). */
void outcome_encode_stopped(run_status st, buf_t *out);

/* Split an outcome: its status and, past the status byte, its body (the output value, or the
 * message as wire bytes). Returns -1 when it is empty or its status is unknown. */
int outcome_split(const char *p, size_t len, run_status *st, const char **body, size_t *body_len);

#endif
