#!/usr/bin/env bash
# tsan-stress.sh: builds evaluator-lua under ThreadSanitizer (`make tsan`, build-tsan/) and runs the
# thread-pool stress script scripts/tsan-stress.lua (TSAN_JOBS short jobs, default 3000, with
# job_timeout stops, a budget running out, cancelling closes and Ctrl-C), TSAN_RUNS times. Every distinct race report
# (by its SUMMARY line: kind, file:line, function) is printed and counts as one failure; reports
# from inside Open MPI's own libraries are suppressed (scripts/tsan.supp, each line explained).
# Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/build-or-fail.sh
. scripts/build-or-fail.sh
build_or_fail tsan build-tsan
REPORTS=$(mktemp -d "${TMPDIR:-/tmp}/evl-tsan.XXXXXX")
trap 'rm -rf "$REPORTS"' EXIT
export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:log_path=$REPORTS/tsan:suppressions=$ROOT/scripts/tsan.supp"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
passed=0
failed=0
# Races show up by timing: TSAN_RUNS runs (default 3) and the union of their reports.
for run in $(seq "${TSAN_RUNS:-3}"); do
  out=$(timeout -k 10 "${TSAN_SECONDS:-300}" build-tsan/evaluator-lua scripts/tsan-stress.lua 2>&1)
  status=$?
  echo "$out" | grep -E '^checks|wrong'
  # The script ends on Ctrl-C (exit 130, or TSan's 66 when it reported): its verdict is its line.
  if echo "$out" | grep -qE '^checks ([0-9]+)/\1$'; then passed=$((passed + 1)); else
    echo "$out" | tail -n 20 >&2
    echo "tsan-stress: run $run of the stress script failed (status $status)" >&2
    failed=$((failed + 1))
  fi
done
distinct=$(cat "$REPORTS"/* 2>/dev/null | grep -E '^SUMMARY: ThreadSanitizer' | sed -E 's/^SUMMARY: ThreadSanitizer: //' | sort | uniq -c)
total=$(cat "$REPORTS"/* 2>/dev/null | grep -cE '^SUMMARY: ThreadSanitizer')
if [ -n "$distinct" ]; then
  echo "tsan-stress: $total report(s), $(echo "$distinct" | wc -l) distinct (count, kind, where):"
  echo "$distinct"
  failed=$((failed + $(echo "$distinct" | wc -l)))
  cat "$REPORTS"/* >"$ROOT/build-tsan/reports.txt"
  echo "tsan-stress: the full reports are in build-tsan/reports.txt"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
