"""Evaluation of a trained checkpoint on a split, written as an eval record beside it.

The one place that turns a checkpoint into an eval record: the CLI's ``hgbench evaluate`` and a
notebook call :func:`evaluate_checkpoint`; the metric itself is :mod:`hgbench.accuracy`'s.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hgbench import paths
from hgbench.accuracy.evaluate import evaluate_pck
from hgbench.accuracy.pck import PCKResult
from hgbench.data import check_dataset_options, make_dataset
from hgbench.records import EvalRecord, protocol_hash, spec_hash, write_record
from hgbench.records.provenance import collect_provenance


class SuspectResultError(RuntimeError):
    """An evaluation whose result cannot be trusted (no finite accuracy); nothing was written."""


@dataclass
class Evaluation:
    """What :func:`evaluate_checkpoint` measured: the result, the record written, the split size."""

    result: PCKResult
    record: EvalRecord
    persons: int


def evaluate_checkpoint(
    checkpoint: str | Path,
    dataset: str | None = None,
    data_root: str | Path | None = None,
    split: str = "val",
    threshold: float | None = None,
    flip_test: bool | None = None,
    skip_bad_samples: bool = False,
    device: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate ``checkpoint`` on ``split`` of ``dataset`` (default: the one it was trained on)
    with the dataset's metric, and write the eval record beside it
    (:func:`hgbench.paths.eval_record_path`).

    Args:
        threshold: fraction of the dataset's normaliser, in (0, 1] (default: the metric's
            standard, PCK 0.2, PCKh 0.5; the MPII toolkit's PCKh curve stops at 0.5).
        device: ``--device`` (:func:`hgbench.train.device.resolve_device`); None: where the
            checkpoint loads (the CPU).
        flip_test: default: the protocol's ``flip_test``.
        progress: called with ``(persons done, persons in all)``.

    Raises:
        ValueError: a threshold outside (0, 1], a device this machine does not have
            (``DeviceError``), an unknown dataset or split, ``data_root`` with the synthetic
            dataset (:func:`hgbench.data.check_dataset_options`), or a dataset whose joints
            differ from the model's (checked before any work).
        FileNotFoundError, hgbench.data.DatasetError: the checkpoint or the dataset cannot be read.
        SuspectResultError: the accuracy is not finite; the earlier record, if any, is kept.
        hgbench.records.NewerSchemaError: the record's file was written by a newer hgbench.
    """
    from hgbench.train import load_checkpoint
    from hgbench.train.device import resolve_device

    if threshold is not None and not (0 < threshold <= 1):  # NaN fails both comparisons
        raise ValueError(
            f"--threshold: expected a fraction of the normaliser in (0, 1] (e.g. 0.2 for PCK@0.2; "
            f"50 % is 0.5), got {threshold}"
        )
    dev = None if device is None else resolve_device(device)
    check_dataset_options(dataset, data_root, split)
    checkpoint = Path(checkpoint)
    model, ckpt = load_checkpoint(checkpoint)
    if dev is not None:
        model = model.to(dev)
    name = dataset or ckpt["dataset"]
    check_dataset_options(name, data_root, split)  # the checkpoint's dataset: its own splits
    p = ckpt["protocol"]
    ds = make_dataset(name, data_root, split, input_size=p["input_size"], output_size=p["output_size"], sigma=p["heatmap_sigma"],
                      sigma_occluded=p.get("heatmap_sigma_occluded"), bad_samples="skip" if skip_bad_samples else "error")  # fmt: skip
    if ds.keypoints.num_joints != ckpt["num_joints"]:
        raise ValueError(
            f"{checkpoint}: the model has {ckpt['num_joints']} joints, dataset {name!r} has {ds.keypoints.num_joints}"
        )
    flip = p.get("flip_test", True) if flip_test is None else flip_test
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, len(ds))

    spec = ckpt["spec"]
    result = evaluate_pck(model, ds, threshold=threshold, progress=advance, supervision=spec["supervision"],
                          skips=spec.get("eval_skips", True), flip_test=flip)  # fmt: skip
    if not math.isfinite(result.mean):
        raise SuspectResultError(
            f"{checkpoint}: the accuracy on {name}/{split} is not a number (no joint could be scored); "
            "no eval record written, the earlier one (if any) is kept: check the dataset's annotations"
        )
    body = {
        "variant": ckpt["variant"], "spec": spec, "spec_hash": spec_hash(spec), "num_joints": ckpt["num_joints"],
        "protocol": p["name"], "protocol_hash": ckpt.get("protocol_hash") or protocol_hash(p), "dataset": name,
        "split": split, "metric": result.metric, "threshold": result.threshold, "flip_test": result.flip_test,
        "checkpoint": str(checkpoint), "trained_on": ckpt["dataset"], "result": dataclasses.asdict(result),
    }  # fmt: skip
    out = paths.eval_record_path(checkpoint.parent, name, split, result.metric, result.threshold, result.flip_test)
    record = write_record(out, "eval", body, provenance=collect_provenance())
    return Evaluation(result, record, len(ds))
