"""Where and with what a run was made: versions, commit, machine, command.

Every record in the results store carries this dict under ``provenance`` (see
:mod:`hgbench.results`), so that a number can be traced back to the code and the machine
that produced it. Collecting it never raises: a field that cannot be found is ``None``.
"""

from __future__ import annotations

import os
import platform
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import hgbench

GIT_TIMEOUT_S = 5.0


def collect_provenance(command: list[str] | None = None) -> dict[str, Any]:
    """Describe the software, the machine and the command of this run.

    Args:
        command: the command line to record, as a list of arguments; default ``sys.argv``.
            It is stored as one shell-quoted string (``shlex.join``).

    Returns:
        A JSON-serialisable dict with ``hgbench_version``, ``git_commit`` and ``git_dirty``
        (of the git work tree that holds the hgbench package; ``None`` when there is none,
        e.g. an installed wheel, or git is missing), ``python``, ``torch``, ``cuda`` and
        ``cudnn`` (versions torch was built with; ``None`` on a CPU build), ``gpu`` (name of
        CUDA device 0, ``None`` without one), ``platform``, ``cpu_model``, ``cpu_count``
        (logical CPUs of the machine), ``cpu_count_usable`` (CPUs this process may run on),
        ``torch_threads`` (``torch.get_num_threads()``), ``hostname`` and ``command``.

    Never raises.
    """
    commit, dirty = _git_state(Path(hgbench.__file__).resolve().parent)
    return {
        "hgbench_version": hgbench.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": _cudnn_version(),
        "gpu": _gpu_name(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "command": shlex.join(sys.argv if command is None else command),
    }


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


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
