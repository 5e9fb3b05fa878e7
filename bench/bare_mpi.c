/* bare_mpi.c: the start-up floor: an MPI program that only starts and stops MPI. */
#include <mpi.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Finalize();
  return 0;
}
