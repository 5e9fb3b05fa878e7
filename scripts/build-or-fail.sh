#!/usr/bin/env bash
# build-or-fail.sh: `source` it, then `build_or_fail TARGET NAME`: runs `make TARGET` (log in
# build/NAME.log); on failure shows the log's end and ends the calling stage with
# its "0 passed, 1 failed" line.
build_or_fail() {
  local target=$1 name=$2
  mkdir -p build
  if ! make --no-print-directory "$target" >"build/$name.log" 2>&1; then
    tail -n 30 "build/$name.log" >&2
    echo "$name: make $target failed" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
}
