"""How close a latency is to the hardware: measured device ceilings and roofline floors.

The roofline model (Williams, Waterman and Patterson, "Roofline: an insightful visual
performance model for multicore architectures", CACM 52(4), 2009) bounds the time of a
workload from below by ``max(work / peak compute, bytes moved / peak bandwidth)``. Here both
peaks are *measured* on the device, once, and cached:

* **compute ceiling** ``matmul_tflops``: the faster of a square ``n x n`` matmul
  (``torch.mm``, ``2 n^3`` FLOPs per call) and a 3x3 convolution ``C -> C`` on ``N x C x S x S``
  with padding 1 (``2 * 9 * C^2 * S^2 * N`` FLOPs; a convolution is a matmul that oneDNN or
  cuDNN lowers implicitly, and it is the hourglasses' main operator), in the profiled
  precision, in TFLOP/s (10^12 FLOP/s, FLOPs = 2 x MACs), each from its fastest timed call
  (a ceiling is the best the device reached, not its typical speed). Both are recorded
  (``mm_tflops``, ``conv_tflops``). Why both: on the development CPU (AMD EPYC, Zen 5, 2
  threads) MKL's sgemm reached 0.19 TFLOP/s and oneDNN's 3x3 convolution 0.40, and ONNX
  Runtime ran the hourglasses at up to 0.36: a matmul-only ceiling gave efficiencies of 4x.
  On CUDA the ceilings are measured with the TF32 setting of the profile they serve
  (:func:`~hgbench.profile.tf32.tf32_mode`): an fp32 profile with ``--tf32`` is divided by a
  TF32 ceiling (several times the IEEE one on tensor-core GPUs), one without by the IEEE
  ceiling; TF32 changes only float32 work, so fp16/bf16 and CPU ceilings ignore it. These are
  *measured* ceilings of this torch build, not datasheet peaks: a backend with better kernels
  than torch's (ONNX Runtime's MLAS, TensorRT) can exceed them, which shows as an efficiency
  above 1.0. Ceilings measured while the machine was busy are too low, also above 1.0:
  ``hgbench profile --refresh-ceilings`` measures them again.
* **bandwidth ceiling** ``copy_gib_s``: ``dst.copy_(src)`` of a large buffer on the device
  (device-to-device on a GPU, RAM-to-RAM on a CPU), counting bytes read plus bytes written
  (``2 x`` the buffer, as STREAM's "copy"), in GiB/s (2^30 bytes/s), from the fastest call.
  The buffers are several times larger than a CPU's last-level cache or a GPU's L2.

Floors of one batch (:func:`roofline`):

* ``compute_floor_ms = FLOPs per batch / (matmul_tflops * 1e12) * 1e3``, FLOPs from
  ``torch.utils.flop_counter`` (conv/matmul only, 2 x MACs) or, when missing, 2 x fvcore MACs.
* ``memory_floor_ms = (weight bytes + activation bytes per sample * batch) / (copy_gib_s * 2^30) * 1e3``:
  every weight read once and every leaf module's output written once, at the profiled
  precision's element size (2 bytes for fp16/bf16, 4 for fp32).
* ``floor_ms = max(compute_floor_ms, memory_floor_ms)``; ``efficiency = floor_ms / p50``
  (1.0 would be a run at the measured ceilings; small for launch-bound small batches).

Ceilings depend on the device, the precision, TF32 (CUDA fp32), the torch build and, on the
CPU, the thread count: they are cached under that key in ``<cache_dir>/ceilings.json`` (written atomically),
``cache_dir`` defaulting to ``$HGBENCH_CACHE_DIR`` or ``~/.cache/hgbench``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from hgbench.profile.latency import fixed_threads, time_callable
from hgbench.profile.tf32 import tf32_mode
from hgbench.records import atomic_write_bytes, utc_now
from hgbench.records.provenance import device_name

GIB = 2**30
CACHE_FILE = "ceilings.json"
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "fp8": 1}

# Default problem sizes: large enough to reach the peak, small enough to stay around a
# second on a CPU. A 1024^3 matmul is 2.1 GFLOP (tens of ms on a few CPU cores); 8192^3 is
# 1.1 TFLOP (a few ms on a current GPU). Copy: 128 MiB on a CPU, 1 GiB on a GPU. On the CPU a
# precision without fast kernels (fp16 on most CPUs: ~1 GFLOP/s) gets a smaller matmul, sized
# from a 256^3 probe so that one call takes about MAX_CALL_S. On CUDA the matmul is always
# CUDA_MATMUL_N: a 256^3 matmul there is launch-bound (a few us whatever the GPU), so the
# probe extrapolated a far-too-slow device and picked n near 6-7k, whose ceiling reads low.
CPU_MATMUL_N, CUDA_MATMUL_N = 1024, 8192
PROBE_N, MAX_CALL_S = 256, 0.1
# Convolution (N, C, S): 4.8 GFLOP on a CPU, 0.62 TFLOP on a GPU (see _conv_tflops for the
# precisions without fast kernels).
CPU_CONV, CUDA_CONV = (1, 256, 64), (8, 512, 128)
CPU_COPY_MIB, CUDA_COPY_MIB = 128, 1024


@dataclass(frozen=True)
class Ceilings:
    """Measured peaks of one device at one precision and TF32 setting.

    Attributes:
        matmul_tflops: the compute ceiling, 10^12 FLOP/s (FLOP = 2 x MAC): the larger of
            ``mm_tflops`` and ``conv_tflops``.
        copy_gib_s: peak copy bandwidth, GiB/s (2^30 bytes/s), bytes read + bytes written.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (the matmul's dtype).
        tf32: measured with TF32 allowed (only ever for CUDA fp32, see :func:`effective_tf32`).
        measured: when they were measured (UTC, ISO 8601); cached ceilings keep theirs.
        device_name, torch, threads: what they were measured on (the cache key).
        matmul_n, copy_mib: the problem sizes used.
        mm_tflops, conv_tflops: the matmul's and the 3x3 convolution's throughput.
        conv_shape: the convolution's ``[N, C, S]``.
    """

    matmul_tflops: float
    copy_gib_s: float
    precision: str
    measured: str
    device_name: str | None = None
    torch: str = torch.__version__
    threads: int | None = None
    matmul_n: int = 0
    copy_mib: int = 0
    mm_tflops: float | None = None
    conv_tflops: float | None = None
    conv_shape: list[int] | None = None
    tf32: bool = False

    def to_record(self) -> dict[str, Any]:
        """The record's ``roofline.ceilings``: ``matmul_tflops``, ``copy_gib_s``,
        ``precision``, ``measured`` (and the problem sizes and what they were measured on)."""
        return asdict(self)


def default_cache_dir() -> Path:
    """``$HGBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/hgbench``, else ``~/.cache/hgbench``."""
    if os.environ.get("HGBENCH_CACHE_DIR"):
        return Path(os.environ["HGBENCH_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "hgbench"


def effective_tf32(device: torch.device | str, precision: str, tf32: bool) -> bool:
    """Whether TF32 changes the ceilings: only for float32 work on CUDA (the TF32 settings
    apply to float32 matmuls and convolutions; the CPU ignores them)."""
    return bool(tf32) and torch.device(device).type == "cuda" and precision == "fp32"


def _check_precision(precision: str) -> None:
    if precision not in _DTYPES:
        raise ValueError(f"unknown precision {precision!r}; valid precisions: {', '.join(_DTYPES)}")


def measure_ceilings(
    device: torch.device | str,
    precision: str = "fp32",
    *,
    tf32: bool = False,
    threads: int | None = None,
    matmul_n: int | None = None,
    copy_mib: int | None = None,
    conv_shape: tuple[int, int, int] | None = None,
    min_time_s: float | None = None,
) -> Ceilings:
    """Measure the matmul and copy ceilings of ``device`` (see the module docstring).

    Args:
        device: ``cpu`` or a CUDA device.
        precision: the matmul's dtype.
        tf32: allow TF32 (CUDA fp32 only, :func:`effective_tf32`); otherwise IEEE fp32.
        threads: CPU threads for the measurement (restored after); ``None``: as set now.
        matmul_n, copy_mib, conv_shape: problem sizes (defaults: :data:`CUDA_MATMUL_N` on
            CUDA, a probe-sized matmul of at most :data:`CPU_MATMUL_N` on the CPU,
            :data:`CPU_COPY_MIB` / :data:`CUDA_COPY_MIB`,
            :data:`CPU_CONV` / :data:`CUDA_CONV` as ``(N, C, S)``); small ones make tests fast.
        min_time_s: timed seconds per ceiling (default 0.4 on CPU, 1.0 on CUDA).

    Raises:
        ValueError: an unknown precision.
        RuntimeError: the device cannot run a matmul in that precision, or runs out of memory.
    """
    _check_precision(precision)
    device = torch.device(device)
    cuda = device.type == "cuda"
    mib = copy_mib or (CUDA_COPY_MIB if cuda else CPU_COPY_MIB)
    seconds = min_time_s if min_time_s is not None else (1.0 if cuda else 0.4)
    dtype = _DTYPES[precision]
    conv = tuple(conv_shape or (CUDA_CONV if cuda else CPU_CONV))
    tf32 = effective_tf32(device, precision, tf32)
    with fixed_threads(threads) as used_threads, torch.inference_mode(), tf32_mode(tf32):
        n = matmul_n or (CUDA_MATMUL_N if cuda else _matmul_size(device, dtype, CPU_MATMUL_N))
        mm_tflops = 2 * n**3 / (_time_matmul(device, dtype, n, seconds).min / 1e3) / 1e12
        conv_tflops = _conv_tflops(device, dtype, conv, seconds)
        cp = _time_copy(device, mib, seconds)
    return Ceilings(
        matmul_tflops=max(mm_tflops, conv_tflops),
        copy_gib_s=2 * mib * 2**20 / (cp.min / 1e3) / GIB,
        precision=precision,
        measured=utc_now(),
        device_name=device_name(device),
        threads=used_threads if not cuda else None,
        matmul_n=n,
        copy_mib=mib,
        mm_tflops=mm_tflops,
        conv_tflops=conv_tflops,
        conv_shape=list(conv),
        tf32=tf32,
    )


def _time_matmul(device: torch.device, dtype: torch.dtype, n: int, seconds: float):
    """Latency of ``torch.mm`` of two ``n x n`` random matrices (seed 0) in ``dtype``."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
    return time_callable(lambda: torch.mm(a, b), warmup_iters=2, min_iters=3, min_time_s=seconds, device=device)


def _conv_tflops(device: torch.device, dtype: torch.dtype, shape: tuple[int, ...], seconds: float) -> float:
    """TFLOP/s of a 3x3, padding 1, ``C -> C`` convolution on ``(N, C, S, S)``, ``shape`` =
    ``(N, C, S_max)``: the best rate over ``S = 8, 16, 32, ...`` up to ``S_max``, stopping after
    the first size whose call takes more than :data:`MAX_CALL_S` (a precision without fast
    kernels, fp16 on most CPUs, slows down faster than the work grows: on the development CPU
    an fp16 ``S = 64`` call took 99 s); ``S_max`` itself is timed for ``seconds``."""
    n, c, s_max = shape
    sizes = [s for s in (8, 16, 32, 64, 128, 256, 512) if s < s_max] + [s_max]
    generator = torch.Generator().manual_seed(0)
    w = (torch.randn(c, c, 3, 3, generator=generator) * 0.05).to(device=device, dtype=dtype)
    best = 0.0
    for size in sizes:
        x = torch.randn(n, c, size, size, generator=generator).to(device=device, dtype=dtype)
        last = size == s_max
        stats = time_callable(
            lambda x=x: torch.nn.functional.conv2d(x, w, padding=1), warmup_iters=2 if last else 1,
            min_iters=3 if last else 2, min_time_s=seconds if last else 0.0, device=device,
        )  # fmt: skip
        best = max(best, 2.0 * 9 * c * c * size * size * n / (stats.min / 1e3))
        if stats.min / 1e3 > MAX_CALL_S:
            break
    return best / 1e12


def _time_copy(device: torch.device, mib: int, seconds: float):
    """Latency of ``dst.copy_(src)`` for two ``mib`` MiB buffers on ``device``."""
    src = torch.ones(mib * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return time_callable(lambda: dst.copy_(src), warmup_iters=2, min_iters=3, min_time_s=seconds, device=device)


def _matmul_size(device: torch.device, dtype: torch.dtype, largest: int) -> int:
    """``largest``, or less where a ``PROBE_N``-sized matmul says one call would take more
    than ``MAX_CALL_S`` (time scales as n^3); a multiple of 64, at least ``PROBE_N``. For the
    CPU only: on a GPU the probe is launch-bound and says nothing about large matmuls."""
    a = torch.ones(PROBE_N, PROBE_N, device=device, dtype=dtype)
    probe = time_callable(lambda: torch.mm(a, a), warmup_iters=1, min_iters=2, min_time_s=0.0, device=device)
    seconds = max(probe.min / 1e3, 1e-9)
    n = int(PROBE_N * (MAX_CALL_S / seconds) ** (1 / 3)) // 64 * 64
    return max(PROBE_N, min(largest, n))


def ceilings_key(device: torch.device | str, precision: str, threads: int | None = None, tf32: bool = False) -> str:
    """Cache key: ``"<device type>|<device name>|<precision>[|tf32]|torch <version>[|threads <T>]"``
    (``|tf32`` when TF32 changes the ceilings, :func:`effective_tf32`; threads only on the
    CPU, where they set the peak). Keys without ``|tf32`` are IEEE fp32 ceilings, as every
    key written before TF32 was part of the key."""
    device = torch.device(device)
    precision_part = precision + ("|tf32" if effective_tf32(device, precision, tf32) else "")
    parts = [device.type, str(device_name(device)), precision_part, f"torch {torch.__version__}"]
    if device.type != "cuda":
        parts.append(f"threads {threads if threads is not None else torch.get_num_threads()}")
    return "|".join(parts)


def get_ceilings(
    device: torch.device | str,
    precision: str = "fp32",
    *,
    tf32: bool = False,
    threads: int | None = None,
    cache_dir: Path | None = None,
    refresh: bool = False,
    **measure_kwargs: Any,
) -> Ceilings:
    """The ceilings of ``device`` at ``precision`` and TF32 setting (``tf32``: the profile's
    ``--tf32``; it matters for CUDA fp32 only) from the cache, measured (and cached) when
    missing or when ``refresh`` is set.

    The cache is ``<cache_dir>/ceilings.json`` (``cache_dir`` default
    :func:`default_cache_dir`), a JSON object ``{key: Ceilings fields}`` (key:
    :func:`ceilings_key`), rewritten atomically; an unreadable cache file is measured over.
    ``measure_kwargs`` go to :func:`measure_ceilings` (problem sizes, time).

    Raises:
        As :func:`measure_ceilings`; OSError when the cache cannot be written.
    """
    _check_precision(precision)
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / CACHE_FILE
    key = ceilings_key(device, precision, threads, tf32=tf32)
    try:
        cache = json.loads(path.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, json.JSONDecodeError):
        cache = {}
    if not refresh and isinstance(cache.get(key), dict):
        try:
            return Ceilings(**cache[key])
        except TypeError:  # written by another version: measure again
            pass
    ceilings = measure_ceilings(device, precision, tf32=tf32, threads=threads, **measure_kwargs)
    cache[key] = asdict(ceilings)
    atomic_write_bytes(path, (json.dumps(cache, indent=1, sort_keys=True) + "\n").encode())
    return ceilings


def roofline(
    *,
    flops_per_sample: float,
    weight_bytes: float,
    activation_bytes_per_sample: float,
    batch_size: int,
    p50_ms: float | None,
    ceilings: Ceilings,
) -> dict[str, Any]:
    """Floors and efficiency of one batch (formulas in the module docstring).

    Args:
        flops_per_sample: FLOPs of one sample (2 x MACs).
        weight_bytes: bytes of the weights at the profiled precision (read once per batch).
        activation_bytes_per_sample: bytes of the activations of one sample at the profiled
            precision (written once).
        batch_size: samples per batch.
        p50_ms: measured median latency of the batch, ms (``None``: no efficiency).
        ceilings: the device's :class:`Ceilings`.

    Returns:
        The record's ``roofline``: ``compute_floor_ms``, ``memory_floor_ms``, ``floor_ms``,
        ``efficiency`` (``floor_ms / p50_ms``, ``None`` without a p50), ``ceilings``
        (:meth:`Ceilings.to_record`), and the inputs ``flops`` and ``bytes`` per batch.

    Raises:
        ValueError: ``batch_size`` < 1 or a ceiling <= 0.
    """
    if batch_size < 1 or ceilings.matmul_tflops <= 0 or ceilings.copy_gib_s <= 0:
        raise ValueError(f"need batch_size >= 1 and positive ceilings; got {batch_size=}, {ceilings}")
    flops = flops_per_sample * batch_size
    nbytes = weight_bytes + activation_bytes_per_sample * batch_size
    compute_ms = flops / (ceilings.matmul_tflops * 1e12) * 1e3
    memory_ms = nbytes / (ceilings.copy_gib_s * GIB) * 1e3
    floor = max(compute_ms, memory_ms)
    return {
        "compute_floor_ms": compute_ms,
        "memory_floor_ms": memory_ms,
        "floor_ms": floor,
        "efficiency": floor / p50_ms if p50_ms else None,
        "flops": flops,
        "bytes": nbytes,
        "ceilings": ceilings.to_record(),
    }


def element_bytes(precision: str) -> int:
    """Bytes per element of a precision: fp32 4, fp16 and bf16 2, int8 and fp8 1.

    Raises:
        ValueError: an unknown precision.
    """
    if precision not in _ELEMENT_BYTES:
        raise ValueError(f"unknown precision {precision!r}; valid precisions: {', '.join(_ELEMENT_BYTES)}")
    return _ELEMENT_BYTES[precision]
