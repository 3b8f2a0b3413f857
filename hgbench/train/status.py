"""Where every training run of a results folder stands (``hgbench runs``): its state, Slurm job
and logs, last step and checkpoint time, and for a failure the last lines of its error log.

A run's state comes from what is on disk and what the scheduler says, in this order:

* **complete**: its record ``train.json`` says so;
* **running**: a process holds its lock (:func:`hgbench.train.lock.lock_owner`), or Slurm
  shows its job RUNNING (on another node whose lock this host may not see);
* **queued**: Slurm shows its job waiting (PENDING, or requeued and waiting again);
* **interrupted**: it stopped before the end and can resume: a job cancelled, timed out or
  preempted and not requeued, a local run stopped by a signal (exit status 130, 138 or 143),
  a launcher gone, or a run folder with no launcher's note and nobody training it;
* **failed**: the job or process ended in an error (Slurm FAILED, OUT_OF_MEMORY, NODE_FAIL;
  a Slurm job that raised, which leaves submitit's result file without a complete record; a
  local run's other exit status).

Job ids and log paths come from the launcher's note ``<run>/.launch.json``
(:mod:`hgbench.train.launch`); Slurm states from ``squeue`` (one call for all runs); the last
step from the checkpoint (read memory-mapped: only the few fields needed leave the disk); the
checkpoint time is the checkpoint file's modification time. The run folders are those of
:func:`hgbench.paths.run_folders`.

A run that diverged (its record says ``diverged``: a loss that was not a finite number, the
engine's :class:`hgbench.train.divergence.TrainingDiverged`) is **failed**, with the step, the
epoch and the loss. A checkpoint that cannot be read (empty, truncated, not a checkpoint) is
named in the detail with the reason.

**Only the run's own files are read.** A file the launcher's note names (a log, submitit's
result file) is read, or even looked at, only when it lies inside the run folder or the results
folder's ``logs/`` (where the launchers write them), symbolic links resolved: a note edited to
name ``/etc/passwd`` (or a link to it) is never printed; the detail says it was not read.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from hgbench import paths
from hgbench.paths import CHECKPOINT, TRAIN_RECORD
from hgbench.records import NewerSchemaError, RecordError, read_record
from hgbench.slurm import SLURM_ACTIVE, SLURM_QUEUED, log_root, squeue_states, tail
from hgbench.train.launch import LAUNCH_FILE, read_launch
from hgbench.train.lock import lock_owner

STATES = ("queued", "running", "interrupted", "complete", "failed")
SIGNAL_EXITS = {130: "SIGINT", 138: "SIGUSR1", 143: "SIGTERM"}
"""Exit statuses of a run stopped by a signal after a checkpoint (``128 + signal``, the engine's
:class:`hgbench.train.TrainingInterrupted`)."""
SLURM_INTERRUPTED = frozenset({"CANCELLED", "TIMEOUT", "PREEMPTED", "DEADLINE"})
"""Final Slurm states of a job stopped from outside: its run can resume."""


@dataclasses.dataclass
class RunStatus:
    """One run folder's state (module docstring).

    Attributes:
        variant, dataset, protocol: what the run trains. folder: the run folder.
        state: one of :data:`STATES`. detail: why, in a few words (Slurm state and reason,
            the owner's pid, the exit status).
        step, total_steps: optimiser steps done (at the last checkpoint) and in the run.
        checkpoint_time: the checkpoint's modification time (UTC), None without one.
        launcher: ``"slurm"``, ``"local"`` or None; job_id: the Slurm job (``<array>_<task>``)
            or the local pid. log, error_log: the job's stdout and stderr (one file locally).
        error_tail: for a failed run, the last lines of ``error_log``.
    """

    variant: str
    dataset: str
    protocol: str
    folder: Path
    state: str
    detail: str = ""
    step: int | None = None
    total_steps: int | None = None
    checkpoint_time: datetime | None = None
    launcher: str | None = None
    job_id: str | None = None
    log: Path | None = None
    error_log: Path | None = None
    error_tail: list[str] = dataclasses.field(default_factory=list)


def run_folders(results_dir: str | Path) -> list[Path]:
    """Every run folder under ``results_dir`` (:func:`hgbench.paths.run_folders`), sorted; none
    for a results folder that does not exist yet.

    Raises:
        NotADirectoryError: ``results_dir`` (``--results``) or its ``runs`` is a file.
    """
    for where in (Path(results_dir), paths.runs_dir(results_dir)):
        if where.exists() and not where.is_dir():
            what = "is a file" if where == Path(results_dir) else f"{where} is a file"
            raise NotADirectoryError(
                f"--results {results_dir}: {what}, not a folder; pass the results folder given to hgbench train or train-all"
            )
    return paths.run_folders(results_dir)


def _progress(folder: Path) -> tuple[int | None, int | None, str]:
    """``(step, total_steps, problem)`` at the last checkpoint: None, None without a readable
    one, and then ``problem`` says why (empty without a checkpoint)."""
    path = folder / CHECKPOINT
    if not path.is_file():
        return None, None, ""
    fix = "hgbench train ... --force starts the run again"
    if path.stat().st_size == 0:
        return None, None, f"{CHECKPOINT} is empty (0 bytes: a copy or a disk that failed); {fix}"
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - a partial or foreign file: say so, the state says the rest
        return None, None, f"{CHECKPOINT} unreadable (truncated or corrupt: {type(e).__name__}); {fix}"
    if not isinstance(ckpt, dict) or "model_state" not in ckpt:
        return None, None, f"{CHECKPOINT} is not an hgbench checkpoint; {fix}"
    settings = ckpt.get("protocol") if isinstance(ckpt.get("protocol"), dict) else {}
    epochs, per_epoch = settings.get("epochs"), settings.get("steps_per_epoch")
    step = ckpt.get("step") if isinstance(ckpt.get("step"), int) else None
    total = epochs * per_epoch if isinstance(epochs, int) and isinstance(per_epoch, int) else None
    return step, total, ""


def launch_file(folder: Path, results_dir: str | Path, launch: dict | None, field: str) -> tuple[Path | None, str]:
    """``(path, problem)``: the file the launcher's note ``launch`` names under ``field``
    (``stdout``, ``stderr``, ``result``) when it lies inside the run ``folder`` or the results
    folder's ``logs/`` (:func:`hgbench.slurm.log_root`), symbolic links resolved; else
    ``(None, why it is not read)``; ``(None, "")`` when the note names none."""
    value = (launch or {}).get(field)
    if not value:
        return None, ""
    if isinstance(value, str) and "\0" not in value:
        path = Path(value)
        if paths.is_inside(path, folder) or paths.is_inside(path, log_root(results_dir)):
            return path, ""
    shown = value if isinstance(value, str) else repr(value)[:80]
    return None, f"{LAUNCH_FILE} names a file outside the run folder and {log_root(results_dir)} ({shown}): not read"


def _pid_alive(pid: int | None, host: str | None) -> bool | None:
    """Whether process ``pid`` lives (None: another host, cannot tell)."""
    if pid is None or host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def decide_state(
    *,
    complete: bool,
    owner: dict | None,
    launch: dict | None,
    slurm: tuple[str, str] | None,
    has_checkpoint: bool,
    result_file: bool = False,
) -> tuple[str, str]:
    """``(state, detail)`` of a run from what is known of it (module docstring).

    Args:
        complete: its record is complete. owner: the lock's owner (:func:`lock_owner`), None
            when free. launch: its :data:`hgbench.train.launch.LAUNCH_FILE` note.
        slurm: ``(state, reason)`` from ``squeue``, None when Slurm does not know the job.
        has_checkpoint: a checkpoint exists. result_file: submitit's result file exists
            (written when the job's function returned or raised, not when it was killed).
    """
    if complete:
        return "complete", ""
    if owner is not None:
        return "running", f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}"
    kind = (launch or {}).get("launcher")
    if kind == "slurm":
        job = launch.get("job_id")
        if slurm is not None:
            state, reason = slurm
            if state in SLURM_QUEUED:
                return "queued", f"Slurm {state}" + (f" ({reason})" if reason and reason != "None" else "")
            if state in SLURM_ACTIVE:
                return "running", f"Slurm {state}"
            if state in SLURM_INTERRUPTED:
                return "interrupted", f"job {job} {state}"
            return "failed", f"job {job} {state} without a complete record"
        if result_file:
            return "failed", f"job {job} raised an error"
        return "interrupted", f"job {job} ended without a complete record" + (
            "" if has_checkpoint else " (no checkpoint)"
        )
    if kind == "local":
        code = launch.get("exit_code")
        if code is None:
            alive = _pid_alive(launch.get("pid"), launch.get("host"))
            if alive:
                return "running", f"pid {launch.get('pid')} (GPU {launch.get('gpu')}), lock not taken yet"
            return "interrupted", "launcher stopped before the run ended"
        if code in SIGNAL_EXITS:
            return "interrupted", f"stopped by {SIGNAL_EXITS[code]} (exit status {code})"
        return "failed", f"exit status {code}"
    return "interrupted", "" if has_checkpoint else "no checkpoint"


def diverged_detail(diverged: dict) -> str:
    """The detail of a run whose record says it diverged (``diverged``: ``step``, ``epoch``,
    ``loss``, ``checkpoint_step``)."""
    kept = diverged.get("checkpoint_step")
    return f"diverged: loss {diverged.get('loss')} at step {diverged.get('step')} (epoch {diverged.get('epoch')}); " + (
        f"last finite checkpoint at step {kept}" if kept is not None else "no checkpoint kept"
    )


def _identity(folder: Path, launch: dict | None, record: dict | None) -> tuple[str, str, str]:
    """``(variant, dataset, protocol)`` of a run: from its record, else its launcher's note, else
    its folder's names (:func:`hgbench.paths.run_names`)."""
    for source in (record, launch):
        if source and source.get("variant") and source.get("protocol") and source.get("dataset"):
            return source["variant"], source["dataset"], source["protocol"]
    dataset, protocol, variant = paths.run_names(folder)
    return variant, dataset, protocol


def run_statuses(results_dir: str | Path, tail_lines: int = 10) -> list[RunStatus]:
    """The :class:`RunStatus` of every run folder under ``results_dir`` (one ``squeue`` call).

    Raises:
        NotADirectoryError: ``results_dir`` is a file (:func:`run_folders`).
    """
    folders = run_folders(results_dir)
    launches = {f: read_launch(f) for f in folders}
    slurm_ids = [x["job_id"] for x in launches.values() if x and x.get("launcher") == "slurm" and x.get("job_id")]
    states = squeue_states(slurm_ids) if slurm_ids else {}
    out = []
    for folder in folders:
        launch = launches[folder]
        record, unreadable = None, ""
        if (folder / TRAIN_RECORD).exists():  # written once the run is complete
            try:
                record = read_record(folder / TRAIN_RECORD)
            except NewerSchemaError:
                unreadable = f"{TRAIN_RECORD} written by a newer hgbench; use that version"
            except RecordError:  # truncated or corrupt: training again rewrites it from the checkpoint
                unreadable = f"{TRAIN_RECORD} unreadable; hgbench train again rewrites it"
        complete = bool(record and record.get("complete"))
        ckpt = folder / CHECKPOINT
        job = (launch or {}).get("job_id")
        (log, log_problem), (error_log, err_problem), (result, result_problem) = (
            launch_file(folder, results_dir, launch, field) for field in ("stdout", "stderr", "result")
        )
        owner = lock_owner(folder)
        state, detail = decide_state(
            complete=complete,
            owner=owner,
            launch=launch,
            slurm=states.get(job) if (launch or {}).get("launcher") == "slurm" else None,
            has_checkpoint=ckpt.is_file(),
            result_file=result is not None and result.is_file(),
        )
        if not complete and owner is None and record is not None and isinstance(record.get("diverged"), dict):
            state, detail = "failed", diverged_detail(record.get("diverged"))
        step, total, ckpt_problem = (record.get("steps"), record.get("steps"), "") if complete else _progress(folder)
        detail = "; ".join(dict.fromkeys(d for d in (detail, unreadable, ckpt_problem, log_problem, err_problem,
                                                     result_problem) if d))  # fmt: skip
        variant, dataset, protocol = _identity(folder, launch, record)
        status = RunStatus(
            variant=variant,
            dataset=dataset,
            protocol=protocol,
            folder=folder,
            state=state,
            detail=detail,
            step=step,
            total_steps=total,
            checkpoint_time=datetime.fromtimestamp(ckpt.stat().st_mtime, timezone.utc) if ckpt.is_file() else None,
            launcher=(launch or {}).get("launcher"),
            job_id=str(job if job is not None else (launch or {}).get("pid") or "") or None,
            log=log,
            error_log=error_log,
            error_tail=tail(error_log, tail_lines) if state == "failed" else [],
        )
        out.append(status)
    return out


def statuses_of(results_dir: str | Path, folders: list[Path]) -> list[RunStatus]:
    """The :class:`RunStatus` of the run folders ``folders`` under ``results_dir`` (a launcher's
    runs), in their order."""
    by_folder = {Path(s.folder): s for s in run_statuses(results_dir)}
    return [by_folder[Path(f)] for f in folders if Path(f) in by_folder]
