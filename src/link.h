/* link.h: how the root and its workers exchange messages, whatever carries them (MPI, pipes,
 * shared memory). farm.c (root) and worker.c speak the protocol below over these two interfaces. */
#ifndef EVL_LINK_H
#define EVL_LINK_H

#include <stdint.h>

#include "buf.h"

/* This machine's name, hashed: HELLO carries it, so that workers on the root's machine (one
 * monotonic clock) need no clock offset. */
uint64_t link_host_id(void);

/* Message tags. Layouts (host byte order, fields of wire.h):
 *  HELLO   root->worker  f64 root_now, f64 job_timeout, u64 mem_limit, bytes search_id
 *          worker->root  f64 root_now (echoed), f64 worker_now, u64 host_id
 *  JOBS    root->worker  u32 count, f64 budget (the deadline on the worker's clock; 0: none),
 *                        count x { u32 slot, u64 n, value params }
 *  CTRL    root->worker  u32 op, f64 arg (CTRL_BUDGET: the budget, as in JOBS); CTRL_WITHDRAW
 *                        then u32 count, count x u32 slot (ascending): those jobs are taken back
 *  RESULTS worker->root  u32 count, count x { u32 slot, f64 t_start, f64 t_end, bytes outcome }
 *                        (t_start OUTCOME_NEVER_STARTED: cancelled before it began)
 *  DEAD    (from a root link only) the worker is gone; msg holds a reason */
enum { TAG_HELLO = 1, TAG_JOBS, TAG_CTRL, TAG_RESULTS, TAG_DEAD };
enum { CTRL_STOP = 1, CTRL_CANCEL_QUEUED, CTRL_CANCEL_ALL, CTRL_BUDGET, CTRL_WITHDRAW };

typedef struct link link_t;
typedef struct link_ops {
  /* Send to worker w (0-based) without waiting for it to receive; msg is consumed (left empty). */
  int (*send)(link_t *l, int w, int tag, buf_t *msg);
  /* Wait up to `wait` seconds for a message from any worker (wait may be 0). Returns 1 with *w,
   * *tag and msg set, 0 when nothing came, -1 on failure (message in l->err). */
  int (*recv)(link_t *l, double wait, int *w, int *tag, buf_t *msg);
  /* The rank or index the user sees in metadata.rank for worker w. */
  int (*rank_of)(link_t *l, int w);
  /* Release everything (after the workers were told to stop). */
  void (*destroy)(link_t *l);
} link_ops;

struct link {
  const link_ops *ops;
  int nworkers;
  int max_depth; /* jobs one worker may hold at once, 0 = as many as the farm likes */
  int respawns;  /* a dead worker is replaced (TAG_DEAD): the farm keeps what it held, to requeue */
  double expect_at; /* set by the farm: when the next result is likely (monotonic), 0 = unknown */
  char err[256];
};

typedef struct wlink wlink_t;
typedef struct wlink_ops {
  int (*send)(wlink_t *l, int tag, buf_t *msg);
  /* As link_ops.recv, from the root; wait < 0 waits for ever. */
  int (*recv)(wlink_t *l, double wait, int *tag, buf_t *msg);
} wlink_ops;

struct wlink {
  const wlink_ops *ops;
  int rank; /* as reported in metadata.rank */
  int flush_each; /* send every result before the next job: a worker that may die mid-job (a
                   * process) then never takes finished results with it, and the root knows that
                   * the oldest job it has no result for is the one that was running */
  char err[256];
};

#endif
