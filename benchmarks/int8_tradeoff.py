"""INT8 trade-off of hg1 on the CPU: latency of int8 against fp32, per backend, in one process.

Usage::

    python benchmarks/int8_tradeoff.py [--sizes 64,256] [--batches 1,8] [--threads 1] [--reps 30]
        [--dataset synthetic --data-root DIR] [--calibration-count 256] [--no-torchao]
        [--cache-dir DIR] [--checkpoint PATH]

For each input size and batch size it builds hg1 (``create_model(get_variant("hg1"), 16,
input_size=S)``, random weights from seed 0 unless a checkpoint is given), draws the calibration
set (:func:`hgbench.profile.calibration_data.calibration_set`, training split, deterministic) and
prepares, on the CPU:

* ``onnxruntime``: the fp32 export and its static INT8 QDQ model
  (:func:`hgbench.profile.quantization.quantize_onnx_static`), one ``InferenceSession`` each;
* ``compile`` (unless ``--no-torchao`` or torchao is missing): ``torch.compile`` of the fp32
  model (as hgbench's compile backend: inductor, ``dynamic=False``) and torchao's PT2E INT8
  model (:func:`hgbench.profile.quantization.quantize_pt2e_x86`, compiled with freezing).

All artifacts of one setting are timed interleaved (one call of each per round, ``--reps``
rounds after warm-up), on the same validation batch, so that a slow period of a shared machine
slows all of them alike. It prints a Markdown table: p50 latency (ms) of fp32 and int8, their
ratio int8/fp32 (below 1: int8 is faster), the largest heatmap difference of int8 from fp32 on
that batch against the fp32 heatmaps' largest magnitude, and the accuracy drop.

The accuracy drop needs a trained hg1: with ``--checkpoint`` (e.g. the LSPET CPU reference's,
``hgbench train --protocol lspet-cpu ...``) the settings at the checkpoint's input size time its
trained weights, and each int8 artifact's accuracy is measured through the artifact itself on the
checkpoint's validation split (:func:`hgbench.train.evaluation.evaluate_checkpoint` with a
:class:`hgbench.profile.deployed.BackendDeployment`, as ``hgbench evaluate --backend B --precision
int8``): the column gives its difference to eager fp32 on the same persons (points) with its 95 %
paired interval. The eval records are written beside the checkpoint. Other sizes say that no
checkpoint was trained there.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from hgbench.config import get_variant
from hgbench.models import create_model
from hgbench.profile.backends.onnx_runtime import export_onnx
from hgbench.profile.calibration_data import CalibrationSpec, calibration_set
from hgbench.profile.quantization import (
    OrtInt8Options,
    quantize_onnx_static,
    quantize_pt2e_x86,
    torchao_problem,
)

NO_CHECKPOINT = "no checkpoint at this size"


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def ort_runner(path: Path, threads: int):
    """A callable running the ONNX model at ``path`` on the CPU provider with ``threads`` intra-op threads;
    returns the last stack's heatmaps as a tensor."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.numpy()})[-1])

    return run


def torch_runner(fn):
    """Last stack's heatmaps of a torch callable, without autograd."""

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return fn(x)[-1]

    return run


def time_interleaved(runners: dict, x: torch.Tensor, reps: int, warmup: int = 3) -> dict[str, float]:
    """p50 wall time (ms) of each runner on ``x``: ``warmup`` calls each, then ``reps`` rounds of one call each."""
    for run in runners.values():
        for _ in range(warmup):
            run(x)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(reps):
        for name, run in runners.items():
            start = time.perf_counter()
            run(x)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def setting_rows(args, model, cal, x: torch.Tensor, cache: Path, use_torchao: bool) -> list[dict]:
    """Prepare the artifacts of one (size, batch), time them interleaved and return the table rows."""
    batch, size = x.shape[0], x.shape[-1]
    fp32_path = cache / f"hg1_{size}px_b{batch}.onnx"
    export_onnx(model, x, fp32_path)
    quantized = quantize_onnx_static(fp32_path, cal, cache, OrtInt8Options())
    print(f"  onnxruntime int8: {'reused' if quantized.reused else 'quantized'} in {quantized.seconds:.1f} s")
    runners = {
        ("onnxruntime", "fp32"): ort_runner(fp32_path, args.threads),
        ("onnxruntime", "int8"): ort_runner(quantized.path, args.threads),
    }
    if use_torchao:
        torch._dynamo.reset()
        start = time.perf_counter()
        runners[("compile", "fp32")] = torch_runner(torch.compile(model, backend="inductor", dynamic=False))
        runners[("compile", "fp32")](x)
        pt2e = quantize_pt2e_x86(model, x, cal)
        runners[("compile", "int8")] = torch_runner(pt2e.fn)
        runners[("compile", "int8")](x)
        print(f"  compile fp32 + torchao int8 built in {time.perf_counter() - start:.1f} s")
    p50 = time_interleaved(runners, x, args.reps)
    with torch.no_grad():
        reference = model(x)[-1]
    rows = []
    for backend in dict.fromkeys(b for b, _ in runners):
        int8_out = runners[(backend, "int8")](x)
        rows.append(
            {
                "size": size,
                "batch": batch,
                "backend": backend,
                "fp32_ms": p50[(backend, "fp32")],
                "int8_ms": p50[(backend, "int8")],
                "max_diff": float((int8_out - reference).abs().max()),
                "range": float(reference.abs().max()),
            }
        )
    return rows


def accuracy_drop(checkpoint: Path, data_root, backend: str, batch: int, cache: Path, spec: CalibrationSpec) -> str:
    """The int8 artifact's difference to eager fp32 on the checkpoint's validation split (read from
    ``data_root``), points, with its 95 % paired interval (module docstring)."""
    from hgbench.profile.deployed import BackendDeployment
    from hgbench.train.evaluation import evaluate_checkpoint

    deployment = BackendDeployment(backend, "int8", batch, cache, spec)
    ev = evaluate_checkpoint(checkpoint, data_root=data_root, deployment=deployment)
    d = ev.deployed.difference
    return f"{d.mean:+.2f} [{d.mean_ci[0]:+.2f}, {d.mean_ci[1]:+.2f}] ({ev.result.metric}@{ev.result.threshold:g})"


def print_table(rows: list[dict]) -> None:
    """The Markdown table of the module docstring."""
    print(
        "| input px | batch | backend | fp32 p50 ms | int8 p50 ms | int8/fp32 | max abs heatmap diff (fp32 range) "
        "| int8 - fp32 accuracy, points [95 % CI] |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['batch']} | {r['backend']} | {r['fp32_ms']:.2f} | {r['int8_ms']:.2f} | "
            f"{r['int8_ms'] / r['fp32_ms']:.2f} | {r['max_diff']:.3f} ({r['range']:.2f}) | {r.get('drop', NO_CHECKPOINT)} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_ints, default=[64, 256])
    parser.add_argument("--batches", type=_ints, default=[1, 8])
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime intra-op threads")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--calibration-count", type=int, default=256)
    parser.add_argument("--calibration-seed", type=int, default=0)
    parser.add_argument("--no-torchao", action="store_true", help="ONNX Runtime only")
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep exports and QDQ models here")
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="a trained hg1: its accuracy drop (module docstring)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = CalibrationSpec(count=args.calibration_count, seed=args.calibration_seed)
    use_torchao = not args.no_torchao
    if use_torchao and (problem := torchao_problem()):
        print(f"compile int8 skipped: {problem}")
        use_torchao = False
    trained = None
    if args.checkpoint is not None:
        from hgbench.train import load_checkpoint

        trained, ckpt = load_checkpoint(args.checkpoint)
        trained_size = int(ckpt["protocol"]["input_size"])
        if ckpt["spec"]["name"] != "hg1":
            parser.error(f"--checkpoint {args.checkpoint}: a checkpoint of hg1 expected, got {ckpt['spec']['name']}")
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="hgbench-int8-") as tmp:
        cache = args.cache_dir or Path(tmp)
        for size in args.sizes:
            torch.manual_seed(0)
            at_checkpoint = trained is not None and size == trained_size
            model = trained.eval() if at_checkpoint else create_model(get_variant("hg1"), 16, input_size=size).eval()
            cal = calibration_set(args.dataset, args.data_root, spec, input_size=size)
            val = calibration_set(
                args.dataset, args.data_root, CalibrationSpec(count=max(args.batches), split="val"), input_size=size
            )
            for batch in args.batches:
                print(f"hg1 {size} px, batch {batch}: calibration {cal.record()}")
                setting = setting_rows(args, model, cal, val.inputs[:batch].contiguous(), cache, use_torchao)
                for row in setting if at_checkpoint else []:
                    row["drop"] = accuracy_drop(args.checkpoint, args.data_root, row["backend"], batch, cache, spec)
                rows += setting
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
