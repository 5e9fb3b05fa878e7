/* departures.c: end-of-script notices between ranks (see departures.h). */
#include "departures.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "sigint.h"

enum { END_TAG = 78, MAX_COMMS = 64 };

/* One communicator's creates: its key and how many were made on it. */
typedef struct tally {
  uint64_t key;
  uint32_t creates;
  uint32_t unused;
} tally;

/* A notice: a rank's tallies. `partial`: it made creates on more than MAX_COMMS communicators, and
 * the ones missing here count as unknown, never as zero. */
typedef struct notice {
  uint32_t n, partial;
  tally t[MAX_COMMS];
} notice;

static notice mine;
static notice *theirs;  /* by world rank; NULL until the first check or the end */
static char *received; /* by world rank */
static int nreceived;
static int world_size = -1;

static void init(void) {
  if (world_size >= 0) return;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  theirs = xmalloc((size_t)world_size * sizeof *theirs);
  received = xmalloc((size_t)world_size);
  memset(received, 0, (size_t)world_size);
}

/* comm's members as world ranks, in comm's order (*size of them; free it). */
static int *members(MPI_Comm comm, int *size) {
  MPI_Group g, world;
  MPI_Comm_group(comm, &g);
  MPI_Comm_group(MPI_COMM_WORLD, &world);
  MPI_Group_size(g, size);
  int *in = xmalloc(2 * (size_t)*size * sizeof *in), *out = in + *size;
  for (int i = 0; i < *size; i++) in[i] = i;
  MPI_Group_translate_ranks(g, *size, in, world, out);
  memmove(in, out, (size_t)*size * sizeof *in);
  MPI_Group_free(&g);
  MPI_Group_free(&world);
  return in;
}

/* The same key on every member: FNV-1a of the members' world ranks. */
static uint64_t key_of(const int *w, int size) {
  uint64_t h = 1469598103934665603ULL;
  for (int i = 0; i < size; i++) {
    h ^= (uint64_t)(uint32_t)w[i];
    h *= 1099511628211ULL;
  }
  return h;
}

/* The tally of key in n, or NULL. */
static const tally *find(const notice *n, uint64_t key) {
  for (uint32_t i = 0; i < n->n; i++)
    if (n->t[i].key == key) return &n->t[i];
  return NULL;
}

int departures_count_create(MPI_Comm comm) {
  int size, *w = members(comm, &size);
  uint64_t key = key_of(w, size);
  free(w);
  tally *t = (tally *)find(&mine, key);
  if (!t) {
    if (mine.n == MAX_COMMS) {
      mine.partial = 1;
      return 0; /* not counted: no one is told about it, so no one misjudges it */
    }
    t = &mine.t[mine.n++];
    t->key = key;
    t->creates = 0;
  }
  return (int)++t->creates;
}

/* Receive every notice that has arrived. */
static void receive_arrived(void) {
  init();
  for (;;) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, END_TAG, MPI_COMM_WORLD, &flag, &st);
    if (!flag) return;
    notice *n = &theirs[st.MPI_SOURCE];
    memset(n, 0, sizeof *n);
    MPI_Recv(n, (int)sizeof *n, MPI_BYTE, st.MPI_SOURCE, END_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    nreceived += !received[st.MPI_SOURCE];
    received[st.MPI_SOURCE] = 1;
  }
}

int departures_check(MPI_Comm comm, int nth, char *err, size_t errlen) {
  receive_arrived();
  if (nth <= 0 || !nreceived) return 0; /* the usual wait: no rank has ended yet */
  int size, *w = members(comm, &size), rc = 0;
  uint64_t key = key_of(w, size);
  for (int i = 0; i < size && !rc; i++) {
    if (w[i] < 0 || !received[w[i]]) continue;
    const tally *t = find(&theirs[w[i]], key);
    if (t ? (int)t->creates >= nth : theirs[w[i]].partial) continue;
    snprintf(err, errlen, "rank %d ended its script after %d evaluator.create call(s) on this communicator, and "
             "this is call %d: every rank of the communicator must make the same create calls (write `local ev = "
             "evaluator.create(...)` on every rank and `if ev then` around the driver, not `if rank == 0`)",
             w[i], t ? (int)t->creates : 0, nth);
    rc = -1;
  }
  free(w);
  return rc;
}

int departures_announce_and_wait(void) {
  init();
  int me;
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  if (world_size < 2) return 0;
  MPI_Request *req = xmalloc((size_t)world_size * sizeof *req);
  int bytes = (int)(offsetof(notice, t) + mine.n * sizeof(tally));
  for (int r = 0; r < world_size; r++) {
    req[r] = MPI_REQUEST_NULL;
    if (r != me) MPI_Isend(&mine, bytes, MPI_BYTE, r, END_TAG, MPI_COMM_WORLD, &req[r]);
  }
  /* Ranks still running may run for hours: nap, longer and longer (10 ms at most). */
  long nap = 20000;
  int sig = 0;
  for (;;) {
    receive_arrived();
    if (nreceived == world_size - 1 || (sig = sigint_pending())) break;
    struct timespec ts = {0, nap};
    nanosleep(&ts, NULL);
    if (nap < 10000000) nap *= 2;
  }
  if (!sig) MPI_Waitall(world_size, req, MPI_STATUSES_IGNORE);
  free(req);
  return sig;
}
