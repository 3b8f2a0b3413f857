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

**Synchronised batch normalisation** (protocol ``sync_batchnorm``, :func:`convert_sync_batchnorm`):
``torch.nn.SyncBatchNorm`` on CUDA; torch's refuses CPU tensors, so a gloo run on the CPU uses
:class:`CpuSyncBatchNorm`, the same statistics (mean, biased variance for normalising, unbiased
for the running estimate, over the global batch) from two differentiable all-reduces.

**Agreement between ranks** (:func:`control_group`, :func:`broadcast_from_main`,
:func:`max_over_ranks`): small host-side messages (a stop signal, a due checkpoint, rank 0's
validation result) go through a gloo group of all ranks, so on NCCL runs they never wait for
the GPU stream.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import torch
from torch import Tensor, nn

MASTER_PORT_RANGE = (20000, 60000)
"""Ports :func:`dist_info_from_env` derives ``MASTER_PORT`` from a Slurm job id in (above the
registered range, below Linux's default ephemeral range 32768-60999's end; submitit's
``TorchDistributedEnvironment`` uses the same range)."""


CONTROL_TIMEOUT = timedelta(minutes=30)
"""How long a rank waits in :func:`control_group`'s collectives by default: the others wait
there while rank 0 validates (a full validation split: about a minute for MPII's 2958 images
on one GPU, several on a CPU) and writes a checkpoint, so a stuck or dead rank stops the others
within this time (they raise; Slurm's ``srun --kill-on-bad-exit=1`` then ends the step).
:data:`CONTROL_TIMEOUT_ENV` overrides it (:func:`control_timeout`)."""

CONTROL_TIMEOUT_ENV = "HGBENCH_CONTROL_TIMEOUT_MIN"
"""Environment variable: :data:`CONTROL_TIMEOUT` in minutes (a positive number), for runs whose
validation takes longer (a large validation split on slow ranks)."""


def control_timeout(environ: Mapping[str, str] | None = None) -> timedelta:
    """:data:`CONTROL_TIMEOUT`, or :data:`CONTROL_TIMEOUT_ENV` minutes where set.

    Raises:
        DistributedError: the variable is not a positive number (naming it).
    """
    text = (os.environ if environ is None else environ).get(CONTROL_TIMEOUT_ENV, "").strip()
    if not text:
        return CONTROL_TIMEOUT
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not minutes > 0 or minutes == float("inf"):
        raise DistributedError(f"{CONTROL_TIMEOUT_ENV}={text!r}: expected a positive number of minutes (default "
                               f"{CONTROL_TIMEOUT.total_seconds() / 60:.0f})")  # fmt: skip
    return timedelta(minutes=minutes)


class DistributedError(ValueError):
    """The launcher's environment or the protocol does not allow this data-parallel run; the
    message names the variable or field and the fix (the CLI exits with status 2)."""


class RankLostError(RuntimeError):
    """Another rank of a data-parallel run stopped (killed, out of memory, its machine failed), so
    the process group broke under this one; the message names the rank (where it can be told),
    the run folder and the fix: the run resumes from its last checkpoint. The CLI exits with
    status 1 (:attr:`exit_code`) and this one line instead of the collective's traceback."""

    exit_code = 1


_LOST_PEER = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL communicator was aborted",
              "Socket Timeout", "connection refused")  # fmt: skip
"""Words of gloo's and NCCL's errors when a peer is gone (``gloo/transport/tcp/pair.cc``: "Connection
closed by peer ... typically caused by a remote worker crashing")."""


def lost_rank_error(error: BaseException, info: DistInfo, folder: Any) -> RankLostError | None:
    """The :class:`RankLostError` ``error`` means in a run of several processes (a
    ``torch.distributed`` error, or a collective's ``RuntimeError`` saying a peer is gone), or
    None for any other error. ``folder`` is the run folder (for the message)."""
    if not info.distributed or not isinstance(error, RuntimeError):
        return None
    dist_error = getattr(torch.distributed, "DistError", ())
    said = " ".join(str(error).split())
    at = [said.lower().find(w.lower()) for w in _LOST_PEER if w.lower() in said.lower()]
    if not (at or isinstance(error, dist_error)):
        return None
    start = min(at) if at else 0
    end = said.find(". ", start)
    cause = said[start : end if end > start else None][:160]
    others = [r for r in range(info.world_size) if r != info.rank]
    who = f"rank {others[0]}" if len(others) == 1 else f"one of ranks {', '.join(map(str, others))}"
    return RankLostError(
        f"{folder}: {who} of this {info.world_size}-process run stopped (killed, out of memory, or its machine "
        f"failed), so rank {info.rank} stops too ({cause}); the last checkpoint in the run folder is kept: run the "
        "same command again to resume it (any number of processes may)"
    )


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
    backend = backend_for(device)
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


def backend_for(device: torch.device) -> str:
    """The process group's backend for ``device``: ``"nccl"`` on CUDA, ``"gloo"`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def _initialized() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized()


def control_group() -> Any:
    """A gloo process group of every rank for host-side agreement (:func:`control_timeout`);
    None outside a process group. Every rank must call it (a collective).

    Raises:
        DistributedError: a bad :data:`CONTROL_TIMEOUT_ENV`.
    """
    if not _initialized():
        return None
    return torch.distributed.new_group(backend="gloo", timeout=control_timeout())


def broadcast_from_main(obj: Any, group: Any = None) -> Any:
    """Rank 0's ``obj`` (picklable) on every rank; ``obj`` itself outside a process group.
    Every rank must call it (a collective)."""
    if not _initialized():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0, group=group)
    return box[0]


def max_over_ranks(values: Sequence[int], group: Any = None) -> list[int]:
    """Element-wise maximum of ``values`` over the ranks (e.g. ``[stop signal or 0, checkpoint
    due]``, so that all ranks stop or save at the same step); ``values`` outside a process group.
    Every rank must call it (a collective)."""
    if not _initialized():
        return [int(v) for v in values]
    flags = torch.tensor([int(v) for v in values], dtype=torch.int64)
    torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX, group=group)
    return flags.tolist()


def mean_over_ranks_(tensor: Tensor) -> Tensor:
    """Replace ``tensor`` (on the process group's device) by its mean over the ranks, in place;
    unchanged outside a process group. Every rank must call it (a collective)."""
    if _initialized() and torch.distributed.get_world_size() > 1:
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        tensor.div_(torch.distributed.get_world_size())
    return tensor


class _SyncBatchNormFunction(torch.autograd.Function):
    """Batch normalisation of ``x (B, C, H, W)`` with statistics over every rank's batch, for
    CPU tensors: forward and backward as torch's CUDA ``SyncBatchNorm`` function
    (``torch/nn/modules/_functions.py``: the statistics all-reduced in the forward pass, the
    per-channel sums of ``dy`` and ``dy * (x - mean)`` all-reduced in the backward pass, which
    then applies the closed form ``dx = (dy - mean(dy) - (x - mean) * invstd**2 *
    mean(dy * (x - mean))) * invstd * weight``), in ``x``'s dtype. The weight and bias gradients
    are this rank's share, as torch's: ``DistributedDataParallel`` averages them.

    Returns ``(y (B, C, H, W), mean (C,), biased variance (C,), count)`` (the last three not
    differentiable; ``count`` the global number of values per channel, a 0-d tensor).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float, group: Any):
        dims, shape = [0, *range(2, x.dim())], [1, -1] + [1] * (x.dim() - 2)
        total = torch.cat([x.sum(dims), torch.tensor([x.numel() // x.size(1)], dtype=x.dtype)])
        torch.distributed.all_reduce(total, group=group)
        count, mean = total[-1], total[:-1] / total[-1]
        xmu = x - mean.view(shape)
        var = xmu.square().sum(dims)  # two passes: no cancellation in E[x^2] - E[x]^2
        torch.distributed.all_reduce(var, group=group)
        var /= count
        invstd = torch.rsqrt(var + eps)
        y = xmu * invstd.view(shape)
        if weight is not None:
            y = y * weight.to(x.dtype).view(shape) + bias.to(x.dtype).view(shape)
        ctx.save_for_backward(xmu, invstd, weight)
        ctx.count, ctx.group = count, group
        ctx.mark_non_differentiable(mean, var, count)
        return y, mean, var, count

    @staticmethod
    def backward(ctx: Any, dy: Tensor, *unused: Any):
        xmu, invstd, weight = ctx.saved_tensors
        dims, shape = [0, *range(2, dy.dim())], [1, -1] + [1] * (dy.dim() - 2)
        sum_dy, sum_dy_xmu = dy.sum(dims), (dy * xmu).sum(dims)
        grad_x = grad_weight = grad_bias = None
        if weight is not None and ctx.needs_input_grad[1]:
            grad_weight = (sum_dy_xmu * invstd).to(weight.dtype)
        if weight is not None and ctx.needs_input_grad[2]:
            grad_bias = sum_dy.to(weight.dtype)
        if ctx.needs_input_grad[0]:
            sums = torch.cat([sum_dy, sum_dy_xmu])
            torch.distributed.all_reduce(sums, group=ctx.group)
            mean_dy, mean_dy_xmu = (sums / ctx.count).chunk(2)
            scale = invstd * (weight.to(dy.dtype) if weight is not None else 1)
            grad_x = (dy - mean_dy.view(shape) - xmu * (invstd.square() * mean_dy_xmu).view(shape)) * scale.view(shape)
        return grad_x, grad_weight, grad_bias, None, None


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """``BatchNorm2d`` synchronised over the ranks of a gloo process group on the CPU, where
    torch's ``SyncBatchNorm`` refuses to run ("SyncBatchNorm expected input tensor to be on
    GPU") and ``DistributedDataParallel`` refuses to wrap it on the CPU.

    In training, with a process group of several ranks, the per-channel mean and biased
    variance of an input ``(B, C, H, W)`` are taken over every rank's batch
    (:class:`_SyncBatchNormFunction`), the input is normalised with them and the running
    estimates are updated with the unbiased variance, as ``F.batch_norm`` does for one batch
    (``torch.nn.BatchNorm2d``'s documentation) and ``SyncBatchNorm`` for several. Computed in
    float64, the output cast back to the input's dtype: ATen's CPU batch norm accumulates its
    sums in double (``acc_type`` of float on the CPU), and fp32 sums here would leave the
    gradients of a deep network ~1e-3 (relative) from a single process's. Otherwise
    (evaluation, no process group) it is ``BatchNorm2d``. No parameters or buffers of its own:
    its state dict is a ``BatchNorm2d``'s.
    """

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and _initialized() and torch.distributed.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as torch's
                factor = 1.0 / float(self.num_batches_tracked)
        x = input.to(torch.float64)
        out, mean, var, count = _SyncBatchNormFunction.apply(
            x, self.weight, self.bias, self.eps, torch.distributed.group.WORLD
        )
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
                self.running_var.lerp_((var * count / (count - 1)).to(self.running_var.dtype), factor)
        return out.to(input.dtype)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with its batch normalisation synchronised over the ranks, parameters and
    buffers kept (so the state dict keeps its keys): on CUDA every ``BatchNorm*d`` becomes
    ``torch.nn.SyncBatchNorm`` (``SyncBatchNorm.convert_sync_batchnorm``); on the CPU every
    ``BatchNorm2d`` becomes :class:`CpuSyncBatchNorm` (its subclass without state of its own),
    in place."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = CpuSyncBatchNorm
    return model
