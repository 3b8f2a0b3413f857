"""Where and in what precision a run trains: the ``--device`` option and the protocol's
``precision``, checked before any work starts.

Mixed precision is ``torch.autocast`` (PyTorch's automatic mixed precision, "Automatic Mixed
Precision package - torch.amp" in the PyTorch documentation): weights, gradients and
optimiser state stay fp32, the eligible operators (convolutions, matmuls) run in bf16 or
fp16; fp16 needs a gradient scaler (``torch.amp.GradScaler``) against underflowing
gradients, bf16 has fp32's exponent range and does not.

**Deterministic training** (``hgbench train --deterministic``, :func:`training_flags`): torch's
"Reproducibility" notes list what makes CUDA training repeatable bit for bit:
``torch.use_deterministic_algorithms(True)`` (an operator without a deterministic
implementation raises instead of running), ``torch.backends.cudnn.deterministic = True`` and
``torch.backends.cudnn.benchmark = False`` (the autotuner may pick another algorithm in each
process), and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` in the environment before cuBLAS starts
(CUDA 10.2 and later split a matmul's work nondeterministically otherwise). Resumed from a
checkpoint such a run reaches the same weights as one never interrupted, on CUDA as on the CPU.
Without it, CUDA training runs with ``cudnn.benchmark`` on (the fastest algorithms for the
fixed training shapes), close to repeatable, not bit for bit.

The CUDA branches follow torch's documented API (``torch.cuda.device_count``,
``torch.cuda.get_device_capability``, ``torch.cuda.get_device_name``); hgbench's tests run
them only where a GPU is present.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch

from hgbench.config.axes import PRECISIONS  # the one list of precisions (re-exported here)

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_DEVICE_RE = re.compile(r"cpu|cuda(:\d+)?")


class DeviceError(ValueError):
    """A device or precision this machine cannot train with; the message names the option
    and the fix (the CLI exits with status 2)."""


def default_device() -> str:
    """``"cuda"`` when torch sees a CUDA device, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The ``torch.device`` of a ``--device`` value: ``cpu``, ``cuda`` (the current CUDA
    device) or ``cuda:N``; ``None``: :func:`default_device`.

    Raises:
        DeviceError: a value of another form, ``cuda`` without a CUDA device, or ``cuda:N``
            with N not below the number of devices; the message says what to pass instead.
    """
    text = default_device() if device is None else str(device)
    if not _DEVICE_RE.fullmatch(text):
        raise DeviceError(f"--device {text!r}: expected cpu, cuda or cuda:N (N a CUDA device index)")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = f"torch {torch.__version__}" + (
            f" built for CUDA {torch.version.cuda}" if torch.version.cuda else ", a CPU-only build"
        )
        raise DeviceError(
            f"--device {text}: no CUDA device is available ({build}); use --device cpu, "
            "or install a CUDA build of torch on a machine with an NVIDIA GPU"
        )
    count = torch.cuda.device_count()
    index = int(text.split(":")[1]) if ":" in text else torch.cuda.current_device()
    if index >= count:
        valid = ", ".join(f"cuda:{i}" for i in range(count))
        raise DeviceError(f"--device {text}: this machine has {count} CUDA device(s) ({valid}); pass one of them")
    return torch.device("cuda", index)


def check_precision(device: torch.device, precision: str, where: str = "protocol") -> None:
    """Refuse a precision ``device`` cannot train in, before any work.

    bf16 needs a CUDA device with native bfloat16 (compute capability 8.0 or newer, Ampere
    and later; ``torch.cuda.is_bf16_supported`` asks the same of the current device); fp16 on the CPU is refused because CPUs have no
    fast fp16 kernels (oneDNN falls back to slow reference code) and training there would
    take many times as long as fp32. bf16 on the CPU is allowed (oneDNN has bf16 kernels;
    fast where the CPU has AVX-512 BF16 or AMX).

    Args:
        where: the origin of ``precision`` for the message (e.g. ``"protocol newell2016-bf16"``).

    Raises:
        DeviceError: naming the precision, the device and the fix.
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"{where}: precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if device.type == "cpu" and precision == "fp16":
        raise DeviceError(
            f"{where}: precision fp16 on --device cpu: CPUs have no fast fp16 kernels; "
            "use a protocol with precision bf16 or fp32 on the CPU, or --device cuda"
        )
    if device.type == "cuda" and precision == "bf16" and torch.cuda.get_device_capability(device) < (8, 0):
        major, minor = torch.cuda.get_device_capability(device)
        raise DeviceError(
            f"{where}: precision bf16 needs a GPU with bfloat16 (compute capability 8.0 or newer); "
            f"{device} is {torch.cuda.get_device_name(device)} ({major}.{minor}): use a protocol with "
            "precision fp16 or fp32 (e.g. newell2016)"
        )


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """``torch.autocast`` for ``precision`` on ``device`` (a no-op context for fp32)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def conv_tf32(device: torch.device, precision: str) -> bool:
    """Whether the float32 convolutions of a run on ``device`` in ``precision`` use TF32 tensor
    cores: a CUDA fp32 run while cuDNN's TF32 is allowed, which is torch's default
    (``torch.backends.cudnn.allow_tf32 = True``; "TensorFloat-32 (TF32) on Ampere (and later)
    devices" in PyTorch's CUDA semantics notes), or, where the legacy flag cannot be read (the
    ``fp32_precision`` API of torch >= 2.9 was set otherwise), ``torch.backends.cudnn.conv.fp32_precision
    == "tf32"``. bf16 and fp16 runs (autocast) and the CPU: False. Reads flags only: no CUDA call.
    A training throughput is divided by the ceiling of this precision (``benchmarks/train_throughput.py``).
    """
    if device.type != "cuda" or precision != "fp32":
        return False
    try:
        return bool(torch.backends.cudnn.allow_tf32)
    except RuntimeError:  # the legacy and new APIs disagree: the new one rules the kernels
        return getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None) == "tf32"


def device_label(device: torch.device) -> str:
    """``"cpu"`` or ``"cuda:0 (NVIDIA H100 80GB HBM3)"`` for messages and records."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def check_compile(
    device: torch.device, precision: str, channels_last: bool, compile: bool, where: str = "protocol"
) -> None:
    """Refuse ``torch.compile`` of a bf16 channels_last training step on the CPU: torch's CPU
    compiler (inductor) generated a backward pass that fails at its first call
    (``UnboundLocalError`` in the generated C++ wrapper; observed with torch 2.13.0+cpu, an
    hg network, while fp32, fp32 + channels_last and bf16 without channels_last compiled and
    matched eager). CUDA is not affected by this check (its generated code is Triton).

    Raises:
        DeviceError: naming the three fields and the fix.
    """
    if compile and device.type == "cpu" and precision == "bf16" and channels_last:
        raise DeviceError(
            f"{where}: compile: true with precision bf16 and channels_last: true fails on --device cpu "
            f"(torch {torch.__version__}'s CPU compiler); on the CPU use a protocol with compile: false or "
            "channels_last: false (e.g. newell2016), or train on --device cuda"
        )


def check_device(device: str | torch.device | None, protocol) -> torch.device:
    """:func:`resolve_device`, :func:`check_precision` and :func:`check_compile` for a run of
    ``protocol`` (its ``precision``, ``channels_last``, ``compile`` and ``name``): what the
    CLI calls before any work.

    Raises:
        DeviceError: as those.
    """
    dev = resolve_device(device)
    where = f"protocol {protocol.name}"
    check_precision(dev, protocol.precision, where)
    check_compile(dev, protocol.precision, protocol.channels_last, protocol.compile, where)
    return dev


DETERMINISTIC_ENV = "HGBENCH_DETERMINISTIC"
"""Environment variable: ``1`` asks :func:`hgbench.train.train_variant` (``deterministic=None``)
for deterministic training; ``hgbench train --deterministic`` sets it (:func:`request_deterministic`),
so that torchrun's and Slurm's ranks see it too."""

CUBLAS_WORKSPACE_CONFIG = ":4096:8"
"""The ``CUBLAS_WORKSPACE_CONFIG`` deterministic training sets (one of the two values torch's
"Reproducibility" notes and cuBLAS's documentation give, ":4096:8" or ":16:8"; the larger
workspace is the faster)."""
_DETERMINISTIC_CUBLAS = (":4096:8", ":16:8")


def request_deterministic() -> None:
    """Ask for deterministic training in this process and its children: sets
    :data:`DETERMINISTIC_ENV` and, unless already one of the deterministic values,
    ``CUBLAS_WORKSPACE_CONFIG`` (:data:`CUBLAS_WORKSPACE_CONFIG`). Call it before any CUDA work
    (the CLI does, before anything else): cuBLAS reads the variable when it starts."""
    os.environ[DETERMINISTIC_ENV] = "1"
    if os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in _DETERMINISTIC_CUBLAS:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG


def deterministic_requested() -> bool:
    """Whether :data:`DETERMINISTIC_ENV` is ``1``."""
    return os.environ.get(DETERMINISTIC_ENV, "") == "1"


@contextmanager
def training_flags(device: torch.device, deterministic: bool) -> Iterator[dict[str, Any]]:
    """torch's global flags for one training run, restored on exit (also on error): on CUDA
    ``cudnn.benchmark`` on, unless ``deterministic``; with ``deterministic`` (module docstring)
    ``torch.use_deterministic_algorithms(True)``, ``cudnn.deterministic = True``,
    ``cudnn.benchmark = False`` and ``CUBLAS_WORKSPACE_CONFIG`` (set here when it is not yet and
    CUDA has not started; left set after the run). On the CPU ``deterministic`` changes nothing
    of the result (CPU training with a fixed thread count is already bit-identical on resume)
    but is applied and recorded alike.

    Yields:
        What the train record says of it: ``deterministic``, ``cudnn_benchmark`` (``None`` on
        the CPU, where cuDNN does not run) and ``cublas_workspace_config`` (the variable's value,
        ``None`` when unset).

    Raises:
        DeviceError: ``deterministic`` on CUDA after CUDA started without a deterministic
            ``CUBLAS_WORKSPACE_CONFIG``: too late to set it; the message says how.
    """
    if deterministic and os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in _DETERMINISTIC_CUBLAS:
        if device.type == "cuda" and torch.cuda.is_initialized():
            raise DeviceError(
                f"--deterministic: CUDA started before CUBLAS_WORKSPACE_CONFIG was set; start the process with "
                f"CUBLAS_WORKSPACE_CONFIG={CUBLAS_WORKSPACE_CONFIG} in its environment (hgbench train --deterministic does)"
            )
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
    cudnn = torch.backends.cudnn
    before = (cudnn.benchmark, cudnn.deterministic, torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())  # fmt: skip
    cudnn.benchmark = device.type == "cuda" and not deterministic
    cudnn.deterministic = deterministic or before[1]
    if deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        yield {
            "deterministic": bool(deterministic),
            "cudnn_benchmark": cudnn.benchmark if device.type == "cuda" else None,
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        }
    finally:
        cudnn.benchmark, cudnn.deterministic = before[0], before[1]
        torch.use_deterministic_algorithms(before[2], warn_only=before[3])
