"""Fit one variant under one protocol; checkpoints, run records, resume and skip.

A run lives in ``<results>/runs/<dataset>/<protocol>/<variant>/``: ``checkpoint.pt``
(written atomically after every epoch, so an interrupted run resumes from its last epoch)
and ``train.json``, the run record, written once the run is complete. A variant whose
record is complete is skipped unless ``force``.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from hgbench.data import make_dataset
from hgbench.data.base import endless_batches
from hgbench.accuracy.evaluate import evaluate_pck
from hgbench.models.loss import stacked_loss
from hgbench.models import count_parameters
from hgbench.config import Protocol, check_compatible
from hgbench.train.optim import build_optimizer
from hgbench.records.provenance import collect_provenance
from hgbench.config import VariantSpec
from hgbench.records import RecordError, atomic_write_bytes, read_record, run_dir, write_record
from hgbench.models import create_model

CHECKPOINT = "checkpoint.pt"
RECORD = "train.json"

# progress(event, info): event is "start" (info: total_steps), "step" (info: loss) or
# "validate" (info: epoch, mean accuracy); the CLI draws a progress bar from it.
ProgressFn = Callable[[str, dict], None]


def completed_record(path: Path) -> dict | None:
    """The complete training record in run folder ``path``, or None."""
    try:
        record = read_record(Path(path) / RECORD)
    except RecordError:
        return None
    return record if record.get("complete") else None


def _validation_set(protocol: Protocol, dataset: str, data_root, **kw):
    ds = make_dataset(dataset, data_root, "val", **kw)
    n = protocol.val_max_samples
    if n is not None and n < len(ds):
        # evenly spaced, so a small validation set still spans the whole split
        ds_sub = Subset(ds, np.linspace(0, len(ds) - 1, n).round().astype(int).tolist())
        ds_sub.keypoints = ds.keypoints  # type: ignore[attr-defined]
        return ds_sub
    return ds


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def train_variant(
    spec: VariantSpec,
    protocol: Protocol,
    dataset: str = "synthetic",
    data_root: str | Path | None = None,
    results_dir: str | Path = "results",
    force: bool = False,
    progress: ProgressFn | None = None,
) -> dict:
    """Train ``spec`` under ``protocol`` (with the variant's overrides) on ``dataset``.

    Returns:
        The run record (also written to ``train.json``): variant, protocol (as run),
        dataset, parameters, ``train_time_s`` (wall-clock seconds of the optimisation steps,
        data loading included), ``wall_time_s`` (validation included), ``history`` (per
        epoch: mean training loss, learning rate, validation PCK per joint/group and mean),
        ``final`` (the last validation), provenance; ``skipped`` is True when a complete
        run was found and ``force`` is False.

    Raises:
        ConfigError: ``spec`` cannot run under ``protocol`` (:func:`hgbench.config.check_compatible`).
        DatasetError, ValueError: the dataset cannot be built.
    """
    check_compatible(spec, protocol)  # ConfigError before any work
    out_dir = run_dir(Path(results_dir), dataset, protocol.name, spec.name)
    if not force:
        done = completed_record(out_dir)
        if done is not None:
            return {**done, "skipped": True}

    run_protocol = protocol.with_overrides(spec.optimizer, spec.batch_size)
    p = run_protocol
    torch.manual_seed(p.seed)
    data_kw = dict(input_size=p.input_size, output_size=p.output_size, sigma=p.heatmap_sigma, sigma_occluded=p.heatmap_sigma_occluded)
    train_set = make_dataset(dataset, data_root, "train", augmentation=p.augmentation, **data_kw)
    val_set = _validation_set(p, dataset, data_root, **data_kw)
    keypoints = train_set.keypoints

    model = create_model(spec, keypoints.num_joints, input_size=p.input_size)
    optimizer = build_optimizer(p.optimizer, model.parameters())
    scheduler = None
    if p.schedule.type == "step":
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(p.schedule.milestones), p.schedule.gamma)
    elif p.schedule.type == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=p.schedule.gamma, patience=p.schedule.patience, min_lr=p.schedule.min_lr
        )

    history: list[dict] = []
    start_epoch, train_time, pretrain_info = 0, 0.0, None
    ckpt_path = out_dir / CHECKPOINT
    if ckpt_path.is_file() and not force:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt.get("protocol") == dataclasses.asdict(p) and ckpt.get("variant") == spec.name:
            model.load_state_dict(ckpt["model_state"])
            optimizer.load_state_dict(ckpt["optimizer_state"])
            if scheduler is not None and ckpt.get("scheduler_state"):
                scheduler.load_state_dict(ckpt["scheduler_state"])
            start_epoch, history, train_time = ckpt["epoch"], ckpt["history"], ckpt["train_time_s"]
            pretrain_info = ckpt.get("pretrain")
            torch.set_rng_state(ckpt["rng_state"])
    if spec.pretrain is not None and start_epoch == 0:
        # phase 1 of a two-phase training (hgbench.train.pretrain); a resumed run already had it
        from hgbench.train.pretrain import pretrain_autoencoder

        pretrain_info = pretrain_autoencoder(model, train_set, spec.pretrain, p, progress)

    generator = torch.Generator().manual_seed(p.seed + start_epoch)
    loader = DataLoader(train_set, batch_size=p.batch_size, shuffle=True, drop_last=True, num_workers=p.num_workers, generator=generator)
    steps_per_epoch = p.steps_per_epoch or len(loader)
    if progress:
        progress("start", {"total_steps": p.epochs * steps_per_epoch, "done_steps": start_epoch * steps_per_epoch})

    wall_start = time.perf_counter()
    batches = endless_batches(loader)
    for epoch in range(start_epoch, p.epochs):
        model.train()
        t0 = time.perf_counter()
        losses = []
        for _ in range(steps_per_epoch):
            batch = next(batches)
            outputs = model(batch["image"])
            loss = stacked_loss(outputs, batch["heatmaps"], batch["target_weight"], spec.supervision)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if progress:
                progress("step", {"loss": losses[-1]})
        train_time += time.perf_counter() - t0

        entry = {"epoch": epoch + 1, "steps": (epoch + 1) * steps_per_epoch, "train_loss": float(np.mean(losses)), "lr": _lr(optimizer)}
        if (epoch + 1) % p.val_every == 0 or epoch + 1 == p.epochs:
            result = evaluate_pck(model, val_set, threshold=None, batch_size=max(p.batch_size, 8), supervision=spec.supervision,
                                  skips=spec.eval_skips, flip_test=p.flip_test)
            entry["val"] = result.to_dict()
            if progress:
                progress("validate", {"epoch": epoch + 1, "mean": result.mean})
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and math.isfinite(result.mean):
                scheduler.step(result.mean)
        if isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR):
            scheduler.step()
        history.append(entry)
        _save_checkpoint(ckpt_path, spec, p, dataset, keypoints.num_joints, model, optimizer, scheduler, epoch + 1, history, train_time, pretrain_info)

    last_val = next((h["val"] for h in reversed(history) if "val" in h), None)
    body = {
        "variant": spec.name,
        "spec": dataclasses.asdict(spec),
        "protocol": p.name,
        "protocol_settings": dataclasses.asdict(p),
        "overrides": spec.overrides,
        "dataset": dataset,
        "data_root": str(data_root) if data_root else None,
        "split": {"train": len(train_set), "val": len(val_set)},
        "keypoints": keypoints.name,
        "num_joints": keypoints.num_joints,
        "parameters": count_parameters(model),
        "train_time_s": train_time,
        "wall_time_s": time.perf_counter() - wall_start,
        "epochs": p.epochs,
        "steps": p.epochs * steps_per_epoch,
        "history": history,
        "pretrain": pretrain_info,
        "final": last_val,
        "checkpoint": str(ckpt_path),
        "complete": True,
        "provenance": collect_provenance(),
    }
    return write_record(out_dir / RECORD, "train", body)


def _save_checkpoint(path, spec, protocol, dataset, num_joints, model, optimizer, scheduler, epoch, history, train_time, pretrain=None):
    state = {
        "variant": spec.name,
        "spec": dataclasses.asdict(spec),
        "protocol": dataclasses.asdict(protocol),
        "dataset": dataset,
        "num_joints": num_joints,
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
        "epoch": epoch,
        "history": history,
        "train_time_s": train_time,
        "rng_state": torch.get_rng_state(),
        "pretrain": pretrain,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild the network stored in a checkpoint (from the spec saved in it, so it loads
    even if the registry changed) and return ``(model in eval mode, checkpoint dict)``.

    Raises:
        FileNotFoundError: no such file. ValueError: not an hgbench checkpoint.
    """
    from hgbench.config import from_dict

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "spec" not in ckpt or "model_state" not in ckpt:
        raise ValueError(f"{path}: not an hgbench checkpoint (fields 'spec' and 'model_state' missing)")
    spec = from_dict(VariantSpec, ckpt["spec"], path)
    model = create_model(spec, ckpt["num_joints"], input_size=(ckpt.get("protocol") or {}).get("input_size"))
    model.load_state_dict(ckpt["model_state"])
    model.eval()
    return model, ckpt
