#!/usr/bin/env bash
# kill_run.sh DIR NP TARGET PATTERN: runs $EVL_BIN on DIR/script.lua (under mpirun when NP > 1, else
# alone), waits until a command whose line matches PATTERN (pgrep -f) runs, kill -9's TARGET, then waits (30 s at
# most) until no such process and no evaluator-lua of DIR is left. Prints one line:
#   killed=<pid> left=<processes left> secs=<seconds from the kill until none was left>
#   secs_cmd=<seconds until no PATTERN process was left>
# TARGET: mpirun | root (rank 0) | worker (rank 1) | main (the one process) | child (a process-pool
# worker). The script writes its pid to DIR/pid.<rank> (see tests/endings_spec.lua).
set -u
dir=$1 np=$2 target=$3 marker=$4
cd "$dir" || exit 2
if [ "$np" -gt 1 ]; then
  timeout -k 5 60 mpirun --oversubscribe -np "$np" "$EVL_BIN" "$dir/script.lua" >out.txt 2>err.txt &
else
  timeout -k 5 60 "$EVL_BIN" "$dir/script.lua" >out.txt 2>err.txt &
fi
launcher=$!
for _ in $(seq 1 300); do
  pgrep -f "$marker" >/dev/null && [ -e pid.0 ] && break
  sleep 0.05
done
sleep 0.3
case $target in
  mpirun) victim=$(pgrep -x mpirun -P "$launcher" || pgrep -n -x mpirun) ;;
  root|main) victim=$(cat pid.0) ;;
  worker) victim=$(cat pid.1) ;;
  child) # the process-pool worker running the marked command: its ancestor whose parent is the root
    victim=$(pgrep -f "$marker" | head -n 1)
    while [ -n "$victim" ] && [ "$victim" -gt 1 ] && [ "$(ps -o ppid= -p "$victim" | tr -d ' ')" != "$(cat pid.0)" ]; do
      victim=$(ps -o ppid= -p "$victim" | tr -d ' ')
    done
    [ "${victim:-0}" -gt 1 ] || victim= ;;
esac
[ -n "${victim:-}" ] || { echo "killed=none left=-1 secs=-1 (no $target to kill; the run said: $(head -c 600 err.txt))"; kill -9 "$launcher" 2>/dev/null; exit 1; }
kill -9 "$victim"
start=$(date +%s.%N)
elapsed() { awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
left=0 secs_cmd=-1
for _ in $(seq 1 600); do
  cmds=$(pgrep -f "$marker" | wc -l)
  [ "$cmds" -eq 0 ] && [ "$secs_cmd" = -1 ] && secs_cmd=$(elapsed)
  left=$( (pgrep -f "$marker"; pgrep -f "$dir/script.lua") | sort -u | wc -l)
  [ "$left" -eq 0 ] && break
  sleep 0.05
done
echo "killed=$victim left=$left secs=$(elapsed) secs_cmd=$secs_cmd"
pkill -9 -f "$marker" 2>/dev/null
pkill -9 -f "$dir/script.lua" 2>/dev/null
wait "$launcher" 2>/dev/null
exit 0
