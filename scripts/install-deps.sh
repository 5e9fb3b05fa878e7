#!/usr/bin/env bash
# install-deps.sh: installs the Debian 12 packages evaluator-lua builds, tests and benchmarks with.
# Idempotent and non-interactive; needs root (or sudo) only when something is missing.
set -euo pipefail
PKGS=(build-essential pkg-config liblua5.4-dev lua5.4 libopenmpi-dev openmpi-bin lua-cjson lua-cjson-dev libsqlite3-dev lua-busted python3 gnuplot-nox slurmctld slurmd slurm-client munge lua-lpeg lua-filesystem man-db bc libhiredis-dev redis-server clang-14 libclang-rt-14-dev valgrind python3-pandas)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
