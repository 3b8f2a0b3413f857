"""Profile one model under one backend, precision, layout, batch size and input size: a
:class:`hgbench.records.ProfileRecord` (schema ``hgbench.record/3``), and where it is saved.

Stages, in order (a failing stage is recorded, never raised, so a sweep goes on):
``backend unavailable`` -> ``threads`` -> ``complexity`` -> ``prepare`` (the backend's
conversion, compile or engine build) -> ``timing`` (warm-up and timed calls, peak memory)
-> ``numerics`` (against eager fp32 on the same input) -> ``roofline`` (floors from the
device's ceilings). A CUDA out-of-memory at any stage is reported as such, with the batch
size, and the CUDA cache is emptied before the next setting runs.

Conditions, per setting (recorded in its ``latency_ms``): ``torch.backends.cudnn.benchmark`` is
set to :data:`CUDNN_BENCHMARK` from the prepare stage to the numerics (cuDNN's autotuner then
picks each convolution's fastest algorithm for the fixed shape during warm-up, as ONNX
Runtime's CUDA provider and TensorRT tune their kernels) and restored after; on CUDA the GPU's
clocks and throttle reasons are sampled while the setting is timed
(:class:`hgbench.records.provenance.GpuStateSampler`). Between the prepare stage and the
timed window the CUDA allocator's cache is emptied, so that the device-wide peak memory holds
what the timed calls use, not what the build left cached.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hgbench import paths
from hgbench.paths import DEFAULT_RESULTS_DIR
from hgbench.profile.backends import Backend, Prepared, RunSettings, get_backend
from hgbench.profile.backends.base import device_flags
from hgbench.profile.complexity import MIB, complexity_record
from hgbench.profile.latency import LatencyStats, fixed_threads, time_callable
from hgbench.profile.memory import CudaMemorySnapshot, PeakMemory
from hgbench.profile.quiet import QuietTimer
from hgbench.profile.roofline import Ceilings, element_bytes, get_ceilings, roofline
from hgbench.profile.timeline import phase
from hgbench.records import ProfileRecord, RecordError, identity, read_record, write_record
from hgbench.records.identity import artifact_identity
from hgbench.records.provenance import GpuStateSampler, collect_provenance, device_name, nvml_index
from hgbench.records.schema import machine_label

INPUT_SEED = 0
MAX_REASON_CHARS = 500
"""Longest ``error`` of a profile record (characters; longer reasons are cut with ``...``)."""
CUDNN_BENCHMARK = True
"""``torch.backends.cudnn.benchmark`` during every profiled setting (module docstring):
torch's backends autotune their convolutions like ONNX Runtime and TensorRT do theirs."""


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """``torch.backends.cudnn.benchmark = enabled`` inside the block, restored on exit, also
    on error (a flag only: inert on the CPU)."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer; CPU for a stateless model."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def make_input(batch_size: int, input_size: int, device: torch.device | str = "cpu") -> Tensor:
    """The profiling input: ``(batch_size, 3, input_size, input_size)`` float32, NCHW, standard
    normal, drawn from a private generator seeded with :data:`INPUT_SEED` (the global RNG is
    untouched), on ``device``. The same call always gives the same tensor, so the numerical
    check compares every backend on the input of the eager reference."""
    generator = torch.Generator().manual_seed(INPUT_SEED)
    return torch.randn((batch_size, 3, input_size, input_size), generator=generator).to(device)


def is_reference(backend: str, settings: RunSettings) -> bool:
    """Whether ``(backend, settings)`` is the numerical reference itself: eager, fp32, TF32
    off, NCHW. Its record's ``numerics`` is ``None``."""
    return backend == "eager" and settings.precision == "fp32" and not settings.tf32 and not settings.channels_last


def reference_output(model: nn.Module, batch_size: int, input_size: int, inputs: Tensor | None = None) -> Any:
    """The eager fp32 output (TF32 off, NCHW) of ``model`` on :func:`make_input` (or on ``inputs``,
    ``(batch_size, 3, input_size, input_size)``, where given), on the CPU
    (so that it takes no GPU memory while other settings are timed): the ``reference`` for
    :func:`profile_model`. Compute it once per (model, batch size, input size).

    Returns:
        What the model returns (for the hourglass networks, a list of per-stack heatmaps
        ``(N, J, S/4, S/4)``), detached, float32, on the CPU.

    Raises:
        Whatever the model's forward raises (e.g. ``torch.cuda.OutOfMemoryError``).
    """
    device = model_device(model)
    x = make_input(batch_size, input_size, device) if inputs is None else inputs.to(device)
    was_training = model.training
    try:  # the eager backend's call (inference mode, TF32 off, NCHW) on the model itself: no copy needed
        with device_flags(RunSettings(), device), torch.inference_mode():
            return _to_cpu_float(model.eval()(x.float()))
    finally:
        model.train(was_training)


def _to_cpu_float(output: Any) -> Any:
    if isinstance(output, Tensor):
        return output.detach().to("cpu", torch.float32)
    if isinstance(output, (list, tuple)):
        return type(output)(_to_cpu_float(o) for o in output)
    return output


def profile_identity(variant: str, num_joints: int, artifact: Mapping[str, Any], spec: Any = None) -> dict[str, Any]:
    """The identity fields of a profile record (:func:`hgbench.records.identity`): the network
    built from ``spec`` (a :class:`hgbench.config.VariantSpec` or its dict, named ``variant``:
    its name, spec and spec hash) and ``artifact`` (:func:`hgbench.records.identity.artifact_identity`).
    Without ``spec`` (a model built outside the registry) the network is its name and joints
    only (``spec`` and ``spec_hash`` stay ``None``).

    Raises:
        ValueError: ``spec`` is named otherwise than ``variant``.
    """
    if spec is None:
        return {"variant": variant, "num_joints": int(num_joints), **artifact}
    fields = identity(spec=spec, num_joints=num_joints, artifact=artifact)
    if fields["variant"] != variant:
        raise ValueError(f"the spec of {fields['variant']!r} was given for variant {variant!r}")
    return fields


def profile_model(
    model: nn.Module,
    *,
    variant: str,
    num_joints: int,
    backend: str,
    batch_size: int,
    input_size: int,
    settings: RunSettings = RunSettings(),
    spec: Any = None,
    threads: int | None = None,
    warmup_iters: int = 3,
    warmup_s: float = 0.0,
    min_iters: int = 10,
    min_time_s: float = 1.0,
    complexity: dict[str, Any] | None = None,
    calibration: dict[str, Any] | None = None,
    reference: Any = None,
    ceilings: Ceilings | None = None,
    cache_dir: Path | None = None,
    quiet: QuietTimer | None = None,
    keep: Callable[[KeptSetting], None] | None = None,
) -> ProfileRecord:
    """Measure the size, compute, latency, memory, numerics and roofline of ``model`` under one
    backend and setting: a :class:`~hgbench.records.ProfileRecord` (its fields say what each
    figure is), stage by stage (module docstring); a failed stage sets ``status="error"`` and
    ``error`` (``"<stage>: ..."``) and keeps what was measured before.

    The model must already be on the profiled device (fp32; not modified: backends work on copies);
    the input is :func:`make_input` on that device. Latency is that of ``prepared.fn(prepared.prepare_input(x))``
    (:func:`~hgbench.profile.latency.time_callable`) in the backend's ``context``, with ``threads`` set.

    Args:
        variant, num_joints, spec: the network (:func:`profile_identity`; ``spec`` None: its name only).
        settings: precision, TF32, channels_last, compile mode, artefact cache.
        threads: CPU intra-op threads (``None``: as set now); recorded either way.
        warmup_iters, warmup_s, min_iters, min_time_s: see :func:`time_callable`.
        complexity: :func:`~hgbench.profile.complexity.complexity_record` at this input size (``None``: computed here).
        calibration: :func:`~hgbench.profile.calibration.measure_calibration`, copied into the record.
        reference: :func:`reference_output` for this model, batch and input size (``None``: computed when needed).
        ceilings, quiet: the device's ceilings at this precision and TF32 (``None``: looked up in ``cache_dir``);
            a :class:`hgbench.profile.quiet.QuietTimer` to time in a quiet window (``None``: one window).
        keep: given the prepared setting (:class:`KeptSetting`) once every stage succeeded, to time
            it again without preparing it (:func:`repeat_timing`'s ``kept``); ``None``: dropped.

    Raises:
        ValueError: an unknown backend name, or ``spec`` named otherwise than ``variant``.
    """
    impl = get_backend(backend)
    device = model_device(model)
    record = _new_record(variant, num_joints, spec, backend, settings, batch_size, input_size, device, threads)
    record.calibration = calibration  # from the caller: recorded whatever happens below
    reason = impl.available(device)
    if reason is not None:
        return _failed(record, f"backend unavailable: {reason}")
    timing = {"warmup_iters": warmup_iters, "warmup_s": warmup_s, "min_iters": min_iters, "min_time_s": min_time_s}
    stage, prepared, x_in = "threads", None, None
    try:
        with fixed_threads(threads), cudnn_benchmark(CUDNN_BENCHMARK):
            stage = "complexity"
            record.update(complexity if complexity is not None else _complexity(model, input_size))
            stage = "prepare"
            prepared, x_in, baseline = _prepare(impl, model, record, settings, device)
            stage = "timing"
            _time_first_repetition(record, impl, prepared, x_in, baseline, settings, device, quiet, timing)
            if not is_reference(backend, settings):
                stage = "numerics"
                _check_numerics(record, model, prepared, x_in, reference, settings, device)
            stage = "roofline"
            _roofline_stage(record, settings, ceilings, device, threads, cache_dir)
            if keep is not None:
                keep(KeptSetting(prepared, x_in, device))
                return record
    except torch.cuda.OutOfMemoryError as e:
        _failed(record, f"{stage}: CUDA out of memory at batch size {batch_size}: {e}")
    except Exception as e:  # noqa: BLE001 - one failing setting must not stop a sweep
        _failed(record, f"{stage}: {type(e).__name__}: {e}")
    prepared = x_in = None  # free the backend's model and buffers before the next setting
    free_memory(device)
    return record


def _complexity(model: nn.Module, input_size: int) -> dict[str, Any]:
    """:func:`complexity_record` (timeline phase ``complexity``), for a caller that gave none."""
    with phase("complexity"):
        return complexity_record(model, input_size)


def _new_record(
    variant: str,
    num_joints: int,
    spec: Any,
    backend: str,
    settings: RunSettings,
    batch_size: int,
    input_size: int,
    device: torch.device,
    threads: int | None,
) -> ProfileRecord:
    """A record of the setting before anything is measured: its identity (:func:`profile_identity`;
    ``compile_mode`` only for the ``compile`` backend, ``device`` the kind), the device's name
    and the threads (``None``: as set now), ``status="ok"`` and no notes yet."""
    artifact = artifact_identity(
        backend=backend, precision=settings.precision, tf32=settings.tf32, channels_last=settings.channels_last,
        compile_mode=settings.compile_mode if backend == "compile" else None, batch_size=batch_size,
        input_size=input_size, device=device.type,
    )  # fmt: skip
    return ProfileRecord(
        **profile_identity(variant, num_joints, artifact, spec), device_name=device_name(device),
        threads=threads if threads is not None else torch.get_num_threads(), notes=[],
    )  # fmt: skip


def _failed(record: ProfileRecord, reason: str) -> ProfileRecord:
    """``record`` marked failed: ``status="error"``, ``error`` the reason on one line."""
    record.update(status="error", error=one_line(reason))
    return record


def _prepare(
    impl: Backend, model: nn.Module, record: ProfileRecord, settings: RunSettings, device: torch.device
) -> tuple[Prepared, Any, CudaMemorySnapshot | None]:
    """Stage ``prepare``: the backend's artefact for :func:`make_input` of the record's batch and
    input size; records ``build_time_s`` and ``notes``. Returns ``(prepared, its input,
    baseline)``, the baseline being the CUDA memory before the build (on CUDA the device figure
    counts growth: the allocator cache is emptied first), ``None`` on the CPU."""
    x = make_input(record.batch_size, record.input_size, device)
    baseline = None
    if device.type == "cuda":
        free_memory(device)
        baseline = CudaMemorySnapshot.take(device)
    setting = _prepare_setting(impl, model, x, settings, device)
    record.update(build_time_s=float(setting.prepared.build_time_s), notes=list(setting.prepared.notes))
    return setting.prepared, setting.x_in, baseline


def _time_first_repetition(
    record: ProfileRecord,
    impl: Backend,
    prepared: Prepared,
    x_in: Any,
    baseline: CudaMemorySnapshot | None,
    settings: RunSettings,
    device: torch.device,
    quiet: QuietTimer | None,
    timing: dict[str, Any],
) -> None:
    """Stage ``timing``: on CUDA the allocator's cache emptied, then warm-up and timed calls
    inside :class:`PeakMemory`, the backend's context and a :class:`GpuStateSampler`; records
    ``latency_ms`` (one repetition, with its GPU state: :func:`latency_entry`),
    ``throughput_samples_per_s``, ``peak_memory_mib`` and ``memory`` (the figure the backend
    names on CUDA; RSS on the CPU)."""
    fn = prepared.fn
    if device.type == "cuda":
        free_memory(device)  # what the build left in the allocator's cache is not the timed calls' memory
    with (
        PeakMemory(device, baseline=baseline) as memory,
        prepared.context(),
        GpuStateSampler(nvml_index(device)) as gpu,
    ):
        stats, window = _time_window(lambda: fn(x_in), quiet, device, **timing)
    source = impl.peak_memory_source(settings) if device.type == "cuda" else "allocator"
    record.update(
        latency_ms=latency_entry(stats.samples_ms, [stats.p50], [window], [gpu.summary()], _cudnn_benchmark(device)),
        throughput_samples_per_s=stats.throughput(record.batch_size),
        peak_memory_mib=memory.peak(source),
        memory=memory.to_record(source),
    )


def _check_numerics(
    record: ProfileRecord,
    model: nn.Module,
    prepared: Prepared,
    x_in: Any,
    reference: Any,
    settings: RunSettings,
    device: torch.device,
) -> None:
    """Stage ``numerics``: one more call of the prepared setting, compared with the eager fp32
    ``reference`` (computed here when ``None``) at the precision's tolerance (TF32's where it
    applies); records ``numerics``."""
    with phase("numerics"):
        _compare_with_reference(record, model, prepared, x_in, reference, settings, device)


def _compare_with_reference(record: ProfileRecord, model: nn.Module, prepared: Prepared, x_in: Any, reference: Any,
                            settings: RunSettings, device: torch.device) -> None:  # fmt: skip
    """The body of :func:`_check_numerics`."""
    from hgbench.profile.numerics import compare_outputs, tolerance_for

    if settings.quantized:  # scales calibrated on images: compared on calibration images, not on noise
        x = next(settings.require_calibration().batches(record.batch_size)).to(device)
        x_in, reference = prepared.prepare_input(x), reference_output(model, record.batch_size, record.input_size, x)
    with prepared.context():
        output = _to_cpu_float(prepared.fn(x_in))
    ref = reference if reference is not None else reference_output(model, record.batch_size, record.input_size)
    tolerance = tolerance_for(settings.precision, tf32=settings.tf32 and device.type == "cuda")
    record.numerics = compare_outputs(ref, output, tolerance)


def latency_entry(
    samples_ms: list[float],
    repetition_p50_ms: list[float],
    windows: list[dict[str, Any] | None] | None = None,
    gpu: list[dict[str, Any] | None] | None = None,
    cudnn_benchmark: bool | None = None,
    prepares: int = 1,
) -> dict[str, Any]:
    """The record's ``latency_ms``: :meth:`LatencyStats.to_dict` of all samples pooled (ms per
    batch, in call order, repetition after repetition), plus ``repetitions`` (how many timed
    repetitions they came from), ``repetition_p50_ms`` (each repetition's median, ms: their
    spread shows how steady the machine was during the sweep), ``windows`` (per
    repetition, how its window was chosen: see :meth:`hgbench.profile.quiet.QuietTimer.time`;
    ``None`` for a repetition timed without probes), ``gpu`` (per repetition, the GPU's clocks
    and throttle reasons sampled while it was timed,
    :meth:`hgbench.records.provenance.GpuStateSampler.summary`; ``None`` on the CPU or without
    NVML) and ``cudnn_benchmark`` (``torch.backends.cudnn.benchmark`` while the setting ran,
    :data:`CUDNN_BENCHMARK`; ``None`` on the CPU, where cuDNN does not run) and ``prepares``
    (how many times the setting was prepared for these repetitions: 1 when the sweep kept the
    prepared setting from the first to the last, :mod:`hgbench.profile.sweep`).

    Raises:
        ValueError: no samples, or ``windows`` or ``gpu`` not one per repetition.
    """
    n = len(repetition_p50_ms)
    windows = list(windows) if windows is not None else [None] * n
    gpu = list(gpu) if gpu is not None else [None] * n
    if len(windows) != n or len(gpu) != n:
        raise ValueError(f"need one window and one GPU state per repetition; got {len(windows)} and {len(gpu)} for {n}")
    return {
        **LatencyStats(list(samples_ms)).to_dict(),
        "repetitions": n,
        "repetition_p50_ms": [float(v) for v in repetition_p50_ms],
        "windows": windows,
        "gpu": gpu,
        "cudnn_benchmark": cudnn_benchmark,
        "prepares": int(prepares),
    }


def _cudnn_benchmark(device: torch.device) -> bool | None:
    """What ``latency_ms["cudnn_benchmark"]`` records for a setting on ``device``."""
    return CUDNN_BENCHMARK if device.type == "cuda" else None


def _time_window(
    fn: Callable[[], object], quiet: QuietTimer | None, device: torch.device, **timing: Any
) -> tuple[LatencyStats, dict[str, Any] | None]:
    """One repetition's samples: in a quiet window when ``quiet`` is given, else one window.

    Raises:
        ValueError: ``quiet`` probes another kind of device than ``device`` (its clock would
            be the wrong one: CUDA events vs ``perf_counter_ns``).
    """
    if quiet is not None:
        if quiet.device.type != device.type:
            raise ValueError(
                f"the quiet-window timer probes {quiet.device} but the model runs on {device}; "
                "make a QuietTimer for the profiled device"
            )
        return quiet.time(fn, **timing)
    return time_callable(fn, device=device, **timing), None


@dataclass
class KeptSetting:
    """A prepared setting kept between repetitions (:func:`profile_model`'s ``keep``): the
    backend's artefact, its input, and the device they are on."""

    prepared: Prepared
    x_in: Any
    device: torch.device


def repeat_timing(
    record: ProfileRecord,
    model: nn.Module | None,
    *,
    settings: RunSettings,
    threads: int | None = None,
    warmup_iters: int = 3,
    warmup_s: float = 0.0,
    min_iters: int = 10,
    min_time_s: float = 1.0,
    quiet: QuietTimer | None = None,
    kept: KeptSetting | None = None,
) -> ProfileRecord:
    """Time one more repetition of ``record``'s setting and pool it into the record, in place.

    With ``kept`` (the setting as :func:`profile_model` prepared it) the same artefact is warmed
    up and timed again; without, the backend prepares ``model`` again (from its artefact cache
    where it has one) and the memory is collected afterwards. The new samples join
    ``latency_ms`` (see :func:`latency_entry`, its GPU state too; ``prepares`` counts the
    preparations), and the throughput and the roofline (with the ceilings already in the
    record) are recomputed from the pooled median. Build time, peak memory and numerics stay
    those of the first repetition. A record whose status is not ``"ok"`` is returned unchanged;
    a failure here sets ``status="error"`` and ``error="timing (repetition <k>): ..."`` and keeps
    the samples of the earlier repetitions.

    Args:
        record: a record from :func:`profile_model` (its ``backend``, ``batch_size`` and
            ``input_size`` say what to run).
        model: the same fp32 model (same weights) on the profiled device (``None`` with ``kept``).
        settings: the record's :class:`RunSettings` (precision, TF32, layout, compile mode and
            artefact cache).
        threads, warmup_iters, warmup_s, min_iters, min_time_s, quiet: as for :func:`profile_model`.

    Returns:
        ``record``.

    Raises:
        ValueError: neither ``model`` nor ``kept`` given.
    """
    if record.status != "ok" or record.latency_ms is None:
        return record
    if model is None and kept is None:
        raise ValueError("repeat_timing needs the model or the kept setting")
    previous = record.latency_ms
    k = previous["repetitions"] + 1
    device = kept.device if kept is not None else model_device(model)
    timing = {"warmup_iters": warmup_iters, "warmup_s": warmup_s, "min_iters": min_iters, "min_time_s": min_time_s}
    try:
        with fixed_threads(threads), cudnn_benchmark(CUDNN_BENCHMARK):
            setting = kept or _prepare_setting(
                get_backend(record.backend),
                model,
                make_input(record.batch_size, record.input_size, device),
                settings,
                device,
            )
            with setting.prepared.context(), GpuStateSampler(nvml_index(device)) as gpu:
                fn, x_in = setting.prepared.fn, setting.x_in
                stats, window = _time_window(lambda: fn(x_in), quiet, device, **timing)
    except torch.cuda.OutOfMemoryError as e:
        return _failed(record, f"timing (repetition {k}): CUDA out of memory at batch size {record.batch_size}: {e}")
    except Exception as e:  # noqa: BLE001 - one failing setting must not stop a sweep
        return _failed(record, f"timing (repetition {k}): {type(e).__name__}: {e}")
    finally:
        if kept is None:
            setting = fn = x_in = None
            free_memory(device)
    earlier_windows = previous.get("windows") or [None] * previous["repetitions"]
    earlier_gpu = previous.get("gpu") or [None] * previous["repetitions"]
    latency = latency_entry(previous["samples_ms"] + stats.samples_ms,
                            previous["repetition_p50_ms"] + [stats.p50], earlier_windows + [window],
                            earlier_gpu + [gpu.summary()], _cudnn_benchmark(device),
                            prepares=(previous.get("prepares") or 1) + (kept is None))  # fmt: skip
    record.update(
        latency_ms=latency, throughput_samples_per_s=LatencyStats(latency["samples_ms"]).throughput(record.batch_size)
    )
    if record.roofline is not None:
        record.roofline = _roofline_of(record, Ceilings(**record.roofline["ceilings"]))
    return record


def _prepare_setting(
    impl: Backend, model: nn.Module, x: Tensor, settings: RunSettings, device: torch.device
) -> KeptSetting:
    """``impl``'s artefact of ``model`` for input ``x`` and the input it takes (timeline phase ``prepare``)."""
    with phase("prepare"):
        prepared = impl.prepare(model, x, settings)
        return KeptSetting(prepared, prepared.prepare_input(x), device)


def _device_ceilings(
    device: torch.device, settings: RunSettings, threads: int | None, cache_dir: Path | None
) -> Ceilings:
    """:func:`~hgbench.profile.roofline.get_ceilings` of ``device`` at the setting's precision and TF32."""
    return get_ceilings(device, settings.precision, tf32=settings.tf32, threads=threads, cache_dir=cache_dir)


def _roofline_stage(record: ProfileRecord, settings: RunSettings, ceilings: Ceilings | None, device: torch.device,
                    threads: int | None, cache_dir: Path | None) -> None:  # fmt: skip
    """Stage ``roofline``: ``record.roofline`` against the device's ceilings (looked up when
    ``ceilings`` is None; timeline phase ``ceilings``); a quantized setting gets a note instead (no
    int8/fp8 ceilings are measured)."""
    with phase("ceilings"):
        _roofline_or_note(record, settings, ceilings, device, threads, cache_dir)


def _roofline_or_note(record: ProfileRecord, settings: RunSettings, ceilings: Ceilings | None, device: torch.device,
                      threads: int | None, cache_dir: Path | None) -> None:  # fmt: skip
    """The body of :func:`_roofline_stage`."""
    if settings.quantized:
        record.notes.append(f"roofline: no {settings.precision} ceilings measured; efficiency not computed")
        return
    record.roofline = _roofline_of(record, ceilings or _device_ceilings(device, settings, threads, cache_dir))


def free_memory(device: torch.device) -> None:
    """Collect what a dropped backend held, and on CUDA return the cached blocks to the driver
    (timeline phase ``cleanup``)."""
    with phase("cleanup"):
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _roofline_of(record: ProfileRecord, ceilings: Ceilings) -> dict[str, Any]:
    """:func:`~hgbench.profile.roofline.roofline` of a record's complexity and pooled median."""
    scale = element_bytes(record.precision) / 4  # the complexity sizes are float32
    flops = record.gflops_flop_counter * 1e9 if record.gflops_flop_counter else 2 * record.macs["fvcore"]
    return roofline(
        flops_per_sample=flops,
        weight_bytes=record.model_size_mib * MIB * scale,
        activation_bytes_per_sample=record.activation_memory_mib * MIB * scale,
        batch_size=record.batch_size,
        p50_ms=record.latency_ms["p50_ms"],
        ceilings=ceilings,
    )


def save_profile_record(
    record: ProfileRecord, results_dir: Path = DEFAULT_RESULTS_DIR, provenance: dict[str, Any] | None = None
) -> Path:
    """Write ``record`` (from :func:`profile_model`) with its ``provenance`` (default:
    :func:`collect_provenance` now, with the record's threads) under ``results_dir``, at
    :func:`hgbench.paths.profile_record_path` for the provenance's machine label
    (:func:`hgbench.records.schema.machine_label`) and the record key's
    file stem (:meth:`hgbench.records.RecordKey.stem`: no two settings of one host share a file),
    atomically; return the path.

    A failed measurement (``status`` not ``"ok"``) never replaces a good record of the same
    setting: it is then not written (``record.not_written`` says why; the sweep reports the
    failure) and the good record stays byte-identical. An earlier failed record is replaced.

    Raises:
        OSError: the record cannot be written.
        hgbench.paths.UnsafePathError: a host or variant name that is not a plain file name.
        hgbench.records.NewerSchemaError: the path holds a newer hgbench's record (kept).
    """
    provenance = collect_provenance(threads=record.threads) if provenance is None else provenance
    path = paths.profile_record_path(results_dir, machine_label(provenance), record.key().stem())
    if record.status != "ok" and path.is_file():
        try:
            earlier = read_record(path)
        except RecordError:
            earlier = None
        if earlier is not None and earlier.get("status") == "ok":
            record.not_written = f"the good record {path} of this setting is kept"
            return path
    write_record(path, "profile", record.to_body(), provenance)
    return path


def one_line(text: str) -> str:
    """``text`` on one line (runs of white space as one space), cut to :data:`MAX_REASON_CHARS`
    with ``...``: a record's ``error``."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."
