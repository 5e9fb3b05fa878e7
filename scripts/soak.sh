#!/usr/bin/env bash
# soak.sh: a few minutes of jobs through every method (scripts/soak.lua): SOAK_JOBS in all (default
# 200000), a fifth each for serial, thread and process (two evaluators each, taking turns) and two
# fifths for two mpicomm runs at once (3 ranks each), with random failures, job_timeout stops,
# crashes (process) and a budget that cancels a last batch; the two evaluators of each run, and the
# two mpicomm runs at once, dump into one CSV per phase (a run's first dump replaces a file a
# previous run left, as DeepHyper's does), and every evaluator stores into ONE SQLite file. Then checks: the CSV holds exactly the jobs each evaluator
# gathered (by its p:src column), none twice, one header; the storage holds exactly as many jobs
# per search, none twice; each run's RSS at the end is within 1.2x (+4 MB) of its RSS halfway. Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${SOAK_JOBS:-200000}
BIN=${EVL_BIN:-$ROOT/build/evaluator-lua}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
DIR=$(mktemp -d "${TMPDIR:-/tmp}/evl-soak.XXXXXX")
trap 'rm -rf "$DIR"' EXIT
cd "$DIR" || exit 1
passed=0
failed=0
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then passed=$((passed + 1)); echo "soak: ok: $what"; else failed=$((failed + 1)); echo "soak: FAILED: $what"; fi
}
fifth=$((JOBS / 5))
start=$(date +%s)
for m in serial thread process; do
  check "$m: $fifth jobs ran" timeout -k 10 600 "$BIN" "$ROOT/scripts/soak.lua" "$m" "$fifth" "results-$m.csv" soak.db "out-$m.lua"
done
timeout -k 10 600 mpirun --oversubscribe -np 3 "$BIN" "$ROOT/scripts/soak.lua" mpicomm "$fifth" results-mpicomm.csv soak.db out-mpi1.lua M1 &
p1=$!
timeout -k 10 600 mpirun --oversubscribe -np 3 "$BIN" "$ROOT/scripts/soak.lua" mpicomm "$fifth" results-mpicomm.csv soak.db out-mpi2.lua M2 &
p2=$!
check "mpicomm run 1: $fifth jobs ran" wait $p1
check "mpicomm run 2: $fifth jobs ran" wait $p2
echo "soak: $((4 * fifth + fifth)) jobs pushed in $(($(date +%s) - start)) s"

# The CSVs against what each evaluator gathered: python's csv module reads them.
python3 - results-*.csv -- out-*.lua >csv-check.txt <<'PY'
import csv, re, sys
sep = sys.argv.index("--")
seen, per, dup, headers, nrows = set(), {}, 0, 0, 0
for path in sys.argv[1:sep]:
    rows = list(csv.reader(open(path, newline="")))
    header, body = rows[0], rows[1:]
    src, jid = header.index("p:src"), header.index("job_id")
    headers += sum(1 for r in body if r and r[0] == header[0])
    nrows += len(body)
    for r in body:
        key = (r[src], r[jid])
        dup += key in seen
        seen.add(key)
        per[r[src]] = per.get(r[src], 0) + 1
want = {}
for f in sys.argv[sep + 1:]:
    for name, dumped in re.findall(r'name = "([^"]+)", search_id = "[^"]*", gathered = \d+, dumped = (\d+)', open(f).read()):
        want[name] = int(dumped)
print("rows", nrows, "duplicates", dup, "headers_in_body", headers)
for name in sorted(set(want) | set(per)):
    print("src", name, "csv", per.get(name, 0), "gathered", want.get(name, -1))
PY
cat csv-check.txt
check "the CSV has one header, no row twice" grep -q "duplicates 0 headers_in_body 0" csv-check.txt
check "the CSV holds exactly the jobs each evaluator gathered" awk '/^src/ { if ($4 != $6) bad = 1; n++ } END { exit bad || n < 8 }' csv-check.txt

# The storage against the same counts, through the API.
cat >storage-check.lua <<'LUA'
local evaluator = require "evaluator"
local store = evaluator.SQLiteStorage("soak.db")
local bad = 0
for _, f in ipairs(arg) do
  local r = dofile(f)
  for _, e in ipairs(r.evaluators) do
    local ids, seen, dup = store:load_all_job_ids(e.search_id), {}, 0
    for _, id in ipairs(ids) do dup = dup + (seen[id] and 1 or 0); seen[id] = true end
    print(("storage %s search %s: %d jobs, %d twice, gathered %d"):format(e.name, e.search_id, #ids, dup, e.gathered))
    if #ids ~= e.gathered or dup > 0 then bad = bad + 1 end
  end
  local grow = r.rss_last / math.max(r.rss_first, 1)
  print(("rss %s: %d kB halfway, %d kB at the end (%.2fx)"):format(f, r.rss_first, r.rss_last, grow))
  if r.rss_last > 1.2 * r.rss_first + 4096 then bad = bad + 1000 end
end
os.exit(bad == 0 and 0 or (bad >= 1000 and 2 or 1))
LUA
timeout 300 "$BIN" storage-check.lua out-*.lua >storage-check.txt 2>&1
status=$?
cat storage-check.txt
check "the storage holds exactly the jobs gathered, none twice" test $((status & 1)) -eq 0
check "RSS stayed flat in every run" test "$status" -ne 2 -a "$status" -le 1
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
