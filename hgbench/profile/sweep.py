"""A profiling sweep: every variant x batch size x backend x precision of one ``hgbench profile``
invocation, timed in repetitions interleaved across the whole sweep.

Why interleave. A setting timed in one contiguous block measures the machine of those few
seconds; on a shared machine the speed drifts over seconds to minutes (other tenants, clocks,
caches), so two runs of the same command disagree although nothing changed. Splitting each
setting's timing into repetitions spread over the whole sweep lets every setting see the same
mixture of machine states, and its pooled median that of the whole run. This is Google
Benchmark's *random interleaving* ("a technique to lower run-to-run variance. It randomly
interleaves repetitions of a microbenchmark with repetitions from other microbenchmarks in the
same benchmark test", https://github.com/google/benchmark/blob/main/docs/random_interleaving.md).
Measured on the 2-core development VM (``hgbench profile --variants hg1,hg2 --backend
eager,torchscript,compile,onnxruntime --batch-size 1,4 --input-size 64 --threads 1``, two runs
back to back): see ``benchmarks/reference/repeatability/README.md``.

Order of work:

* **Repetition 1**, variant by variant: the complexity counts, the eager fp32 reference output
  per batch size, then every backend x precision x batch size through
  :func:`~hgbench.profile.run.profile_model` (build time, peak memory, numerical check,
  roofline, and the first share of the timed calls). Each record is saved as soon as it is
  made, so an interrupted sweep keeps what it measured.
* **Repetitions 2..R**: the variants in a shuffled order, and each variant's settings
  shuffled (``random.Random(seed + r)``); each setting is prepared again (the backends reuse
  their artefacts: ONNX files and TensorRT programs from the cache directory, Inductor's FX
  graph cache), warmed up and timed (:func:`~hgbench.profile.run.repeat_timing`); its samples
  join the record's, which is saved again.
* **Calibration**: the workload of :mod:`hgbench.profile.calibration` is timed in a short block
  at the start of every variant of every repetition; the pooled blocks are every record's
  ``calibration``.
* **Quiet windows**: every repetition's timed window lies between two short calibration
  probes and is timed again (the setting stays prepared) while a probe says the machine was
  disturbed (:mod:`hgbench.profile.quiet`; ``Budget.quiet_attempts`` windows at most).

After each setting the sweep calls its backend's :meth:`~hgbench.profile.backends.Backend.release`
(TorchScript clears its global class registry, which would otherwise keep every trace's weights
alive): do not call :func:`run_sweep` while holding traced TorchScript modules of your own.

Models are built from a fixed seed (:data:`MODEL_SEED`, the global RNG is left as it was), so
that every repetition, and every invocation, runs the same weights, and weight-keyed artefact
caches hit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hgbench.config import VariantSpec
from hgbench.models import create_model
from hgbench.profile.backends import RunSettings, get_backend
from hgbench.profile.calibration import measure_calibration, pool_calibrations
from hgbench.profile.complexity import complexity_record
from hgbench.profile.quiet import DEFAULT_MAX_ATTEMPTS, DEFAULT_TOLERANCE, QuietTimer
from hgbench.profile.roofline import Ceilings
from hgbench.profile.run import is_reference, profile_model, reference_output, repeat_timing, save_profile_record
from hgbench.records import ProfileRecord

MODEL_SEED = 0
"""Seed of the weights of every profiled model (timing does not depend on the values, the
artefact caches' keys and the numerical check do)."""

CALIBRATION_BLOCK_S = 0.2
"""Seconds of each calibration block (at least 10 calls), one per variant per repetition."""


@dataclass(frozen=True)
class Budget:
    """How long each setting is warmed up and timed (see :func:`~hgbench.profile.latency.time_callable`).

    Attributes:
        warmup_iters: untimed calls before *each* repetition (every repetition prepares the
            setting anew: first calls of a new TorchScript module, ONNX session or compiled
            graph are slower).
        warmup_s: untimed seconds (at least) before the *first* repetition only, on top of the
            calls: clock ramp-up and process-wide one-off costs (allocator growth, oneDNN and
            cuDNN algorithm selection) are paid once and stay paid while the sweep runs.
        min_iters, min_time_s: timed calls and seconds (at least both) per setting over all
            repetitions together; each repetition times ``ceil(min_iters / repetitions)`` calls
            and ``min_time_s / repetitions`` seconds.
        repetitions: how many interleaved repetitions each setting's timing is split into
            (1: one contiguous block, as :func:`~hgbench.profile.run.profile_model` alone).
        quiet_attempts, quiet_tolerance: each repetition's window is timed again, up to
            ``quiet_attempts`` windows, until both calibration probes around it are within
            ``quiet_tolerance`` of the run's quiet level (:class:`~hgbench.profile.quiet.QuietTimer`;
            ``quiet_attempts=1``: probes recorded, never retimed).

    Raises:
        ValueError: a count below 1 or a negative duration or tolerance.
    """

    warmup_iters: int = 3
    warmup_s: float = 0.5
    min_iters: int = 10
    min_time_s: float = 1.0
    repetitions: int = 3
    quiet_attempts: int = DEFAULT_MAX_ATTEMPTS
    quiet_tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if (self.min_iters < 1 or self.repetitions < 1 or self.warmup_iters < 0 or self.warmup_s < 0
                or self.min_time_s < 0 or self.quiet_attempts < 1 or self.quiet_tolerance < 0):  # fmt: skip
            raise ValueError(
                "need min_iters >= 1, repetitions >= 1, warmup_iters >= 0, warmup_s >= 0, min_time_s >= 0, "
                f"quiet_attempts >= 1 and quiet_tolerance >= 0; got {self.min_iters=}, {self.repetitions=}, "
                f"{self.warmup_iters=}, {self.warmup_s=}, {self.min_time_s=}, {self.quiet_attempts=}, {self.quiet_tolerance=}"
            )

    def per_repetition(self, repetition: int = 1) -> dict[str, Any]:
        """Keyword arguments of repetition ``repetition`` (1-based) for :func:`profile_model` /
        :func:`repeat_timing`."""
        return {
            "warmup_iters": self.warmup_iters,
            "warmup_s": self.warmup_s if repetition == 1 else 0.0,
            "min_iters": math.ceil(self.min_iters / self.repetitions),
            "min_time_s": self.min_time_s / self.repetitions,
        }


def build_profiled_model(spec: VariantSpec, num_joints: int, input_size: int, device: torch.device) -> nn.Module:
    """``create_model(spec, num_joints, input_size)`` with weights drawn after ``torch.manual_seed(MODEL_SEED)``
    (inside ``torch.random.fork_rng``: the caller's RNG state is restored), on ``device``, in
    eval mode.

    Raises:
        ValueError: the variant cannot take ``input_size`` (see :meth:`VariantSpec.build`).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(MODEL_SEED)
        model = create_model(spec, num_joints, input_size=input_size)
    return model.to(device).eval()


def run_sweep(
    jobs: Sequence[tuple[VariantSpec, int]],
    *,
    backends: Sequence[str],
    settings_list: Sequence[RunSettings],
    batch_sizes: Sequence[int],
    input_size: int,
    device: torch.device,
    threads: int,
    budget: Budget,
    results_dir: Path,
    provenance: dict[str, Any],
    ceilings: dict[tuple[str, bool], Ceilings] | None = None,
    cache_dir: Path | None = None,
    seed: int = 0,
    on_step: Callable[[str, bool], None] | None = None,
    skipped: frozenset[tuple[str, str]] = frozenset(),
) -> list[tuple[ProfileRecord, Path]]:
    """Profile every ``(variant, joints)`` of ``jobs`` x batch size x backend x precision in
    ``budget.repetitions`` interleaved repetitions (see the module docstring), saving each
    record under ``results_dir`` with ``provenance``.

    Args:
        jobs: the variants and the heatmap count each is profiled with.
        backends, settings_list, batch_sizes, input_size: the sweep's axes (backend names,
            one :class:`RunSettings` per precision, batch sizes, input side in px).
        device, threads: where to run and the CPU intra-op thread count.
        ceilings: the device's roofline ceilings per ``(precision, tf32)`` of
            ``settings_list`` (a missing one is measured, or its failure recorded, by
            :func:`profile_model`).
        cache_dir: where the device ceilings live (``None``: the default cache).
        seed: seeds the shuffled order of repetitions 2..R.
        skipped: ``(backend, precision)`` pairs of the cross product not run (no record).
        on_step: called with a label before each step and ``advance=True`` after each
            setting's repetition (for a progress bar: ``len(jobs) * len(batch_sizes) *
            len(backends) * len(settings_list) * repetitions`` advances in all).

    Returns:
        ``(record, path)`` per setting, in repetition 1's order; failed settings included
        (``status="error"``, see :func:`profile_model`).

    Raises:
        OSError: a record cannot be written.
    """
    sweep = _Sweep(
        jobs=list(jobs), backends=list(backends), settings_list=list(settings_list), batch_sizes=list(batch_sizes),
        input_size=input_size, device=device, threads=threads, budget=budget, results_dir=results_dir,
        provenance=provenance, ceilings=ceilings or {}, cache_dir=cache_dir, step=on_step or (lambda label, advance: None),
        skipped=skipped,
        quiet=QuietTimer(device, tolerance=budget.quiet_tolerance, max_attempts=budget.quiet_attempts),
    )  # fmt: skip
    for index in range(len(sweep.jobs)):
        _first_repetition(sweep, index)
    for r in range(2, budget.repetitions + 1):
        _later_repetition(sweep, r, random.Random(seed + r))
    _pool_calibration(sweep)
    return sweep.rows


@dataclass
class _Sweep:
    """One sweep's axes and state: the arguments of :func:`run_sweep`, the calibration blocks
    timed so far, the records in repetition 1's order (``rows``, with their paths) and, per job
    index, its records with their settings (``by_job``: what repetitions 2..R time again)."""

    jobs: list[tuple[VariantSpec, int]]
    backends: list[str]
    settings_list: list[RunSettings]
    batch_sizes: list[int]
    input_size: int
    device: torch.device
    threads: int
    budget: Budget
    results_dir: Path
    provenance: dict[str, Any]
    ceilings: dict[tuple[str, bool], Ceilings]
    cache_dir: Path | None
    step: Callable[[str, bool], None]
    quiet: QuietTimer
    skipped: frozenset[tuple[str, str]] = frozenset()
    calibration_blocks: list[dict[str, Any]] = field(default_factory=list)
    rows: list[tuple[ProfileRecord, Path]] = field(default_factory=list)
    by_job: dict[int, list[tuple[ProfileRecord, RunSettings]]] = field(default_factory=dict)

    def calibrate(self, spec: VariantSpec) -> None:
        """Time one calibration block (:data:`CALIBRATION_BLOCK_S`) before ``spec``'s settings."""
        self.step(f"{spec.name}: calibration", False)
        self.calibration_blocks.append(
            measure_calibration(self.device, self.threads, min_time_s=CALIBRATION_BLOCK_S, min_iters=10)
        )

    def save(self, record: ProfileRecord) -> Path:
        """Save ``record`` with the calibration pooled so far."""
        record.calibration = pool_calibrations(self.calibration_blocks)
        return save_profile_record(record, self.results_dir, self.provenance)


def _first_repetition(sweep: _Sweep, index: int) -> None:
    """Repetition 1 of job ``index``: calibration, the model, its complexity, then per batch size
    the eager fp32 reference output and every backend x precision through :func:`profile_model`,
    each record saved as soon as it is made."""
    spec, joints = sweep.jobs[index]
    sweep.calibrate(spec)
    model = build_profiled_model(spec, joints, sweep.input_size, sweep.device)
    sweep.step(f"{spec.name}: counting MACs and FLOPs", False)
    try:
        complexity = complexity_record(model, sweep.input_size)
    except Exception:  # noqa: BLE001 - profile_model then records the complexity failure per setting
        complexity = None
    for bs in sweep.batch_sizes:
        reference = _reference_output(sweep, model, spec, bs)
        for b in sweep.backends:
            for s in sweep.settings_list:
                if (b, s.precision) in sweep.skipped:
                    continue
                sweep.step(f"{spec.name} {b} {s.precision} batch {bs} (repetition 1/{sweep.budget.repetitions})", False)
                record = profile_model(
                    model, variant=spec.name, spec=spec, num_joints=joints, backend=b, batch_size=bs,
                    input_size=sweep.input_size, settings=s, threads=sweep.threads, complexity=complexity,
                    reference=reference, ceilings=sweep.ceilings.get((s.precision, s.tf32)), cache_dir=sweep.cache_dir,
                    quiet=sweep.quiet, **sweep.budget.per_repetition(1),
                )  # fmt: skip
                sweep.rows.append((record, sweep.save(record)))
                sweep.by_job.setdefault(index, []).append((record, s))
                get_backend(b).release()
                sweep.step("", True)
        del reference


def _reference_output(sweep: _Sweep, model: nn.Module, spec: VariantSpec, batch_size: int) -> Any:
    """The eager fp32 output at ``batch_size`` that the numerical checks compare with; ``None``
    when no setting of the sweep needs it, or when computing it failed (each setting then
    records its own numerics failure)."""
    if all(is_reference(b, s) for b in sweep.backends for s in sweep.settings_list):
        return None
    sweep.step(f"{spec.name} batch {batch_size}: eager fp32 reference", False)
    try:
        return reference_output(model, batch_size, sweep.input_size)
    except Exception:  # noqa: BLE001 - each setting then records its own numerics failure
        if sweep.device.type == "cuda":
            torch.cuda.empty_cache()
        return None


def _later_repetition(sweep: _Sweep, r: int, rng: random.Random) -> None:
    """Repetition ``r`` (2..R): the jobs in an order shuffled by ``rng``, each job's settings
    shuffled too; every setting still ``"ok"`` is timed again (:func:`repeat_timing`) and saved."""
    order = list(sweep.by_job)
    rng.shuffle(order)
    for index in order:
        spec, joints = sweep.jobs[index]
        sweep.calibrate(spec)
        model = build_profiled_model(spec, joints, sweep.input_size, sweep.device)
        settings_of_job = list(sweep.by_job[index])
        rng.shuffle(settings_of_job)
        for record, s in settings_of_job:
            sweep.step(f"{spec.name} {record.backend} {s.precision} batch {record.batch_size} "
                       f"(repetition {r}/{sweep.budget.repetitions})", False)  # fmt: skip
            if record.status == "ok":
                repeat_timing(record, model, settings=s, threads=sweep.threads, quiet=sweep.quiet,
                              **sweep.budget.per_repetition(r))  # fmt: skip
                sweep.save(record)
                get_backend(record.backend).release()
            sweep.step("", True)
        del model


def _pool_calibration(sweep: _Sweep) -> None:
    """Give every record the calibration pooled over the whole sweep (saved again where it changed)."""
    final = pool_calibrations(sweep.calibration_blocks)
    for record, _ in sweep.rows:
        if record.calibration != final:
            record.calibration = final
            save_profile_record(record, sweep.results_dir, sweep.provenance)
