/* outcome.c: how a job ended (see outcome.h). */
#include "outcome.h"

#include <string.h>

#include "wire.h"

const char *outcome_objective(run_status st) {
  switch (st) {
    case RUN_TIMEOUT: return "F_TIMEOUT";
    case RUN_CANCELLED: return "F_CANCELLED";
    case RUN_MEMORY: return "F_MEMORY";
    case RUN_CRASHED: return "F_CRASHED";
    default: return "F";
  }
}

const char *outcome_job_status(run_status st) {
  return st == RUN_TIMEOUT || st == RUN_CANCELLED ? "CANCELLED" : "DONE";
}

const char *outcome_stop_message(run_status st) {
  switch (st) {
    case RUN_TIMEOUT: return "job stopped: it ran past job_timeout";
    case RUN_MEMORY: return "job stopped: it went over job_memory_limit";
    default: return "job cancelled";
  }
}

void outcome_encode_message(run_status st, const char *msg, size_t n, buf_t *out) {
  buf_addc(out, (char)st);
  wire_put_bytes(out, msg, n);
}

void outcome_encode_stopped(run_status st, buf_t *out) {
  const char *msg = outcome_stop_message(st);
  outcome_encode_message(st, msg, strlen(msg), out);
}

int outcome_split(const char *p, size_t len, run_status *st, const char **body, size_t *body_len) {
  if (len < 1 || (unsigned char)p[0] > RUN_CRASHED) return -1;
  *st = (run_status)p[0];
  *body = p + 1;
  *body_len = len - 1;
  return 0;
}
