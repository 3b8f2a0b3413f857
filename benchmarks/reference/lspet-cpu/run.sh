#!/usr/bin/env bash
# The LSPET CPU reference (benchmarks/reference/lspet-cpu/README.md): train seed 002's nine
# Table 1 variants under variants/protocols/lspet-cpu.yaml on the LSPET photos, profile them
# (eager, TorchScript, ONNX Runtime; batch 1 and 8; at the protocol's 64 px), copy the records
# here and regenerate the report and the side-by-side table. Run from the repository root:
#
#     bash benchmarks/reference/lspet-cpu/run.sh [DATA_ROOT] [WORK]
#
# DATA_ROOT: the LSPET folder (joints.mat, images/), default ../shared/data/lspet.
# WORK: the results folder for checkpoints and records (not committed), default results/lspet-cpu.
# An interrupted run resumes from its checkpoint when the script is run again; complete runs are
# skipped. On 2 cores the reference ran two train-all queues side by side, one thread each
# (QUEUES=2, the default here: oneDNN's two-thread convolutions stall when a thread is
# descheduled on a shared machine); QUEUES=1 runs one queue on every core.
set -euo pipefail
DATA_ROOT=${1:-../shared/data/lspet}
WORK=${2:-results/lspet-cpu}
HG=${HG:-.venv/bin/hgbench}
REF=benchmarks/reference/lspet-cpu
QUEUES=${QUEUES:-2}
# Two queues of about equal training time (one thread each on the shared 2-core machine: about
# 3.7 h each, from the reference's training times in records/).
Q1=hg2-multidilated,hg2,hg1-ghost,hg1-ghost-s32,hg1-ds1
Q2=hg1-multidilated,hg2-ds1,hg1,hg1-ds3
ALL=$Q1,$Q2

train() { "$HG" train-all --protocol lspet-cpu --dataset lspet --data-root "$DATA_ROOT" --results "$WORK" --variants "$1"; }
if [ "$QUEUES" = 2 ]; then
    OMP_NUM_THREADS=1 train "$Q1" > "$WORK.queue1.log" 2>&1 &
    OMP_NUM_THREADS=1 train "$Q2" > "$WORK.queue2.log" 2>&1 &
    wait
else
    train "$ALL"
fi

"$HG" profile --results "$WORK" --variants "$ALL" --backend eager,torchscript,onnxruntime --batch-size 1,8 --threads 2

# Records only (train.json, eval and profile records), never checkpoints.
rm -rf "$REF/records"
(cd "$WORK" && find runs profile -name '*.json' -not -name 'checkpoint*' -print0) |
    while IFS= read -r -d '' f; do mkdir -p "$REF/records/$(dirname "$f")" && cp "$WORK/$f" "$REF/records/$f"; done
"$HG" report --results "$REF/records" --out "$REF/report" --format md,csv,png
.venv/bin/python "$REF/side_by_side.py"
