#!/usr/bin/env bash
# run-tests.sh: runs the C unit tests of the codecs (`make unit`: tests/c/, fuzz replays), then
# installs evaluator-lua into build/test-prefix and runs the busted suite in tests/ against that
# installed binary (under real mpirun). Ends with one line "N passed, N failed" (C checks and busted
# tests together) and exits non-zero when any test failed or errored. EVL_SKIP_UNIT=1 skips the C part.
#   bash scripts/run-tests.sh [busted args...]    e.g. --filter=csv, or tests/cli_spec.lua
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# EVL_BUILD=build-san (or another build directory) installs and tests that build instead.
EVL_BUILD=${EVL_BUILD:-build}
PREFIX=$ROOT/$EVL_BUILD/test-prefix

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export EVL_BIN=$PREFIX/bin/evaluator-lua

if ! make --no-print-directory install BUILD="$EVL_BUILD" PREFIX="$PREFIX" >"$ROOT/build/test-install.log" 2>&1; then
  cat "$ROOT/build/test-install.log" >&2
  echo "run-tests: make install PREFIX=$PREFIX failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

unit_passed=0
unit_failed=0
if [ "${EVL_SKIP_UNIT:-0}" != 1 ]; then
  make --no-print-directory unit >"$ROOT/build/unit.log" 2>&1
  unit_status=$?
  grep -E '^unit |check failed|ERROR:|SUMMARY:|error:' "$ROOT/build/unit.log" >&2
  unit_summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$ROOT/build/unit.log" | tail -n 1)
  read -r unit_passed _ unit_failed _ <<<"${unit_summary:-0 passed, 1 failed}"
  [ "$unit_status" -ne 0 ] && [ "$unit_failed" -eq 0 ] && unit_failed=1
fi

BUSTED=$(command -v busted || true)
if [ -z "$BUSTED" ]; then
  echo "run-tests: busted is not installed (apt-get install lua-busted)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
# busted's own script starts with "#!/usr/bin/env lua"; run it with Lua 5.4 whatever `lua` is.
LUA=$(command -v lua5.4 || command -v lua)

# Without a spec file or directory among the arguments, run all of tests/.
have_path=0
for a in "$@"; do case $a in -*) ;; *) have_path=1 ;; esac; done
[ "$have_path" -eq 1 ] || set -- "$@" tests/
LOG=$ROOT/build/test-output.log
"$LUA" "$BUSTED" --output=utfTerminal -Xoutput --plain --lpath="$ROOT/tests/?.lua" "$@" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}

# Summary line of utfTerminal: "12 successes / 1 failure / 0 errors / 0 pending : 3.2 seconds"
summary=$(grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$LOG" | tail -n 1)
if [ -z "$summary" ]; then
  echo "run-tests: busted ended (status $status) without a summary" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
read -r passed _ _ failures _ _ errors _ <<<"$summary"
failed=$((failures + errors + unit_failed))
passed=$((passed + unit_passed))
echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ] || [ "$status" -ne 0 ]; then exit 1; fi
exit 0
