#!/usr/bin/env bash
# A one-node Slurm cluster for tests/train/test_slurm.py and tests/profile/test_slurm_profile.py: munged, slurmctld and slurmd on this host
# (`hostname -s`), every file (munge key, sockets, configuration, state, spool, logs, pid files)
# under one folder, so nothing in /etc or /var is touched. Needs root (slurmd starts jobs as their
# user) and Debian's packages: apt-get install -y slurm-wlm munge (Slurm 22.05 on Debian 12).
#
#   export HGBENCH_SLURM_DIR=$(mktemp -d) SLURM_CONF=$HGBENCH_SLURM_DIR/slurm.conf
#   .ci/slurm/up.sh        # returns once `sinfo` shows the node idle
#   ... sbatch, squeue, hgbench train-all --launcher slurm ...
#   .ci/slurm/down.sh      # stops the daemons by their pid files
#
# The Slurm commands find the cluster through SLURM_CONF (this script exports nothing to its
# caller). Configuration: the node has `nproc` CPUs and the memory `free -m` reports, less 5 %
# (slurmd refuses a node configured with more than it finds); ProctrackType=proctrack/linuxproc and
# TaskPlugin=task/none (no cgroups needed, so it runs in a container); SelectType=select/cons_tres
# with CR_Core, as GPU clusters use; no accounting database (sacct is unavailable: hgbench reads job
# states with squeue).
set -euo pipefail

DIR="${HGBENCH_SLURM_DIR:-${TMPDIR:-/tmp}/hgbench-slurm}"
CONF="${SLURM_CONF:-$DIR/slurm.conf}"
HOST="$(hostname -s)"
CPUS="$(nproc)"
MEM_MB="$(free -m | awk '/^Mem:/ {print int($2 * 0.95)}')"
CTLD_PORT="${HGBENCH_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${HGBENCH_SLURMD_PORT:-6818}"

for cmd in munged mungekey slurmctld slurmd sinfo; do
    command -v "$cmd" >/dev/null || { echo "up.sh: $cmd not found; install with: apt-get install -y slurm-wlm munge" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "up.sh: slurmd must run as root (it starts jobs as their user)" >&2; exit 1; }
if [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
    echo "up.sh: a cluster is already running from $DIR (stop it with .ci/slurm/down.sh)" >&2; exit 1
fi

rm -rf "$DIR/state" "$DIR/spool"  # a fresh cluster: no job of an earlier one comes back
mkdir -p "$DIR"/{munge,state,spool,log}
chmod 700 "$DIR/munge"
# A fresh munge key for this cluster only (munged refuses a key readable by others).
mungekey --create --force --keyfile "$DIR/munge/munge.key"
chmod 400 "$DIR/munge/munge.key"
munged --force --key-file "$DIR/munge/munge.key" --socket "$DIR/munge/munge.socket" \
    --pid-file "$DIR/munge.pid" --log-file "$DIR/log/munged.log" --seed-file "$DIR/munge/munged.seed"

cat > "$CONF" <<CONF
# Written by .ci/slurm/up.sh: a one-node test cluster.
ClusterName=hgbench-ci
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=5
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Test all pending jobs every second (default 60 s; backfill every 30 s), so a requeued job starts
# again as soon as it may.
SchedulerParameters=sched_interval=1,bf_interval=1
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
# Finished jobs stay visible to squeue for 10 minutes (hgbench reads their final state there).
MinJobAge=600
# A requeued or preempted job waits for the node, then starts again from its batch script.
JobRequeue=1
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$HOST NodeAddr=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
# Two more partitions over the same node: two "machine kinds" for tests/profile/test_slurm_profile.py
# (hgbench profile --launcher slurm --slurm-partition kindA,kindB: one job, one machine label each).
PartitionName=kindA Nodes=$HOST MaxTime=INFINITE State=UP
PartitionName=kindB Nodes=$HOST MaxTime=INFINITE State=UP
CONF

export SLURM_CONF="$CONF"
slurmctld -f "$CONF"
slurmd -f "$CONF"

# Ready when the node is idle (about 2 s; 60 s at most).
for _ in $(seq 120); do
    if [ "$(sinfo -h -n "$HOST" -o %t 2>/dev/null)" = "idle" ]; then
        echo "Slurm up: node $HOST idle ($CPUS CPUs, $MEM_MB MB), SLURM_CONF=$CONF"
        exit 0
    fi
    sleep 0.5
done
echo "up.sh: node $HOST not idle after 60 s; sinfo says: $(sinfo -h -o '%n %t %E' 2>&1)" >&2
tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
exit 1
