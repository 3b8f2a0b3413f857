"""A profiling run from the user's options: every option checked before anything is measured
(:func:`plan_profile`), then the sweep (:func:`run_profile`).

This is what ``hgbench profile`` calls; a notebook calls the same two functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from hgbench.config import VariantSpec, select_variants
from hgbench.config.axes import QUANTIZED_PRECISIONS, spoken
from hgbench.paths import check_writable_folder, safe_component, sweep_record_path
from hgbench.profile.backends import BACKENDS, PRECISIONS, RunSettings, get_backend
from hgbench.profile.calibration_data import DEFAULT_CALIBRATION_COUNT, CalibrationSet, CalibrationSpec, calibration_set
from hgbench.profile.latency import default_threads
from hgbench.profile.memory import check_plan_memory
from hgbench.profile.quiet import window_summary
from hgbench.profile.roofline import default_cache_dir, get_ceilings
from hgbench.profile.sweep import Budget, network_twins, run_sweep
from hgbench.profile.timeline import Timeline, phase
from hgbench.records import ProfileRecord, SweepRecord, scan, write_record
from hgbench.records.provenance import collect_provenance, usable_cpu_count
from hgbench.records.schema import machine_label

DEFAULT_NUM_JOINTS = 16
"""Heatmaps of a network profiled without a training record: MPII's 16 joints, as the papers
count parameters (seed 004, Newell et al.)."""


MAX_NUM_JOINTS = 1000
"""Most heatmaps a ``--num-joints`` may ask for. The largest keypoint layouts in use have 133
(COCO-WholeBody, Jin et al., ECCV 2020) and 136 (Halpe-FullBody, Fang et al., AlphaPose, TPAMI
2022) joints; 1000 leaves room for denser layouts (at most 16 MiB of fp32 heatmaps per sample
and stack at 256 px: 64 x 64 x 4 bytes each), while a larger count is a typo that would build
and run a head of that many output channels before anything is said (100,000 joints: 1.5 GiB
of heatmaps per sample and stack)."""


class BackendUnavailableError(ValueError):
    """A backend that cannot run on the chosen device (what to install is in the message)."""


@dataclass
class ProfilePlan:
    """Everything a profiling run needs, checked: what :func:`plan_profile` returns.

    ``jobs`` are ``(variant spec, number of joints)``; ``input_size`` is pixels; ``conditions``
    lists, in words, how the plan's settings were chosen where the user did not give them;
    ``skipped`` holds the ``(backend, precision)`` pairs of the sweep's cross product that are not
    run (a quantized precision on a backend that does not build it); ``calibration`` is the set
    the quantized settings are calibrated on (None without one).
    """

    jobs: list[tuple[VariantSpec, int]]
    backends: list[str]
    settings: list[RunSettings]
    batch_sizes: list[int]
    input_size: int
    device: torch.device
    threads: int
    budget: Budget
    cache_dir: Path
    results: Path
    refresh_ceilings: bool = False
    conditions: list[str] = field(default_factory=list)
    skipped: frozenset[tuple[str, str]] = frozenset()
    calibration: CalibrationSet | None = None
    machine_label: str | None = None

    @property
    def total_steps(self) -> int:
        """Timed repetitions in all: the progress bar's length (a network shared by several
        variants is timed once: :func:`~hgbench.profile.sweep.network_twins`)."""
        pairs = len(self.backends) * len(self.settings) - len(self.skipped)
        networks = len(self.jobs) - len(network_twins(self.jobs))
        return networks * pairs * len(self.batch_sizes) * self.budget.repetitions


@dataclass
class ProfileRun:
    """What :func:`run_profile` measured: one ``(record, path)`` per setting, the provenance,
    warnings for the user (ceilings not measured, efficiency above 100 %), the sweep's
    :class:`~hgbench.profile.timeline.Timeline` (where its wall time went), its start (UTC) and
    its sweep record as last written (:func:`save_sweep_record`; ``sweep.path`` says where)."""

    rows: list[tuple[ProfileRecord, Path]]
    provenance: dict[str, Any]
    warnings: list[str]
    timeline: Timeline = field(default_factory=Timeline)
    started: str = ""
    sweep: SweepRecord | None = None

    @property
    def failed(self) -> list[ProfileRecord]:
        """Records of the settings that failed (recorded with their reason)."""
        return [record for record, _ in self.rows if record.status != "ok"]

    @property
    def measured(self) -> list[ProfileRecord]:
        """The records measured as their own variant (not a copy of another variant's
        measurement of the same network: ``ProfileRecord.measured_as``)."""
        return [record for record, _ in self.rows if record.measured_as is None]

    def windows(self) -> dict[str, int]:
        """Counts of quiet timing windows of the measured records (:func:`hgbench.profile.quiet.window_summary`)."""
        return window_summary(record.latency_ms for record in self.measured)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _positive_int(value: Any, option: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{option} {value}: expected an integer >= {minimum}")
    return value


def _num_joints(value: Any) -> int:
    """``--num-joints``: an integer in ``[1, MAX_NUM_JOINTS]`` (:data:`MAX_NUM_JOINTS` says why)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_NUM_JOINTS:
        raise ValueError(
            f"--num-joints {value}: expected at most {MAX_NUM_JOINTS} (keypoint layouts in use have 14 to 136 joints)"
        )
    return _positive_int(value, "--num-joints")


def _finite(value: Any, option: str, minimum: float = 0.0) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{option} {value}: expected a finite number >= {minimum:g}")
    return float(value)


def resolve_profile_device(device: str | None) -> torch.device:
    """``cpu`` or ``cuda`` (default: ``cuda`` where available).

    Raises:
        ValueError: another name, or ``cuda`` without a CUDA device (naming ``--device`` and the fix).
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device {device!r}: expected cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device cuda: no CUDA device here (torch {torch.__version__}); "
                         "install a CUDA build of torch on a machine with an NVIDIA GPU, or pass --device cpu")  # fmt: skip
    return torch.device(device)


def trained_settings(results: Path) -> dict[str, tuple[set[int], set[int]]]:
    """``{variant: (numbers of joints, input sizes in px)}`` of the complete training runs under
    ``results`` (read through :func:`hgbench.records.scan`), so that a variant is profiled with the
    head and at the input it was trained with."""
    found: dict[str, tuple[set[int], set[int]]] = {}
    if not Path(results).is_dir():
        return found
    for rec in scan(results, kinds=["train"]).records:
        if rec.complete:
            joints, sizes = found.setdefault(rec.variant, (set(), set()))
            joints.add(rec.num_joints)
            size = (rec.protocol_settings or {}).get("input_size")
            if isinstance(size, int):
                sizes.add(size)
    return found


def plan_profile(
    variants: str | None = None,
    backend: str = "eager,torchscript",
    precision: str = "fp32",
    tf32: bool = False,
    channels_last: bool = False,
    compile_mode: str = "default",
    batch_size: str = "1",
    input_size: int | None = None,
    num_joints: int | None = None,
    threads: int | None = None,
    min_time_s: float = 1.0,
    min_iters: int = 10,
    repetitions: int = 3,
    quiet_attempts: int | None = None,
    quiet_tolerance: float | None = None,
    warmup: int = 3,
    warmup_s: float = 0.5,
    device: str | None = None,
    cache_dir: Path | None = None,
    results: Path = Path("results"),
    refresh_ceilings: bool = False,
    dataset: str | None = None,
    data_root: Path | None = None,
    calibration_count: int = DEFAULT_CALIBRATION_COUNT,
    calibration_seed: int = 0,
    calibration_method: str = "minmax",
    machine_label: str | None = None,
    check_memory: bool = True,
) -> ProfilePlan:
    """Check every option and build the plan; nothing is measured or written.

    Defaults where the user gave none: the number of joints and the input size of the variant's
    complete training runs under ``results`` (else 16 joints and 256 px, the papers' MPII
    setting), the threads of :func:`hgbench.profile.run.default_threads`, the host name as ``machine_label``.
    ``check_memory=False``: no batch-memory check (:func:`hgbench.profile.launch.check_here`, a Slurm submit host).

    Raises:
        ValueError: an option out of range or not finite, an unknown precision or backend name,
            a batch-size list that is not positive integers, more ``threads`` than usable CPUs,
            an input size the variant's depth cannot take, a ``--variants`` list naming none,
            a batch size that cannot fit in the device's memory
            (:func:`hgbench.profile.memory.check_plan_memory`; each message names the option);
            ``KeyError``: an unknown variant.
        NotADirectoryError, hgbench.paths.MachineFaultError: ``results`` or ``cache_dir`` is a file or not writable.
        BackendUnavailableError: a backend that cannot run on the device; UnsafePathError: a bad ``machine_label``.

    Quantized precisions (``int8``, ``fp8``) run on the backends that build them (the others' pairs
    are skipped, said in ``conditions``); one that no chosen backend builds, or without calibration
    data (:func:`_calibration`), raises ``ValueError`` naming the options.
    """
    if machine_label is not None:
        safe_component(machine_label, "--machine-label")
    specs = select_variants(variants)
    dev = resolve_profile_device(device)
    backends = _backends(backend, dev)
    precisions = _precisions(precision)
    sizes = _batch_sizes(batch_size)
    if num_joints is not None:
        _num_joints(num_joints)
    threads = _threads(threads)
    budget = _budget(warmup, warmup_s, min_iters, min_time_s, repetitions, quiet_attempts, quiet_tolerance)
    trained = trained_settings(results) if num_joints is None or input_size is None else {}
    conditions: list[str] = []
    if input_size is None:
        input_size = _trained_input_size(trained, results, conditions)
    _check_input_size(specs, input_size)
    cache = check_writable_folder(Path(cache_dir), "--cache-dir") if cache_dir is not None else default_cache_dir()
    check_writable_folder(Path(results))
    skipped = _skipped_pairs(backends, precisions, dev, conditions)
    calibration = _calibration(precisions, calibration_count, calibration_seed, calibration_method, dataset, data_root,
                               results, input_size, conditions)  # fmt: skip
    settings = [RunSettings(precision=p, tf32=tf32, channels_last=channels_last, compile_mode=compile_mode,
                            cache_dir=cache / "artefacts", calibration=calibration if p in QUANTIZED_PRECISIONS else None)
                for p in precisions]  # fmt: skip
    jobs = _jobs(specs, trained, num_joints)
    if check_memory:
        check_plan_memory(jobs, sizes, input_size, precisions, dev)  # before any allocation: --batch-size 20000
    return ProfilePlan(jobs, backends, settings, sizes, input_size, dev, threads, budget, cache, Path(results),
                       refresh_ceilings, conditions, skipped, calibration, machine_label)  # fmt: skip


def _jobs(specs: list[VariantSpec], trained: dict[str, tuple[set[int], set[int]]], num_joints: int | None
          ) -> list[tuple[VariantSpec, int]]:  # fmt: skip
    """``(variant, joints)`` to profile: each joint count of the variant's complete training runs
    (:func:`trained_settings`), else ``num_joints``, else :data:`DEFAULT_NUM_JOINTS`."""
    return [(s, j) for s in specs
            for j in sorted((trained.get(s.name) or (set(), set()))[0] or {num_joints or DEFAULT_NUM_JOINTS})]  # fmt: skip


def _backends(backend: str, device: torch.device) -> list[str]:
    """``--backend``: comma-separated names of :data:`BACKENDS`, each available on ``device``.

    Raises:
        ValueError: none, or an unknown name; BackendUnavailableError: one that cannot run on ``device``.
    """
    backends = _split(backend)
    if not backends:
        raise ValueError("--backend: expected at least one backend name")
    for b in backends:
        if b not in BACKENDS:
            raise ValueError(f"--backend {b!r}: not one of {', '.join(BACKENDS)}; pass one of these")
        reason = get_backend(b).available(device)
        if reason is not None:
            raise BackendUnavailableError(f"--backend {b}: not available on {device.type}: {reason}")
    return backends


def _precisions(precision: str) -> list[str]:
    """``--precision``: comma-separated names of :data:`PRECISIONS` (ValueError otherwise)."""
    precisions = _split(precision)
    if not precisions or any(p not in PRECISIONS for p in precisions):
        raise ValueError(f"--precision {precision!r}: expected comma-separated {', '.join(PRECISIONS)}")
    return precisions


def _skipped_pairs(
    backends: list[str], precisions: list[str], device: torch.device, conditions: list[str]
) -> frozenset:
    """The ``(backend, precision)`` pairs not run: a quantized precision on a backend that does not
    build it, or cannot on ``device`` (said in ``conditions``).

    Raises:
        ValueError: a quantized precision that none of ``backends`` builds here (naming those that do).
    """
    skipped = set()
    for p in precisions:
        if p not in QUANTIZED_PRECISIONS:
            continue
        probe = RunSettings(precision=p)
        reasons = {
            b: get_backend(b).unsupported(probe) or get_backend(b).unsupported_on(probe, device) for b in backends
        }
        if all(reasons.values()):
            having = [b for b, cls in BACKENDS.items() if p in cls.quantized]
            raise ValueError(f"--precision {p}: none of --backend {','.join(backends)} builds it here "
                             f"({'; '.join(f'{b}: {r}' for b, r in reasons.items())}); {p} is built by {spoken(having)}")  # fmt: skip
        for b, reason in reasons.items():
            if reason:
                skipped.add((b, p))
                conditions.append(f"{b} {p} not run: {reason}")
    return frozenset(skipped)


def _calibration(precisions: list[str], count: int, seed: int, method: str, dataset: str | None, data_root: Path | None,
                 results: Path, input_size: int, conditions: list[str]) -> CalibrationSet | None:  # fmt: skip
    """The calibration set of the quantized settings (None when ``precisions`` has none):
    ``count`` training-split crops drawn with ``seed`` (:class:`CalibrationSpec`, ``method``) from
    ``dataset`` (``--dataset``/``--data-root``), else from the one dataset the complete training
    runs under ``results`` were trained on (and their data folder), at ``input_size``
    (:func:`calibration_set`).

    Raises:
        ValueError: a count below 1 or an unknown method; no dataset given and none (or several)
            in the training records; a split that is empty or smaller than the count (naming the
            options and the fix).
    """
    if not any(p in QUANTIZED_PRECISIONS for p in precisions):
        return None
    spec = CalibrationSpec(count, "train", seed, method)
    how = "--dataset"
    if dataset is None:
        trained = {(r.dataset, r.get("data_root")) for r in scan(results, kinds=["train"]).records if r.complete} \
            if Path(results).is_dir() else set()  # fmt: skip
        if len(trained) != 1:
            found = f"the training records in {results} use {len(trained)} datasets" if trained \
                else f"no complete training run in {results}"  # fmt: skip
            raise ValueError(f"--precision int8/fp8 needs calibration data and {found}: pass --dataset "
                             "(synthetic is embedded; lspet, mpii, ... with --data-root)")  # fmt: skip
        dataset, root = trained.pop()
        data_root = data_root or root
        how = f"the dataset of the training runs in {results}"
    calibration = calibration_set(dataset, data_root, spec, input_size=input_size)
    conditions.append(f"quantized settings calibrated on {spec.count} {dataset} {spec.split} crops (seed {spec.seed}, "
                      f"{spec.method}; {how})")  # fmt: skip
    return calibration


def _batch_sizes(batch_size: str) -> list[int]:
    """``--batch-size``: comma-separated positive integers (ValueError otherwise)."""
    try:
        sizes = [int(s) for s in _split(batch_size)]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--batch-size {batch_size!r}: expected comma-separated positive integers")
    return sizes


def _threads(threads: int | None) -> int:
    """``--threads`` (default :func:`hgbench.profile.latency.default_threads`): at least 1 and at
    most the logical CPUs this process may run on (more would time their contention, not the network)."""
    threads = default_threads() if threads is None else _positive_int(threads, "--threads")
    if threads > usable_cpu_count():
        raise ValueError(
            f"--threads {threads}: this process may run on {usable_cpu_count()} logical CPUs; give at most that many "
            "(more threads than CPUs time their contention, not the network)"
        )
    return threads


def _budget(
    warmup: int,
    warmup_s: float,
    min_iters: int,
    min_time_s: float,
    repetitions: int,
    quiet_attempts: int | None,
    quiet_tolerance: float | None,
) -> Budget:
    """The timing :class:`Budget` of the options, each checked (``None``: the budget's default)."""
    return Budget(
        warmup_iters=_positive_int(warmup, "--warmup", 0),
        warmup_s=_finite(warmup_s, "--warmup-s"),
        min_iters=_positive_int(min_iters, "--min-iters"),
        min_time_s=_finite(min_time_s, "--min-time-s"),
        repetitions=_positive_int(repetitions, "--repetitions"),
        **({} if quiet_attempts is None else {"quiet_attempts": _positive_int(quiet_attempts, "--quiet-attempts")}),
        **({} if quiet_tolerance is None else {"quiet_tolerance": _finite(quiet_tolerance, "--quiet-tolerance")}),
    )


def _trained_input_size(trained: dict[str, tuple[set[int], set[int]]], results: Path, conditions: list[str]) -> int:
    """The input size when ``--input-size`` is not given: the training protocol's when the
    training records under ``results`` use one, else 256 px; says which in ``conditions``."""
    trained_sizes = {s for _, (_, ss) in trained.items() for s in ss}
    input_size = min(trained_sizes) if len(trained_sizes) == 1 else 256
    if len(trained_sizes) == 1:
        conditions.append(f"input {input_size} px: the training protocol's (from the training records in {results})")
    elif trained_sizes:
        conditions.append(f"input 256 px: training records in {results} use several input sizes "
                          f"({', '.join(map(str, sorted(trained_sizes)))}); pass --input-size")  # fmt: skip
    return input_size


def _check_input_size(specs: list[VariantSpec], input_size: int) -> None:
    """``--input-size``: a positive multiple of every variant's ``4 * 2**depth`` (the stem's
    stride 4, then one halving per hourglass level), and a variant's fixed input size where it
    has one (ValueError naming the variant otherwise)."""
    _positive_int(input_size, "--input-size")
    for spec in specs:
        divisor = 4 * 2**spec.architecture.depth
        fixed = spec.architecture.input_size
        if input_size % divisor or (fixed is not None and fixed != input_size):
            raise ValueError(f"--input-size {input_size}: {spec.name} needs a multiple of {divisor}"
                             + (f" (and is fixed to {fixed})" if fixed is not None else ""))  # fmt: skip


def run_profile(plan: ProfilePlan, on_step: Callable[[str, bool], None] | None = None,
                command: Sequence[str] | None = None, timeline: Timeline | None = None) -> ProfileRun:  # fmt: skip
    """Measure the device's roofline ceilings (cached), then sweep every setting of ``plan``
    (:func:`hgbench.profile.sweep.run_sweep`), writing one profile record per setting under
    ``plan.results`` and the sweep record (:func:`save_sweep_record`).

    ``on_step(label, advance)`` reports progress. A setting that fails is recorded with its
    reason and the sweep goes on (:attr:`ProfileRun.failed`). ``timeline`` (default: a new one)
    collects where the wall time goes; the command line starts it at the process's start.

    Raises:
        OSError: a record cannot be written.
    """
    timeline = timeline if timeline is not None else Timeline()
    started = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    torch.set_num_threads(plan.threads)
    provenance = collect_provenance(list(command) if command is not None else None, threads=plan.threads,
                                    machine=plan.machine_label)  # fmt: skip
    with timeline.active():
        with phase("ceilings"):
            ceilings, warnings = _ceilings(plan)
        rows = _sweep(plan, provenance, ceilings, on_step)
    above = sorted({r.precision for r, _ in rows if ((r.roofline or {}).get("efficiency") or 0) > 1})
    if above:
        warnings.append(f"roofline efficiency above 100 % at {', '.join(above)}: the cached ceilings in "
                        f"{plan.cache_dir / 'ceilings.json'} are below what a backend reached (measured on a busy machine, "
                        "or a backend with faster kernels than torch's); --refresh-ceilings measures them again")  # fmt: skip
    run = ProfileRun(rows, provenance, warnings, timeline, started)
    save_sweep_record(run, plan)
    return run


def _ceilings(plan: ProfilePlan) -> tuple[dict[tuple[str, bool], Any], list[str]]:
    """The device's roofline ceilings per ``(precision, tf32)`` of the plan's float settings
    (cached; :func:`get_ceilings`), and a warning for each that could not be measured."""
    warnings: list[str] = []
    ceilings = {}
    for s in plan.settings:
        if s.quantized:  # no int8/fp8 ceilings (profile_model notes it per record)
            continue
        try:
            ceilings[(s.precision, s.tf32)] = get_ceilings(plan.device, s.precision, tf32=s.tf32, threads=plan.threads,
                                                           cache_dir=plan.cache_dir, refresh=plan.refresh_ceilings)  # fmt: skip
        except Exception as e:  # noqa: BLE001 - recorded per setting by profile_model's roofline stage
            warnings.append(f"{plan.device.type} ceilings at {s.precision} not measured: {e}")
    return ceilings, warnings


def _sweep(plan: ProfilePlan, provenance: dict[str, Any], ceilings: dict, on_step: Callable[[str, bool], None] | None
           ) -> list[tuple[ProfileRecord, Path]]:  # fmt: skip
    """:func:`run_sweep` of the plan's axes."""
    return run_sweep(plan.jobs, backends=plan.backends, settings_list=plan.settings, batch_sizes=plan.batch_sizes,
                     input_size=plan.input_size, device=plan.device, threads=plan.threads, budget=plan.budget, skipped=plan.skipped,
                     results_dir=plan.results, provenance=provenance, ceilings=ceilings, cache_dir=plan.cache_dir,
                     on_step=on_step or (lambda label, advance: None))  # fmt: skip


def save_sweep_record(run: ProfileRun, plan: ProfilePlan) -> Path:
    """Write (or write again, e.g. after ``--evaluate`` added its time) the sweep record of
    ``run`` (:class:`hgbench.records.SweepRecord`: the plan's axes, the counts, the timeline's
    breakdown, the kept samples' total) at :func:`hgbench.paths.sweep_record_path`, atomically;
    sets ``run.sweep`` and returns its path.

    Raises:
        OSError: the record cannot be written.
    """
    breakdown = run.timeline.breakdown()
    wall = breakdown.pop("wall")
    latencies = [record.latency_ms or {} for record in run.measured]
    body = {
        "started": run.started, "status": "failed" if run.failed else "complete", "settings": len(run.rows),
        "failed": len(run.failed), "variants": sorted({spec.name for spec, _ in plan.jobs}), "backends": list(plan.backends),
        "precisions": [s.precision for s in plan.settings], "batch_sizes": list(plan.batch_sizes),
        "input_size": plan.input_size, "device": plan.device.type, "threads": plan.threads,
        "repetitions": plan.budget.repetitions, "wall_s": wall, "time_s": breakdown,
        "samples_s": round(sum(sum(lat.get("samples_ms") or []) for lat in latencies) / 1000, 3),
        "windows": run.windows(),
        "kept_settings": sum(1 for lat in latencies if lat.get("repetitions", 0) > 1 and lat.get("prepares") == 1),
        "shared_settings": len(run.rows) - len(run.measured),
    }  # fmt: skip
    path = sweep_record_path(plan.results, machine_label(run.provenance), run.started)
    run.sweep = write_record(path, "sweep", body, run.provenance)
    return path


def variant_summaries(num_joints: int = DEFAULT_NUM_JOINTS, input_size: int = 256) -> list[dict[str, Any]]:
    """One row per registered variant for ``hgbench variants``: name, stacks, block, features,
    modules per level, source (cite and seed file), protocol overrides, parameters (with
    ``num_joints`` heatmaps) and GMACs per sample at ``input_size`` px (torch's flop_counter:
    MACs = FLOPs / 2 for convolutions).

    Raises:
        ValueError: ``num_joints`` outside ``[1, MAX_NUM_JOINTS]`` (:data:`MAX_NUM_JOINTS`: the
            largest keypoint layouts in use have 136 joints; a larger count is a typo that would
            build a huge head before saying anything), or an ``input_size`` some variant's depth
            cannot take (naming the option and the sizes that work).
    """
    from hgbench.config import list_variants
    from hgbench.models import count_parameters, create_model
    from hgbench.profile.complexity import count_flops

    _num_joints(num_joints)
    _positive_int(input_size, "--input-size")
    specs = list_variants()
    divisor = max(4 * 2**s.architecture.depth for s in specs)
    if input_size % divisor:
        raise ValueError(
            f"--input-size {input_size}: the registry's deepest hourglass needs a multiple of {divisor} (e.g. 64, 128, 256)"
        )
    rows = []
    for spec in specs:
        a = spec.architecture
        size = input_size if a.input_size is None else a.input_size  # an autoencoder bottleneck fixes its input
        model = create_model(spec, num_joints, input_size=size)
        flops = count_flops(model, (1, 3, size, size))
        rows.append({
            "name": spec.name, "stacks": a.num_stacks, "block": a.block, "features": a.num_features, "modules": a.num_modules,
            "source": f"{spec.source.cite or spec.source.paper} ({spec.source.seed})", "overrides": spec.overrides,
            "parameters": count_parameters(model), "gmacs": flops.gmacs,
        })  # fmt: skip
    return rows
