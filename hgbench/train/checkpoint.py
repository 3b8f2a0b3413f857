"""Training checkpoints: everything an exact resume needs, written atomically, read safely.

A checkpoint (``<run>/checkpoint.pt``, :data:`hgbench.paths.CHECKPOINT`) is one
``torch.save`` dict holding the run's identity (variant, spec and its hash, protocol name,
hash and settings as run, dataset), the model, optimiser, scheduler and gradient-scaler
states, the position (optimiser steps done; the sampler's pass and batch within it follow,
:class:`hgbench.train.sampler.TrainSampler`), the current epoch's loss accumulator, the
history of finished epochs, the times so far, and every random generator (torch CPU, every
CUDA device, NumPy's global, Python's ``random``). It is written through a temporary file
and a rename (:func:`hgbench.records.atomic_write_bytes`), so a process killed while writing
leaves the previous checkpoint intact.

It is always read with ``torch.load(weights_only=True)``: only tensors and plain Python
containers are unpickled, never arbitrary objects (the PyTorch documentation's advice for
files that may not be trusted). A file that cannot be read is reported with its path and
the fix; a checkpoint of another run (variant, protocol, dataset) or of a newer hgbench is
refused with the difference named, never half-loaded.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

import hgbench
from hgbench.config import VariantSpec, from_dict
from hgbench.models import create_model
from hgbench.records import atomic_write_bytes
from hgbench.records.key import PROTOCOL_IDENTITY_EXCLUDED, SPEC_IDENTITY_EXCLUDED

CHECKPOINT_FORMAT = 2
"""Layout version of the checkpoint dict. 1: hgbench 0.1's per-epoch checkpoint (model,
optimiser, scheduler, CPU generator; no position within an epoch); 2: this module's."""

RESUME_FIX = "pass --force to start this run again (its checkpoint is replaced)"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not belong to the run; the message names the
    file, the difference and the fix."""


def capture_rng() -> dict[str, Any]:
    """The state of every random generator a run may draw from: ``torch`` (CPU), ``cuda``
    (one state per CUDA device, when CUDA is initialised), ``numpy`` (the global
    ``np.random`` state) and ``python`` (``random``), as tensors and plain containers."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Set every generator from :func:`capture_rng`'s ``state`` (CUDA states only where the
    number of devices matches)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plain containers and tensors) to ``path`` atomically, with
    ``format`` (:data:`CHECKPOINT_FORMAT`) and ``hgbench_version`` added."""
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "hgbench_version": hgbench.__version__, **state}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def read_checkpoint(path: Path, fix: str = RESUME_FIX) -> dict[str, Any]:
    """The checkpoint dict in ``path``, loaded on the CPU with ``weights_only=True``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is truncated, corrupt or not a checkpoint; the message
            names it and says ``fix``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load raises many kinds; torch's own text is not repeated
        # (it suggests loading untrusted files with weights_only=False, which hgbench never does)
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint (truncated or corrupt: {type(e).__name__}); {fix}"
        ) from None
    if not isinstance(ckpt, dict) or "spec" not in ckpt or "model_state" not in ckpt:
        raise CheckpointError(f"{path}: not an hgbench checkpoint (fields 'spec' and 'model_state' missing); {fix}")
    return ckpt


EVALUATION_FIELDS = {"spec": dict, "model_state": dict, "num_joints": int, "dataset": str, "protocol": dict}
"""The fields (and their types) a checkpoint of every format holds, which :func:`load_checkpoint`
and the evaluation read."""
RESUME_FIELDS = {
    **EVALUATION_FIELDS,
    "optimizer_state": dict,
    "scaler_state": dict,
    "rng": dict,
    "step": int,
    "history": list,
    "sessions": list,
}
"""The fields (and their types) an exact resume reads besides :data:`EVALUATION_FIELDS`."""


def check_fields(ckpt: dict[str, Any], path: Path, fields: dict[str, type], fix: str) -> None:
    """Refuse a checkpoint that lacks one of ``fields`` (or holds another type there).

    Raises:
        CheckpointError: naming the file, the field and ``fix``.
    """
    for name, kind in fields.items():
        if name not in ckpt:
            raise CheckpointError(f"{path}: field '{name}' missing (not a complete hgbench checkpoint); {fix}")
        if not isinstance(ckpt[name], kind) or (kind is int and isinstance(ckpt[name], bool)):
            got = type(ckpt[name]).__name__
            raise CheckpointError(f"{path}: field '{name}' is a {got}, not a {kind.__name__}; {fix}")


def load_weights(module: Any, state: Any, path: Path, fix: str, what: str = "weights") -> None:
    """``module.load_state_dict(state)`` (a network, optimiser or schedule), a state that does not
    fit refused in one line (``what`` names it: ``weights``, ``an optimiser state``).

    Raises:
        CheckpointError: the shapes or names of ``state`` do not fit ``module`` (the network its
            stored spec builds, or its optimiser); the message names the file, the first
            mismatch and ``fix``.
    """
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        first = next((line for line in lines[1:] if line), lines[0] if lines else type(e).__name__)
        if len(first) > 300:
            first = first[:300] + "..."
        raise CheckpointError(
            f"{path}: holds {what} that cannot be loaded into the network its stored spec builds ({first}); {fix}"
        ) from None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", str(text))[:3])


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``"field: old -> new"`` for every leaf where two nested dicts differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key, "(none)"), new.get(key, "(none)"), f"{prefix}{key}.")
        return out
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        old, new = list(old), list(new)
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def check_resumable(ckpt: dict[str, Any], path: Path, identity: dict[str, Any]) -> None:
    """Refuse to resume from ``ckpt`` unless it belongs to the run ``identity`` describes.

    Args:
        ckpt: from :func:`read_checkpoint`.
        path: its file, for the message.
        identity: this run's ``variant``, ``spec`` (asdict), ``protocol_name``,
            ``protocol`` (settings as run, asdict) and ``dataset``.

    Raises:
        CheckpointError: written by a newer hgbench or checkpoint format, or by an older one
            without an exact-resume state, or for another variant, spec, protocol or
            dataset; the message names the difference (``field: checkpoint -> this run``)
            and the fix (``--force``).
    """
    fmt, version = ckpt.get("format", 1), ckpt.get("hgbench_version", "0.1.0")
    if fmt > CHECKPOINT_FORMAT or _version(version) > _version(hgbench.__version__):
        raise CheckpointError(
            f"{path}: written by hgbench {version} (checkpoint format {fmt}); this is hgbench "
            f"{hgbench.__version__} (format {CHECKPOINT_FORMAT}): upgrade hgbench to resume it, or {RESUME_FIX}"
        )
    if fmt < CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {fmt} (an older hgbench) holds no exact-resume state "
            f"(position within the epoch, every generator); {RESUME_FIX}"
        )
    checks = [
        ("variant", ckpt.get("variant"), identity["variant"], ()),
        ("dataset", ckpt.get("dataset"), identity["dataset"], ()),
        ("protocol", ckpt.get("protocol_name"), identity["protocol_name"], ()),
        ("protocol settings", ckpt.get("protocol"), identity["protocol"], PROTOCOL_IDENTITY_EXCLUDED),
        ("variant spec", ckpt.get("spec"), identity["spec"], SPEC_IDENTITY_EXCLUDED),
    ]
    for what, old, new, excluded in checks:
        if isinstance(old, dict) and isinstance(new, dict):
            diffs = _differences(
                {k: v for k, v in old.items() if k not in excluded}, {k: v for k, v in new.items() if k not in excluded}
            )
        else:
            diffs = [] if old == new else [f"{old!r} -> {new!r}"]
        if diffs:
            shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
            raise CheckpointError(
                f"{path}: belongs to another run ({what} differs, checkpoint -> this run: {shown}); {RESUME_FIX}"
            )


def load_checkpoint(path: str | Path, device: torch.device | str | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild the network stored in a checkpoint (from the spec saved in it, so it loads
    even if the registry changed) on ``device`` (default: the CPU) and return ``(model in
    eval mode, checkpoint dict)``. Reads checkpoints of every format (the model, its spec,
    ``num_joints`` and the protocol's ``input_size`` are all it needs).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable or not an hgbench checkpoint, a field missing
            (:data:`EVALUATION_FIELDS`), or weights that do not fit the network its spec builds.
    """
    path = Path(path)
    fix = "train the run again (hgbench train ... --force)"
    ckpt = read_checkpoint(path, fix=fix)
    check_fields(ckpt, path, EVALUATION_FIELDS, fix)
    spec = from_dict(VariantSpec, ckpt["spec"], path)
    model = create_model(spec, ckpt["num_joints"], input_size=ckpt["protocol"].get("input_size"))
    load_weights(model, ckpt["model_state"], path, fix)
    model.to(torch.device(device) if device is not None else torch.device("cpu")).eval()
    return model, ckpt
