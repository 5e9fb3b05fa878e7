# csv_pandas.py: pandas' DataFrame.to_csv on the rows of a CSV written by bench/csv.lua (what
# DeepHyper's dump_jobs_done_to_csv does), for bench/run.sh's CSV row.
# usage: python3 bench/csv_pandas.py IN OUT [REPS]
# Prints: PANDAS rows=N seconds=S identical=1|0 (the fastest of REPS to_csv calls; identical says
# whether pandas wrote the same bytes as evaluator-lua).
import sys
import time

import pandas as pd

src, out = sys.argv[1], sys.argv[2]
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 1
df = pd.read_csv(src, float_precision="round_trip")  # the exact doubles, as repr reads back
best = float("inf")
for _ in range(reps):
    t0 = time.perf_counter()
    df.to_csv(out, index=False)
    best = min(best, time.perf_counter() - t0)
with open(src, "rb") as a, open(out, "rb") as b:
    same = a.read() == b.read()
print("PANDAS rows=%d seconds=%.6f identical=%d" % (len(df), best, int(same)))
