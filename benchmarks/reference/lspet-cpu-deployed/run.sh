#!/usr/bin/env bash
# The deployed view of the LSPET CPU reference (README.md beside this script, issue 27): the
# front of benchmarks/reference/lspet-cpu (hg1, hg1-ds3, hg1-ghost, hg1-ghost-s32) trained under
# variants/protocols/lspet-cpu.yaml, profiled on one machine in one run for eager, TorchScript and
# ONNX Runtime at fp32 and int8, batch 1 and 8, and compile at int8 (torchao PT2E) for hg1 at batch 8
# (its calibration, torchao's HistogramObserver, takes minutes per artifact on 2 cores), at the
# protocol's 64 px, each setting's accuracy measured through its own artifact (--evaluate).
# Run from the repository root:
#
#     bash benchmarks/reference/lspet-cpu-deployed/run.sh [DATA_ROOT] [WORK]
#
# DATA_ROOT: the LSPET folder, default ../shared/data/lspet. WORK: results folder (checkpoints,
# records; not committed), default results/lspet-cpu-deployed. Complete training runs in WORK are
# skipped (TRAIN=0 skips the training command altogether, for checkpoints copied in).
set -euo pipefail
DATA_ROOT=${1:-../shared/data/lspet}
WORK=${2:-results/lspet-cpu-deployed}
HG=${HG:-.venv/bin/hgbench}
REF=benchmarks/reference/lspet-cpu-deployed
FRONT=hg1,hg1-ds3,hg1-ghost,hg1-ghost-s32
mkdir -p "$WORK"
if [ "${TRAIN:-1}" = 1 ]; then
    OMP_NUM_THREADS=1 "$HG" train-all --protocol lspet-cpu --dataset lspet --data-root "$DATA_ROOT" --results "$WORK" --variants "$FRONT"
fi
"$HG" profile --results "$WORK" --variants "$FRONT" --backend eager,torchscript,onnxruntime --precision fp32,int8 \
    --batch-size 1,8 --threads 2 --cache-dir "$WORK/cache" --evaluate
"$HG" profile --results "$WORK" --variants hg1 --backend compile --precision int8 \
    --batch-size 8 --threads 2 --cache-dir "$WORK/cache" --evaluate

# Records only (train.json, eval and profile records), never checkpoints.
rm -rf "$REF/records"
(cd "$WORK" && find runs profile -name '*.json' -not -name 'checkpoint*' -print0) |
    while IFS= read -r -d '' f; do mkdir -p "$REF/records/$(dirname "$f")" && cp "$WORK/$f" "$REF/records/$f"; done
"$HG" report --results "$REF/records" --out "$REF/report" --format md,csv,png
