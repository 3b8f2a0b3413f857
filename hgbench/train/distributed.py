"""Data parallelism within one run: who this process is (rank, local rank, world size) as the
launcher said, the process group, each rank's share of the batch.

Two launchers are read, as timm's ``world_info_from_env`` / ``init_distributed_device``
(huggingface/pytorch-image-models, ``timm/utils/distributed.py``) reads them:

* **torchrun** (``torch.distributed.run``) exports ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
  ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` to every worker;
* **srun** (Slurm, one task per GPU: ``--ntasks-per-node`` = GPUs per node) exports
  ``SLURM_PROCID`` (global rank), ``SLURM_LOCALID`` (rank on the node), ``SLURM_NTASKS`` (world
  size) and ``SLURM_NTASKS_PER_NODE``/``SLURM_STEP_TASKS_PER_NODE``. Slurm names no rendezvous
  address: ``MASTER_ADDR`` is the first host of the step's node list (:func:`first_host`)
  and ``MASTER_PORT`` a port derived from the job id, unless the job exported them. The Slurm
  variables count only inside a job step (``SLURM_STEP_ID`` set): a batch script run without
  ``srun`` sees its allocation's ``SLURM_NTASKS`` but is one process.

torchrun's variables win where both are present (torchrun started inside a Slurm job). The
process group uses NCCL on CUDA devices and gloo on the CPU (the backends PyTorch's
documentation recommends for each, "torch.distributed: Which backend to use?"), with the
``env://`` rendezvous.

The protocol's ``batch_size`` is the global batch: each rank takes ``batch_size / world_size``
samples per step (:func:`per_rank_batch`), so a run over N GPUs takes the same optimiser steps
on the same samples as one process.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping

import torch

MASTER_PORT_RANGE = (20000, 60000)
"""Ports :func:`dist_info_from_env` derives ``MASTER_PORT`` from a Slurm job id in (above the
registered range, below Linux's default ephemeral range 32768-60999's end; submitit's
``TorchDistributedEnvironment`` uses the same range)."""


class DistributedError(ValueError):
    """The launcher's environment or the protocol does not allow this data-parallel run; the
    message names the variable or field and the fix (the CLI exits with status 2)."""


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """This process's place in a data-parallel run.

    Attributes:
        rank: global rank, 0 .. world_size - 1. local_rank: rank on this node (its GPU index).
        world_size: processes in the run. local_world_size: processes on this node.
        master_addr, master_port: the rendezvous of rank 0 (None for one process).
        launcher: ``"torchrun"``, ``"slurm"`` or ``"none"`` (one plain process).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    master_addr: str | None = None
    master_port: int | None = None
    launcher: str = "none"

    @property
    def distributed(self) -> bool:
        """Whether more than one process trains the run."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the process that writes checkpoints and records)."""
        return self.rank == 0


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        value = int(env[name])
    except ValueError:
        raise DistributedError(
            f"environment variable {name}={env[name]!r} is not an integer; "
            "start the run with torchrun or srun, which set it"
        ) from None
    if value < 0:
        raise DistributedError(f"environment variable {name}={value} is negative; start the run with torchrun or srun")
    return value


def first_host(nodelist: str) -> str:
    """The first host of a Slurm host list: ``"gpu[07-08,11],cpu01"`` -> ``"gpu07"``,
    ``"rack[1-2]-n[01-04]"`` -> ``"rack1-n01"`` (the text before the first comma outside
    brackets, each bracket replaced by its first number as written, zero padding kept)."""
    depth, cut = 0, len(nodelist)
    for i, ch in enumerate(nodelist):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            cut = i
            break
    first = nodelist[:cut]
    return re.sub(r"\[([^\],-]*)[^\]]*\]", r"\1", first)


def _first_slurm_host(env: Mapping[str, str]) -> str:
    """First host of the step's (else the job's) node list."""
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise DistributedError(
            "srun task without SLURM_JOB_NODELIST: export MASTER_ADDR (the host of rank 0) before srun"
        )
    return first_host(nodelist)


def _slurm_port(env: Mapping[str, str]) -> int:
    """A port from the job id, the same on every rank of the job (``MASTER_PORT_RANGE``)."""
    job = env.get("SLURM_JOB_ID", "0")
    low, high = MASTER_PORT_RANGE
    return low + int(job) % (high - low) if job.isdigit() else low


def dist_info_from_env(environ: Mapping[str, str] | None = None) -> DistInfo:
    """Read this process's rank and world from torchrun's or srun's variables (module docstring).

    Args:
        environ: the environment (default ``os.environ``).

    Returns:
        :class:`DistInfo`; ``launcher == "none"`` and world size 1 without either launcher.

    Raises:
        DistributedError: a variable that is not a non-negative integer, a rank not below
            the world size, or a multi-node Slurm step whose first host cannot be found.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env and "RANK" in env:
        world, rank = _int(env, "WORLD_SIZE"), _int(env, "RANK")
        local = _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else 0
        local_world = _int(env, "LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in env else world
        addr = env.get("MASTER_ADDR")
        port = _int(env, "MASTER_PORT") if "MASTER_PORT" in env else None
        launcher = "torchrun"
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env and "SLURM_STEP_ID" in env:
        world, rank = _int(env, "SLURM_NTASKS"), _int(env, "SLURM_PROCID")
        local = _int(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0
        # SLURM_STEP_TASKS_PER_NODE is "4" or "4(x2)" (4 tasks on each of 2 nodes); uneven steps list several
        per_node = (env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_NTASKS_PER_NODE") or str(world)).split("(")[
            0
        ]
        local_world = int(per_node.split(",")[0]) if per_node.split(",")[0].isdigit() else world
        if world == 1:
            return DistInfo(launcher="slurm")
        addr = env.get("MASTER_ADDR") or _first_slurm_host(env)
        port = _int(env, "MASTER_PORT") if "MASTER_PORT" in env else _slurm_port(env)
        launcher = "slurm"
    else:
        return DistInfo()
    if world < 1 or rank >= world:
        raise DistributedError(
            f"rank {rank} is not below world size {world} ({launcher}'s environment); "
            "start the run again with torchrun or srun"
        )
    return DistInfo(
        rank=rank,
        local_rank=local,
        world_size=world,
        local_world_size=local_world,
        master_addr=addr,
        master_port=port,
        launcher=launcher,
    )


def per_rank_batch(global_batch: int, world_size: int, where: str = "protocol") -> int:
    """Samples per rank per step: ``global_batch / world_size``.

    Args:
        where: the origin of ``global_batch`` for the message (e.g. ``"protocol newell2016"``).

    Raises:
        DistributedError: ``global_batch`` is not a multiple of ``world_size``.
    """
    if world_size < 1 or global_batch % world_size:
        fits = [n for n in range(1, min(global_batch, 64) + 1) if global_batch % n == 0]
        raise DistributedError(
            f"{where}: batch_size {global_batch} (the global batch) does not divide over {world_size} processes; "
            f"use a number of processes that divides it ({', '.join(map(str, fits))}) "
            "or a protocol whose batch_size is a multiple of it"
        )
    return global_batch // world_size


def device_for_rank(info: DistInfo, device: str | torch.device | None = None) -> torch.device:
    """The device of this rank: ``cuda:<local_rank>`` for a CUDA run (or ``cuda:0`` where each
    rank sees one GPU, e.g. ``CUDA_VISIBLE_DEVICES`` set per task), else the CPU.

    Args:
        device: ``cpu``, ``cuda`` or None (CUDA when available). An explicit ``cuda:N`` is
            refused in a run of several processes (each rank picks its own GPU).

    Raises:
        DistributedError: ``cuda:N`` with several processes, or fewer visible GPUs than
            ranks on this node.
    """
    text = str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    if not text.startswith("cuda"):
        return torch.device(text)
    if not info.distributed:
        return torch.device(text)
    if text != "cuda":
        raise DistributedError(
            f"--device {text}: in a run of {info.world_size} processes each rank uses the GPU of its "
            "local rank; pass --device cuda"
        )
    count = torch.cuda.device_count()
    if count == 1:
        return torch.device("cuda", 0)
    if info.local_rank >= count:
        raise DistributedError(
            f"local rank {info.local_rank} but this node shows {count} CUDA device(s); start as many "
            "processes per node as GPUs (torchrun --nproc-per-node, srun --ntasks-per-node)"
        )
    return torch.device("cuda", info.local_rank)


def init_distributed(info: DistInfo, device: torch.device) -> None:
    """Join the run's process group: NCCL for a CUDA ``device`` (which becomes this process's
    current CUDA device), gloo on the CPU; ``env://`` rendezvous at ``info.master_addr``/
    ``master_port`` (exported for it). Nothing for one process or an initialised group.
    """
    dist = torch.distributed
    if not info.distributed or (dist.is_available() and dist.is_initialized()):
        return
    os.environ.setdefault("MASTER_ADDR", info.master_addr or "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(info.master_port or MASTER_PORT_RANGE[0]))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend, init_method="env://", rank=info.rank, world_size=info.world_size, **kwargs)


def destroy_distributed() -> None:
    """Leave the process group, if one was joined."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Rank 0 of an initialised process group, or any process outside one."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def slurm_job_id(environ: Mapping[str, str] | None = None) -> str | None:
    """The Slurm job this process runs in, as ``squeue``/``scancel`` name it:
    ``<array job id>_<task id>`` for a task of a job array, else ``SLURM_JOB_ID``; None
    outside Slurm. (For the run record: which job trained it.)"""
    env = os.environ if environ is None else environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None
