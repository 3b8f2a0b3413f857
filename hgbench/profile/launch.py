"""``hgbench profile --launcher slurm``: the same sweep on several machine kinds of a cluster, one
Slurm job per partition (submitit; the generic pieces in :mod:`hgbench.slurm`).

A partition is the machine kind the user chooses between (an A100 partition, an H100 one, a CPU
one); each job runs :class:`ProfileJob`: :func:`hgbench.profile.plan.plan_profile` and
:func:`hgbench.profile.plan.run_profile` of the same options on its node, with its machine label,
writing the records under ``<results>/profile/<label>/`` on the shared results folder. A job's
label is its partition's name unless ``--machine-label L1,L2,...`` gives one per partition, in
order (several partitions may share nodes, as on the CI's one-node cluster: the label, not the
host name, keeps their records apart).

Before anything is submitted, on the submit host: Slurm answers (:func:`hgbench.slurm.require_slurm`),
every option of the sweep passes :func:`plan_profile` (the device is the job's: where this host
cannot run it, :func:`check_here` says what is left to the job), and Slurm accepts each partition
with the jobs' resources (``sbatch --test-only``: :func:`hgbench.slurm.check_partitions`), so an
unknown partition is refused in Slurm's words and no job is submitted.

Each submitted job leaves a launch note ``<results>/logs/profile/.job-<id>.json`` (partition, label,
log files; hidden, as train's ``.launch.json``, so the record scan never reads it) and, when its
sweep ends, an outcome ``.job-<id>.end.json``: ``complete``, or
``failed`` with the reason. **A job whose sweep recorded a failed setting is failed** (its other
settings' records are kept, as ``hgbench profile`` exits 1 locally); so is a job whose sweep
raised, and one Slurm ended without an outcome (cancelled, timed out, killed).
:func:`profile_job_statuses` reads these notes for ``hgbench runs``; like
:mod:`hgbench.train.status` it reads only files inside the results folder's ``logs/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import submitit

from hgbench import paths
from hgbench.fileio import atomic_write_json, utc_now
from hgbench.slurm import (
    SLURM_ACTIVE,
    SLURM_QUEUED,
    LaunchError,
    SlurmOptions,
    check_partitions,
    log_root,
    refusal,
    refuse_other_launcher,
    require_slurm,
    slurm_executor,
    squeue_states,
    tail,
    wait_slurm,
)

NOTES_DIR = "profile"
"""Under ``<results>/logs``: the launch note and outcome of each profile job."""
DEFAULT_TIME_MIN = 60
"""``--slurm-time`` of a profile job (minutes) when not given; a sweep of the whole registry on
a GPU with TensorRT builds needs more (a profile job is not requeued: give what the sweep needs)."""
POLL_S = 5.0
"""Seconds between two ``squeue`` calls while ``--wait`` follows the jobs."""
LAUNCH_OPTIONS = ("launcher", "slurm_partition", "slurm_gpus_per_job", "slurm_cpus_per_task", "slurm_time",
                  "slurm_account", "slurm_qos", "wait")  # fmt: skip
"""The ``hgbench profile`` options that choose where the sweep runs, not what it measures."""
_JOB_ID = re.compile(r"^[0-9]+(_[0-9]+)?$")


@dataclasses.dataclass(frozen=True)
class ProfileLaunch:
    """Where a sweep runs with ``--launcher slurm``: one job per ``(partition, label)`` of
    ``jobs``, each with ``options``' resources; ``wait``: follow them to the end."""

    jobs: list[tuple[str, str]]
    options: SlurmOptions
    wait: bool = False


def pop_launch_options(options: dict[str, Any], evaluate: bool = False) -> ProfileLaunch | None:
    """Take ``hgbench profile``'s launcher options (:data:`LAUNCH_OPTIONS`) out of ``options`` and
    check them; ``options`` keeps the sweep's (and ``machine_label`` with ``--launcher local``).

    Returns:
        None for ``--launcher local`` (the sweep runs here), else the :class:`ProfileLaunch`.

    Raises:
        LaunchError: an unknown launcher, a Slurm option with ``local``, ``--evaluate`` with
            ``slurm``, no ``--slurm-partition``, ``--machine-label`` not one label per partition,
            ``--slurm-gpus-per-job`` above 1, or 0 without ``--device cpu``.
    """
    given = {name: options.pop(name) for name in LAUNCH_OPTIONS}
    launcher = given.pop("launcher")
    refuse_other_launcher(launcher, {f"--{k.replace('_', '-')}": None if v is False else v for k, v in given.items()})
    if launcher == "local":
        return None
    if evaluate:
        raise LaunchError("--evaluate runs with --launcher local only; evaluate the trained variants on one machine")
    partitions = [p.strip() for p in (given["slurm_partition"] or "").split(",") if p.strip()]
    if not partitions or len(set(partitions)) != len(partitions):
        raise LaunchError("--slurm-partition: give one or more different partitions, comma-separated (one job each), "
                          "e.g. --slurm-partition a100,h100")  # fmt: skip
    text = options.pop("machine_label")
    labels = partitions if text is None else [x.strip() for x in text.split(",")]
    if len(labels) != len(partitions) or len(set(labels)) != len(labels):
        raise LaunchError(f"--machine-label {text}: give one different label per --slurm-partition "
                          f"({len(partitions)}: {','.join(partitions)}), in the same order, or leave it out (each "
                          "job's label is then its partition)")  # fmt: skip
    for label in labels:
        paths.safe_component(label, "--machine-label")
    gpus, minutes = given["slurm_gpus_per_job"], given["slurm_time"]
    if gpus is not None and gpus > 1:  # N tasks would each run the whole sweep, side by side
        raise LaunchError(f"--slurm-gpus-per-job {gpus}: a profile job times one GPU; give 1 (or 0 with --device cpu)")
    if gpus == 0 and options.get("device") != "cpu":  # the job would time its node's CPU under a GPU partition's label
        raise LaunchError("--slurm-gpus-per-job 0: a job without a GPU profiles its node's CPU; add --device cpu to "
                          "mean that, or give 1")  # fmt: skip
    opts = SlurmOptions(gpus_per_job=gpus if gpus is not None else (0 if options.get("device") == "cpu" else 1),
                        cpus_per_task=given["slurm_cpus_per_task"], time_min=DEFAULT_TIME_MIN if minutes is None else minutes,
                        account=given["slurm_account"], qos=given["slurm_qos"], signal_delay_s=0)  # fmt: skip
    opts.check()
    return ProfileLaunch(list(zip(partitions, labels, strict=True)), opts, bool(given["wait"]))


def job_options(options: dict[str, Any]) -> dict[str, Any]:
    """``plan_profile``'s options for a job: the folders absolute (a job may start elsewhere)."""
    out = dict(options)
    for name in ("results", "cache_dir", "data_root"):
        if out.get(name) is not None:
            out[name] = Path(out[name]).expanduser().resolve()
    return out


def check_here(options: dict[str, Any]) -> None:
    """Check the sweep's options on the submit host with :func:`hgbench.profile.plan.plan_profile`
    as the jobs will, except what only the job's node can say: ``--threads`` above this host's
    CPUs and whether the batch sizes fit in memory (a login node's memory is not the compute
    node's) are left to the job. Where this host cannot run the jobs' device (``--device cuda``,
    or no ``--device`` and no GPU here: the job takes its node's GPU), the plan is checked on the
    CPU with the backends that run here; the others' names are checked, their availability on
    the GPU and the quantized precisions are the job's to check (a job refused there fails with
    the reason in its log).

    Raises:
        ValueError, KeyError, OSError: as :func:`plan_profile`.
    """
    import torch

    from hgbench.config.axes import QUANTIZED_PRECISIONS
    from hgbench.profile.backends import BACKENDS, get_backend
    from hgbench.profile.plan import plan_profile
    from hgbench.records.provenance import usable_cpu_count

    opts = dict(options)
    threads = opts.get("threads")
    if isinstance(threads, int) and threads > usable_cpu_count():
        opts["threads"] = None
    if opts.get("device") != "cpu" and not torch.cuda.is_available():
        names = [b.strip() for b in str(opts.get("backend", "")).split(",") if b.strip()]
        cpu = torch.device("cpu")
        here = [b for b in names if b not in BACKENDS or get_backend(b).available(cpu) is None]
        if here != names:
            kept = [p for p in str(opts.get("precision", "fp32")).split(",") if p.strip() not in QUANTIZED_PRECISIONS]
            opts["backend"], opts["precision"] = ",".join(here) or "eager", ",".join(kept) or "fp32"
        opts["device"] = "cpu"
    plan_profile(opts.pop("variants", None), **opts, check_memory=False)


@dataclasses.dataclass(frozen=True)
class ProfileJob:
    """What one Slurm job runs: the sweep of ``options`` (:func:`plan_profile`'s keyword
    arguments, folders absolute) on its node, its records labelled ``label``; it writes its
    outcome beside its launch note (module docstring). Pickled by submitit."""

    options: dict[str, Any]
    label: str
    partition: str
    results: str

    def __call__(self) -> dict:
        """Plan and run the sweep; returns ``{"label", "records", "failed"}`` (submitit's result).

        Raises:
            RuntimeError: a setting of the sweep failed (its record says why; the others are kept).
            Exception: whatever the plan or the sweep raised (the outcome note says what).
        """
        from hgbench.profile.plan import plan_profile, run_profile
        from hgbench.profile.timeline import Timeline, process_age_s

        timeline = Timeline(before_s=process_age_s() or 0.0)  # the job's sweep record: its time from the job's start
        opts = dict(self.options)
        cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
        if opts.get("threads") is None and cpus.isdigit():  # the CPUs Slurm gave the job, not the node's
            opts["threads"] = int(cpus)
        job_id = submitit.JobEnvironment().job_id
        try:
            plan = plan_profile(opts.pop("variants", None), **opts, machine_label=self.label)
            print(f"profile {self.label} (partition {self.partition}, host {socket.gethostname()}, {plan.device.type}): "
                  f"{plan.total_steps} timed repetitions", flush=True)  # fmt: skip
            run = run_profile(
                plan,
                command=["hgbench", "profile", "--launcher", "slurm", "--machine-label", self.label],
                timeline=timeline,
            )
            print(f"sweep record: {run.sweep.path}", flush=True)
            for record, path in run.rows:
                p50 = (record.latency_ms or {}).get("p50_ms")
                shown = f"p50 {p50:.3f} ms" if isinstance(p50, (int, float)) else (record.error or record.status)
                print(f"{record.variant} {record.backend} {record.precision} batch {record.batch_size}: {shown} ({path})",
                      flush=True)  # fmt: skip
            failed = [f"{r.variant} {r.backend} {r.precision} batch {r.batch_size}: {r.error}" for r in run.failed]
            if failed:
                raise RuntimeError(f"{len(failed)} of {len(run.rows)} settings failed (their records say why): "
                                   + "; ".join(failed))  # fmt: skip
        except BaseException as e:
            _write_json(
                self._outcome(job_id), {"state": "failed", "detail": f"{type(e).__name__}: {e}", "ended": utc_now()}
            )
            raise
        out = {"label": self.label, "records": [str(p) for _, p in run.rows], "failed": 0}
        _write_json(
            self._outcome(job_id), {"state": "complete", "detail": f"{len(run.rows)} record(s)", "ended": utc_now()}
        )
        return out

    def _outcome(self, job_id: str) -> Path:
        return notes_dir(self.results) / f".job-{job_id}.end.json"


def notes_dir(results_dir: str | Path) -> Path:
    """``<results>/logs/profile``: the profile jobs' launch notes and outcomes."""
    return log_root(results_dir) / NOTES_DIR


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data)


@dataclasses.dataclass
class ProfileJobStatus:
    """One profile job (``hgbench runs``): its Slurm job id, partition, machine label, state
    (``pending``, ``running``, ``complete``, ``failed``), why in a few words, and its log files
    (None where the note names a file outside ``<results>/logs``); ``error_tail``: the last lines
    of a failed job's error log."""

    job_id: str
    partition: str
    label: str
    state: str
    detail: str = ""
    log: Path | None = None
    error_log: Path | None = None
    error_tail: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ProfileSubmitted:
    """A submitted profile job: its partition, machine label, Slurm job id and log files."""

    partition: str
    label: str
    job_id: str
    stdout: Path
    stderr: Path


def submit_profile_jobs(options: dict[str, Any], launch: ProfileLaunch) -> list[ProfileSubmitted]:
    """Check everything (module docstring), then submit one :class:`ProfileJob` per partition of
    ``launch`` and write its launch note under :func:`notes_dir`.

    Args:
        options: :func:`hgbench.profile.plan.plan_profile`'s keyword options (``variants`` too).

    Raises:
        LaunchError: Slurm missing or not answering, a partition Slurm refuses (nothing
            submitted), or ``sbatch`` refusing a job after others were submitted (named).
        ValueError, KeyError, OSError: a sweep option (:func:`check_here`).
    """
    require_slurm("profile")
    opts = job_options(options)
    check_here(opts)
    partitions = [p for p, _ in launch.jobs]
    check_partitions(partitions, launch.options)
    results = Path(opts["results"])
    submitted: list[ProfileSubmitted] = []
    for partition, label in launch.jobs:
        executor = slurm_executor(log_root(results) / "slurm", f"hgbench-profile-{label}",
                                  dataclasses.replace(launch.options, partition=partition))  # fmt: skip
        try:
            job = executor.submit(ProfileJob(opts, label, partition, str(results)))
        except submitit.core.utils.FailedJobError as e:
            done = ", ".join(f"{x.label} (job {x.job_id})" for x in submitted) or "none"
            raise LaunchError(f"--slurm-partition {partition}: sbatch refused the job: {refusal(e)}; submitted "
                              f"before it: {done}") from None  # fmt: skip
        x = ProfileSubmitted(partition, label, str(job.job_id), Path(job.paths.stdout), Path(job.paths.stderr))
        _write_json(notes_dir(results) / f".job-{x.job_id}.json", {
            "launcher": "slurm", "kind": "profile", "job_id": x.job_id, "partition": partition, "label": label,
            "submitted": utc_now(), "submit_host": socket.gethostname(), "stdout": str(x.stdout),
            "stderr": str(x.stderr), "options": dataclasses.asdict(launch.options)})  # fmt: skip
        submitted.append(x)
    return submitted


def launch_profile(options: dict[str, Any], launch: ProfileLaunch, say: Callable[[str], None] = print,
                   poll_s: float = POLL_S) -> list[ProfileJobStatus]:  # fmt: skip
    """Submit the sweep's jobs (:func:`submit_profile_jobs`), telling ``say`` each job's id and
    log; with ``launch.wait``, follow them to the end (each state change said).

    Returns:
        With ``wait``, the :class:`ProfileJobStatus` of each job once all have ended (the
        caller exits 1 unless all are ``complete``); else empty.

    Raises:
        As :func:`submit_profile_jobs`; KeyboardInterrupt while waiting (the jobs go on).
    """
    submitted = submit_profile_jobs(options, launch)
    results = job_options(options)["results"]
    for x in submitted:
        say(f"{x.label}: Slurm job {x.job_id} on partition {x.partition}, log {x.stdout}")
    if not launch.wait:
        say(f"submitted {len(submitted)} profile job(s); follow them with: hgbench runs --results {results}")
        return []
    try:
        wait_slurm(submitted, poll_s=poll_s, on_change=lambda x, state, reason: say(
            f"{x.label}: job {x.job_id} {state}" + (f" ({reason})" if reason and reason != "None" else "")))  # fmt: skip
    except KeyboardInterrupt:
        jobs = " ".join(x.job_id for x in submitted)
        say(f"stopped waiting; the jobs go on (hgbench runs --results {results}; scancel {jobs} to stop them)")
        raise
    by_id = {s.job_id: s for s in profile_job_statuses(results)}
    return [by_id[x.job_id] for x in submitted if x.job_id in by_id]


def _read_note(path: Path) -> dict | None:
    """A JSON note under :func:`notes_dir` (a regular file, not a link), or None."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _job_state(job_id: str, outcome: dict | None, slurm: tuple[str, str] | None) -> tuple[str, str]:
    """``(state, detail)`` of a profile job: its outcome note first, else Slurm's state, else
    failed (it ended without writing one)."""
    if outcome and outcome.get("state") in ("complete", "failed"):
        return outcome["state"], str(outcome.get("detail") or "")
    if slurm is not None:
        state, reason = slurm
        why = f" ({reason})" if reason and reason != "None" else ""
        if state in SLURM_QUEUED:
            return "pending", f"Slurm {state}{why}"
        if state in SLURM_ACTIVE:
            return "running", f"Slurm {state}"
        if state != "COMPLETED":
            return "failed", f"job {job_id} {state}"
    return "failed", f"job {job_id} ended without an outcome (cancelled, timed out or killed)"


def profile_job_statuses(results_dir: str | Path, tail_lines: int = 10) -> list[ProfileJobStatus]:
    """The :class:`ProfileJobStatus` of every profile job noted under ``<results>/logs/profile``,
    by job id (one ``squeue`` call). Only files inside ``<results>/logs`` are read: a log the
    note names elsewhere (or through a link out of it) is not, and the detail says so."""
    folder = notes_dir(results_dir)
    notes = {}
    for path in sorted(folder.glob(".job-*.json")) if folder.is_dir() else []:
        note = _read_note(path)
        job = str((note or {}).get("job_id") or "")
        if not path.name.endswith(".end.json") and _JOB_ID.match(job) and path.name == f".job-{job}.json":
            notes[job] = note
    states = squeue_states(list(notes)) if notes else {}
    out = []
    for job, note in sorted(notes.items(), key=lambda kv: [int(p) for p in kv[0].split("_")]):
        state, detail = _job_state(job, _read_note(folder / f".job-{job}.end.json"), states.get(job))
        files = []
        for field in ("stdout", "stderr"):
            value = note.get(field)
            inside = (
                isinstance(value, str) and "\0" not in value and paths.is_inside(Path(value), log_root(results_dir))
            )
            files.append(Path(value) if inside else None)
            if value and not inside:
                detail += f"; the note names a {field} outside {log_root(results_dir)}: not read"
        out.append(ProfileJobStatus(job, str(note.get("partition") or "?"), str(note.get("label") or "?"), state,
                                    detail, files[0], files[1], tail(files[1], tail_lines) if state == "failed" else []))  # fmt: skip
    return out
