"""Launchers of many training runs: on this machine one variant per GPU at once, or on a Slurm
cluster one job per variant, submitted as one job array through submitit.

Every launcher runs the same library call as ``hgbench train`` (:func:`hgbench.train.train_variant`),
so a run started by one launcher is resumed by any other (the run folder and its checkpoint
are the only state). Each writes ``<run>/.launch.json`` (:data:`LAUNCH_FILE`, hidden so the
record scan never reads it) when it starts a run: which launcher, the Slurm job id or the local
pid and GPU, the log files; ``hgbench runs`` (:mod:`hgbench.train.status`) reads it.

**Local, one process per GPU** (``train-all --gpus 0,1,2,3``): one ``hgbench train VARIANT``
subprocess per GPU at a time with ``CUDA_VISIBLE_DEVICES`` set to that GPU (a fresh process,
so CUDA has not been initialised with another device), each GPU taking the next variant when
its run ends; every run writes its log to ``<results>/logs/local/<variant>-<time>.log``.

**Slurm** (``train-all --launcher slurm``): submitit (facebookincubator/submitit) submits one
job per variant as one job array (``Executor.submit_array``). Each job runs :class:`TrainJob`,
which calls :func:`train_variant` in the job. Requeue: the job is submitted with
``--signal=USR1@<signal_delay_s>`` (:data:`REQUEUE_SIGNAL`; Slurm sends it that many seconds
before the time limit, and ``scancel --signal=USR1`` sends it by hand); the engine saves a
checkpoint and raises :class:`hgbench.train.TrainingInterrupted`, and :class:`TrainJob` hands
the signal to submitit's handler, which calls :meth:`TrainJob.checkpoint` (the same run, never
``force`` again) and ``scontrol requeue``-s the job; the requeued job resumes from the checkpoint.
A preempted job (SIGTERM, ``PreemptMode=REQUEUE``) is requeued by Slurm itself and resumes the
same way. With ``gpus_per_job`` N > 1 a job runs N tasks (``srun --ntasks-per-node N``), one per
GPU, which :mod:`hgbench.train.distributed` reads as ranks. Logs (submitit's pickles, each
job's stdout and stderr) go to ``<results>/logs/slurm/``.

``sacct`` is not needed (clusters without an accounting database, the CI's test cluster): job
states come from ``squeue``, which keeps a finished job for ``MinJobAge`` (300 s by default),
and from the run folder (record, checkpoint) and submitit's result file once it has gone.
The Slurm pieces every command shares (:class:`SlurmOptions`, the checks, the executor,
``squeue``) live in :mod:`hgbench.slurm`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import submitit

from hgbench.config import Protocol, VariantSpec
from hgbench.data.fingerprint import DataFingerprint, training_data
from hgbench.paths import TRAIN_RECORD, is_machine_fault
from hgbench.records import atomic_write_bytes, utc_now
from hgbench.slurm import (  # noqa: F401 - the generic Slurm pieces, used here and named by train's callers
    LOG_DIR,
    SIGNAL_DELAY_S,
    SLURM_ACTIVE,
    SLURM_QUEUED,
    LaunchError,
    SlurmOptions,
    log_root,
    refusal,
    refuse_other_launcher,
    require_slurm,
    slurm_executor,
    squeue_states,
    wait_slurm,
)

LAUNCH_FILE = ".launch.json"
"""Per run folder: the launcher's note of the last start (JSON; module docstring)."""
REQUEUE_SIGNAL = "USR1"
"""Signal Slurm sends before the time limit (``sbatch --signal``) and that requeues a job: the
one the engine saves a checkpoint on (besides SIGTERM and SIGINT)."""
MAX_TIMEOUT_REQUEUES = 100
"""How many times a job is requeued after reaching its time limit (submitit's
``max_num_timeout``; preemptions do not count): a 100-epoch run in 4-hour slots needs a few."""


def read_launch(run_folder: str | Path) -> dict | None:
    """The run folder's :data:`LAUNCH_FILE`, or None (absent or unreadable)."""
    try:
        data = json.loads((Path(run_folder) / LAUNCH_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_launch(run_folder: Path, info: dict) -> None:
    atomic_write_bytes(Path(run_folder) / LAUNCH_FILE, (json.dumps(info, indent=1) + "\n").encode())


def _abs(path: str | Path | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


# --------------------------------------------------------------------------------------------
# Slurm


@dataclasses.dataclass(frozen=True)
class TrainJob(submitit.helpers.Checkpointable):
    """What one Slurm job runs: :func:`hgbench.train.train_variant` of one variant, with the
    run's lock held, log lines on stdout (the job's log), and requeue on :data:`REQUEUE_SIGNAL`
    (module docstring). Pickled by submitit with the spec and protocol themselves, so the job
    does not read the registry again. Paths are absolute (a job may start in another folder).
    """

    spec: VariantSpec
    protocol: Protocol
    dataset: str
    data_root: str | None
    results_dir: str
    device: str | None = None
    force: bool = False

    def __call__(self) -> dict:
        """Train the run; returns ``{"variant", "record", "skipped"}`` (submitit's result).

        Raises:
            SystemExit: the run stopped on a signal after saving a checkpoint (exit status
                ``128 + signal``; on :data:`REQUEUE_SIGNAL` after requeueing the job).
        """
        from rich.console import Console

        from hgbench.train import TrainingInterrupted, run_folder, train_variant
        from hgbench.train.distributed import dist_info_from_env
        from hgbench.train.lock import run_lock
        from hgbench.train.progress import TrainDisplay

        cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
        if cpus.isdigit() and "OMP_NUM_THREADS" not in os.environ:  # the CPUs Slurm gave the task, not the node's
            import torch

            torch.set_num_threads(int(cpus))
        info = dist_info_from_env()
        if info.distributed:  # srun ranks: the rendezvous the engine's process group needs
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        folder = run_folder(self.spec, self.protocol, self.dataset, self.results_dir)
        # --force applies to the first start only: a job Slurm restarted (preemption, node failure, requeue)
        # runs the submitted pickle again, and must resume from the checkpoint instead of starting over
        restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
        force = self.force and not (restarts.isdigit() and int(restarts) > 0)
        console = Console(file=sys.stdout, width=200, force_terminal=False, soft_wrap=True)
        try:
            with run_lock(folder) if info.is_main else nullcontext(), TrainDisplay(console) as display:
                rec = train_variant(
                    self.spec,
                    self.protocol,
                    self.dataset,
                    self.data_root,
                    self.results_dir,
                    force=force,
                    progress=display.callback(self.spec.name),
                    device=self.device,
                    log_every_s=display.log_every_s,
                )
        except TrainingInterrupted as e:
            print(str(e), file=sys.stderr, flush=True)
            signum = getattr(signal, e.signal)
            handler = signal.getsignal(signum)  # submitit's, put back by the engine after the first signal
            if e.signal == f"SIG{REQUEUE_SIGNAL}" and callable(handler):
                handler(signum, None)  # submitit: checkpoint() (the resumed job), scontrol requeue, exit
            raise SystemExit(e.exit_code) from None
        return {"variant": self.spec.name, "record": str(folder / TRAIN_RECORD), "skipped": bool(rec.get("skipped"))}

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """The submission a requeued job runs: this run again without ``force`` (it resumes
        from the engine's checkpoint instead of starting over)."""
        return submitit.helpers.DelayedSubmission(dataclasses.replace(self, force=False), *args, **kwargs)


@dataclasses.dataclass
class Launched:
    """A run handed to a launcher: its variant, run folder, Slurm job id (``<array>_<task>``)
    or local pid, and its log files (``stdout``; ``stderr`` where separate)."""

    variant: str
    folder: Path
    job_id: str | None = None
    stdout: Path | None = None
    stderr: Path | None = None


@dataclasses.dataclass
class Skipped:
    """A run not launched, and why (complete, already queued, running)."""

    variant: str
    folder: Path
    reason: str


def check_launcher(launcher: str, gpus: str | None, slurm: dict[str, Any], device: str | None = None) -> None:
    """Refuse options of another launcher than ``launcher``, and a ``--gpus`` list this machine
    cannot run (:func:`parse_gpus`; without ``--device cpu``, every index must be a CUDA device
    here).

    Args:
        launcher: ``"local"`` or ``"slurm"``. gpus: ``--gpus`` (local only).
        slurm: ``{option: value}`` of the Slurm-only options (``--slurm-*``, ``--wait``); None
            where not given.
        device: ``--device``; with ``"cpu"`` the ``--gpus`` slots only set
            ``CUDA_VISIBLE_DEVICES`` of CPU processes (how the tests run this launcher).

    Raises:
        LaunchError: an unknown launcher, a Slurm option with ``local``, ``--gpus`` with
            ``slurm``, a malformed ``--gpus``, or a GPU index this machine does not have.
    """
    refuse_other_launcher(launcher, slurm)
    if launcher == "slurm" and gpus is not None:
        raise LaunchError("--gpus is an option of --launcher local; with --launcher slurm give --slurm-gpus-per-job")
    if gpus is not None:
        listed = parse_gpus(gpus)
        if device != "cpu":
            _check_cuda_gpus(gpus, listed)


def _check_cuda_gpus(text: str, gpus: list[str]) -> None:
    """Raises: LaunchError: no CUDA device here, or an index not below the number of devices."""
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        raise LaunchError(
            f"--gpus {text}: no CUDA device here (torch {torch.__version__}); drop --gpus to train the variants "
            "one after another, or add --device cpu to run one CPU process per listed slot"
        )
    beyond = [g for g in gpus if g.isdigit() and int(g) >= count]
    if beyond:
        raise LaunchError(
            f"--gpus {text}: GPU {beyond[0]} does not exist, this machine has {count} (0 to {count - 1}); list those"
        )


def slurm_options(
    device: str | None, gpus_per_job: int | None = None, time_min: int | None = None, **given: Any
) -> SlurmOptions:
    """:class:`SlurmOptions` from the CLI's options, None meaning the default: 1 GPU per job (0
    with ``--device cpu``), :attr:`SlurmOptions.time_min` minutes; ``given`` the other fields."""
    defaults = SlurmOptions()
    return SlurmOptions(
        gpus_per_job=gpus_per_job if gpus_per_job is not None else (0 if device == "cpu" else 1),
        time_min=time_min if time_min is not None else defaults.time_min,
        **given,
    )


def launch_options(
    launcher: str, gpus: str | None, device: str | None, wait: bool = False, **slurm: Any
) -> SlurmOptions | None:
    """Check ``train-all``'s launcher options (:func:`check_launcher`) and assemble the Slurm ones
    (:func:`slurm_options`).

    Args:
        slurm: the ``--slurm-NAME`` options by ``NAME`` (``partition``, ``gpus_per_job``,
            ``cpus_per_task``, ``time`` in minutes, ``array_parallelism``, ``account``, ``qos``),
            None where not given.

    Returns:
        The :class:`SlurmOptions` with ``launcher`` ``"slurm"``, else None.

    Raises:
        LaunchError: as :func:`check_launcher`.
    """
    given = {f"--slurm-{name.replace('_', '-')}": value for name, value in slurm.items()}
    check_launcher(launcher, gpus, given | {"--wait": wait or None}, device)
    if launcher != "slurm":
        return None
    fields = {("time_min" if name == "time" else name): value for name, value in slurm.items()}
    return slurm_options(device, **fields)


def submit_slurm(
    specs: Sequence[VariantSpec],
    protocol: Protocol,
    dataset: str,
    data_root: str | Path | None,
    results_dir: str | Path,
    options: SlurmOptions,
    device: str | None = None,
    force: bool = False,
) -> tuple[list[Launched], list[Skipped]]:
    """Submit one Slurm job per variant of ``specs`` as one job array (module docstring).

    A variant whose run is complete (unless ``force``), already in the queue (its
    :data:`LAUNCH_FILE` names a job ``squeue`` shows active) or being trained (its lock is
    taken) is skipped with the reason (:func:`_slurm_todo`).

    Returns:
        ``(launched, skipped)``: the submitted runs with their job ids and log files.

    Raises:
        LaunchError: ``sbatch`` not on PATH, a bad option (:meth:`SlurmOptions.check`), or
            ``sbatch`` refused the array (its message says why: an unknown partition or
            account, a time limit above the partition's, ...).
    """
    from hgbench.train import run_folder

    require_slurm("train-all")
    options.check()
    results = Path(_abs(results_dir))
    folders = {s.name: run_folder(s, protocol, dataset, results) for s in specs}
    todo, skipped = _slurm_todo(specs, folders, force, training_data(dataset, data_root))
    if not todo:
        return [], skipped
    executor = _slurm_executor(results, protocol, options)
    try:
        jobs = executor.submit_array(
            [TrainJob(s, protocol, dataset, _abs(data_root), str(results), device, force) for s in todo]
        )
    except submitit.core.utils.FailedJobError as e:
        raise LaunchError(
            f"sbatch refused the array: {refusal(e)}; check --slurm-partition, --slurm-account, --slurm-qos, "
            "--slurm-time and --slurm-gpus-per-job against `sinfo` and your site's limits"
        ) from None
    launched = []
    for spec, job in zip(todo, jobs, strict=True):
        folder = folders[spec.name]
        folder.mkdir(parents=True, exist_ok=True)
        info = {
            "launcher": "slurm",
            "variant": spec.name,
            "protocol": protocol.name,
            "dataset": dataset,
            "job_id": job.job_id,
            "submitted": utc_now(),
            "submit_host": socket.gethostname(),
            "stdout": str(job.paths.stdout),
            "stderr": str(job.paths.stderr),
            "result": str(job.paths.result_pickle),
            "options": dataclasses.asdict(options),
            "device": device,
        }
        _write_launch(folder, info)
        launched.append(Launched(spec.name, folder, job.job_id, job.paths.stdout, job.paths.stderr))
    return launched, skipped


def _slurm_todo(
    specs: Sequence[VariantSpec], folders: dict[str, Path], force: bool, data: DataFingerprint | None = None
) -> tuple[list[VariantSpec], list[Skipped]]:
    """``(to submit, skipped)``: a run complete (unless ``force``), already in the queue (its
    :data:`LAUNCH_FILE` names a job ``squeue`` shows active) or being trained (locked) is skipped.

    Raises:
        DataMismatchError: a complete run read other data than ``data`` (:func:`hgbench.train.setup.refuse_other_data`)."""
    from hgbench.train import completed_record
    from hgbench.train.lock import lock_owner
    from hgbench.train.setup import refuse_other_data

    earlier = {name: read_launch(f) or {} for name, f in folders.items()}
    states = squeue_states([e.get("job_id") for e in earlier.values() if e.get("launcher") == "slurm"])
    todo, skipped = [], []
    for spec in specs:
        folder = folders[spec.name]
        job = earlier[spec.name].get("job_id") if earlier[spec.name].get("launcher") == "slurm" else None
        owner = lock_owner(folder)
        if not force and (done := completed_record(folder)) is not None:
            refuse_other_data(done, data, folder)
            skipped.append(Skipped(spec.name, folder, "complete run found (--force retrains)"))
        elif job and states.get(job, ("",))[0] in SLURM_ACTIVE:
            skipped.append(Skipped(spec.name, folder, f"already in the queue as job {job} ({states[job][0]})"))
        elif owner is not None:
            skipped.append(
                Skipped(spec.name, folder, f"being trained now (pid {owner.get('pid')} on {owner.get('host')})")
            )
        else:
            todo.append(spec)
    return todo, skipped


def _slurm_executor(results: Path, protocol: Protocol, options: SlurmOptions) -> submitit.AutoExecutor:
    """A submitit executor for the jobs of one array under ``<results>/logs/slurm``, with ``options``'
    resources and the requeue signal (module docstring)."""
    return slurm_executor(
        log_root(results) / "slurm",
        f"hgbench-{protocol.name}",
        options,
        slurm_max_num_timeout=MAX_TIMEOUT_REQUEUES,
        slurm_signal_delay_s=options.signal_delay_s,
        # the handler in the job listens to the signal Slurm is told to send
        slurm_setup=[f"export SUBMITIT_PREEMPT_SIGNAL={REQUEUE_SIGNAL}"],
        slurm_additional_parameters={"signal": f"{REQUEUE_SIGNAL}@{options.signal_delay_s}"},
        # a rank that exits with an error ends the step's other tasks at once, instead of leaving
        # them in a collective until the control group's timeout (hgbench.train.distributed.CONTROL_TIMEOUT)
        slurm_srun_args=["--kill-on-bad-exit=1"],
    )


# --------------------------------------------------------------------------------------------
# Local: one subprocess per GPU


def parse_gpus(text: str) -> list[str]:
    """``"0,1,2,3"`` -> ``["0", "1", "2", "3"]`` (CUDA device indices or UUIDs, as
    ``CUDA_VISIBLE_DEVICES`` takes them).

    Raises:
        LaunchError: an empty list, an entry that is neither an index (0, 1, ...) nor a GPU or MIG
            UUID (``GPU-...``, ``MIG-...``), or a repeated GPU.
    """
    gpus = [g.strip() for g in text.split(",") if g.strip()]
    if not gpus:
        raise LaunchError(f"--gpus {text!r}: give comma-separated GPU indices, e.g. --gpus 0,1,2,3")
    for g in gpus:
        if not ((g.isascii() and g.isdigit()) or g.startswith(("GPU-", "MIG-"))):
            raise LaunchError(
                f"--gpus {text!r}: {g!r} is not a GPU index (0, 1, ...) or UUID (GPU-..., as nvidia-smi -L lists); "
                "give e.g. --gpus 0,1"
            )
    if len(set(gpus)) != len(gpus):
        raise LaunchError(f"--gpus {text!r}: a GPU is listed twice; give each once")
    return gpus


def train_command(
    variant: str,
    protocol_arg: str,
    dataset: str,
    data_root: str | Path | None,
    results_dir: str | Path,
    device: str | None = None,
    force: bool = False,
) -> list[str]:
    """The ``hgbench train`` command line of one run, with this Python (the same environment)."""
    cmd = [
        sys.executable,
        "-m",
        "hgbench",
        "train",
        variant,
        "--protocol",
        protocol_arg,
        "--dataset",
        dataset,
        "--results",
        str(results_dir),
    ]
    if data_root is not None:
        cmd += ["--data-root", str(data_root)]
    if device is not None:
        cmd += ["--device", device]
    if force:
        cmd.append("--force")
    return cmd


@dataclasses.dataclass
class LocalOutcome:
    """One run of :func:`train_local_gpus`: its GPU, log file and exit status (0: complete,
    130/138/143: stopped by SIGINT/SIGUSR1/SIGTERM after a checkpoint, 2: refused, e.g. the
    run is locked; other: failed)."""

    variant: str
    folder: Path
    gpu: str
    log: Path
    exit_code: int


def train_local_gpus(
    specs: Sequence[VariantSpec],
    protocol: Protocol,
    protocol_arg: str,
    dataset: str,
    data_root: str | Path | None,
    results_dir: str | Path,
    gpus: Sequence[str],
    device: str | None = None,
    force: bool = False,
    on_event: Callable[[str, LocalOutcome], None] | None = None,
    poll_s: float = 0.5,
) -> list[LocalOutcome]:
    """Train ``specs`` one per GPU at once, each GPU taking the next variant when its run ends.

    Each run is a ``hgbench train`` subprocess (:func:`train_command`) with
    ``CUDA_VISIBLE_DEVICES`` set to its GPU, its output in ``<results>/logs/local/``, and a
    :data:`LAUNCH_FILE` in its run folder (pid, GPU, log; the exit status once it ends).

    Args:
        protocol: the loaded protocol (for the run folders); ``protocol_arg``: the name or
            YAML path the subprocesses load it from (a relative path is made absolute).
        on_event: ``on_event("start" | "end", outcome)``; ``exit_code`` is -1 at start.

    Returns:
        One :class:`LocalOutcome` per run started, in the order they ended. On Ctrl-C, no
        new run starts; the running ones (which got the same SIGINT) save a checkpoint and
        stop, and this returns once they have, with their exit status.
    """
    from hgbench.train import run_folder

    results = Path(_abs(results_dir))
    if Path(protocol_arg).suffix in (".yaml", ".yml"):
        protocol_arg = _abs(protocol_arg)
    logs = log_root(results) / "local"
    logs.mkdir(parents=True, exist_ok=True)
    queue = list(specs)
    done: list[LocalOutcome] = []
    guard = threading.Lock()
    stop = threading.Event()

    def worker(gpu: str) -> None:
        while not stop.is_set():
            with guard:
                if not queue:
                    return
                spec = queue.pop(0)
            folder = run_folder(spec, protocol, dataset, results)
            cmd = train_command(spec.name, protocol_arg, dataset, _abs(data_root), results, device, force)
            outcome = _train_on_gpu(spec.name, folder, gpu, cmd, logs, protocol.name, dataset, on_event)
            with guard:
                done.append(outcome)
            if on_event is not None:
                on_event("end", outcome)

    threads = [threading.Thread(target=worker, args=(g,), name=f"gpu{g}", daemon=True) for g in gpus]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(poll_s)
    except KeyboardInterrupt:
        stop.set()  # the children got the terminal's SIGINT too: they checkpoint and exit
        for t in threads:
            t.join()
    return done


def _train_on_gpu(
    variant: str,
    folder: Path,
    gpu: str,
    cmd: list[str],
    logs: Path,
    protocol_name: str,
    dataset: str,
    on_event: Callable[[str, LocalOutcome], None] | None,
) -> LocalOutcome:
    """Run ``cmd`` (one ``hgbench train``) with ``CUDA_VISIBLE_DEVICES=gpu``, its output in a new
    log under ``logs``, noting it in the run folder's :data:`LAUNCH_FILE` at the start and the end;
    ``on_event("start", outcome)`` once started. Returns the outcome with the exit status."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    log = logs / f"{variant}-{stamp}-gpu{gpu}.log"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    info = {
        "launcher": "local",
        "variant": variant,
        "protocol": protocol_name,
        "dataset": dataset,
        "gpu": gpu,
        "pid": proc.pid,
        "host": socket.gethostname(),
        "started": utc_now(),
        "stdout": str(log),
        "stderr": str(log),
        "command": cmd,
    }
    _write_launch(folder, info)
    outcome = LocalOutcome(variant, folder, gpu, log, -1)
    if on_event is not None:
        on_event("start", outcome)
    outcome.exit_code = proc.wait()
    _write_launch(folder, {**info, "ended": utc_now(), "exit_code": outcome.exit_code})
    return outcome


# --- local: one variant after another, in this process ------------------------------------------


@dataclasses.dataclass
class TrainPlan:
    """A checked training request: what :func:`plan_training` returns and the launchers run."""

    specs: list
    protocol: Any
    protocol_arg: str
    dataset: str
    data_root: Path | None
    results: Path
    force: bool
    device: Any
    bad_samples: str = "error"
    tracker: str | None = None  # tensorboard, mlflow or None (hgbench.tracking)


def plan_training(variants: str | None, protocol: str, dataset: str, data_root: str | Path | None, results: str | Path,
                  device: str | None = None, force: bool = False, here: bool = True,
                  skip_bad_samples: bool = False, tracker: str | None = None) -> TrainPlan:  # fmt: skip
    """Check everything about a training request before any work: the dataset and its data
    root (:func:`hgbench.data.check_dataset_options`), the protocol file, the variants, every
    variant against the protocol (:func:`hgbench.config.check_compatible`, naming the
    protocol's file), the device and precision (:func:`hgbench.train.device.check_device`)
    and that ``results`` is a writable folder (:func:`hgbench.paths.check_writable_folder`).
    With ``here`` False (a Slurm job trains elsewhere) a device left unset is not resolved on
    this machine. The tracker (``tracker``, else ``$HGBENCH_TRACKER``:
    :func:`hgbench.tracking.resolve_tracker`) is checked, and exported to the environment so
    that the processes and Slurm jobs this one starts log to it too.

    Raises:
        ConfigError, KeyError, ValueError, OSError: the first problem, in one line naming the
            file or option and the fix.
    """
    from hgbench.config import check_compatible, load_protocol, select_variants
    from hgbench.data import check_dataset_options
    from hgbench.paths import check_writable_folder, protocols_dir
    from hgbench.tracking import use_tracker
    from hgbench.train.device import check_device

    check_dataset_options(dataset, data_root)
    proto = load_protocol(protocol)
    source = str(protocol) if str(protocol).endswith((".yaml", ".yml")) else str(protocols_dir() / f"{protocol}.yaml")
    specs = select_variants(variants)
    for spec in specs:
        check_compatible(spec, proto, source=source)
    dev = check_device(device, proto) if here or device is not None else None
    check_writable_folder(Path(results))
    bad = "skip" if skip_bad_samples else "error"
    track = use_tracker(tracker)  # checked; the local GPU processes and Slurm jobs inherit it
    root = Path(data_root) if data_root else None
    return TrainPlan(specs, proto, str(protocol), dataset, root, Path(results), force, dev, bad, track)


@dataclasses.dataclass
class LocalRuns:
    """What :func:`train_local` did: the records of the runs trained or found complete, and the
    variants that failed for a fault of the machine (disk full, read-only), with the reason."""

    records: list = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def train_local(plan: TrainPlan, display: Any = None) -> LocalRuns:
    """Train ``plan``'s variants one after another in this process
    (:func:`hgbench.train.train_variant`). A run that fails for a fault of the machine
    (:func:`hgbench.paths.is_machine_fault`: disk full, read-only, no permission, I/O error) or
    diverges (:class:`hgbench.train.divergence.TrainingDiverged`) keeps its last good checkpoint
    and the next variant is trained; a stop signal
    (:class:`hgbench.train.loop.TrainingInterrupted`) ends them all.

    ``display`` is a :class:`hgbench.train.progress.TrainDisplay` (or None: no progress).
    """
    from hgbench.train.loop import TrainingDiverged, train_variant

    out = LocalRuns()
    for spec in plan.specs:
        kw = {} if display is None else {"progress": display.callback(spec.name), "log_every_s": display.log_every_s}
        try:
            rec = train_variant(spec, plan.protocol, plan.dataset, plan.data_root, plan.results, force=plan.force,
                                device=plan.device, bad_samples=plan.bad_samples, checked=True, tracker=plan.tracker,
                                **kw)  # fmt: skip
        except OSError as e:
            if not is_machine_fault(e):
                raise
            why = e.strerror or str(e)
            out.failed.append((spec.name, f"{e.filename or plan.results}: {why}; its last good checkpoint is kept"))
            continue
        except TrainingDiverged as e:  # that run failed; the next one may not
            out.failed.append((spec.name, str(e).removeprefix(f"{spec.name}: ")))
            continue
        if display is not None and rec.get("skipped"):
            display.skipped(spec.name, rec)
        out.records.append(rec)
    return out


def run_slurm(plan: TrainPlan, opts: SlurmOptions, wait: bool, say: Callable[[str], None]) -> list[Path]:
    """Submit ``plan`` as one Slurm job array (:func:`submit_slurm`) and, with ``wait``, follow
    it to the end (:func:`wait_slurm`), telling ``say`` what happens.

    Returns:
        The run folders of the jobs waited for (:func:`hgbench.train.status.statuses_of` says
        how they ended); empty without ``wait``.
    """
    launched, skipped = submit_slurm(plan.specs, plan.protocol, plan.dataset, plan.data_root, plan.results, opts,
                                     device=None if plan.device is None else str(plan.device), force=plan.force)  # fmt: skip
    for s in skipped:
        say(f"{s.variant}: not submitted, {s.reason}")
    for x in launched:
        say(f"{x.variant}: Slurm job {x.job_id}, log {x.stdout}")
    if not launched:
        return []
    array = launched[0].job_id.split("_")[0]
    if not wait:
        say(f"submitted {len(launched)} job(s) as array {array}; follow them with: hgbench runs --results {plan.results}  "
            f"(or squeue -j {array}; tail -f {launched[0].stdout})")  # fmt: skip
        return []
    try:
        wait_slurm(
            launched,
            on_change=lambda x, state, reason: say(
                f"{x.variant}: job {x.job_id} {state}" + (f" ({reason})" if reason and reason != "None" else "")
            ),
        )
    except KeyboardInterrupt:
        say(f"stopped waiting; the jobs go on (hgbench runs --results {plan.results}, scancel {array} to stop them)")
        raise
    return [x.folder for x in launched]


def run_local_gpus(plan: TrainPlan, gpus: str, say: Callable[[str], None]) -> list[Path]:
    """Train ``plan``'s variants one per GPU at once (:func:`train_local_gpus`), telling ``say``
    when each starts and ends. Returns the run folders (one per variant started)."""
    gpu_list = parse_gpus(gpus)

    def on_event(event: str, o: LocalOutcome) -> None:
        what = (
            "started"
            if event == "start"
            else ("complete" if o.exit_code == 0 else f"ended with exit status {o.exit_code}")
        )
        say(f"{o.variant} on GPU {o.gpu}: {what} (log {o.log})")

    outcomes = train_local_gpus(plan.specs, plan.protocol, plan.protocol_arg, plan.dataset, plan.data_root, plan.results,
                                gpu_list, device=None if plan.device is None else str(plan.device), force=plan.force,
                                on_event=on_event)  # fmt: skip
    return [o.folder for o in outcomes]


@dataclasses.dataclass
class TrainingLaunch:
    """What :func:`launch_training` did. In this process (:func:`train_local`): ``records`` and
    ``failed`` as :class:`LocalRuns`, ``folders`` None. Elsewhere (Slurm, one process per GPU):
    ``folders``, the run folders started (or waited for), whose status says how each ended."""

    records: list = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    folders: list[Path] | None = None


def launch_training(
    plan: TrainPlan,
    launcher: str = "local",
    gpus: str | None = None,
    opts: SlurmOptions | None = None,
    wait: bool = False,
    say: Callable[[str], None] = print,
    display: Any = None,
) -> TrainingLaunch:
    """Run ``plan`` with its launcher: ``"slurm"`` one job array (:func:`run_slurm` with ``opts``
    and ``wait``); ``"local"`` with ``gpus`` one process per GPU (:func:`run_local_gpus`);
    ``"local"`` alone one variant after another in this process (:func:`train_local`, showing
    ``display``). ``say`` hears what the launchers elsewhere do.

    Raises:
        LaunchError: as the launcher. TrainingInterrupted: a stop signal in this process.
    """
    if launcher == "slurm":
        return TrainingLaunch(folders=run_slurm(plan, opts, wait, say))
    if gpus is not None:
        return TrainingLaunch(folders=run_local_gpus(plan, gpus, say))
    runs = train_local(plan, display)
    return TrainingLaunch(records=runs.records, failed=runs.failed)
