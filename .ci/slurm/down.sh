#!/usr/bin/env bash
# Stop the test cluster of .ci/slurm/up.sh (same HGBENCH_SLURM_DIR): slurmd, slurmctld and munged,
# each by its pid file, waiting up to 10 s for each to exit. Safe to run when nothing is up.
set -uo pipefail

DIR="${HGBENCH_SLURM_DIR:-${TMPDIR:-/tmp}/hgbench-slurm}"
for name in slurmd slurmctld munge; do
    pidfile="$DIR/$name.pid"
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && echo "down.sh: $name (pid $pid) still running after 10 s" >&2
    fi
    rm -f "$pidfile"
done
echo "Slurm down ($DIR)"
