#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, to try --executor=slurm and
# to benchmark it: its own munged (own key and socket), slurmctld and slurmd
# on loopback ports, 16 slots, cgroup v1 memory enforcement, no accounting;
# everything in DIR, nothing in /etc. Needs root and .ci/services/slurm.sh.
#
#   bench/slurm-cluster.sh start DIR    # then: export SLURM_CONF=DIR/slurm.conf
#   bench/slurm-cluster.sh stop DIR     # stops the daemons by their pids
set -euo pipefail
cmd=${1:-} dir=${2:-}
[[ -n $cmd && -n $dir ]] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
case $cmd in
start)
  bash "$(dirname "$0")/../.ci/services/slurm.sh"
  mkdir -p "$dir"/{state,spool,munge}
  dir=$(cd "$dir" && pwd)
  chmod 700 "$dir/munge"
  head -c 1024 /dev/urandom > "$dir/munge/munge.key"; chmod 400 "$dir/munge/munge.key"
  /usr/sbin/munged --force --socket="$dir/munge/sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/pid" --seed-file="$dir/munge/seed" --log-file="$dir/munge/log"
  port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  host=$(hostname) mem=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 1024 ))
  cat > "$dir/slurm.conf" <<EOT
ClusterName=hepbuild
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(port)
SlurmdPort=$(port)
AuthType=auth/munge
AuthInfo=socket=$dir/munge/sock
CredType=cred/munge
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
ReturnToService=2
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmdSpoolDir=$dir/spool
StateSaveLocation=$dir/state
SlurmUser=root
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=2000
SlurmdParameters=config_overrides
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/cgroup
AccountingStorageType=accounting_storage/none
FirstJobId=$(( (RANDOM * 32768 + RANDOM) % 9000000 + 1000000 ))
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=${SLOTS:-16} RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOT
  printf 'CgroupPlugin=cgroup/v1\nCgroupAutomount=yes\nConstrainRAMSpace=yes\nConstrainSwapSpace=yes\n' > "$dir/cgroup.conf"
  export SLURM_CONF=$dir/slurm.conf
  /usr/sbin/slurmctld -f "$SLURM_CONF"
  /usr/sbin/slurmd -f "$SLURM_CONF"
  for _ in $(seq 100); do
    if sinfo -h -o %t 2>/dev/null | grep -q idle; then
      echo "export SLURM_CONF=$SLURM_CONF"
      exit 0
    fi
    sleep 0.3
  done
  echo "slurm did not come up; see $dir/*.log" >&2; exit 1 ;;
stop)
  for p in slurmd.pid slurmctld.pid munge/pid; do
    [[ -f $dir/$p ]] && kill "$(cat "$dir/$p")" 2>/dev/null || true
  done ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
