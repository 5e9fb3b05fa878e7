/* executor.c: what the executors share (see executor.h). */
#include "executor.h"

#include "clock.h"
#include "wire.h"

int exec_deliver_stopped(buf_t *slots, run_status why, exec_result_fn fn, void *ud) {
  if (!slots->len) return 0;
  buf_t outcome;
  buf_init(&outcome);
  outcome_encode_stopped(why, &outcome);
  double now = clock_now();
  const char *p = slots->data, *end = p + slots->len;
  uint32_t slot;
  int delivered = 0;
  while (wire_get_u32(&p, end, &slot) == 0) {
    exec_result r = {slot, now, now, -1, outcome.data, outcome.len};
    fn(ud, &r);
    delivered++;
  }
  buf_free(&outcome);
  slots->len = 0;
  return delivered;
}
