#!/usr/bin/env bash
# fuzz.sh: builds each libFuzzer target in fuzz/ (clang, -fsanitize=fuzzer,address,undefined) and
# runs it for FUZZ_SECONDS (default 60) on a working copy of its seed corpus and regressions. An
# input that breaks a property or trips a sanitizer is copied into fuzz/regressions/TARGET/ (commit
# it: `make unit` replays it from then on) and fails the target. Prints executions per target and
# ends with one line "N passed, N failed" (one per target).
#   FUZZ_SECONDS=10 bash scripts/fuzz.sh [targets...]     (default: wire json csv)
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
CLANG=$(command -v clang-14 || command -v clang || true)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(wire json csv)
if [ -z "$CLANG" ]; then
  echo "fuzz: clang is not installed (apt-get install clang-14 libclang-rt-14-dev)" >&2
  echo "0 passed, ${#TARGETS[@]} failed"
  exit 1
fi
declare -A SRCS=([wire]="src/wire.c src/buf.c" [json]="src/json.c src/numfmt.c src/buf.c" [csv]="src/csv.c src/buf.c")
OUT=build/fuzz
mkdir -p "$OUT"
FLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -Isrc -Ifuzz $(pkg-config --cflags lua5.4)
  -fsanitize=fuzzer,address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
passed=0
failed=0
for t in "${TARGETS[@]}"; do
  bin=$OUT/fuzz_$t
  # shellcheck disable=SC2086
  if ! "$CLANG" $FLAGS -o "$bin" "fuzz/fuzz_$t.c" ${SRCS[$t]} $(pkg-config --libs lua5.4) -lm 2>"$OUT/build_$t.log"; then
    cat "$OUT/build_$t.log" >&2
    echo "fuzz $t: build failed"
    failed=$((failed + 1))
    continue
  fi
  work=$OUT/corpus_$t
  rm -rf "$work" "$OUT/artifacts_$t"
  mkdir -p "$work" "$OUT/artifacts_$t"
  cp fuzz/corpus/"$t"/* "$work"/ 2>/dev/null
  cp fuzz/regressions/"$t"/* "$work"/ 2>/dev/null
  log=$OUT/run_$t.log
  timeout -k 10 $((SECONDS_EACH + 60)) "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$OUT/artifacts_$t/" "$work" >"$log" 2>&1
  status=$?
  execs=$(sed -n -E 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  secs=$(sed -n -E 's/^Done [0-9]+ runs in ([0-9]+) second.*/\1/p' "$log" | tail -n 1)
  found=$(find "$OUT/artifacts_$t" -type f | head -n 20)
  if [ "$status" -ne 0 ] || [ -n "$found" ]; then
    grep -E 'ERROR|fuzz property|SUMMARY|runtime error' "$log" | head -n 20 >&2
    mkdir -p "fuzz/regressions/$t"
    for f in $found; do cp "$f" "fuzz/regressions/$t/" && echo "fuzz $t: kept $f as fuzz/regressions/$t/$(basename "$f")" >&2; done
    echo "fuzz $t: FAILED after ${execs:-?} executions (status $status; log $log)"
    failed=$((failed + 1))
  else
    echo "fuzz $t: ${execs:-0} executions in ${secs:-$SECONDS_EACH} s, corpus $(find "$work" -type f | wc -l) inputs"
    passed=$((passed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
