"""Where and with what a run was made: versions, commit, machine, command.

Every record in the results store carries this dict under ``provenance`` (see
:mod:`hgbench.records`), so that a number can be traced back to the code and the machine
that produced it. Collecting it never raises: a field that cannot be found is ``None``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

import hgbench

GIT_TIMEOUT_S = 5.0


def usable_cpu_count() -> int:
    """Logical CPUs this process may run on (``os.sched_getaffinity``, else ``os.cpu_count``)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def collect_provenance(
    command: list[str] | None = None, threads: int | None = None, machine: str | None = None
) -> dict[str, Any]:
    """Describe the software, the machine and the command of this run.

    Args:
        command: the command line to record, as a list of arguments; default ``sys.argv``.
            It is stored as one shell-quoted string (``shlex.join``).
        threads: the CPU thread count the run uses; default ``torch.get_num_threads()`` now.

    Returns:
        A JSON-serialisable dict (the ``provenance`` of every record) with
        ``hgbench_version``; ``git_commit`` and ``git_dirty`` (of the git work tree that holds
        the hgbench package; ``None`` when there is none, e.g. an installed wheel, or git is
        missing); ``python``; ``torch``; ``cuda`` and ``cudnn`` (versions torch was built
        with; ``None`` on a CPU build); ``tensorrt`` and ``torch_tensorrt``, ``onnxruntime``
        (installed versions, from the package metadata, ``None`` when not installed);
        ``gpu_name``, ``gpu_driver`` (``nvidia-smi``'s driver version, else the CUDA driver
        API version torch reports, e.g. ``"CUDA driver API 12.4"``), ``gpu_compute_capability``
        (``"9.0"``) of CUDA device 0 (all ``None`` without one); ``gpu_clocks_mhz``,
        ``gpu_power_limit_w`` and ``gpu_throttle_reasons`` of that GPU through NVML
        (:func:`gpu_nvml_state`; ``None`` without ``nvidia-ml-py``, ``pip install 'hgbench[gpu]'``);
        ``cpu_model``; ``threads``;
        ``cpu_count`` (logical CPUs of the machine), ``cpu_count_usable`` (CPUs this process
        may run on); ``hostname``; ``machine`` (the label that names this machine in records
        and reports: ``machine``, else the host name; :func:`hgbench.records.schema.machine_label`); ``platform``; ``command``.

    Never raises.
    """
    commit, dirty = _git_state(Path(hgbench.__file__).resolve().parent)
    ort = loaded_distribution("onnxruntime")
    return {
        "hgbench_version": hgbench.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": _cudnn_version(),
        "tensorrt": _dist_version("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11"),
        "tensorrt_libs": tensorrt_libs(),
        "torch_tensorrt": _dist_version("torch-tensorrt", "torch_tensorrt"),
        "onnxruntime": ort[1] if ort else None,
        "onnxruntime_package": ort[0] if ort else None,
        "gpu_name": _gpu_name(),
        "gpu_driver": _gpu_driver(),
        "gpu_compute_capability": _gpu_capability(),
        **gpu_nvml_state(_nvml_index()),
        "cpu_model": _cpu_model(),
        "threads": torch.get_num_threads() if threads is None else threads,
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": usable_cpu_count(),
        "hostname": socket.gethostname(),
        "machine": machine or socket.gethostname(),
        "platform": platform.platform(),
        "command": shlex.join(sys.argv if command is None else command),
    }


def device_name(device: torch.device | str) -> str | None:
    """The GPU's name for a CUDA device, else the CPU model (:func:`collect_provenance`'s
    ``cpu_model``); ``None`` when unknown. Never raises."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return torch.cuda.get_device_name(device)
        except Exception:  # noqa: BLE001 - provenance must never fail a run
            return None
    return _cpu_model()


NVML_FIELDS = ("gpu_clocks_mhz", "gpu_power_limit_w", "gpu_throttle_reasons")
"""The provenance keys :func:`gpu_nvml_state` fills."""

THROTTLE_REASONS = (
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
)
"""NVML's clock throttle (since NVML 12.x "clocks event") reason bits and the names recorded
for them: ``nvmlClocksThrottleReason*`` / ``nvmlClocksEventReason*`` of ``nvml.h``, the same
values as the constants of nvidia-ml-py's ``pynvml`` module."""


def gpu_nvml_state(nvml_index: int | None) -> dict[str, Any]:
    """Clocks, power limit and throttle reasons of the GPU with NVML index ``nvml_index``, read
    through nvidia-ml-py (``import pynvml``) now. They explain run-to-run variance on a GPU (a
    lower power limit, a clock capped by application clocks, thermal slowdown) the way the
    calibration workload does on a CPU. Read when the provenance is collected, i.e. outside any
    timed work (an idle GPU shows idle clocks and ``"gpu_idle"``): what the GPU did while a
    setting was timed is :class:`GpuStateSampler`'s, in the profile record's ``conditions``.

    Returns:
        ``gpu_clocks_mhz``: ``{"sm", "sm_max", "memory", "memory_max"}`` (MHz, current and
        maximum; ``nvmlDeviceGetClockInfo`` / ``nvmlDeviceGetMaxClockInfo``);
        ``gpu_power_limit_w``: the enforced power limit, W (``nvmlDeviceGetEnforcedPowerLimit``,
        mW / 1000); ``gpu_throttle_reasons``: the names of the active reason bits
        (:data:`THROTTLE_REASONS`; ``[]`` when none; an idle GPU shows ``"gpu_idle"``), from
        ``nvmlDeviceGetCurrentClocksEventReasons`` or, in older nvidia-ml-py,
        ``nvmlDeviceGetCurrentClocksThrottleReasons``. Every value is ``None`` when
        ``nvml_index`` is ``None``, pynvml does not import or NVML fails; a single query
        NVML refuses (not supported on this GPU) is ``None`` alone. Never raises.
    """
    state: dict[str, Any] = dict.fromkeys(NVML_FIELDS)
    with _nvml_reader(nvml_index) as read:
        if read is not None:
            state.update(read())
    return state


@contextlib.contextmanager
def _nvml_reader(nvml_index: int | None) -> Iterator[Callable[[], dict[str, Any]] | None]:
    """NVML initialised for the block, yielding ``read()`` (the :data:`NVML_FIELDS` of GPU
    ``nvml_index`` now, :func:`gpu_nvml_state`'s values; a query NVML refuses is ``None``), or
    ``None`` when ``nvml_index`` is ``None``, pynvml does not import or NVML fails. Never raises
    for NVML's sake (what the block raises passes through)."""
    if nvml_index is None:
        yield None
        return
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - not installed, no driver: provenance must never fail a run
        yield None
        return
    try:
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(nvml_index)
        except Exception:  # noqa: BLE001 - a handle NVML refuses
            handle = None
        yield (lambda: _nvml_read(pynvml, handle)) if handle is not None else None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def _nvml_read(pynvml: Any, handle: Any) -> dict[str, Any]:
    """:data:`NVML_FIELDS` of ``handle`` now (see :func:`gpu_nvml_state`)."""

    def query(fn, *args):
        try:
            return fn(handle, *args)
        except Exception:  # noqa: BLE001 - NVMLError_NotSupported and the like
            return None

    sm, mem = pynvml.NVML_CLOCK_SM, pynvml.NVML_CLOCK_MEM
    limit_mw = query(pynvml.nvmlDeviceGetEnforcedPowerLimit)
    reasons_fn = (getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
                  or getattr(pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None))  # fmt: skip
    mask = query(reasons_fn) if reasons_fn is not None else None
    return {
        "gpu_clocks_mhz": {
            "sm": query(pynvml.nvmlDeviceGetClockInfo, sm),
            "sm_max": query(pynvml.nvmlDeviceGetMaxClockInfo, sm),
            "memory": query(pynvml.nvmlDeviceGetClockInfo, mem),
            "memory_max": query(pynvml.nvmlDeviceGetMaxClockInfo, mem),
        },
        "gpu_power_limit_w": None if limit_mw is None else limit_mw / 1000,
        "gpu_throttle_reasons": None if mask is None else [name for bit, name in THROTTLE_REASONS if mask & bit],
    }


GPU_SAMPLE_INTERVAL_S = 0.05
"""How often :class:`GpuStateSampler` reads NVML during a timed window (s): an NVML query takes
tens of microseconds, so 20 reads a second cost the timed loop nothing measurable."""


class GpuStateSampler:
    """What a GPU did during a block of work: a thread reads its clocks and throttle reasons
    through NVML every :data:`GPU_SAMPLE_INTERVAL_S` while the block runs, and once more when it
    ends (so that a block shorter than the interval has one sample, taken while the GPU is
    still at its working clocks). The profiler wraps each setting's timed window in one
    (:func:`hgbench.profile.run.profile_model`), so that a record shows the clocks of its own
    measurement, not those of an idle GPU before any work (:func:`gpu_nvml_state`).

    Args:
        nvml_index: NVML's index of the GPU (:func:`nvml_index`); ``None`` (a CPU device):
            nothing is sampled and :meth:`summary` is ``None``.
        interval_s: seconds between reads.

    Never raises for NVML's sake: without pynvml or a driver :meth:`summary` is ``None``.
    """

    def __init__(self, nvml_index: int | None, interval_s: float = GPU_SAMPLE_INTERVAL_S) -> None:
        self.nvml_index, self.interval_s = nvml_index, interval_s
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: contextlib.ExitStack | None = None

    def __enter__(self) -> GpuStateSampler:
        self._reader = contextlib.ExitStack()
        read = self._reader.enter_context(_nvml_reader(self.nvml_index))
        if read is not None:
            self._read = read
            self._thread = threading.Thread(target=self._run, name="hgbench-gpu-sampler", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(self._read())

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.samples.append(self._read())
        if self._reader is not None:
            self._reader.close()

    def summary(self) -> dict[str, Any] | None:
        """The samples summed up (``None`` when none were taken): ``samples`` (how many),
        ``interval_s``, ``sm_mhz`` and ``memory_mhz`` (``{"min", "median", "max"}`` of the
        current clocks, MHz), ``sm_max_mhz`` and ``memory_max_mhz`` (the GPU's maximum clocks),
        ``power_limit_w`` (the enforced limit at the end), ``throttle_reasons`` (each reason of
        :data:`THROTTLE_REASONS` seen, with the fraction of samples that showed it; ``{}``
        when none did)."""
        if not self.samples:
            return None
        last = self.samples[-1]

        def spread(key: str) -> dict[str, float] | None:
            values = sorted(v for s in self.samples if (v := (s["gpu_clocks_mhz"] or {}).get(key)) is not None)
            if not values:
                return None
            return {"min": values[0], "median": values[len(values) // 2], "max": values[-1]}

        seen: dict[str, int] = {}
        for sample in self.samples:
            for name in sample["gpu_throttle_reasons"] or []:
                seen[name] = seen.get(name, 0) + 1
        clocks = last["gpu_clocks_mhz"] or {}
        return {
            "samples": len(self.samples),
            "interval_s": self.interval_s,
            "sm_mhz": spread("sm"),
            "memory_mhz": spread("memory"),
            "sm_max_mhz": clocks.get("sm_max"),
            "memory_max_mhz": clocks.get("memory_max"),
            "power_limit_w": last["gpu_power_limit_w"],
            "throttle_reasons": {name: n / len(self.samples) for name, n in seen.items()},
        }


def nvml_index(device: torch.device | str | int | None = 0) -> int | None:
    """NVML's index of CUDA device ``device`` (an index, or a ``torch.device``; ``cuda`` alone
    is the current device), ``None`` for a CPU device or without CUDA. ``CUDA_VISIBLE_DEVICES``
    can make the two indices differ: torch's private ``torch.cuda._get_nvml_device_index`` maps
    them, else the CUDA index is used. Never raises."""
    if isinstance(device, (str, torch.device)):
        device = torch.device(device)
        if device.type != "cuda":
            return None
        device = device.index
    try:
        if not torch.cuda.is_available():
            return None
        index = torch.cuda.current_device() if device is None else int(device)
    except Exception:  # noqa: BLE001
        return None
    try:
        return int(torch.cuda._get_nvml_device_index(index))
    except Exception:  # noqa: BLE001 - a private helper: fall back to the CUDA index
        return index


def _nvml_index() -> int | None:
    """NVML's index of CUDA device 0 (:func:`nvml_index`), ``None`` without CUDA."""
    return nvml_index(0)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None


def _git_state(package_dir: Path) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the work tree holding ``package_dir``, or ``(None, None)``.

    A package folder that the enclosing repository ignores (an install inside a ``.venv``
    that lives in some checkout) is not that repository's source: ``(None, None)``.
    ``dirty`` looks at tracked files only (like ``git describe --dirty``); ``commit`` is
    ``None`` in a repository without commits yet.
    """
    top = _git(["rev-parse", "--show-toplevel"], package_dir)
    if top is None or top.returncode != 0:
        return None, None
    ignored = _git(["check-ignore", "-q", str(package_dir)], package_dir)
    if ignored is None or ignored.returncode == 0:
        return None, None
    head = _git(["rev-parse", "HEAD"], package_dir)
    commit = head.stdout.strip() if head is not None and head.returncode == 0 else None
    status = _git(["status", "--porcelain", "--untracked-files=no"], package_dir)
    dirty = bool(status.stdout.strip()) if status is not None and status.returncode == 0 else None
    return commit, dirty


def _cudnn_version() -> int | None:
    try:
        return torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001 - provenance must never fail a run
        return None


def _gpu_name() -> str | None:
    try:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        return None


def _gpu_capability() -> str | None:
    try:
        if not torch.cuda.is_available():
            return None
        major, minor = torch.cuda.get_device_capability(0)
        return f"{major}.{minor}"
    except Exception:  # noqa: BLE001
        return None


def _gpu_driver() -> str | None:
    """nvidia-smi's driver version of GPU 0, else torch's CUDA driver API version."""
    try:
        if not torch.cuda.is_available():
            return None
    except Exception:  # noqa: BLE001
        return None
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", "--id=0"],
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        v = torch._C._cuda_getDriverVersion()  # e.g. 12040; only in CUDA builds
        return f"CUDA driver API {v // 1000}.{v % 1000 // 10}"
    except Exception:  # noqa: BLE001
        return None


def _dist_version(*names: str) -> str | None:
    """Installed version of the first of ``names`` that is an installed distribution."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        except Exception:  # noqa: BLE001
            return None
    return None


@functools.cache
def loaded_distribution(module: str) -> tuple[str, str] | None:
    """``(name, version)`` of the installed distribution whose files ``import module`` loads,
    without importing it; ``None`` when ``module`` is not installed. Cached per process.

    Two distributions can install one module folder (``onnxruntime`` and ``onnxruntime-gpu``
    both install ``onnxruntime/``; the ``test`` extra brings the first, ``onnx-gpu`` the
    second): the one installed last overwrote the files they share, so the owner is the one
    whose ``RECORD`` hashes (sha256, the wheel's ``RECORD`` file) match the files on disk.
    The candidates are those :func:`importlib.metadata.packages_distributions` names for
    ``module``; the one matching the most shared files wins (the first candidate on a tie,
    e.g. two RECORDs without hashes). Never raises.
    """
    try:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            return None
        folder = Path(spec.origin).resolve().parent
        names = list(dict.fromkeys(importlib.metadata.packages_distributions().get(module, [])))
        dists = [importlib.metadata.distribution(name) for name in names]
    except Exception:  # noqa: BLE001 - provenance must never fail a run
        return None
    if not dists:
        return None
    if len(dists) > 1:
        files = {d.metadata["Name"]: _module_files(d, folder) for d in dists}
        counts: dict[str, int] = {}
        for record in files.values():
            for path in record:
                counts[path] = counts.get(path, 0) + 1
        shared = {path for path, n in counts.items() if n > 1}
        score = {name: sum(_hash_matches(path, h) for path, h in record.items() if path in shared)
                 for name, record in files.items()}  # fmt: skip
        best = max(score.values())
        dists = [d for d in dists if score[d.metadata["Name"]] == best]
    return dists[0].metadata["Name"], dists[0].version


def _module_files(dist: importlib.metadata.Distribution, folder: Path) -> dict[Path, str]:
    """``{path on disk: RECORD hash ("sha256=<urlsafe base64>")}`` of ``dist``'s files in ``folder``."""
    out = {}
    for f in dist.files or []:
        if f.hash is None:
            continue
        path = Path(dist.locate_file(f)).resolve()
        if path.is_relative_to(folder):
            out[path] = f"{f.hash.mode}={f.hash.value}"
    return out


def _hash_matches(path: Path, record_hash: str) -> bool:
    """Whether the file at ``path`` has the ``RECORD`` hash ``record_hash`` (sha256 only)."""
    mode, _, value = record_hash.partition("=")
    if mode != "sha256":
        return False
    try:
        digest = hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return False
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == value


_TENSORRT_LIBS = re.compile(r"tensorrt(-cu\d+)?-libs")


@functools.cache
def tensorrt_libs() -> str | None:
    """The installed package of TensorRT's libraries as ``name==version``
    (``tensorrt-cu13-libs``, ``tensorrt-cu12-libs``, ``tensorrt-libs``: NVIDIA's wheels, from
    https://pypi.nvidia.com), the newest when several are installed; ``None`` without one.
    Cached per process; never raises."""
    try:
        found = {}
        for dist in importlib.metadata.distributions():
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            if _TENSORRT_LIBS.fullmatch(name):
                found[name] = dist.version
    except Exception:  # noqa: BLE001 - provenance must never fail a run
        return None
    if not found:
        return None
    name = max(found, key=lambda n: tuple(int(p) if p.isdigit() else 0 for p in found[n].split(".")))
    return f"{name}=={found[name]}"


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
