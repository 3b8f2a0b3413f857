"""Training throughput per variant: data pipeline alone, model step alone, both, and a bare loop.

Usage::

    python benchmarks/train_throughput.py --variants hg1,hg2 --input-size 64,128 \\
        [--protocol smoke] [--device cpu|cuda|cuda:N] [--precision fp32|bf16|fp16] \\
        [--channels-last] [--compile] [--batch-size 8] [--num-workers 0] \\
        [--steps 6] [--warmup 2] [--repetitions 3] [--threads N] [--json OUT.json]

For each variant and input size it prints samples/s of the training data pipeline alone,
of the engine's step alone on synthetic tensors on the device, of both together (the
training loop) and of a bare loop over the same model and tensors
(:mod:`hgbench.train.bench`), the engine's overhead (step / bare), how far the full loop is
from the step (full / step) and its data wait, and the achieved TFLOP/s of the step (training
FLOPs = 3 x the forward FLOPs of :func:`hgbench.profile.complexity.count_flops`) against the
device's compute ceiling (:func:`hgbench.profile.roofline.measure_ceilings`, measured in the
same run, so that a busy machine lowers both alike) under the precision the step really runs in:
an fp32 step on CUDA runs its convolutions in TF32 while cuDNN's TF32 is allowed (torch's
default, :func:`hgbench.train.device.conv_tf32`), so its ceiling is the TF32 one, not IEEE fp32's
(which would make ``step / ceiling`` too large, even above 1). Everything not given comes from
``--protocol`` (augmentation, optimiser, batch size, workers). Prints the command and a
Markdown table; ``--json`` also writes every round.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

import torch

from hgbench.config import get_variant, load_protocol
from hgbench.models import create_model
from hgbench.profile.complexity import count_flops
from hgbench.profile.roofline import measure_ceilings
from hgbench.records import atomic_write_bytes
from hgbench.records.provenance import collect_provenance
from hgbench.train.bench import add_flops, markdown_table, measure_training_throughput
from hgbench.train.device import conv_tf32, resolve_device


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default="hg1,hg2")
    ap.add_argument("--protocol", default="smoke")
    ap.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    ap.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16"], help="default: the protocol's")
    ap.add_argument("--channels-last", action="store_true", default=None)
    ap.add_argument("--compile", action="store_true", default=None)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the protocol's")
    ap.add_argument("--input-size", default="64,128", help="comma-separated input sides in pixels")
    ap.add_argument("--num-workers", type=int, default=None, help="default: the protocol's")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads of the training process (default: torch's)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    base = load_protocol(args.protocol)
    changes = {
        k: v
        for k, v in {
            "precision": args.precision,
            "channels_last": args.channels_last,
            "compile": args.compile,
            "batch_size": args.batch_size,
            "num_workers": args.num_workers,
        }.items()
        if v is not None
    }
    base = dataclasses.replace(base, **changes)
    device = resolve_device(args.device)
    command = shlex.join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])])
    print(f"$ python {command}", flush=True)
    tf32 = conv_tf32(device, base.precision)  # what the training step's convolutions run in
    ceilings = measure_ceilings(device, base.precision, tf32=tf32)
    print(
        f"ceiling on {device} ({base.precision}{' with TF32 convolutions' if tf32 else ''}, "
        f"{torch.get_num_threads()} threads): {ceilings.matmul_tflops:.3f} TFLOP/s "
        f"(matmul {ceilings.mm_tflops:.3f}, 3x3 conv {ceilings.conv_tflops:.3f})",
        flush=True,
    )

    results = []
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        spec = get_variant(name)
        for size in _ints(args.input_size):
            protocol = dataclasses.replace(base, input_size=size, output_size=size // 4)
            r = measure_training_throughput(
                spec,
                protocol,
                device,
                steps=args.steps,
                warmup=args.warmup,
                repetitions=args.repetitions,
                progress=lambda m: print(f"  {m}", flush=True),
            )
            fwd = count_flops(create_model(spec, 14, input_size=size), (1, 3, size, size)).flops
            results.append(add_flops(r, fwd, ceilings.matmul_tflops))
            print(markdown_table(results[-1:]).splitlines()[-1], flush=True)
    print()
    print(markdown_table(results))
    if args.json:
        body = {
            "command": command,
            "ceilings": dataclasses.asdict(ceilings),
            "results": [r.to_dict() for r in results],
            "provenance": collect_provenance(),
        }
        atomic_write_bytes(args.json, (json.dumps(body, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
