"""Slurm through submitit, for every command that submits jobs (``train-all --launcher slurm``:
:mod:`hgbench.train.launch`; ``profile --launcher slurm``: :mod:`hgbench.profile.launch`): the
resources of a job (:class:`SlurmOptions`), the checks before anything is submitted (Slurm's
commands on PATH and a controller answering, :func:`require_slurm`; each partition with its
resources, :func:`check_partitions`), a submitit executor (:func:`slurm_executor`), and a job's
state from ``squeue`` (:func:`squeue_states`, :func:`wait_slurm`).

``sacct`` is not needed (clusters without an accounting database, the CI's test cluster): job
states come from ``squeue``, which keeps a finished job for ``MinJobAge`` (300 s by default);
once it has gone, each command reads what its jobs left in the results folder. A job ``squeue``
could not be asked about (no controller answering, a timeout) is ``unknown``, not gone: waiting
goes on through such an outage (:func:`wait_slurm`).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import submitit

LOG_DIR = "logs"
"""Under the results folder: ``logs/slurm/`` (submitit's folder), ``logs/local/`` and the launch
notes of profile jobs (``logs/profile/``)."""
SIGNAL_DELAY_S = 120
"""Seconds between the requeue signal and the time limit (``sbatch --signal``) of a training job:
the current step, a checkpoint write and ``scontrol requeue`` must fit (an hg8 checkpoint is ~300 MB)."""
SLURM_ACTIVE = frozenset(
    {
        "PENDING",
        "RUNNING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "CONFIGURING",
        "COMPLETING",
        "RESIZING",
        "SUSPENDED",
        "STOPPED",
        "SIGNALING",
        "STAGE_OUT",
        "RESV_DEL_HOLD",
        "SPECIAL_EXIT",
    }
)
"""``squeue`` states of a job that has not ended (``squeue --help``'s JOB STATE CODES)."""
SLURM_QUEUED = frozenset(
    {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "CONFIGURING", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
)
"""The active states of a job waiting to (re)start."""


class LaunchError(ValueError):
    """A launcher option that cannot work here; the message names the option, the value and the
    fix (the CLI exits with status 2)."""


def log_root(results_dir: str | Path) -> Path:
    """``<results>/logs``: the launchers' log folders."""
    return Path(results_dir) / LOG_DIR


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """Resources of each job (``--slurm-*``).

    Attributes:
        partition: ``--partition`` (None: the cluster's default).
        gpus_per_job: GPUs of each job (``--gpus-per-node``), one task per GPU; 0 for a CPU job.
        cpus_per_task: ``--cpus-per-task`` (None: the cluster's default, usually 1); give the
            loader's workers theirs (protocol ``num_workers`` + 1).
        time_min: ``--time`` in minutes; a training job reaching it is requeued and resumes.
        array_parallelism: at most this many jobs of an array run at once (``--array=0-N%K``).
        account, qos: ``--account``, ``--qos``.
        signal_delay_s: the requeue signal this many seconds before the time limit (0: no signal,
            a job that is not requeued).
    """

    partition: str | None = None
    gpus_per_job: int = 1
    cpus_per_task: int | None = None
    time_min: int = 240
    array_parallelism: int | None = None
    account: str | None = None
    qos: str | None = None
    signal_delay_s: int = SIGNAL_DELAY_S

    def check(self) -> None:
        """Raises: LaunchError: a count below its minimum, or a time limit not longer than the signal delay."""
        for option, value, low in (
            ("--slurm-gpus-per-job", self.gpus_per_job, 0),
            ("--slurm-cpus-per-task", self.cpus_per_task, 1),
            ("--slurm-time", self.time_min, 1),
            ("--slurm-array-parallelism", self.array_parallelism, 1),
        ):
            if value is not None and value < low:
                raise LaunchError(f"{option} {value}: must be at least {low}")
        if self.time_min * 60 <= self.signal_delay_s:
            raise LaunchError(
                f"--slurm-time {self.time_min}: the job must run longer than the {self.signal_delay_s} s between the "
                "requeue signal and the time limit; give more minutes"
            )


def refuse_other_launcher(launcher: str, slurm: dict[str, Any]) -> None:
    """Refuse an unknown launcher and Slurm-only options given with ``local``.

    Args:
        slurm: ``{option: value}`` of the Slurm-only options (``--slurm-*``, ``--wait``); None
            where not given.

    Raises:
        LaunchError: a launcher other than ``local`` and ``slurm``, or a Slurm option with ``local``.
    """
    if launcher not in ("local", "slurm"):
        raise LaunchError(f"--launcher {launcher!r}: expected local or slurm")
    given = [k for k, v in slurm.items() if v is not None]
    if launcher == "local" and given:
        raise LaunchError(f"{given[0]} is an option of --launcher slurm; add --launcher slurm or drop it")


def require_slurm(command: str = "train-all") -> None:
    """Raises: LaunchError: a Slurm command missing from PATH, or no controller answering ``sinfo``
    (the message tells to run ``hgbench COMMAND`` on a login node)."""
    for cmd in ("sbatch", "squeue", "scontrol", "sinfo"):
        if shutil.which(cmd) is None:
            raise LaunchError(
                f"--launcher slurm: {cmd} is not on PATH; run {command} on a login node of the cluster, or use --launcher local"
            )
    said = controller_problem()
    if said:
        raise LaunchError(
            f"--launcher slurm: no Slurm controller answers ({said}); run {command} on a login node of the "
            "cluster (or set SLURM_CONF to its slurm.conf)"
        )


def controller_problem() -> str:
    """Why no Slurm controller answers ``sinfo`` now (its last error line, or a timeout after 60 s);
    ``""`` when one does."""
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 60 s"
    except OSError as exc:
        return f"sinfo could not run ({exc})"
    return ((proc.stderr.strip().splitlines() or ["sinfo failed"])[-1]) if proc.returncode else ""


def sbatch_args(options: SlurmOptions) -> list[str]:
    """The ``sbatch`` options of ``options``' resources (one node, one task per GPU)."""
    args = ["--nodes=1", f"--ntasks-per-node={max(1, options.gpus_per_job)}", f"--time={options.time_min}"]
    for flag, value in (
        ("--partition", options.partition),
        ("--gpus-per-node", options.gpus_per_job or None),
        ("--cpus-per-task", options.cpus_per_task),
        ("--account", options.account),
        ("--qos", options.qos),
    ):
        if value is not None:
            args.append(f"{flag}={value}")
    return args


def check_partitions(partitions: Sequence[str], options: SlurmOptions) -> None:
    """Ask Slurm whether a job with ``options``' resources could run in each of ``partitions``
    (``sbatch --test-only``: nothing is submitted), before any job is.

    Raises:
        LaunchError: the first partition Slurm refuses (unknown, or a time limit, GPU count,
            account or QOS it does not allow), naming it, with Slurm's own words.
    """
    for partition in partitions:
        args = sbatch_args(dataclasses.replace(options, partition=partition))
        try:
            proc = subprocess.run(
                ["sbatch", "--test-only", *args, "--wrap", "true"], capture_output=True, text=True, timeout=60
            )
        except subprocess.TimeoutExpired:
            raise LaunchError(f"--slurm-partition {partition}: sbatch --test-only did not answer within 60 s") from None
        if proc.returncode != 0:
            said = "; ".join(line.strip() for line in proc.stderr.splitlines() if line.strip())
            raise LaunchError(
                f"--slurm-partition {partition}: Slurm refuses it ({said}); nothing was submitted. Check the partition "
                "and --slurm-time, --slurm-gpus-per-job, --slurm-account, --slurm-qos against `sinfo` and your site's limits"
            )


def refusal(error: Exception) -> str:
    """``sbatch``'s message in a submitit ``FailedJobError``, on one line."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def slurm_executor(folder: Path, name: str, options: SlurmOptions, **extra: Any) -> submitit.AutoExecutor:
    """A submitit executor whose jobs log under ``folder``, each one node with ``options``'
    resources, one task per GPU, named ``name``; ``extra`` adds or overrides submitit parameters
    (``slurm_max_num_timeout`` is an executor argument and goes there too)."""
    timeouts = extra.pop("slurm_max_num_timeout", 3)
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=timeouts)
    params: dict[str, Any] = {
        "name": name,
        "timeout_min": options.time_min,
        "nodes": 1,
        "tasks_per_node": max(1, options.gpus_per_job),
    }
    optional = {
        "gpus_per_node": options.gpus_per_job or None,
        "cpus_per_task": options.cpus_per_task,
        "slurm_partition": options.partition,
        "slurm_account": options.account,
        "slurm_qos": options.qos,
        "slurm_array_parallelism": options.array_parallelism,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    params.update(extra)
    executor.update_parameters(**params)
    return executor


def squeue_states(job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{job id: (state, reason)}`` for the jobs ``squeue`` still knows (pending, running, or
    finished less than ``MinJobAge`` ago), array tasks one by one (``<array>_<task>``).
    A job it no longer knows is missing from the result; so is every job when ``squeue``
    cannot be run or fails (:func:`squeue_query` tells the two apart)."""
    return squeue_query(job_ids)[0]


def squeue_query(job_ids: Sequence[str]) -> tuple[dict[str, tuple[str, str]], bool]:
    """:func:`squeue_states`, and whether ``squeue`` answered for every job. ``False`` when it is
    missing, could not be run, timed out, or failed for another reason than an unknown job id: a
    job missing from the states may then still be running. (``squeue -j`` of several ids exits 0
    and leaves the forgotten ones out; of one forgotten id, it exits 1 with "Invalid job id
    specified": each id is then asked alone.)"""
    ids = sorted({j.split("_")[0] for j in job_ids if j})
    if not ids:
        return {}, True
    if shutil.which("squeue") is None:
        return {}, False
    out: dict[str, tuple[str, str]] = {}
    answer = _squeue(",".join(ids), out)
    if answer != "unknown id":
        return out, answer == "ok"
    for jid in ids:
        if _squeue(jid, out) == "error":
            return out, False
    return out, True


def _squeue(jobs: str, out: dict[str, tuple[str, str]]) -> str:
    """Ask ``squeue`` about ``jobs`` (comma-separated ids), adding what it says to ``out``:
    ``"ok"``, ``"unknown id"`` (exit 1, "Invalid job id") or ``"error"`` (anything else)."""
    try:
        proc = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", jobs, "-o", "%i|%T|%r"],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "error"
    if proc.returncode != 0:
        return "unknown id" if "invalid job id" in proc.stderr.lower() else "error"
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            out[parts[0]] = (parts[1], parts[2])
    return "ok"


SQUEUE_OUTAGE_S = 900.0
"""Seconds :func:`wait_slurm` waits through a ``squeue`` that does not answer (``slurmctld``
restarting or failing over, a network blip between the login node and the controller) before
it stops waiting and counts the jobs it could not see as gone."""


def wait_slurm(
    launched: Sequence[Any],
    poll_s: float = 10.0,
    on_change: Callable[[Any, str, str], None] | None = None,
) -> None:
    """Block until every job of ``launched`` (anything with a ``job_id``) has ended (``squeue``
    shows it in no active state, or no longer knows it), calling ``on_change(job, state, reason)``
    whenever a job's Slurm state changes (``"gone"`` once ``squeue`` has forgotten it). A requeued
    job is active again (PENDING) and waited for. How each ended is for its command to read.

    A job missing from an incomplete answer (:func:`squeue_query`: no controller answering, a
    timeout) is ``"unknown"``, not gone, and the wait goes on, for at most
    :data:`SQUEUE_OUTAGE_S` in a row (a brief outage must not end the wait of jobs that are still
    running, whose results would then be read too early); past it, such a job is ``"gone"`` with
    that reason.
    """
    last: dict[str, str] = {}
    pending = [x for x in launched if x.job_id]
    outage_since: float | None = None
    while pending:
        states, complete = squeue_query([x.job_id for x in pending])
        if complete:
            outage_since, missing = None, ("gone", "")
        else:
            now = time.monotonic()
            outage_since = outage_since if outage_since is not None else now
            over = now - outage_since >= SQUEUE_OUTAGE_S
            missing = (("gone", f"squeue did not answer for {SQUEUE_OUTAGE_S:.0f} s; the job may still run: hgbench runs")
                       if over else ("unknown", "squeue does not answer"))  # fmt: skip
        still = []
        for x in pending:
            state, reason = states.get(x.job_id, missing)
            if last.get(x.job_id) != state:
                last[x.job_id] = state
                if on_change is not None:
                    on_change(x, state, reason)
            if state in SLURM_ACTIVE or state == "unknown":
                still.append(x)
        pending = still
        if pending:
            time.sleep(poll_s)


def tail(path: str | Path | None, lines: int = 10) -> list[str]:
    """The last ``lines`` lines of a text file, e.g. a job's error log (empty if it cannot be read)."""
    if not path or not Path(path).is_file():  # a FIFO or a device would block or never end
        return []
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n") for line in deque(f, maxlen=lines)]
    except OSError:
        return []
