/* departures.h: how a rank waiting at a collective evaluator.create learns that another rank will
 * never come. `create(..., "mpicomm")` waits for every rank of its communicator; a script that
 * calls it under `if rank == 0` would leave the others waiting for ever. So each rank counts its
 * creates per communicator and, when its script ends, sends every other rank a notice with those
 * counts (MPI_COMM_WORLD, a tag no one else receives on). A rank waiting at its k-th create on a
 * communicator that finds a notice from a member with fewer than k creates there knows it waits in
 * vain. Every notice is received: each rank, at its own end, receives the others' before
 * MPI_Finalize (a send no one receives is undefined in MPI, and over TCP ended in SIGPIPE).
 * Communicators are told apart by their members' world ranks, in order. Root thread only. */
#ifndef EVL_DEPARTURES_H
#define EVL_DEPARTURES_H

#include <stddef.h>

#include <mpi.h>

/* Count one more create on comm; returns its number there (1 for the first). */
int departures_count_create(MPI_Comm comm);

/* Read the notices that arrived. Returns -1, with err saying who and what to do, when a member of
 * comm ended its script after fewer than `nth` creates on comm; 0 otherwise. */
int departures_check(MPI_Comm comm, int nth, char *err, size_t errlen);

/* The script ended: send this rank's notice to every other rank and receive all of theirs (waiting
 * for ranks still running). Returns 0, or the signal number if interrupted while waiting. */
int departures_announce_and_wait(void);

#endif
