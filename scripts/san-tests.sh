#!/usr/bin/env bash
# san-tests.sh: builds the AddressSanitizer + UndefinedBehaviorSanitizer binary (`make san`,
# build-san/), installs it into build-san/test-prefix and runs busted spec files against it under
# real mpirun. Every sanitizer report (an error, a leak, undefined behaviour) of any rank is written
# to a log file and fails the run, whatever the tests said. Leaks inside Open MPI's own libraries
# are suppressed (scripts/lsan.supp, each line explained); nothing of evaluator-lua's is.
# Ends with one line "N passed, N failed" (busted's tests plus one failure per report).
#   bash scripts/san-tests.sh [spec files...]     (default: SAN_SPECS below)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# The specs whose code paths the sanitizers see best in CI's time (about 5 minutes here): the
# codecs and files (csv, wire: every method), the API surface (api_misc), storage, and job
# lifecycles under every method (jobs, timeouts: stops, deadlines, memory caps). The others
# (evaluator, methods, exit, signals, cli) run the same C paths again with more waiting; name them
# to run them.
SAN_SPECS=(tests/csv_spec.lua tests/wire_spec.lua tests/api_misc_spec.lua tests/storage_spec.lua tests/jobs_spec.lua
  tests/timeouts_spec.lua)
[ $# -gt 0 ] && SAN_SPECS=("$@")
# shellcheck source=scripts/build-or-fail.sh
. scripts/build-or-fail.sh
build_or_fail san build-san
REPORTS=$(mktemp -d "${TMPDIR:-/tmp}/evl-san.XXXXXX")
trap 'rm -rf "$REPORTS"' EXIT
# Open MPI unloads its components at MPI_Finalize; keeping them loaded lets the leak checker name
# the library a leak comes from, which the suppressions need (so does the slow unwinder: Open MPI
# is built without frame pointers).
export OMPI_MCA_mca_base_component_disable_dlclose=1
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:fast_unwind_on_malloc=0:log_path=$REPORTS/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/ubsan"
export LSAN_OPTIONS="suppressions=$ROOT/scripts/lsan.supp:print_suppressions=0"
out=$(EVL_BUILD=build-san EVL_SKIP_UNIT=1 EVL_TEST_TIMEOUT=${EVL_TEST_TIMEOUT:-180} bash scripts/run-tests.sh "${SAN_SPECS[@]}" 2>&1)
status=$?
echo "$out" | grep -v -E '^[0-9]+ passed, [0-9]+ failed$'
summary=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
read -r passed _ failed _ <<<"${summary:-0 passed, 1 failed}"
[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
nreports=0
for f in "$REPORTS"/*; do
  # A log holding only LeakSanitizer's "thread was not suspended" notes reports nothing.
  grep -qE 'ERROR: |runtime error|SUMMARY: ' "$f" || continue
  nreports=$((nreports + 1))
  echo "san-tests: report $(basename "$f"):" >&2
  head -n 60 "$f" >&2
done
echo "san-tests: $nreports sanitizer report(s)"
echo "$passed passed, $((failed + nreports)) failed"
[ "$failed" -eq 0 ] && [ "$nreports" -eq 0 ]
