"""mpi4py_bench.py: the no-op jobs of noop.lua through mpi4py.futures.MPICommExecutor, in the
asynchronous search-loop pattern: submit one future per worker, then wait(FIRST_COMPLETED) and submit
one new future for each that completed, until N are done.
usage: mpirun -np 3 python3 bench/mpi4py_bench.py N
Rank 0 prints: MPI4PY mode=async jobs=N seconds=S jobs_per_s=R"""
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPICommExecutor, wait, FIRST_COMPLETED


def run(parameters):
    return parameters["x"]


def params(i):
    return {"x": i, "lr": 0.01, "act": "relu"}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with MPICommExecutor(MPI.COMM_WORLD, root=0) as ex:
        if ex is None:
            return
        workers = MPI.COMM_WORLD.Get_size() - 1
        # Start the workers before the clock: evaluator-lua's are started inside create().
        ex.submit(run, params(0)).result()
        t0 = time.perf_counter()
        pending = {ex.submit(run, params(i)) for i in range(1, min(workers, n) + 1)}
        submitted, gathered, bad = len(pending), 0, 0
        while gathered < n:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            gathered += len(done)
            bad += sum(1 for f in done if not isinstance(f.result(), int))
            for _ in range(min(len(done), n - submitted)):
                submitted += 1
                pending.add(ex.submit(run, params(submitted)))
        t = time.perf_counter() - t0
        if bad:
            raise SystemExit("%d wrong results" % bad)
        print("MPI4PY mode=async jobs=%d seconds=%.6f jobs_per_s=%.1f" % (n, t, n / t), flush=True)


if __name__ == "__main__":
    main()
