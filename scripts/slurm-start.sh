#!/usr/bin/env bash
# slurm-start.sh: starts a private single-node Slurm for the tests: a munge key and munged, then
# slurmctld and slurmd on free ports, everything (config, state, logs, sockets) under one new
# temporary directory, so that it never touches a system Slurm and several can run at once.
#   eval "$(bash scripts/slurm-start.sh)"   prints SLURM_CONF=... EVL_SLURM_DIR=... to export
#   bash scripts/slurm-stop.sh "$EVL_SLURM_DIR"   stops every daemon it started, removes the directory
# Needs root (slurmd runs jobs as their user) and Debian's munge slurmctld slurmd slurm-client.
# Exits non-zero, having stopped what it started, if the node is not up within 60 s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
D=$(mktemp -d "${TMPDIR:-/tmp}/evl-slurm.XXXXXX")
chmod 755 "$D"
trap 'echo "slurm-start: failed; logs in $D" >&2; bash "$here/slurm-stop.sh" "$D" keep >&2; exit 1' ERR

# A port nobody listens on now (the kernel's choice, so two test runs do not collide).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -m 700 "$D/munge"
(umask 077 && dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 status=none)
munged --force --key-file "$D/munge/munge.key" --socket "$D/munge/munge.sock" \
  --pid-file "$D/munge/munged.pid" --log-file "$D/munge/munged.log" --seed-file "$D/munge/munged.seed"
for _ in $(seq 50); do [ -S "$D/munge/munge.sock" ] && break; sleep 0.1; done

host=$(hostname -s)
ctl_port=$(free_port)
d_port=$(free_port)
while [ "$d_port" = "$ctl_port" ]; do d_port=$(free_port); done
cpus=$(nproc)
mkdir -p "$D/state" "$D/spool"
cat >"$D/slurm.conf" <<CONF
ClusterName=evltest$$
SlurmctldHost=$host
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.sock
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmdParameters=config_overrides
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=evl Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF=$D/slurm.conf
slurmctld -i -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N "$host"
for _ in $(seq 600); do
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)
  case $state in idle | mixed | allocated) break ;; esac
  sleep 0.1
done
case $state in idle | mixed | allocated) ;; *) echo "slurm-start: node state '$state' after 60 s" >&2; false ;; esac
trap - ERR
echo "export SLURM_CONF=$D/slurm.conf EVL_SLURM_DIR=$D"
