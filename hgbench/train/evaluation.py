"""Evaluation of a trained checkpoint on a split, written as an eval record beside it.

The one place that turns a checkpoint into an eval record: the CLI's ``hgbench evaluate`` and a
notebook call :func:`evaluate_checkpoint`; the metric itself is :mod:`hgbench.accuracy`'s.

With a ``deployment`` (:class:`hgbench.accuracy.deployed.Deployment`, e.g.
:class:`hgbench.profile.deployed.BackendDeployment`: the training layer may not import the
profiler, so the caller hands it in) the record is the accuracy of the deployed artifact, with
its setting and the paired difference against the eager fp32 checkpoint
(:meth:`hgbench.accuracy.deployed.DeployedEvaluation.record_fields`), in a file of its own
(:func:`hgbench.paths.eval_record_path`'s ``artifact``; eager fp32 keeps the plain file).

An eval record is keyed by the data it scored (:data:`hgbench.records.identity.DATA`): an
evaluation on another data folder is written beside the first, never over it
(:func:`eval_record_file`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from hgbench import paths
from hgbench.accuracy.deployed import DeployedEvaluation, Deployment
from hgbench.accuracy.evaluate import evaluate_pck
from hgbench.accuracy.pck import PCKResult
from hgbench.data import check_dataset_options, make_dataset
from hgbench.data.download.fetch import file_digest
from hgbench.data.fingerprint import DataFingerprint, evaluation_data
from hgbench.records import EvalRecord, write_record
from hgbench.records.identity import identity
from hgbench.records.provenance import collect_provenance
from hgbench.records.validation import check_finite_weights


class SuspectResultError(ValueError):
    """An evaluation whose result cannot be trusted (no finite accuracy); nothing was written
    (an input error: the command says so in one line, exit status 2)."""


@dataclass
class Evaluation:
    """What :func:`evaluate_checkpoint` measured: the result, the record written, the split size."""

    result: PCKResult
    record: EvalRecord
    persons: int
    deployed: DeployedEvaluation | None = None


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
    deployment: Deployment | None = None,
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
        progress: called with ``(persons done, persons in all)`` (a deployment's two passes,
            artifact and reference, count twice).
        deployment: measure this artifact of the checkpoint instead of the module itself
            (module docstring); checked on the device before any work.

    Raises:
        ValueError: a threshold outside (0, 1], a device this machine does not have
            (``DeviceError``), an unknown dataset or split, ``data_root`` with the synthetic
            dataset (:func:`hgbench.data.check_dataset_options`), or a dataset whose joints
            differ from the model's (checked before any work); a deployment that cannot run on
            the device (:meth:`hgbench.accuracy.deployed.Deployment.check`).
        FileNotFoundError, hgbench.data.DatasetError: the checkpoint or the dataset cannot be read;
            ValueError: its weights are not all finite (a diverged run; before any scoring).
        SuspectResultError: the accuracy is not finite; the earlier record, if any, is kept.
        hgbench.records.NewerSchemaError: the record's file was written by a newer hgbench.
    """
    from hgbench.train import load_checkpoint
    from hgbench.train.device import resolve_device

    _check_threshold(threshold)
    dev = None if device is None else resolve_device(device)
    check_dataset_options(dataset, data_root, split)
    if deployment is not None:
        deployment.check(dev if dev is not None else torch.device("cpu"))
    checkpoint = Path(checkpoint)
    model, ckpt = load_checkpoint(checkpoint)
    check_finite_weights(model.state_dict(), checkpoint)
    if dev is not None:
        model = model.to(dev)
    name = dataset or ckpt["dataset"]
    ds = _eval_dataset(ckpt, checkpoint, name, data_root, split, skip_bad_samples)
    p, spec = ckpt["protocol"], ckpt["spec"]
    done, total = 0, len(ds) * (1 if deployment is None else 2)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    how = dict(threshold=threshold, progress=advance, supervision=spec["supervision"], skips=spec.get("eval_skips", True),
               flip_test=p.get("flip_test", True) if flip_test is None else flip_test)  # fmt: skip
    deployed = None
    if deployment is None:
        result = evaluate_pck(model, ds, **how)
    else:
        deployed = deployment.evaluate(model, ds, device=dev if dev is not None else torch.device("cpu"), **how)
        result = deployed.result
    if not math.isfinite(result.mean):
        raise SuspectResultError(
            f"{checkpoint}: the accuracy on {name}/{split} is not a number (no joint could be scored); "
            "no eval record written, the earlier one (if any) is kept: check the dataset's annotations"
        )
    record = _write_eval_record(ckpt, checkpoint, name, data_root, split, result, deployed)
    return Evaluation(result, record, len(ds), deployed)


def _write_eval_record(
    ckpt: dict,
    checkpoint: Path,
    name: str,
    data_root,
    split: str,
    result: PCKResult,
    deployed: DeployedEvaluation | None,
) -> EvalRecord:
    """Write the eval record of ``result`` beside ``checkpoint``, in the file of its setting and
    of the data scored (:func:`eval_record_file`), and return it."""
    data = evaluation_data(name, data_root, split)
    artifact = None if deployed is None else deployed.artifact
    out = eval_record_file(
        paths.eval_record_path(checkpoint.parent, name, split, result.metric, result.threshold, result.flip_test,
                               artifact=artifact),
        data.digest,
    )  # fmt: skip
    body = eval_record_body(ckpt, checkpoint, name, split, result, data)
    if deployed is not None:
        body.update(deployed.record_fields())
    return write_record(out, "eval", body, provenance=collect_provenance())


def _check_threshold(threshold: float | None) -> None:
    """Refuse a threshold outside (0, 1] (NaN fails both comparisons).

    Raises:
        ValueError: naming ``--threshold``, the value and an example.
    """
    if threshold is not None and not (0 < threshold <= 1):
        raise ValueError(
            f"--threshold: expected a fraction of the normaliser in (0, 1] (e.g. 0.2 for PCK@0.2; "
            f"50 % is 0.5), got {threshold}"
        )


def _eval_dataset(ckpt: dict, checkpoint: Path, name: str, data_root, split: str, skip_bad_samples: bool):
    """Split ``split`` of dataset ``name`` with the checkpoint's protocol's input, heatmap size
    and sigmas.

    Raises:
        ValueError: an unknown split of ``name`` (:func:`hgbench.data.check_dataset_options`),
            or a dataset whose joints differ from the model's.
    """
    check_dataset_options(name, data_root, split)  # the checkpoint's dataset: its own splits
    p = ckpt["protocol"]
    ds = make_dataset(name, data_root, split, input_size=p["input_size"], output_size=p["output_size"], sigma=p["heatmap_sigma"],
                      sigma_occluded=p.get("heatmap_sigma_occluded"), bad_samples="skip" if skip_bad_samples else "error")  # fmt: skip
    if ds.keypoints.num_joints != ckpt["num_joints"]:
        raise ValueError(
            f"{checkpoint}: the model has {ckpt['num_joints']} joints, dataset {name!r} has {ds.keypoints.num_joints}"
        )
    return ds


def eval_record_file(plain: Path, digest: str) -> Path:
    """Where the eval record of one setting on the data of fingerprint ``digest`` goes: the
    ``plain`` name (:func:`hgbench.paths.eval_record_path` without ``data``) unless it holds an
    evaluation of other data, then the name with ``-d<digest>``. So the first data evaluated
    (usually the training's) keeps the plain name, every other data gets its own file, and an
    evaluation never replaces one of other data. A plain file without a fingerprint (written
    before evaluations carried one: its data are unknown) or unreadable is replaced, as before."""
    try:
        found = json.loads(plain.read_bytes()).get("data_fingerprint")
    except (OSError, ValueError, AttributeError):
        found = None
    if found is None or found == digest:
        return plain
    return plain.with_name(f"{plain.stem}-d{digest[:8]}.json")


def eval_record_body(
    ckpt: dict, checkpoint: Path, dataset: str, split: str, result: PCKResult, data: DataFingerprint | None = None
) -> dict:
    """The body of the ``eval`` record of ``result``, the accuracy of checkpoint ``ckpt``
    (file ``checkpoint``) on ``split`` of ``dataset``: its identity
    (:func:`hgbench.records.identity.identity` of the checkpoint's spec and protocol, with the
    dataset evaluated on, the protocol hash the checkpoint stored and, with ``data``, the data
    scored: ``data_folder``, ``data_fingerprint``, ``data_images``), ``pipeline_check`` (the
    protocol's flag: the accuracy says nothing about the variant), ``split``, ``metric``,
    ``threshold``, ``flip_test``, ``checkpoint`` (path), ``checkpoint_sha256`` (of the file
    scored: a report tells an evaluation of an earlier checkpoint of the run from one of its
    last, :attr:`hgbench.records.TrainRecord` ``checkpoint_sha256``), ``trained_on`` (the
    training's dataset) and ``result`` (:class:`hgbench.accuracy.pck.PCKResult` as a dict)."""
    p = ckpt["protocol"]
    return {
        **identity(spec=ckpt["spec"], num_joints=ckpt["num_joints"], protocol=p, dataset=dataset,
                   protocol_hash_=ckpt.get("protocol_hash"), data=None if data is None else data.fields()),
        "pipeline_check": bool(p.get("pipeline_check", False)),
        "split": split, "metric": result.metric, "threshold": result.threshold, "flip_test": result.flip_test,
        "checkpoint": str(checkpoint), "trained_on": ckpt["dataset"], "result": dataclasses.asdict(result),
        "checkpoint_sha256": file_digest(checkpoint, "sha256") if Path(checkpoint).is_file() else None,
    }  # fmt: skip
