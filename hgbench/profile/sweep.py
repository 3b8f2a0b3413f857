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

* **Repetition 1**, variant by variant: the complexity counts (once per variant, joints and
  input size, and cached across sweeps: :func:`~hgbench.profile.complexity.cached_complexity_record`),
  the eager fp32 reference output per batch size, then every backend x precision x batch size
  through :func:`~hgbench.profile.run.profile_model` (build time, peak memory, numerical check,
  roofline, and the first share of the timed calls). Each record is saved as soon as it is
  made, so an interrupted sweep keeps what it measured; each prepared setting is **kept**.
* **Repetitions 2..R**: the variants in a shuffled order, and each variant's settings
  shuffled (``random.Random(seed + r)``); each setting is timed again
  (:func:`~hgbench.profile.run.repeat_timing`) and its samples join the record's, which is saved
  again. A kept setting is warmed up and timed as it was prepared; one not kept is prepared again (from the backends' artefact
  caches: ONNX files, frozen TorchScript modules and TensorRT programs in the cache directory, Inductor's
  FX graph cache), warmed up, timed and released.
* **One network, one measurement**: variants that build the same network (they differ only in
  training) are timed once, as the first of them, and each of the others gets a copy of the
  record naming it (:func:`network_twins`, ``measured_as``).
* **Calibration**: the workload of :mod:`hgbench.profile.calibration` is what the quiet-window
  probes time; the probes of each visit of a variant (in every repetition) form one block, and
  the pooled blocks are every record's ``calibration``. Before issue 29 a separate 0.2 s block
  was timed at the start of every visit (17 s of a whole-registry sweep); the probes' calls
  pool to the same median (two sweeps: 3.32 and 3.27 ms per call, against 3.29 and 3.28 ms
  from the blocks).
* **Quiet windows**: every repetition's timed window lies between two short calibration
  probes and is timed again (the setting stays prepared) while a probe says the machine was
  disturbed (:mod:`hgbench.profile.quiet`; ``Budget.quiet_attempts`` windows at most).

**What is kept** (issue 29): preparing every setting again in every repetition (a TorchScript
trace of hru8 takes seconds, an ONNX Runtime session and its optimisations too), warming it up
again and collecting memory after it took most of a CPU sweep's time: 9-12 % of the wall time
was spent in timed calls. Every setting whose backend allows it
(:attr:`~hgbench.profile.backends.Backend.keepable`: not ``compile``, whose release resets
Dynamo for the whole process) is now prepared once and kept until the last repetition, on the
CPU, while the device's available memory stays above :data:`KEEP_MEMORY_FRACTION` of what it was
at the start (below it, every kept setting is released and settings are prepared again in each
later repetition, as before). On CUDA nothing is kept yet: a CUDA record's peak memory is the
allocator's absolute peak, which kept settings would inflate (:meth:`_Sweep.keeper`). The
interleaving is unchanged: each repetition still visits every
setting, in a shuffled order, so every setting sees the same mixture of machine states. That
two runs agree as well as when every repetition prepared anew is measured in
``benchmarks/reference/sweep-time/README.md``. A record's ``latency_ms.prepares`` says how many
times its setting was prepared.

After each setting that is not kept the sweep calls its backend's
:meth:`~hgbench.profile.backends.Backend.release` (TorchScript clears its global class registry,
which would otherwise keep every trace's weights alive; kept traces are released after the last
repetition, since clearing the registry breaks every traced module still alive): do not call
:func:`run_sweep` while holding traced TorchScript modules of your own.

Where the time goes: every phase (timed windows, warm-up, preparation, complexity, probes, ...)
is charged to the active :class:`~hgbench.profile.timeline.Timeline`.

Models are built from a fixed seed (:data:`MODEL_SEED`, the global RNG is left as it was), so
that every repetition, and every invocation, runs the same weights, and weight-keyed artefact
caches hit.
"""

from __future__ import annotations

import gc
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
from hgbench.profile.calibration import calibration_block, pool_calibrations
from hgbench.profile.complexity import cached_complexity_record
from hgbench.profile.latency import fixed_threads
from hgbench.profile.memory import available_memory_bytes
from hgbench.profile.quiet import DEFAULT_MAX_ATTEMPTS, DEFAULT_TOLERANCE, QuietTimer
from hgbench.profile.roofline import Ceilings, default_cache_dir
from hgbench.profile.run import (
    KeptSetting,
    free_memory,
    is_reference,
    profile_model,
    reference_output,
    repeat_timing,
    save_profile_record,
)
from hgbench.profile.timeline import phase
from hgbench.records import ProfileRecord, architecture_hash
from hgbench.records.identity import network_identity

MODEL_SEED = 0
"""Seed of the weights of every profiled model (timing does not depend on the values, the
artefact caches' keys and the numerical check do)."""

KEEP_MEMORY_FRACTION = 0.5
"""Prepared settings are kept between repetitions while the device's available memory
(:func:`hgbench.profile.memory.available_memory_bytes`) stays above this fraction of what it
was when the sweep started; below it every kept setting is released and those settings are
prepared again in each later repetition, as every setting was before issue 29."""


@dataclass(frozen=True)
class Budget:
    """How long each setting is warmed up and timed (see :func:`~hgbench.profile.latency.time_callable`).

    Attributes:
        warmup_iters: untimed calls before *each* repetition (first calls of a new TorchScript
            module, ONNX session or compiled graph are slower: TorchScript's profiling executor
            optimises the graph on its second call; a kept one has had its caches taken by the
            settings timed since its last repetition). Kept settings keep them in every
            repetition: timed after only one untimed call, two whole-registry runs agreed less
            well on TorchScript (median spread 4.7 % against 2.9 % for two runs that warmed every
            repetition up; ``benchmarks/reference/sweep-time/README.md``). With quiet windows the
            calls come after the window's before-probe and also refill the caches the probe took
            (:meth:`~hgbench.profile.quiet.QuietTimer.time`).
        warmup_s: untimed seconds (at least), on top of the calls, before the first setting of
            each backend in a sweep: clock ramp-up and the runtime's process-wide one-off costs
            (thread pools, allocator growth) are paid once and stay paid while the sweep runs;
            a setting's own first-call costs (oneDNN primitives and cuDNN algorithms for its
            shapes, a new graph's first runs) are what ``warmup_iters`` pays. Before issue 29
            they were spent before every setting's first repetition (0.5 s x 81 settings: 40 s
            of a whole-registry sweep's 380 s).
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

    def per_repetition(self, repetition: int = 1, first_of_backend: bool = True) -> dict[str, Any]:
        """Keyword arguments of repetition ``repetition`` (1-based) for :func:`profile_model` /
        :func:`repeat_timing`; ``first_of_backend``: the sweep's first setting of its backend
        (the one that gets ``warmup_s``)."""
        return {
            "warmup_iters": self.warmup_iters,
            "warmup_s": self.warmup_s if repetition == 1 and first_of_backend else 0.0,
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
            setting's repetition (for a progress bar: networks (``len(jobs)`` less
            :func:`network_twins`) x batch sizes x (backend x precision pairs less ``skipped``) x
            repetitions advances in all).

    Returns:
        ``(record, path)`` per setting, in repetition 1's order, each copy for a variant of the
        same network right after the record it copies (:func:`shared_record`); failed settings
        included (``status="error"``, see :func:`profile_model`).

    Raises:
        OSError: a record cannot be written.
    """
    sweep = _Sweep(
        jobs=list(jobs), twins=network_twins(jobs), backends=list(backends), settings_list=list(settings_list),
        batch_sizes=list(batch_sizes), input_size=input_size, device=device, threads=threads, budget=budget, results_dir=results_dir,
        provenance=provenance, ceilings=ceilings or {}, cache_dir=cache_dir, step=on_step or (lambda label, advance: None),
        skipped=skipped,
        quiet=QuietTimer(device, tolerance=budget.quiet_tolerance, max_attempts=budget.quiet_attempts),
        available_at_start=available_memory_bytes(device), keeping=device.type != "cuda",
    )  # fmt: skip
    try:
        with fixed_threads(threads):  # the probes time the calibration workload with the sweep's threads
            sweep.quiet.ready()
        sweep.block_start = len(sweep.quiet.samples_ms)  # the history's first calls are cold: not calibration
        for index in range(len(sweep.jobs)):
            if index not in sweep.twins:
                _first_repetition(sweep, index)
        for r in range(2, budget.repetitions + 1):
            _later_repetition(sweep, r, random.Random(seed + r))
    finally:  # also on Ctrl-C: the kept settings go, the garbage collector sees everything again
        sweep.release_kept()
    return _finish(sweep)


def network_twins(jobs: Sequence[tuple[VariantSpec, int]]) -> dict[int, int]:
    """Job index -> index of the first earlier job that builds the same network: the same
    architecture (:func:`hgbench.records.architecture_hash`) and heatmap count. Such variants
    differ only in how they are trained (hg8 and its four optimiser and batch-size variants;
    hg2, hg2-final and hg2-sum): a sweep builds them from the same seed into the same weights
    and the same artefacts, so it times the network once, as the first job, and records the
    measurement for the others too (:func:`shared_record`). Timing them apart would only add
    the machine's noise as differences between identical networks (the whole-registry sweep of
    ``benchmarks/reference/sweep-time/`` read the five hg8 variants' TorchScript medians 84.6 to
    95.0 ms), and a fifth of the sweep's time."""
    first: dict[tuple[str, int], int] = {}
    twins: dict[int, int] = {}
    for index, (spec, joints) in enumerate(jobs):
        twins_of = first.setdefault((architecture_hash(spec), int(joints)), index)
        if twins_of != index:
            twins[index] = twins_of
    return twins


def shared_record(record: ProfileRecord, spec: VariantSpec, num_joints: int) -> ProfileRecord:
    """``record`` (a measurement of ``record.variant``) as the record of ``spec``, which builds
    the same network (:func:`network_twins`): a copy with ``spec``'s network identity and
    ``measured_as`` naming the variant measured."""
    shared = record.model_copy(deep=True)
    shared.update(network_identity(spec, num_joints), measured_as=record.variant, not_written=None)
    return shared


@dataclass
class _Sweep:
    """One sweep's axes and state: the arguments of :func:`run_sweep`, the calibration blocks
    timed so far, the records in repetition 1's order (``rows``, with their paths) and, per job
    index, its records with their settings (``by_job``: what repetitions 2..R time again)."""

    jobs: list[tuple[VariantSpec, int]]
    twins: dict[int, int]
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
    block_start: int = 0  # the first probe call (quiet.samples_ms) of the block now open
    rows: list[tuple[ProfileRecord, Path]] = field(default_factory=list)
    row_jobs: list[int] = field(default_factory=list)  # the job index of each row
    by_job: dict[int, list[tuple[ProfileRecord, RunSettings]]] = field(default_factory=dict)
    kept: dict[tuple[int, int], KeptSetting] = field(default_factory=dict)
    available_at_start: int | None = None
    keeping: bool = True  # False on CUDA, and once memory ran low (keeper)
    frozen: bool = False  # gc.freeze() is in effect (keeper, release_kept)
    warmed: set[str] = field(default_factory=set)  # backends whose first setting had the budget's warmup_s

    def keeper(self, index: int, position: int, backend: str) -> Callable[[KeptSetting], None] | None:
        """What :func:`profile_model` hands setting ``position`` of job ``index`` to, to keep it
        for the later repetitions; ``None`` (not kept) with one repetition, for a backend that
        cannot keep its artefact (:attr:`~hgbench.profile.backends.Backend.keepable`), on CUDA
        (a CUDA record's peak memory is the allocator's absolute peak,
        :class:`hgbench.profile.memory.PeakMemory`, which the kept settings would inflate; and they
        would take the device memory a later setting needs), and once memory ran low. Memory runs
        low when the device's available memory falls below :data:`KEEP_MEMORY_FRACTION` of what it
        was at the start: every kept setting is then released (:meth:`release_kept`), and no
        setting is kept for the rest of the sweep.

        The objects alive when a setting is kept are moved out of the garbage collector's sight
        (``gc.freeze``, undone by :meth:`release_kept`): each setting's peak-memory measurement
        starts with a collection, which took 0.2-0.3 s per setting and growing once every kept
        setting's modules had to be traversed."""
        if not self.keeping or self.budget.repetitions == 1 or not get_backend(backend).keepable:
            return None

        def keep(setting: KeptSetting) -> None:
            self.kept[(index, position)] = setting
            gc.collect()  # then freeze what is alive: the collections before each timed window
            gc.freeze()  # (hgbench.profile.memory.PeakMemory) skip the kept settings' objects
            self.frozen = True
            available = available_memory_bytes(self.device)
            if (
                self.available_at_start
                and available is not None
                and available < KEEP_MEMORY_FRACTION * self.available_at_start
            ):
                self.keeping = False
                self.release_kept()

        return keep

    def release_kept(self) -> None:
        """Drop every kept setting, then let each backend release what it holds
        (:meth:`~hgbench.profile.backends.Backend.release`; TorchScript's release invalidates
        every traced module still alive, so it runs only once none is kept) and collect memory;
        the garbage collector sees every object again."""
        if self.frozen:
            gc.unfreeze()
            self.frozen = False
        if not self.kept:
            return
        self.kept.clear()
        for b in self.backends:
            get_backend(b).release()
        free_memory(self.device)

    def time_again(self, index: int, position: int, model: nn.Module | None, r: int) -> None:
        """Repetition ``r`` of setting ``position`` of job ``index`` (:func:`repeat_timing`): the
        kept setting, or one not kept prepared again, is warmed up by the budget's calls
        (:meth:`Budget.per_repetition`), timed, and saved; a setting not kept is then released."""
        record, s = self.by_job[index][position]
        kept = self.kept.get((index, position))
        repeat_timing(record, model, settings=s, threads=self.threads, quiet=self.quiet, kept=kept,
                      **self.budget.per_repetition(r))  # fmt: skip
        if record.status != "ok" and self.kept.pop((index, position), None) is not None:
            free_memory(self.device)  # what the failed setting held
        with phase("records"):
            self.save(record, index)
        if kept is None:
            self.release_unless_kept(record.backend)

    def release_unless_kept(self, backend: str) -> None:
        """``backend``'s :meth:`~hgbench.profile.backends.Backend.release` after a setting that was
        not kept, unless a kept setting of that backend is still alive (TorchScript's release
        would invalidate it); :meth:`release_kept` releases it later."""
        if not any(self.by_job[i][p][0].backend == backend for i, p in self.kept):
            get_backend(backend).release()

    def complexity(self, spec: VariantSpec, joints: int, model: nn.Module) -> dict[str, Any] | None:
        """The complexity of ``model`` at the sweep's input size, counted once per (variant,
        joints, input size) and cached across sweeps (:func:`cached_complexity_record`); None
        when counting failed (:func:`profile_model` then records the failure per setting)."""
        self.step(f"{spec.name}: counting MACs and FLOPs", False)
        with phase("complexity"):
            try:
                return cached_complexity_record(
                    model, spec, joints, self.input_size, self.cache_dir or default_cache_dir()
                )
            except Exception:  # noqa: BLE001 - profile_model then records the complexity failure per setting
                return None

    def close_block(self) -> None:
        """End a visit of a variant: the probe calls timed since the last block form one
        calibration block (none when no window was timed)."""
        calls = self.quiet.samples_ms[self.block_start :]
        if calls:
            self.calibration_blocks.append(calibration_block(calls, self.device, self.threads))
        self.block_start = len(self.quiet.samples_ms)

    def calibration(self) -> dict[str, Any] | None:
        """The calibration pooled so far: the closed blocks and the open one (``None`` before
        any probe)."""
        calls = self.quiet.samples_ms[self.block_start :]
        blocks = self.calibration_blocks + ([calibration_block(calls, self.device, self.threads)] if calls else [])
        return pool_calibrations(blocks) if blocks else None

    def save(self, record: ProfileRecord, index: int) -> Path:
        """Save ``record`` (of job ``index``) with the calibration pooled so far, and its copy
        for every job that builds the same network (:func:`shared_record`), so that a sweep
        stopped midway leaves each variant's record as measured so far; returns ``record``'s path."""
        record.calibration = self.calibration()
        self.save_shared(record, index)
        return save_profile_record(record, self.results_dir, self.provenance)

    def save_shared(self, record: ProfileRecord, index: int) -> list[tuple[ProfileRecord, Path]]:
        """Write ``record``'s copy for every job that builds the same network as job ``index``
        (:func:`network_twins`); returns them with their paths."""
        copies = [shared_record(record, *self.jobs[twin]) for twin, of in self.twins.items() if of == index]
        return [(copy, save_profile_record(copy, self.results_dir, self.provenance)) for copy in copies]


def _first_repetition(sweep: _Sweep, index: int) -> None:
    """Repetition 1 of job ``index``: the model, its complexity, then per batch size
    the eager fp32 reference output and every backend x precision through :func:`profile_model`,
    each record saved as soon as it is made, each prepared setting kept for the later
    repetitions where its backend allows (:attr:`~hgbench.profile.backends.Backend.keepable`); the
    visit's probes form one calibration block."""
    spec, joints = sweep.jobs[index]
    with phase("models"):
        model = build_profiled_model(spec, joints, sweep.input_size, sweep.device)
    complexity = sweep.complexity(spec, joints, model)
    for bs in sweep.batch_sizes:
        reference = _reference_output(sweep, model, spec, bs)
        for b in sweep.backends:
            for s in sweep.settings_list:
                if (b, s.precision) in sweep.skipped:
                    continue
                sweep.step(f"{spec.name} {b} {s.precision} batch {bs} (repetition 1/{sweep.budget.repetitions})", False)
                position = len(sweep.by_job.setdefault(index, []))
                record = profile_model(
                    model, variant=spec.name, spec=spec, num_joints=joints, backend=b, batch_size=bs,
                    input_size=sweep.input_size, settings=s, threads=sweep.threads, complexity=complexity,
                    reference=reference, ceilings=sweep.ceilings.get((s.precision, s.tf32)), cache_dir=sweep.cache_dir,
                    quiet=sweep.quiet, keep=sweep.keeper(index, position, b),
                    **sweep.budget.per_repetition(1, b not in sweep.warmed),
                )  # fmt: skip
                if record.status == "ok":
                    sweep.warmed.add(b)
                else:  # a keep that failed after storing the setting (the record says why): not kept
                    sweep.kept.pop((index, position), None)
                with phase("records"):
                    sweep.rows.append((record, sweep.save(record, index)))
                    sweep.row_jobs.append(index)
                sweep.by_job[index].append((record, s))
                if (index, position) not in sweep.kept:
                    sweep.release_unless_kept(b)
                sweep.step("", True)
        del reference
    sweep.close_block()


def _reference_output(sweep: _Sweep, model: nn.Module, spec: VariantSpec, batch_size: int) -> Any:
    """The eager fp32 output at ``batch_size`` that the numerical checks compare with; ``None``
    when no setting of the sweep needs it, or when computing it failed (each setting then
    records its own numerics failure)."""
    if all(is_reference(b, s) for b in sweep.backends for s in sweep.settings_list):
        return None
    sweep.step(f"{spec.name} batch {batch_size}: eager fp32 reference", False)
    try:
        with phase("reference"):
            return reference_output(model, batch_size, sweep.input_size)
    except Exception:  # noqa: BLE001 - each setting then records its own numerics failure
        if sweep.device.type == "cuda":
            torch.cuda.empty_cache()
        return None


def _later_repetition(sweep: _Sweep, r: int, rng: random.Random) -> None:
    """Repetition ``r`` (2..R): the jobs in an order shuffled by ``rng``, each job's settings
    shuffled too; every setting still ``"ok"`` is timed again (:meth:`_Sweep.time_again`) and
    saved. The model is built only when a setting of the job was not kept. Each visit's probes
    form one calibration block."""
    order = list(sweep.by_job)
    rng.shuffle(order)
    for index in order:
        spec, joints = sweep.jobs[index]
        settings_of_job = list(enumerate(sweep.by_job[index]))
        model = None
        if any(record.status == "ok" and (index, p) not in sweep.kept for p, (record, _) in settings_of_job):
            with phase("models"):
                model = build_profiled_model(spec, joints, sweep.input_size, sweep.device)
        rng.shuffle(settings_of_job)
        for position, (record, s) in settings_of_job:
            sweep.step(f"{spec.name} {record.backend} {s.precision} batch {record.batch_size} "
                       f"(repetition {r}/{sweep.budget.repetitions})", False)  # fmt: skip
            if record.status == "ok":
                sweep.time_again(index, position, model, r)
            sweep.step("", True)
        del model
        sweep.close_block()


def _finish(sweep: _Sweep) -> list[tuple[ProfileRecord, Path]]:
    """Give every record the calibration pooled over the whole sweep (saved again where it
    changed) and write the copies for the jobs that share a network (:func:`network_twins`);
    returns every row, each shared copy after the record it copies."""
    final = sweep.calibration()
    rows: list[tuple[ProfileRecord, Path]] = []
    with phase("records"):
        for (record, path), index in zip(sweep.rows, sweep.row_jobs, strict=True):
            if record.calibration != final:
                record.calibration = final
                path = save_profile_record(record, sweep.results_dir, sweep.provenance)
            rows += [(record, path), *sweep.save_shared(record, index)]
    return rows
