#!/usr/bin/env bash
# bench/run.sh: evaluator-lua's benchmarks (make bench). Prints one table: each figure is the median
# of several runs, each comparison a ratio taken within one run (this machine is shared and noisy:
# the two sides of a ratio run back to back), each row beside its target with PASS or FAIL.
#
#   BENCH_QUICK=1    small sizes and fewer runs (the whole suite in well under a minute)
#   BENCH_REPS=n     runs per measurement (default 5; 3 with BENCH_QUICK)
#   BENCH_STRICT=1   exit 1 when a target is missed (by default only a measurement that could not
#                    be taken, a crash or a timeout, makes the exit status non-zero)
#   BENCH_KEEP=1     keep the logs (their directory is printed)
#
# The C programs (bench/farm_floor.c, bench/bare_mpi.c) are built with mpicc -O2 into build/bench/.
# Every mpirun is bounded by `timeout`; nothing here can hang.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Open MPI would ask for a login shell helper on some setups; keep its chatter out of the table.
export OMPI_MCA_btl_base_warn_component_unused=0

BIN=$ROOT/build/evaluator-lua
OUT=$ROOT/build/bench
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/evl-bench.XXXXXX")
LOG=$WORK/log.txt
: >"$LOG"
cleanup() {
  [ -f "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null # row 10's server
  [ "${BENCH_KEEP:-0}" = 1 ] && echo "bench: logs kept in $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  REPS=${BENCH_REPS:-3}
  N_FLOOR=20000 N_EVL=5000 N_PY=500     # row 1, 2
  SCHED_N=200 SCHED_DUR=0.01            # row 3 (already small)
  START_REPS=$REPS                      # row 4
  CPU_JOBS=2 CPU_SECONDS=0.5            # row 5
  GROW_N=20000 GROW_C=1000 GROW_REPS=1  # row 6
  INT_NOOP=5000 INT_CPU=4 INT_SECONDS=0.05  # row 7
  M_NOOP=2000 M_CPU=4 M_SECONDS=0.1         # row 8
  ST_N=5000                                 # row 10
  CSV_N=20000 CSV_CG_N=2000                 # row 11
  SC_SCALE=4                                # row 12: jobs per worker divided by this
  STREAM_N=20000                            # row 14
  TMO=60
else
  REPS=${BENCH_REPS:-5}
  N_FLOOR=200000 N_EVL=50000 N_PY=5000
  SCHED_N=200 SCHED_DUR=0.01
  START_REPS=$((REPS + 2))
  CPU_JOBS=6 CPU_SECONDS=1
  GROW_N=1000000 GROW_C=10000 GROW_REPS=${BENCH_GROW_REPS:-3}
  INT_NOOP=50000 INT_CPU=8 INT_SECONDS=0.2
  M_NOOP=20000 M_CPU=8 M_SECONDS=0.25
  ST_N=20000
  CSV_N=100000 CSV_CG_N=10000
  SC_SCALE=1
  STREAM_N=100000
  TMO=300
fi
FLOOR_DEPTH=${BENCH_FLOOR_DEPTH:-2}

ERRORS=0
note() { echo "bench: $*" >&2; }

# ---- helpers ----------------------------------------------------------------------------------

# mpirun NP PROGRAM ARGS...: its stdout; stderr goes to the log. Fails on a non-zero exit or timeout.
mpi() {
  local np=$1
  shift
  echo "+ mpirun -np $np $*" >>"$LOG"
  local out rc
  out=$(timeout "$TMO" mpirun --oversubscribe -np "$np" "$@" 2>>"$LOG")
  rc=$?
  echo "$out" >>"$LOG"
  if [ $rc -ne 0 ]; then
    note "mpirun -np $np $* failed (exit $rc$([ $rc = 124 ] && echo ", timed out after ${TMO}s")); see the log"
    return 1
  fi
  printf '%s\n' "$out"
}

# field KEY WORD TEXT: the value of WORD=... on the first line of TEXT that starts with KEY.
field() { printf '%s\n' "$3" | awk -v k="$1" -v w="$2" '$1 == k { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == w) { print a[2]; exit } } }'; }

# max_field KEY WORD TEXT: the largest WORD over every line starting with KEY.
max_field() { printf '%s\n' "$3" | awk -v k="$1" -v w="$2" '$1 == k { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == w && (m == "" || a[2] + 0 > m)) m = a[2] + 0 } } END { if (m != "") print m }'; }

# median of the numbers given as arguments (empty when none).
median() { printf '%s\n' "$@" | awk 'NF' | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) exit; printf "%.6g\n", a / b }'; }
now() { date +%s.%N; }

# ---- the table --------------------------------------------------------------------------------

ROWS=()
FAILS=0
# row ID MEASURE VALUE TARGET_TEXT OP LIMIT [DETAIL]: VALUE (already formatted by fmt) against LIMIT.
row() {
  local id=$1 what=$2 shown=$3 target=$4 op=$5 limit=$6 value=$7 detail=${8:-}
  local status
  if [ -z "$value" ]; then
    status="ERROR"
    shown="n/a"
    ERRORS=$((ERRORS + 1))
  elif awk -v v="$value" -v l="$limit" -v op="$op" 'BEGIN { exit !((op == ">=") ? (v >= l) : (v <= l)) }'; then
    status="PASS"
  else
    status="FAIL"
    FAILS=$((FAILS + 1))
  fi
  ROWS+=("$id|$what|$shown|$target|$status|$detail")
}
info() { ROWS+=("$1|$2|$3|(reference)||${4:-}"); }
fmt() { [ -n "$2" ] && awk -v v="$2" "BEGIN { printf \"$1\", v }"; }

print_table() {
  local w1=3 w2=52 w3=16 w4=14 w5=6
  local line
  line=$(printf '%*s' $((w1 + w2 + w3 + w4 + w5 + 12)) '' | tr ' ' '-')
  echo
  echo "evaluator-lua benchmarks$([ "$QUICK" = 1 ] && echo " (BENCH_QUICK: small sizes)"): $(nproc) cores, $REPS runs per figure (medians), $(date '+%Y-%m-%d %H:%M')"
  echo "$line"
  printf "%-${w1}s | %-${w2}s | %${w3}s | %-${w4}s | %-${w5}s\n" "#" "measure" "result" "target" "status"
  echo "$line"
  local r id what shown target status detail
  for r in "${ROWS[@]}"; do
    IFS='|' read -r id what shown target status detail <<<"$r"
    printf "%-${w1}s | %-${w2}s | %${w3}s | %-${w4}s | %-${w5}s\n" "$id" "$what" "$shown" "$target" "$status"
    [ -n "$detail" ] && printf "%-${w1}s |   %s\n" "" "$detail"
  done
  echo "$line"
}

# ---- build ------------------------------------------------------------------------------------

if [ ! -x "$BIN" ]; then
  note "$BIN is missing: run make first"
  exit 1
fi
for p in farm_floor bare_mpi; do
  if ! mpicc -O2 -o "$OUT/$p" "bench/$p.c" 2>>"$LOG"; then
    note "mpicc failed on bench/$p.c"
    cat "$LOG" >&2
    exit 1
  fi
done

# apt_install PKG: install a Debian package the benchmarks need (quietly, bounded).
apt_install() {
  note "installing $1"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
  DEBIAN_FRONTEND=noninteractive timeout 300 $sudo apt-get install -y -q --no-install-recommends "$1" >>"$LOG" 2>&1 && return 0
  DEBIAN_FRONTEND=noninteractive timeout 300 $sudo apt-get update -q >>"$LOG" 2>&1
  DEBIAN_FRONTEND=noninteractive timeout 300 $sudo apt-get install -y -q --no-install-recommends "$1" >>"$LOG" 2>&1
}

# mpi4py.futures (Debian's python3-mpi4py, for Debian's python3 and Open MPI).
PY=/usr/bin/python3
have_mpi4py() { [ -x "$PY" ] && "$PY" -c "import mpi4py.futures" 2>/dev/null; }
if ! have_mpi4py; then
  apt_install python3-mpi4py
  have_mpi4py || note "python3-mpi4py is not available: row 2 is skipped"
fi

# ---- 1, 2, 5a: no-op throughput, against the raw MPI farm and mpi4py.futures ------------------
# Each run: the floor, evaluator-lua bulk, evaluator-lua async, mpi4py.futures async, back to back.
note "1/8 no-op jobs: floor, bulk, async, mpi4py.futures ($REPS runs)"
FLOOR=() FLOOR1=() BULK=() ASYNC=() PY_RATE=() R_BULK=() R_ASYNC=() R_ASYNC1=() R_PY=() HWM=() HWM_BARE=()
for ((i = 1; i <= REPS; i++)); do
  o=$(mpi 3 "$OUT/farm_floor" "$N_FLOOR" "$FLOOR_DEPTH") || o=""
  f=$(field FLOOR jobs_per_s "$o")
  hb=$(max_field RSS hwm_kb "$o")
  # The same farm with one task per worker in flight: the shape of the async search loop.
  o=$(mpi 3 "$OUT/farm_floor" "$N_FLOOR" 1) || o=""
  f1=$(field FLOOR jobs_per_s "$o")
  o=$(mpi 3 "$BIN" bench/noop.lua bulk "$N_EVL") || o=""
  b=$(field NOOP jobs_per_s "$o")
  o=$(mpi 3 "$BIN" bench/noop.lua async "$N_EVL") || o=""
  a=$(field NOOP jobs_per_s "$o")
  h=$(max_field RSS hwm_kb "$o")
  p=""
  if have_mpi4py; then
    o=$(mpi 3 "$PY" bench/mpi4py_bench.py "$N_PY") || o=""
    p=$(field MPI4PY jobs_per_s "$o")
  fi
  FLOOR+=("$f") FLOOR1+=("$f1") BULK+=("$b") ASYNC+=("$a") PY_RATE+=("$p") HWM+=("$h") HWM_BARE+=("$hb")
  [ -n "$f" ] && [ -n "$b" ] && R_BULK+=("$(div "$b" "$f")")
  [ -n "$f" ] && [ -n "$a" ] && R_ASYNC+=("$(div "$a" "$f")")
  [ -n "$f1" ] && [ -n "$a" ] && R_ASYNC1+=("$(div "$a" "$f1")")
  [ -n "$p" ] && [ -n "$a" ] && R_PY+=("$(div "$a" "$p")")
  note "  run $i: floor $f (1 in flight: $f1), bulk $b, async $a, mpi4py $p jobs/s; peak RSS $h kB (bare MPI $hb kB)"
done
mf=$(median "${FLOOR[@]}") mf1=$(median "${FLOOR1[@]}") mb=$(median "${BULK[@]}") ma=$(median "${ASYNC[@]}") mp=$(median "${PY_RATE[@]}")
rb=$(median "${R_BULK[@]}") ra=$(median "${R_ASYNC[@]}") ra1=$(median "${R_ASYNC1[@]}") rp=$(median "${R_PY[@]}")
info 1 "floor: C MPI farm, 64 B each way, $FLOOR_DEPTH in flight/worker" "$(fmt '%.0f jobs/s' "$mf")" \
  "$(fmt '%.0f jobs/s' "$mf1") with 1 in flight per worker; 3 ranks, $N_FLOOR tasks"
row 1a "bulk: submit($N_EVL no-op jobs) + gather(\"ALL\")" "$(fmt '%.3fx floor' "$rb")" ">= 0.5x floor" ">=" 0.5 "$rb" \
  "$(fmt '%.0f jobs/s' "$mb"); 3 ranks (2 workers)"
row 1b "async: gather(\"BATCH\", 1) + resubmit, $N_EVL jobs" "$(fmt '%.3fx floor' "$ra")" ">= 0.25x floor" ">=" 0.25 "$ra" \
  "$(fmt '%.0f jobs/s' "$ma"); $(fmt '%.3fx' "$ra1") the 1-in-flight floor"
if have_mpi4py; then
  row 2 "async / mpi4py.futures MPICommExecutor async" "$(fmt '%.2fx mpi4py' "$rp")" ">= 20x" ">=" 20 "$rp" \
    "$(fmt '%.0f jobs/s' "$mp") for mpi4py.futures (wait FIRST_COMPLETED + resubmit, $N_PY jobs)"
else
  ROWS+=("2|async / mpi4py.futures MPICommExecutor async|n/a|>= 20x|SKIP|python3-mpi4py not available")
fi

# ---- 3: scheduling efficiency -----------------------------------------------------------------
note "3/8 scheduling efficiency: $SCHED_N jobs of ${SCHED_DUR}s on 4 workers ($REPS runs)"
EFF=() EFF_ASYNC=() LS=() LG=() LE=() LGA=()
for ((i = 1; i <= REPS; i++)); do
  o=$(mpi 5 "$BIN" bench/sched.lua bulk "$SCHED_N" "$SCHED_DUR") || o=""
  e=$(field SCHED efficiency "$o")
  LS+=("$(field SCHED lost_start "$o")") LG+=("$(field SCHED lost_gaps "$o")") LE+=("$(field SCHED lost_end "$o")")
  o=$(mpi 5 "$BIN" bench/sched.lua async "$SCHED_N" "$SCHED_DUR") || o=""
  ea=$(field SCHED efficiency "$o")
  LGA+=("$(field SCHED lost_gaps "$o")")
  EFF+=("$e") EFF_ASYNC+=("$ea")
  note "  run $i: efficiency bulk $e, async $ea"
done
me=$(median "${EFF[@]}") mea=$(median "${EFF_ASYNC[@]}")
pct() { awk -v v="$1" 'BEGIN { if (v != "") printf "%.2f %%", v * 100 }'; }
row 3a "efficiency, bulk: $SCHED_N jobs of ${SCHED_DUR}s, 4 workers" "$(pct "$me")" ">= 99 %" ">=" 0.99 "$me" \
  "idle: $(pct "$(median "${LS[@]}")") before first job, $(pct "$(median "${LG[@]}")") between jobs, $(pct "$(median "${LE[@]}")") after last"
row 3b "efficiency, async (BATCH 1 + resubmit), same jobs" "$(pct "$mea")" ">= 99 %" ">=" 0.99 "$mea" \
  "idle: $(pct "$(median "${LGA[@]}")") between jobs"

# ---- 4: start-up ------------------------------------------------------------------------------
note "4/8 start-up: mpirun -np 4, evaluator-lua empty.lua against bare_mpi ($START_REPS runs)"
T_EVL=() T_BARE=() R_START=()
for ((i = 1; i <= START_REPS; i++)); do
  # Which goes first alternates: a launch can leave work behind (daemons exiting) for the next.
  for which in $([ $((i % 2)) = 1 ] && echo "bare evl" || echo "evl bare"); do
    t0=$(now)
    if [ "$which" = bare ]; then
      if mpi 4 "$OUT/bare_mpi" >/dev/null; then tb=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }'); else tb=""; fi
    else
      if mpi 4 "$BIN" bench/empty.lua >/dev/null; then te=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }'); else te=""; fi
    fi
  done
  T_EVL+=("$te") T_BARE+=("$tb")
  [ -n "$te" ] && [ -n "$tb" ] && R_START+=("$(div "$te" "$tb")")
done
rs=$(median "${R_START[@]}")
row 4 "start-up: mpirun -np 4, empty.lua / bare MPI program" "$(fmt '%.3fx' "$rs")" "<= 1.5x" "<=" 1.5 "$rs" \
  "$(fmt '%.3f s' "$(median "${T_EVL[@]}")") against $(fmt '%.3f s' "$(median "${T_BARE[@]}")")"

# ---- 5: footprint -----------------------------------------------------------------------------
note "5/8 footprint: peak RSS (from the async runs), root CPU while workers run ${CPU_SECONDS}s jobs"
mh=$(median "${HWM[@]}") mhb=$(median "${HWM_BARE[@]}")
row 5a "peak RSS per rank, no-op async run (max of 3 ranks)" "$(fmt '%.1f MB' "$(awk -v v="$mh" 'BEGIN { if (v != "") print v / 1024 }')")" "<= 8 MB" "<=" 8192 "$mh" \
  "$(fmt '%.1f MB' "$(awk -v v="$mhb" 'BEGIN { if (v != "") print v / 1024 }')") for a rank of the bare C MPI farm"
over=$(awk -v a="$mh" -v b="$mhb" 'BEGIN { if (a != "" && b != "") print a - b }')
row 5b "  the same, minus a bare C MPI rank's peak RSS" "$(fmt '%.1f MB' "$(awk -v v="$over" 'BEGIN { if (v != "") print v / 1024 }')")" "<= 8 MB" "<=" 8192 "$over"
CPU=()
for ((i = 1; i <= (QUICK == 1 ? 1 : 3); i++)); do
  o=$(mpi 3 "$BIN" bench/rootcpu.lua "$CPU_JOBS" "$CPU_SECONDS") || o=""
  c=$(field ROOTCPU fraction "$o")
  CPU+=("$c")
  note "  run $i: root CPU fraction $c"
done
mc=$(median "${CPU[@]}")
row 5c "root CPU / wall, 2 workers, $CPU_JOBS jobs of ${CPU_SECONDS}s" "$(fmt '%.2f %%' "$(awk -v v="$mc" 'BEGIN { if (v != "") print v * 100 }')")" "<= 5 %" "<=" 0.05 "$mc"

# ---- 6: growth --------------------------------------------------------------------------------
note "6/8 growth: $GROW_N no-op jobs in chunks of $GROW_C, dumped to CSV every chunk ($GROW_REPS runs)"
RSSR=() RATER=() RSS10=() RSS100=() GSEC=() DUMPS=()
for ((i = 1; i <= GROW_REPS; i++)); do
  d=$(mktemp -d "$WORK/growth.XXXXXX")
  o=$(mpi 3 "$BIN" bench/growth.lua "$GROW_N" "$GROW_C" "$d") || o=""
  rm -rf "$d"
  RSSR+=("$(field GROWTH rss_ratio "$o")") RATER+=("$(field GROWTH rate_ratio "$o")")
  RSS10+=("$(field GROWTH rss10_kb "$o")") RSS100+=("$(field GROWTH rss100_kb "$o")") GSEC+=("$(field GROWTH seconds "$o")") DUMPS+=("$(field GROWTH dump_last "$o")")
  note "  run $i: $(printf '%s\n' "$o" | grep '^GROWTH' | cut -d' ' -f2-)"
done
mr=$(median "${RSSR[@]}") mt=$(median "${RATER[@]}")
row 6a "root VmRSS at 100% / at 10% of $GROW_N jobs" "$(fmt '%.3fx' "$mr")" "<= 1.2x" "<=" 1.2 "$mr" \
  "$(fmt '%.1f MB' "$(awk -v v="$(median "${RSS10[@]}")" 'BEGIN { if (v != "") print v / 1024 }')") -> $(fmt '%.1f MB' "$(awk -v v="$(median "${RSS100[@]}")" 'BEGIN { if (v != "") print v / 1024 }')"), $(fmt '%.1f s' "$(median "${GSEC[@]}")") per run"
row 6b "  jobs/s, last 10% / first 10% (median chunk)" "$(fmt '%.3fx' "$mt")" ">= 0.8x" ">=" 0.8 "$mt" \
  "the CSV dumps take $(pct "$(median "${DUMPS[@]}")") of the time in the last 10%"

# ---- 7: the cost of stopping jobs for real, to jobs that are not stopped ------------------------
note "7/8 interrupt overhead: no-op and CPU-bound jobs with and without job_timeout/set_timeout ($REPS runs)"
INR=() ICR=()
for ((i = 1; i <= REPS; i++)); do
  o=$(mpi 3 "$BIN" bench/interrupt.lua "$INT_NOOP" "$INT_CPU" "$INT_SECONDS") || o=""
  INR+=("$(field INTERRUPT noop_ratio "$o")") ICR+=("$(field INTERRUPT cpu_ratio "$o")")
  note "  run $i: $(printf '%s\n' "$o" | grep '^INTERRUPT' | cut -d' ' -f2-)"
done
mi=$(median "${INR[@]}") mic=$(median "${ICR[@]}")
# The overhead as a slowdown: 1 / (guarded rate / plain rate) for no-op jobs, job time / direct time for CPU.
sn=$(awk -v v="$mi" 'BEGIN { if (v != "" && v > 0) printf "%.4f", 1 / v }')
row 7a "no-op jobs with a budget: time / without one" "$(fmt '%.3fx' "$sn")" "<= 1.02x" "<=" 1.02 "$sn" \
  "jobs/s with job_timeout and set_timeout over jobs/s with neither, $INT_NOOP jobs, 3 ranks"
row 7b "CPU-bound jobs under a budget: CPU time / direct" "$(fmt '%.3fx' "$mic")" "<= 1.02x" "<=" 1.02 "$mic" \
  "a ${INT_SECONDS}s Lua loop as a job (ticker, mpicomm cancel polls) against the same loop run directly"

# ---- 8: the methods side by side, 2 workers each ------------------------------------------------
note "8/8 methods: no-op jobs/s and CPU-bound speed-up with 2 workers ($REPS runs)"
method_run() { # METHOD ARGS...: serial, thread and process run alone; mpicomm under mpirun -np 3
  local m=$1
  shift
  if [ "$m" = mpicomm ]; then mpi 3 "$BIN" bench/methods.lua "$m" "$@"
  else
    echo "+ $BIN bench/methods.lua $m $*" >>"$LOG"
    timeout "$TMO" "$BIN" bench/methods.lua "$m" "$@" 2>>"$LOG"
  fi
}
declare -A MN MS
for m in serial thread process mpicomm; do MN[$m]="" MS[$m]=""; done
for ((i = 1; i <= REPS; i++)); do
  o=$(method_run serial cpu "$M_CPU" "$M_SECONDS") || o=""
  ws=$(field METHODS cpu_wall "$o")
  for m in serial thread process mpicomm; do
    o=$(method_run "$m" noop "$M_NOOP") || o=""
    MN[$m]="${MN[$m]} $(field METHODS noop_jobs_per_s "$o")"
    if [ "$m" != serial ]; then
      o=$(method_run "$m" cpu "$M_CPU" "$M_SECONDS") || o=""
      wm=$(field METHODS cpu_wall "$o")
      [ -n "$ws" ] && [ -n "$wm" ] && MS[$m]="${MS[$m]} $(div "$ws" "$wm")"
    fi
  done
done
for m in serial thread process mpicomm; do
  info "8-$m" "$m: no-op jobs/s, 2 workers ($M_NOOP jobs)" "$(fmt '%.0f jobs/s' "$(median ${MN[$m]})")"
done
for m in thread process mpicomm; do
  sp=$(median ${MS[$m]})
  row "8-$m" "$m: CPU-bound speed-up over serial, 2 workers" "$(fmt '%.2fx' "$sp")" ">= 1.6x" ">=" 1.6 "$sp" \
    "$M_CPU jobs of ${M_SECONDS}s of Lua arithmetic; 2x is both cores busy"
done

# ---- 9: the search drivers: median best of random, evolution, TPE ------------------------------
if [ "$QUICK" = 1 ]; then D_EVALS=200 D_SEEDS=3; else D_EVALS=500 D_SEEDS=10; fi
note "9/9 search drivers: Ackley and Rosenbrock 5-D, $D_EVALS evaluations, $D_SEEDS seeds (serial)"
echo "+ $BIN bench/drivers.lua $D_EVALS $D_SEEDS" >>"$LOG"
o=$(timeout "$((TMO * 2))" "$BIN" bench/drivers.lua "$D_EVALS" "$D_SEEDS" 2>>"$LOG") || o=""
echo "$o" >>"$LOG"
for fn in ackley rosenbrock; do
  k=DRIVERS_$fn
  info "9-$fn" "$fn 5-D: median best f, random / evolution / TPE" \
    "$(fmt '%.4g' "$(field "$k" random "$o")") / $(fmt '%.4g' "$(field "$k" evolution "$o")") / $(fmt '%.4g' "$(field "$k" tpe "$o")")" \
    "$D_EVALS evaluations, $D_SEEDS seeds, minimised; $(field "$k" seconds "$o") s for the three"
  for d in evolution tpe; do
    r=$(field "$k" "ratio_$d" "$o")
    row "9-$fn" "  $d: random's median best / $d's" "$(fmt '%.2fx' "$r")" ">= 1x" ">=" 1 "$r" \
      "above 1: $d finds better points than random search"
  done
done

# ---- 10: storage: the async loop with no storage, SQLite, Redis, in one mpirun -------------------
note "10: storage: the async loop (64 jobs in flight) with no storage, SQLiteStorage, RedisStorage ($REPS runs; in each, the fastest of 6 rounds of each, in turn)"
RPORT=""
for ((try = 0; try < 5; try++)); do # a private redis-server on a free loopback port
  [ -n "$RPORT" ] && break
  p=$((20000 + RANDOM % 40000))
  redis-server --port "$p" --bind 127.0.0.1 --daemonize yes --dir "$WORK" --pidfile "$WORK/redis.pid" \
    --logfile "$WORK/redis.log" --save '' --appendonly no >/dev/null 2>&1 || continue
  for ((k = 0; k < 50; k++)); do
    redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && { RPORT=$p; break; }
    sleep 0.1
  done
done
[ -n "$RPORT" ] || note "redis-server did not start (apt-get install redis-server): row 10 cannot be measured"
ST_NONE=() ST_SQ=() ST_RD=() ST_RS=() ST_RR=()
for ((i = 1; i <= REPS; i++)); do
  rm -f "$WORK"/storage.db*
  o=""
  [ -n "$RPORT" ] && { o=$(mpi 3 "$BIN" bench/storage.lua "$ST_N" "$WORK/storage.db" "$RPORT") || o=""; }
  ST_NONE+=("$(field STORAGE none "$o")") ST_SQ+=("$(field STORAGE sqlite "$o")") ST_RD+=("$(field STORAGE redis "$o")")
  ST_RS+=("$(field STORAGE sqlite_ratio "$o")") ST_RR+=("$(field STORAGE redis_ratio "$o")")
  note "  run $i: $(printf '%s\n' "$o" | grep '^STORAGE' | cut -d' ' -f2-)"
done
[ -f "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null && rm -f "$WORK/redis.pid"
rm -f "$WORK"/storage.db*
row 10a "storage: async loop, SQLiteStorage / no storage" "$(fmt '%.3fx' "$(median "${ST_RS[@]}")")" ">= 0.5x" ">=" 0.5 "$(median "${ST_RS[@]}")" \
  "$(fmt '%.0f' "$(median "${ST_NONE[@]}")") jobs/s without, $(fmt '%.0f' "$(median "${ST_SQ[@]}")") with SQLite, $(fmt '%.0f' "$(median "${ST_RD[@]}")") with Redis; $ST_N jobs, 3 ranks"
row 10b "storage: async loop, RedisStorage / no storage" "$(fmt '%.3fx' "$(median "${ST_RR[@]}")")" ">= 0.3x" ">=" 0.3 "$(median "${ST_RR[@]}")"

# ---- 11: CSV dumps: instructions per row, and against pandas' DataFrame.to_csv on the same rows --
note "11: CSV: dump_jobs_done_to_csv of $CSV_N jobs (4 parameters, 11 columns) and pandas to_csv of the same rows ($REPS runs)"
have_pandas() { [ -x "$PY" ] && "$PY" -c "import pandas" 2>/dev/null; }
have_pandas || apt_install python3-pandas
C_EVL=() C_PD=() C_R=() C_SAME=()
for ((i = 1; i <= REPS; i++)); do
  rm -f "$WORK/evl.csv" "$WORK/pandas.csv"
  # Each side takes the fastest of 3 writes in its process: the ratio of two noisy times, made steadier.
  echo "+ $BIN bench/csv.lua $CSV_N $WORK/evl.csv 3" >>"$LOG"
  o=$(timeout "$TMO" "$BIN" bench/csv.lua "$CSV_N" "$WORK/evl.csv" 3 2>>"$LOG") || o=""
  echo "$o" >>"$LOG"
  e=$(field CSV seconds "$o") p="" same=""
  if [ -n "$e" ] && have_pandas; then
    o=$(timeout "$TMO" "$PY" bench/csv_pandas.py "$WORK/evl.csv" "$WORK/pandas.csv" 3 2>>"$LOG") || o=""
    echo "$o" >>"$LOG"
    p=$(field PANDAS seconds "$o") same=$(field PANDAS identical "$o")
  fi
  C_EVL+=("$e") C_PD+=("$p") C_SAME+=("$same")
  [ -n "$e" ] && [ -n "$p" ] && C_R+=("$(div "$p" "$e")")
  note "  run $i: evaluator-lua $e s, pandas $p s (same bytes: $same)"
done
rm -f "$WORK/evl.csv" "$WORK/pandas.csv"
CG=""
if command -v valgrind >/dev/null; then # instructions are noise-free: one run
  echo "+ valgrind --tool=callgrind --toggle-collect=l_csv_dump $BIN bench/csv.lua $CSV_CG_N" >>"$LOG"
  o=$(timeout "$((TMO * 2))" valgrind --tool=callgrind --toggle-collect=l_csv_dump --callgrind-out-file=/dev/null \
    "$BIN" bench/csv.lua "$CSV_CG_N" "$WORK/cg.csv" 2>&1 >/dev/null) || o=""
  rm -f "$WORK/cg.csv"
  ir=$(printf '%s\n' "$o" | awk '/Collected :/ { gsub(",", "", $NF); if ($NF + 0 > m) m = $NF + 0 } END { if (m) print m }')
  [ -n "$ir" ] && CG=$(div "$ir" "$CSV_CG_N")
else
  note "valgrind is missing (apt-get install valgrind): row 11a cannot be measured"
fi
row 11a "CSV dump: instructions per row (callgrind), 11 columns" "$(fmt '%.0f' "$CG")" "<= 8000" "<=" 8000 "$CG" \
  "l_csv_dump's instructions over $CSV_CG_N rows: cells from the job tables, number texts, the file"
all_same=$(printf '%s\n' "${C_SAME[@]}" | awk 'NF { n++; s += $1 } END { if (n) print (s == n ? "identical" : "DIFFERENT") }')
row 11b "CSV dump: pandas to_csv time / dump_jobs_done_to_csv" "$(fmt '%.2fx' "$(median "${C_R[@]}")")" ">= 3x" ">=" 3 "$(median "${C_R[@]}")" \
  "$(fmt '%.3f s' "$(median "${C_EVL[@]}")") against $(fmt '%.3f s' "$(median "${C_PD[@]}")") for $CSV_N rows; pandas' bytes: ${all_same:-n/a}"

# ---- 12: sized by nproc: throughput against ranks, efficiency with nproc-1 workers, oversubscribed --
# On this machine's nproc; targets apply where it has more than 2 cores (on 2 the rows only print).
NP=$(nproc)
SCW=$((NP > 2 ? NP - 1 : 1))
note "12: scale: throughput for np = 2..$NP, efficiency with $SCW workers per method, $((8 * NP - 1)) workers oversubscribed (1 run each)"
scale_row() { # ID TEXT VALUE TARGET: a row with a target on more than 2 cores, information otherwise
  if [ "$NP" -gt 2 ]; then row "$1" "$2" "$(pct "$3")" ">= $(pct "$4")" ">=" "$4" "$3" "${5:-}"
  else info "$1" "$2" "$(pct "$3")" "${5:-} (2 cores: no target)"; fi
}
nps=()
for ((np = 2; np < NP; np *= 2)); do nps+=("$np"); done
nps+=("$NP")
for np in "${nps[@]}"; do
  o=$(mpi "$np" "$OUT/farm_floor" "$N_FLOOR" "$FLOOR_DEPTH") || o=""
  f=$(field FLOOR jobs_per_s "$o")
  o=$(mpi "$np" "$BIN" bench/noop.lua bulk "$N_EVL") || o=""
  b=$(field NOOP jobs_per_s "$o")
  r=$([ -n "$f" ] && [ -n "$b" ] && div "$b" "$f")
  if [ "$np" = "$NP" ] && [ "$NP" -gt 2 ]; then
    row "12-np$np" "bulk no-op jobs/s, np = $np / the C farm's" "$(fmt '%.3fx floor' "$r")" ">= 0.5x floor" ">=" 0.5 "$r" \
      "$(fmt '%.0f jobs/s' "$b") against $(fmt '%.0f jobs/s' "$f")"
  else
    info "12-np$np" "bulk no-op jobs/s, np = $np (C farm: $(fmt '%.0f' "$f"))" "$(fmt '%.0f jobs/s' "$b")" "$(fmt '%.3fx' "$r") the floor"
  fi
done
scale_run() { # METHOD WORKERS N DUR: the efficiency
  local o
  if [ "$1" = mpicomm ]; then o=$(mpi $(($2 + 1)) "$BIN" bench/scale.lua "$@") || o=""
  else
    echo "+ $BIN bench/scale.lua $*" >>"$LOG"
    o=$(timeout "$TMO" "$BIN" bench/scale.lua "$@" 2>>"$LOG") || o=""
    echo "$o" >>"$LOG"
  fi
  field SCALE efficiency "$o"
}
for m in thread process mpicomm; do
  e1=$(scale_run "$m" "$SCW" $((SCW * 200 / SC_SCALE)) 0.001)
  e10=$(scale_run "$m" "$SCW" $((SCW * 40 / SC_SCALE)) 0.01)
  want=$([ "$m" = process ] && echo 0.97 || echo 0.99)
  scale_row "12-$m" "$m: efficiency, $SCW workers, 1 ms jobs" "$e1" "$want" "10 ms jobs: $(pct "$e10")"
done
OW=$((8 * NP - 1))
eo=$(scale_run mpicomm "$OW" $((OW * 4 / SC_SCALE)) 0.1)
scale_row "12-over" "mpicomm: efficiency, $OW workers on $NP cores, 100 ms jobs" "$eo" 0.99

# ---- 13: instructions per job (callgrind: noise-free) -----------------------------------------
# A no-op job with 4 parameters (bench/cost.lua): the root's instructions at two sizes, whose
# difference over the difference in jobs is the cost of one job (submit + run + gather, the
# script's own loop included), start-up and exit cancelled out. serial runs the job in the root;
# mpicomm counts rank 0 of 3 (its workers run outside valgrind).
# cg_instr NP METHOD N: the instructions of the root (the largest of valgrind's processes: the
# watchdog a rank forks is counted apart).
# SCRIPT (default bench/cost.lua) is what runs.
cg_instr() {
  local np=$1 method=$2 n=$3 script=${4:-bench/cost.lua} vg="valgrind --tool=callgrind --callgrind-out-file=$WORK/cg.%p"
  rm -f "$WORK"/cg.*
  echo "+ callgrind: $script $method $n jobs, $np rank(s)" >>"$LOG"
  if [ "$np" = 1 ]; then
    timeout "$TMO" $vg "$BIN" "$script" "$method" "$n" >>"$LOG" 2>&1 || return 1
  else
    timeout "$TMO" mpirun --oversubscribe -np "$np" bash -c 'if [ "$OMPI_COMM_WORLD_RANK" = 0 ]; then exec '"$vg"' "$@"; else exec "$@"; fi' \
      _ "$BIN" "$script" "$method" "$n" >>"$LOG" 2>&1 || return 1
  fi
  cat "$WORK"/cg.* | awk '$1 == "summary:" && $2 > m { m = $2 } END { if (m != "") print m }'
}
if command -v valgrind >/dev/null; then
  [ "$QUICK" = 1 ] && CG_N1=500 CG_N2=2500 || CG_N1=1000 CG_N2=11000
  for m in serial mpicomm; do
    np=1
    [ $m = mpicomm ] && np=3
    note "13: callgrind: instructions per $m job ($CG_N1 and $CG_N2 jobs)"
    a=$(cg_instr $np $m $CG_N1) && b=$(cg_instr $np $m $CG_N2) || { a="" b=""; note "callgrind of $m failed; see the log"; }
    per=$( [ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" -v n=$((CG_N2 - CG_N1)) 'BEGIN { printf "%.0f\n", (b - a) / n }')
    # The floor: the same jobs' Lua tables built in plain Lua, nothing else (bench/floor.lua).
    fa=$(cg_instr 1 $m $CG_N1 bench/floor.lua) && fb=$(cg_instr 1 $m $CG_N2 bench/floor.lua) ||
      { fa="" fb=""; note "callgrind of bench/floor.lua ($m) failed; see the log"; }
    floor=$( [ -n "$fa" ] && [ -n "$fb" ] && awk -v a="$fa" -v b="$fb" -v n=$((CG_N2 - CG_N1)) 'BEGIN { printf "%.0f\n", (b - a) / n }')
    vs_floor=""
    [ -n "$per" ] && [ -n "$floor" ] &&
      vs_floor="; $(awk -v p="$per" -v f="$floor" 'BEGIN { printf "%.2f", p / f }')x the floor of $floor (its jobs' Lua tables alone, bench/floor.lua)"
    row "13-$m" "instructions per no-op job (4 parameters), $m root" "$(fmt '%.0f' "$per")" "<= 8000" "<=" 8000 "$per" \
      "callgrind, rank 0: ($b - $a) / $((CG_N2 - CG_N1)) jobs; submit + run + gather, the loop included$vs_floor"
  done
  rm -f "$WORK"/cg.*
else
  note "valgrind is not installed (apt-get install valgrind): row 13 cannot be measured"
  row 13 "instructions per no-op job (callgrind)" "" "<= 8000" "<=" 8000 ""
fi

# ---- 14: streaming submit: the first job of one long submit starts while the list is read -------
note "14: streaming submit: one submit of $STREAM_N no-op jobs, 2 workers, thread and mpicomm ($REPS runs)"
for m in thread mpicomm; do
  SF=() SD=() ST=()
  for ((i = 1; i <= REPS; i++)); do
    if [ $m = mpicomm ]; then o=$(mpi 3 "$BIN" bench/stream.lua $m "$STREAM_N") || o=""
    else
      echo "+ $BIN bench/stream.lua $m $STREAM_N" >>"$LOG"
      o=$(timeout "$TMO" "$BIN" bench/stream.lua $m "$STREAM_N" 2>>"$LOG") || o=""
      echo "$o" >>"$LOG"
    fi
    SF+=("$(field STREAM first_ms "$o")") SD+=("$(field STREAM during "$o")") ST+=("$(field STREAM total_ms "$o")")
  done
  mf=$(median "${SF[@]}")
  row "14-$m" "$m: first job of a $STREAM_N-job submit starts (ms after the call)" "$(fmt '%.3f ms' "$mf")" "<= 1 ms" "<=" 1 "$mf" \
    "median of $REPS; $(median "${SD[@]}") jobs done before submit returned; submit + gather(\"ALL\") $(fmt '%.0f ms' "$(median "${ST[@]}")")"
done

print_table
[ "${BENCH_KEEP:-0}" = 1 ] || { [ $ERRORS -gt 0 ] && cp "$LOG" "$OUT/last-bench.log" && note "log of the failed runs: $OUT/last-bench.log"; }
if [ $ERRORS -gt 0 ]; then
  echo "$ERRORS measurement(s) could not be taken"
  exit 1
fi
echo "$FAILS target(s) missed"
[ "${BENCH_STRICT:-0}" = 1 ] && [ $FAILS -gt 0 ] && exit 1
exit 0
