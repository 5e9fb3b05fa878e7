#!/usr/bin/env bash
# run-unit.sh: runs the C unit tests built by `make unit` (build/unit/test_*) and replays every fuzz
# target's seed corpus and regression inputs (build/unit/replay_TARGET over fuzz/corpus/TARGET and
# fuzz/regressions/TARGET). Each binary prints "NAME: N passed, N failed"; a binary that dies (a
# sanitizer report, a leak) counts one failure more. Ends with one line "N passed, N failed".
#   bash scripts/run-unit.sh [fuzz targets...]
set -uo pipefail
cd "$(dirname "$0")/.."
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
passed=0
failed=0
run_one() {
  local out status p f
  out=$(timeout 300 "$@" 2>&1)
  status=$?
  echo "$out" | grep -v -E '^[^:]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 40 >&2
  read -r p f < <(echo "$out" | sed -n -E 's/^[^:]+: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' | tail -n 1)
  p=${p:-0} f=${f:-0}
  [ "$status" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  echo "unit $(basename "$1"): $p passed, $f failed"
  passed=$((passed + p))
  failed=$((failed + f))
}
for t in build/unit/test_*; do
  [ -x "$t" ] && run_one "$t"
done
for target in "$@"; do
  run_one "build/unit/replay_$target" "fuzz/corpus/$target" "fuzz/regressions/$target"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
