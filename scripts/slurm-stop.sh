#!/usr/bin/env bash
# slurm-stop.sh DIR [keep]: stops the daemons that slurm-start.sh started under DIR (by the pids
# they wrote there, never by name) and removes DIR (unless `keep`, to read its logs).
set -uo pipefail
D=${1:?usage: slurm-stop.sh DIR [keep]}
case $D in */evl-slurm.*) ;; *) echo "slurm-stop: $D is not a slurm-start.sh directory" >&2; exit 1 ;; esac
pids=()
for f in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munge/munged.pid"; do
  [ -s "$f" ] && pids+=("$(cat "$f")")
done
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
for _ in $(seq 50); do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive -eq 0 ] && break
  sleep 0.1
done
for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
[ "${2:-}" = keep ] || rm -rf "$D"
exit 0
