"""Profile one model under one backend, batch size and input size: the body of a
``"profile"`` record (see :mod:`hgbench.results`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from hgbench.profile.backends import get_backend
from hgbench.profile.complexity import count_macs, count_parameters
from hgbench.profile.latency import time_callable
from hgbench.provenance import collect_provenance
from hgbench.results import DEFAULT_RESULTS_DIR, write_record

INPUT_SEED = 0
_MAX_REASON_CHARS = 500


def complexity_record(model: nn.Module, input_size: int) -> dict[str, Any]:
    """Parameters and MACs of ``model`` for one sample of shape ``(1, 3, input_size, input_size)``.

    Independent of backend and batch size: compute it once per model and pass it to
    :func:`profile_model` as ``complexity``.

    Returns:
        ``parameters`` (count), ``macs`` (``{"fvcore": int, "thop": int, "unit": "MACs",
        "input_shape": [1, 3, S, S]}``, per sample), ``gmacs_fvcore``, ``gmacs_thop``
        (GMACs per sample) and ``fvcore_skipped_ops`` (operator -> calls, counted as 0 MACs).

    Raises:
        Whatever the model's forward raises (see :func:`count_macs`).
    """
    shape = (1, 3, input_size, input_size)
    macs = count_macs(model, shape)
    return {
        "parameters": count_parameters(model),
        "macs": {"fvcore": macs.fvcore_macs, "thop": macs.thop_macs, "unit": "MACs", "input_shape": list(shape)},
        "gmacs_fvcore": macs.fvcore_gmacs,
        "gmacs_thop": macs.thop_gmacs,
        "fvcore_skipped_ops": macs.fvcore_skipped,
    }


def profile_model(
    model: nn.Module,
    *,
    variant: str,
    num_joints: int,
    backend: str,
    batch_size: int,
    input_size: int,
    threads: int | None = None,
    warmup_iters: int = 3,
    min_iters: int = 10,
    min_time_s: float = 1.0,
    complexity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure the size, compute and latency of ``model`` under one backend.

    The input is a random normal tensor of shape ``(batch_size, 3, input_size,
    input_size)`` drawn with a fixed seed (:data:`INPUT_SEED`, without touching the global
    RNG), on the device of the model's parameters. Latency is that of ``fn(x)`` for the
    backend's prepared ``fn`` (see :func:`hgbench.profile.latency.time_callable`; CUDA work
    is synchronised before each clock read). ``torch.set_num_threads(threads)`` is applied
    for the run when ``threads`` is given, and restored afterwards, as is the model's
    training mode.

    Returns:
        A plain, JSON-serialisable record body with every key always present:
        ``variant``, ``num_joints``, ``backend``, ``device`` (``"cpu"``/``"cuda"``),
        ``batch_size``, ``input_size``, ``threads`` (intra-op threads in effect),
        the keys of :func:`complexity_record` (per sample), ``latency_ms``
        (:meth:`LatencyStats.to_dict`, per batch), ``throughput_samples_per_s`` (from the
        median) and ``status``. When the backend is unavailable, or computing the
        complexity, preparing or timing raises, ``status`` is ``"error"``, ``error`` is a
        one-line reason starting with the failed stage (``backend unavailable``,
        ``threads``, ``complexity``, ``prepare`` or ``timing``), and what was not measured is
        ``None``; otherwise ``status`` is ``"ok"`` and ``error`` is ``None``.

    Raises:
        ValueError: an unknown backend name.
    """
    backend_impl = get_backend(backend)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")

    record: dict[str, Any] = {
        "variant": variant,
        "num_joints": num_joints,
        "backend": backend,
        "device": device.type,
        "batch_size": batch_size,
        "input_size": input_size,
        "threads": threads if threads is not None else torch.get_num_threads(),
        "parameters": count_parameters(model),
        "macs": None,
        "gmacs_fvcore": None,
        "gmacs_thop": None,
        "fvcore_skipped_ops": None,
        "latency_ms": None,
        "throughput_samples_per_s": None,
        "status": "ok",
        "error": None,
    }
    reason = backend_impl.available()
    if reason is not None:
        record.update(status="error", error=_one_line(f"backend unavailable: {reason}"))
        return record

    old_threads = torch.get_num_threads()
    was_training = model.training
    stage = "threads"
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        stage = "complexity"
        record.update(complexity if complexity is not None else complexity_record(model, input_size))
        stage = "prepare"
        generator = torch.Generator().manual_seed(INPUT_SEED)
        x = torch.randn((batch_size, 3, input_size, input_size), generator=generator).to(device)
        fn = backend_impl.prepare(model, x)
        stage = "timing"
        sync = torch.cuda.synchronize if device.type == "cuda" else None
        stats = time_callable(
            lambda: fn(x), warmup_iters=warmup_iters, min_iters=min_iters, min_time_s=min_time_s, sync=sync
        )
        record["latency_ms"] = stats.to_dict()
        record["throughput_samples_per_s"] = stats.throughput(batch_size)
    except Exception as e:  # noqa: BLE001 - one failing variant must not stop a sweep
        record.update(status="error", error=_one_line(f"{stage}: {type(e).__name__}: {e}"))
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)
    return record


def profile_record_path(results_dir: Path, host: str, body: dict[str, Any]) -> Path:
    """``<results>/profile/<host>/<variant>__j<joints>__<backend>__b<batch>__s<input>.json``."""
    name = f"{body['variant']}__j{body['num_joints']}__{body['backend']}__b{body['batch_size']}__s{body['input_size']}.json"
    return Path(results_dir) / "profile" / host / name


def save_profile_record(
    body: dict[str, Any], results_dir: Path = DEFAULT_RESULTS_DIR, provenance: dict[str, Any] | None = None
) -> Path:
    """Write ``body`` (from :func:`profile_model`) as a ``"profile"`` record with its
    ``provenance`` (default: :func:`collect_provenance` now) under ``results_dir``, at
    :func:`profile_record_path` for the provenance's hostname; return the path.

    Raises:
        OSError: the record cannot be written.
    """
    provenance = collect_provenance() if provenance is None else provenance
    path = profile_record_path(results_dir, provenance["hostname"], body)
    write_record(path, "profile", {**body, "provenance": provenance})
    return path


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."
