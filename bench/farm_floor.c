/* farm_floor.c: the floor for evaluator-lua's no-op throughput: a raw MPI task farm.
 * Rank 0 hands out N tasks of 64 bytes, one message each way per task, and keeps DEPTH tasks in
 * flight at every worker (DEPTH = 1: a task per worker; 2: the next one already queued).
 * Usage: farm_floor N [DEPTH]   Prints: FLOOR jobs=N seconds=S jobs_per_s=R */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG 64
enum { TAG_TASK = 1, TAG_RESULT, TAG_STOP };

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  long n = argc > 1 ? atol(argv[1]) : 100000;
  int depth = argc > 2 ? atoi(argv[2]) : 2;
  char buf[MSG];
  memset(buf, 0, sizeof buf);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    int nw = size - 1;
    if (nw < 1) MPI_Abort(MPI_COMM_WORLD, 1);
    double t0 = MPI_Wtime();
    long sent = 0, done = 0;
    /* Fill every worker's pipeline. */
    for (int d = 0; d < depth; d++)
      for (int w = 1; w <= nw && sent < n; w++, sent++) {
        memcpy(buf, &sent, sizeof sent);
        MPI_Send(buf, MSG, MPI_BYTE, w, TAG_TASK, MPI_COMM_WORLD);
      }
    while (done < n) {
      MPI_Status st;
      MPI_Recv(buf, MSG, MPI_BYTE, MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &st);
      done++;
      if (sent < n) {
        memcpy(buf, &sent, sizeof sent);
        MPI_Send(buf, MSG, MPI_BYTE, st.MPI_SOURCE, TAG_TASK, MPI_COMM_WORLD);
        sent++;
      }
    }
    double t = MPI_Wtime() - t0;
    for (int w = 1; w <= nw; w++) MPI_Send(buf, MSG, MPI_BYTE, w, TAG_STOP, MPI_COMM_WORLD);
    printf("FLOOR jobs=%ld depth=%d seconds=%.6f jobs_per_s=%.1f\n", n, depth, t, n / t);
    fflush(stdout);
  } else {
    for (;;) {
      MPI_Status st;
      MPI_Recv(buf, MSG, MPI_BYTE, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
      if (st.MPI_TAG == TAG_STOP) break;
      /* The "objective": return x. */
      buf[8] ^= 1;
      MPI_Send(buf, MSG, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD);
    }
  }
  /* Peak RSS of a bare MPI rank, for reference beside evaluator-lua's. */
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long hwm = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) hwm = atol(line + 6);
  if (f) fclose(f);
  printf("RSS rank=%d hwm_kb=%ld\n", rank, hwm);
  fflush(stdout);
  MPI_Finalize();
  return 0;
}
