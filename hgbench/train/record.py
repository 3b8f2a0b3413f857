"""The run record: the body of a complete run's ``train`` record (``<run>/train.json``), the
one place it is assembled."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from hgbench.config import Protocol, VariantSpec
from hgbench.data.download.fetch import file_digest
from hgbench.records.identity import identity
from hgbench.records.provenance import collect_provenance
from hgbench.train.device import device_label
from hgbench.train.distributed import slurm_job_id
from hgbench.train.state import TrainState


def _tf32(device: torch.device) -> dict[str, bool] | None:
    """torch's TF32 switches on CUDA (cuDNN convolutions default to TF32 on Ampere and later,
    even in "fp32"); None on the CPU."""
    if device.type != "cuda":
        return None
    return {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}


def _rates(progress: TrainState, batch_size: int) -> dict[str, Any]:
    """``train_time_s``, ``wall_time_s``, ``samples_per_s`` (the steady rate: ``steps * batch_size /
    train_time_s`` without each session's warm-up steps and their time, the sessions'
    ``warmup_steps`` and ``warmup_time_s``, :data:`hgbench.train.epoch.WARMUP_STEPS`; over every
    step when no step came after a warm-up), ``warmup_steps_excluded`` (how many steps it leaves
    out: 0 in that case), ``samples_per_s_all_steps`` (warm-up included) and
    ``data_wait_fraction`` (None without training time)."""
    train_time = progress.train_time_s
    all_steps = progress.step * batch_size / train_time if train_time > 0 else None
    warm_steps = sum(s.get("warmup_steps", 0) for s in progress.sessions)
    warm_time = sum(s.get("warmup_time_s", 0.0) for s in progress.sessions)
    steady = progress.step > warm_steps and train_time > warm_time
    return {
        "train_time_s": train_time,
        "wall_time_s": progress.wall_time_s,
        "samples_per_s": (progress.step - warm_steps) * batch_size / (train_time - warm_time) if steady else all_steps,
        "warmup_steps_excluded": warm_steps if steady else 0,
        "samples_per_s_all_steps": all_steps,
        "data_wait_fraction": progress.data_wait_s / train_time if train_time > 0 else None,
    }


def _determinism(device: torch.device) -> dict[str, Any]:
    """``deterministic`` (``torch.are_deterministic_algorithms_enabled()`` during the run,
    :func:`hgbench.train.device.training_flags`), ``cudnn_benchmark`` (None on the CPU) and
    ``cublas_workspace_config`` (the environment variable, None when unset), read while the
    run's flags are in effect."""
    return {
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark if device.type == "cuda" else None,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def train_record_body(
    *,
    spec: VariantSpec,
    protocol: Protocol,
    run_protocol: Protocol,
    dataset: str,
    data_root,
    split: dict,
    keypoints,
    parameters: int,
    progress: TrainState,
    steps_per_epoch: int,
    device: torch.device,
    checkpoint: Path,
    world_size: int = 1,
    backend: str | None = None,
    per_rank_batch_size: int | None = None,
    data=None,
) -> dict:
    """The body of a complete run's ``train`` record (the one place it is assembled).

    Fields: the identity (:func:`hgbench.records.identity.identity`: ``variant``, ``spec``
    (asdict), ``spec_hash``, ``num_joints``, ``dataset``, ``protocol`` (name),
    ``protocol_hash`` (of the protocol as loaded); with ``data``, the run's
    :class:`hgbench.data.fingerprint.DataFingerprint`, ``data_folder``, ``data_fingerprint`` and
    ``data_images``), ``protocol_as_loaded`` and ``protocol_settings`` (as run: with the variant's overrides), ``overrides``,
    ``data_root``, ``split`` (sizes), ``keypoints``, ``parameters``,
    ``train_time_s``, ``wall_time_s`` (seconds, summed across resumes),
    ``samples_per_s`` (warm-up steps left out), ``warmup_steps_excluded``,
    ``samples_per_s_all_steps`` (:func:`_rates`), ``data_wait_fraction``, ``device`` (of the last session),
    ``precision``, ``channels_last``, ``compile``, ``tf32`` (torch's TF32 switches for
    cuDNN and matmuls on CUDA, None on the CPU), ``deterministic``, ``cudnn_benchmark`` and
    ``cublas_workspace_config`` (of the last session: :func:`_determinism`), ``epochs``, ``steps_per_epoch``,
    ``steps``, ``batch_size`` (the global batch), ``world_size`` (processes of the last
    session), ``backend`` (``"nccl"``/``"gloo"``, None for one process), ``per_rank_batch_size``,
    ``slurm_job_id`` (:func:`hgbench.train.distributed.slurm_job_id`, None outside Slurm),
    ``history`` (per epoch: ``epoch``, ``steps``, ``train_loss`` (mean over the ranks),
    ``lr``, and ``val`` where validated), ``pretrain``, ``final`` (the last validation),
    ``checkpoint`` (path), ``checkpoint_sha256`` (of the checkpoint file as the run ended, which
    an eval record of it repeats, so that an evaluation of an earlier checkpoint is told apart;
    None when it is absent), ``sessions`` (one per start or resume: ``device``, ``world_size``,
    ``slurm_job_id``, ``start_step``, ``end_step``, ``train_time_s``), ``complete``,
    ``provenance``.
    """
    p = run_protocol
    run = identity(spec=spec, num_joints=keypoints.num_joints, protocol=protocol, dataset=dataset,
                   data=None if data is None else data.fields())  # fmt: skip
    return {
        **run,
        "protocol_as_loaded": dataclasses.asdict(protocol),
        "protocol_settings": dataclasses.asdict(p),
        "overrides": spec.overrides,
        "data_root": str(data_root) if data_root else None,
        "split": split,
        "keypoints": keypoints.name,
        "parameters": parameters,
        **_rates(progress, p.batch_size),
        "device": device_label(device),
        "precision": p.precision,
        "channels_last": p.channels_last,
        "compile": p.compile,
        "tf32": _tf32(device),
        **_determinism(device),
        "epochs": p.epochs,
        "steps_per_epoch": steps_per_epoch,
        "steps": progress.step,
        "batch_size": p.batch_size,
        "world_size": world_size,
        "backend": backend,
        "per_rank_batch_size": per_rank_batch_size if per_rank_batch_size is not None else p.batch_size // world_size,
        "slurm_job_id": slurm_job_id(),
        "history": progress.history,
        "pretrain": progress.pretrain,
        "final": next((h["val"] for h in reversed(progress.history) if "val" in h), None),
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_digest(checkpoint, "sha256") if Path(checkpoint).is_file() else None,
        "sessions": progress.sessions,
        "complete": True,
        "provenance": collect_provenance(),
    }
