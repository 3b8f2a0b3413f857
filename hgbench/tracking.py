"""Experiment trackers: a training run's curves and a profile sweep's figures in TensorBoard or
MLflow, where researchers already watch their runs (``docs/tracking.md``).

Choose one with ``--tracker tensorboard|mlflow`` (``train``, ``train-all``) or the environment
variable :data:`TRACKER_ENV` (``HGBENCH_TRACKER``), which a Slurm job array, the one-process-per-GPU
launcher and every ``torchrun`` rank inherit; ``none`` (the default) logs nothing. Each needs
its optional extra: ``pip install 'hgbench[tensorboard]'`` or ``'hgbench[mlflow]'``
(``hgbench[track]``: both).

**What a training run logs** (rank 0 alone in a data-parallel run): the variant's spec and the
protocol as run as parameters (TensorBoard: hparams and a text table); every progress
interval (``log_every_steps`` steps or ``log_every_s`` seconds) ``train/loss`` (mean over the
interval), ``train/lr``, ``train/samples_per_s`` and ``train/data_wait`` (fraction of the
interval); every epoch ``train/epoch_loss`` and, where validated, ``val/mean`` (percent, the
dataset's metric at its standard threshold, as in the record), ``val/loss`` and ``val/<group>``
per joint group; at the end the record's figures as ``final/*`` and, with
MLflow, the record (``train.json``) and a plot of its learning curves as artifacts. The x axis
is always the optimiser step.

**Where.** TensorBoard: event files in ``<run folder>/tensorboard/`` (``tensorboard --logdir
results/runs``). MLflow: ``MLFLOW_TRACKING_URI`` when set, else a SQLite store
``<results>/.mlflow/mlflow.db`` with its artifacts in ``<results>/.mlflow/artifacts/`` (a hidden
folder, outside every record scan); one experiment per dataset and protocol
(``hgbench/<dataset>/<protocol>-<hash>``), one run per run folder, named after it.

**Resume.** A resumed run continues the same TensorBoard folder and the same MLflow run (its id
kept in the run folder's :data:`MLFLOW_RUN_FILE`). A run killed after its checkpoint at step
``k`` had logged some steps beyond ``k``; the resumed run trains them again. TensorBoard: the
writer opens with ``purge_step = k + 1``, so TensorBoard's reader drops the killed session's
events from step ``k + 1`` on and shows the resumed session's. MLflow has no way to remove a
logged point: the resumed run leaves out every point at a step its metric already has, so each
step keeps the killed session's value (on the CPU the same value: resume is exact; on CUDA as
close as the kernels make it). Either way each curve has one point per step. A fresh start
(``--force``, or a run killed before its first checkpoint) starts a new MLflow run (a previous
one still marked running is marked killed) and purges the TensorBoard folder from step 0.

**Errors.** The tracker never decides whether a run succeeds: a tracker that cannot be opened
or fails while logging gives one warning (:class:`TrackerWarning`) and logs nothing more; the
run and its record go on. An unknown name or a missing extra on the command line is refused
before any work (:func:`resolve_tracker`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import re
import tempfile
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hgbench.fileio import atomic_write_json, utc_now
from hgbench.paths import TRAIN_RECORD
from hgbench.records import RecordError, read_record

if TYPE_CHECKING:
    from hgbench.config import Protocol, VariantSpec

TRACKERS = ("tensorboard", "mlflow")
"""The trackers ``--tracker`` accepts (and ``none``)."""
TRACKER_ENV = "HGBENCH_TRACKER"
"""The environment variable that chooses the tracker when ``--tracker`` is not given."""
TENSORBOARD_DIR = "tensorboard"
"""A run's TensorBoard event files: ``<run folder>/tensorboard/``."""
MLFLOW_RUN_FILE = ".mlflow-run.json"
"""The MLflow run a run folder logs to (``run_id``, ``tracking_uri``), kept so a resumed run
continues it (hidden: no record reader takes it for a record)."""
MLFLOW_DIR = ".mlflow"
"""The default MLflow store under a results folder: ``mlflow.db`` (SQLite) and ``artifacts/``."""
_REQUIRES = {"tensorboard": ("tensorboard",), "mlflow": ("mlflow", "sqlalchemy", "alembic")}
"""The modules each tracker imports (its extra in pyproject.toml installs them); sqlalchemy and
alembic are MLflow's SQLite store (mlflow-skinny leaves them out)."""
_MLFLOW_PARAMS_PER_CALL = 100  # MLflow's limit of parameters per log_batch call
_MLFLOW_PARAM_CHARS = 6000  # MLflow's limit on a parameter's value (characters)
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_\-. /:]")  # characters MLflow refuses in a metric name


class TrackerWarning(UserWarning):
    """A tracker failed; the run goes on without it."""


def resolve_tracker(name: str | None = None, *, check_installed: bool = True) -> str | None:
    """The tracker to use: ``name`` (``--tracker``), else :data:`TRACKER_ENV`; None for none.

    Args:
        name: ``tensorboard``, ``mlflow``, ``none`` (case-insensitive) or None (read the
            environment).
        check_installed: also check that its extra is installed.

    Raises:
        ValueError: an unknown name, or (``check_installed``) its extra is not installed;
            the message names the option, the variable and the fix.
    """
    raw = name if name is not None else os.environ.get(TRACKER_ENV, "")
    value = raw.strip().lower()
    if value in ("", "none"):
        return None
    if value not in TRACKERS:
        raise ValueError(f"--tracker {raw!r} (or ${TRACKER_ENV}): unknown tracker; use {', '.join(TRACKERS)} or none")
    missing = [m for m in _REQUIRES[value] if importlib.util.find_spec(m) is None]
    if check_installed and missing:
        raise ValueError(
            f"--tracker {value}: {', '.join(missing)} not installed; pip install 'hgbench[{value}]' (or use --tracker none)"
        )
    return value


def use_tracker(option: str | None) -> str | None:
    """The tracker of a training request (:func:`resolve_tracker` of ``option``, its extra
    checked); an ``option`` given (``--tracker``) is also set as :data:`TRACKER_ENV` in this
    process (``none`` for none), so the processes it starts (one per GPU; Slurm jobs, as
    ``sbatch`` exports the environment) use the same tracker.

    Raises:
        ValueError: as :func:`resolve_tracker`.
    """
    name = resolve_tracker(option)
    if option is not None:
        os.environ[TRACKER_ENV] = name or "none"
    return name


# --- the trackers ------------------------------------------------------------------------------


class Tracker:
    """The tracker interface, and the default that logs nothing. Every method is safe to call
    in any order; :meth:`close` ends the run with an MLflow status (``FINISHED``, ``KILLED``,
    ``FAILED``)."""

    name = "none"

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log the run's parameters (flat: name -> value)."""

    def log_metrics(self, metrics: Mapping[str, float | None], step: int) -> None:
        """Log ``metrics`` (name -> value; None is left out) at optimiser step ``step``."""

    def log_text(self, name: str, text: str) -> None:
        """Log a text (Markdown) under ``name``."""

    def log_artifact(self, path: Path) -> None:
        """Keep the file ``path`` with the run (MLflow; TensorBoard keeps no files)."""

    def close(self, status: str = "FINISHED") -> None:
        """Write what is pending and end the run with ``status``."""


class TensorBoardTracker(Tracker):
    """Event files in ``log_dir`` through ``torch.utils.tensorboard.SummaryWriter``, flushed
    after every call (a killed run loses nothing it logged).

    Args:
        purge_step: the first step of this session: TensorBoard's reader drops every event at
            this step or later written before it (a resumed run: ``k + 1`` after a checkpoint
            at step ``k``; a fresh start: 0). None: drop nothing.
    """

    name = "tensorboard"

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step, flush_secs=30)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        values = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params.items()}
        for summary in hparams(values, {"val/mean": 0.0, "train/loss": 0.0}):
            self.writer.file_writer.add_summary(summary)
        table = "\n".join(f"| {k} | {v} |" for k, v in params.items())
        self.writer.add_text("params", f"| parameter | value |\n|---|---|\n{table}", 0)
        self.writer.flush()

    def log_metrics(self, metrics: Mapping[str, float | None], step: int) -> None:
        for key, value in metrics.items():
            if value is not None:
                self.writer.add_scalar(key, float(value), step)
        self.writer.flush()

    def log_text(self, name: str, text: str) -> None:
        self.writer.add_text(name, text, 0)
        self.writer.flush()

    def close(self, status: str = "FINISHED") -> None:
        self.writer.close()


def default_mlflow_store(results_dir: Path) -> tuple[str, str | None]:
    """``(tracking URI, artifact location for new experiments)``: ``MLFLOW_TRACKING_URI`` and
    the server's default when it is set, else the SQLite store under ``results_dir``
    (:data:`MLFLOW_DIR`)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri, None
    store = (Path(results_dir) / MLFLOW_DIR).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}", (store / "artifacts").as_uri()


class MLflowTracker(Tracker):
    """One MLflow run through ``MlflowClient`` (nothing global: several runs may be open in one
    process).

    Args:
        uri, artifact_location: the store (:func:`default_mlflow_store`).
        experiment: its name (created when missing). run_name, tags: of a new run.
        run_id: continue this run (set running again); at each metric's first point, the
            steps it already has are read, and no point is logged at a step it has.
    """

    name = "mlflow"

    def __init__(self, uri: str, artifact_location: str | None, experiment: str, run_name: str,
                 tags: Mapping[str, str], run_id: str | None = None) -> None:  # fmt: skip
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self.resumed = run_id is not None
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
        else:
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                try:
                    exp_id = self.client.create_experiment(experiment, artifact_location=artifact_location)
                except Exception:  # noqa: BLE001 - another process created it meanwhile
                    exp = self.client.get_experiment_by_name(experiment)
                    if exp is None:
                        raise
                    exp_id = exp.experiment_id
            else:
                exp_id = exp.experiment_id
            self.run_id = self.client.create_run(exp_id, run_name=run_name, tags=dict(tags)).info.run_id
        self._last: dict[str, int] = {}

    def _last_step(self, key: str) -> int:
        """The highest step ``key`` has in the run (-1: none); read once per key on a resumed run."""
        if key not in self._last:
            history = self.client.get_metric_history(self.run_id, key) if self.resumed else []
            self._last[key] = max((m.step for m in history), default=-1)
        return self._last[key]

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:_MLFLOW_PARAM_CHARS]) for k, v in params.items()]
        for i in range(0, len(items), _MLFLOW_PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=items[i : i + _MLFLOW_PARAMS_PER_CALL])

    def log_metrics(self, metrics: Mapping[str, float | None], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        points = []
        for key, value in metrics.items():
            key = _UNSAFE_KEY.sub("_", key)
            if value is None or step <= self._last_step(key):
                continue
            points.append(Metric(key, float(value), now, step))
            self._last[key] = step
        if points:
            self.client.log_batch(self.run_id, metrics=points)

    def log_text(self, name: str, text: str) -> None:
        self.client.log_text(self.run_id, text, f"{name}.md")

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


class GuardedTracker(Tracker):
    """``inner`` with every failure turned into one :class:`TrackerWarning`, after which it
    logs nothing more (a tracker never stops or slows a run: an unreachable MLflow server
    would otherwise retry on every call)."""

    def __init__(self, inner: Tracker, what: str) -> None:
        self.inner, self.what, self.name = inner, what, inner.name
        self.broken = False

    def _call(self, method: str, *args: Any) -> None:
        if self.broken:
            return
        try:
            getattr(self.inner, method)(*args)
        except Exception as e:  # noqa: BLE001 - a tracker never fails the run
            self.broken = True
            warn(f"{self.name} tracker of {self.what}: {method} failed ({type(e).__name__}: {one_line(e)}); "
                 "nothing more is logged, the run goes on")  # fmt: skip

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._call("log_params", params)

    def log_metrics(self, metrics: Mapping[str, float | None], step: int) -> None:
        self._call("log_metrics", metrics, step)

    def log_text(self, name: str, text: str) -> None:
        self._call("log_text", name, text)

    def log_artifact(self, path: Path) -> None:
        self._call("log_artifact", path)

    def close(self, status: str = "FINISHED") -> None:
        self._call("close", status)


def one_line(e: BaseException) -> str:
    """The first line of ``e``'s message, at most 300 characters."""
    text = str(e).strip().splitlines()
    return text[0][:300] if text else ""


def warn(message: str) -> None:
    """Issue ``message`` as a :class:`TrackerWarning`."""
    warnings.warn(message, TrackerWarning, stacklevel=3)


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """``value`` (dataclasses and dicts nested) as flat ``prefix.name.name`` -> value; lists and
    tuples as JSON text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    if isinstance(value, (list, tuple)):
        value = json.dumps(value, default=str)
    return {prefix: value}


# --- training runs -----------------------------------------------------------------------------


def _mlflow_for_run(folder: Path, results_dir: Path, resumed: bool, params: dict, tags: dict) -> Tracker:
    """The MLflow run of run folder ``folder``: the one in its :data:`MLFLOW_RUN_FILE` when the
    run resumed from its checkpoint and the file names the same store and a run that exists;
    else a new run (the file's previous run, still marked running, is marked killed), its
    parameters logged and the file written."""
    uri, artifacts = default_mlflow_store(results_dir)
    kept_file = folder / MLFLOW_RUN_FILE
    try:
        kept = json.loads(kept_file.read_text())
    except (OSError, ValueError):
        kept = None
    experiment, run_name = f"hgbench/{tags['dataset']}/{folder.parent.name}", folder.name
    if kept is not None and kept.get("tracking_uri") == uri:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        try:
            old = client.get_run(kept["run_id"])
        except Exception:  # noqa: BLE001 - deleted or of another store: start a new one
            old = None
        if old is not None and resumed:
            return MLflowTracker(uri, artifacts, experiment, run_name, tags, run_id=kept["run_id"])
        if old is not None and old.info.status == "RUNNING":
            client.set_terminated(kept["run_id"], "KILLED")
    tracker = MLflowTracker(uri, artifacts, experiment, run_name, tags)
    atomic_write_json(kept_file, {"run_id": tracker.run_id, "tracking_uri": uri, "created": utc_now()})
    tracker.log_params(params)
    return tracker


class TrainingTracking:
    """A progress callback (:mod:`hgbench.train.progress`'s ``progress(event, info)``) that
    passes every event to ``inner`` and logs the run to a tracker (module docstring).

    The tracker opens at ``"start"`` (its ``resumed`` and ``done_steps`` say where the run
    continues), logs ``"log"`` and ``"epoch"`` events, and closes at ``"done"`` (``FINISHED``,
    after the record's figures and artifacts), at a checkpoint saved on a stop signal
    (``KILLED``), or when the callback is dropped or the process exits before either
    (``FAILED``: the run raised).

    Args:
        kind: ``tensorboard`` or ``mlflow``.
        folder: the run folder (:func:`hgbench.paths.run_dir`:
            ``<results>/runs/<dataset>/<protocol>/<variant>``, so the results folder is
            ``folder.parents[3]``). spec: the variant. settings: the protocol as run. dataset: its name.
    """

    def __init__(self, kind: str, folder: Path, spec: VariantSpec, settings: Protocol, dataset: str,
                 inner: Callable[[str, dict], None] | None) -> None:  # fmt: skip
        self.kind, self.folder, self.dataset = kind, Path(folder), dataset
        self.spec, self.settings = spec, settings
        self.inner = inner
        self.tracker: Tracker = Tracker()
        self._finalizer: weakref.finalize | None = None

    def __call__(self, event: str, info: dict) -> None:
        if self.inner is not None:
            self.inner(event, info)
        try:
            self._on(event, info)
        except Exception as e:  # noqa: BLE001 - a tracker never fails the run
            warn(f"{self.kind} tracker of {self.folder.name}: {event} failed ({type(e).__name__}: {one_line(e)})")

    def _on(self, event: str, info: dict) -> None:
        if event == "start":
            self._open(bool(info.get("resumed")), int(info.get("done_steps", 0)), int(info.get("world_size", 1)))
        elif event == "log":
            self.tracker.log_metrics({"train/loss": info.get("loss"), "train/lr": info.get("lr"),
                                      "train/samples_per_s": info.get("samples_per_s"),
                                      "train/data_wait": info.get("data_wait")}, info["step"])  # fmt: skip
        elif event == "epoch":
            self.tracker.log_metrics(epoch_metrics(info), info["steps"])
        elif event == "checkpoint" and info.get("reason") == "signal":
            self._close("KILLED")
        elif event == "done":
            self._finish()

    def params(self, world_size: int) -> dict[str, Any]:
        """The run's parameters: the variant's spec (``variant.*``), the protocol as run
        (``protocol.*``), ``dataset`` and ``world_size`` (processes)."""
        return {
            **flatten("variant", self.spec),
            **flatten("protocol", self.settings),
            "dataset": self.dataset,
            "world_size": world_size,
        }

    def _open(self, resumed: bool, step: int, world_size: int) -> None:
        if self._finalizer is not None:  # a second start: close the first
            self._close("FINISHED")
        tags = {"variant": self.spec.name, "protocol": self.settings.name, "dataset": self.dataset,
                "run_folder": str(self.folder.resolve())}  # fmt: skip
        params = self.params(world_size)
        what = self.folder.name
        try:
            if self.kind == "tensorboard":
                inner: Tracker = TensorBoardTracker(self.folder / TENSORBOARD_DIR, step + 1 if resumed else 0)
                if not resumed:
                    inner.log_params(params)
            else:
                inner = _mlflow_for_run(self.folder, self.folder.parents[3], resumed, params, tags)
        except Exception as e:  # noqa: BLE001 - a tracker never fails the run
            warn(
                f"{self.kind} tracker of {what} not opened ({type(e).__name__}: {one_line(e)}); the run goes on without it"
            )
            return
        self.tracker = GuardedTracker(inner, what)
        self._finalizer = weakref.finalize(self, self.tracker.close, "FAILED")

    def _finish(self) -> None:
        """The record's figures at its last step, the record and its learning curves as
        artifacts; then close ``FINISHED``."""
        try:
            record = read_record(self.folder / TRAIN_RECORD)
        except RecordError:
            record = None
        if record is not None:
            self.tracker.log_metrics(final_metrics(record), int(record.get("steps") or 0))
            if self.kind == "mlflow":
                self.tracker.log_artifact(self.folder / TRAIN_RECORD)
                with tempfile.TemporaryDirectory() as tmp:
                    png = learning_curves_png(record.get("history") or [], Path(tmp) / "learning_curves.png")
                    if png is not None:
                        self.tracker.log_artifact(png)
        self._close("FINISHED")

    def _close(self, status: str) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
            self.tracker.close(status)
        self.tracker = Tracker()


def epoch_metrics(entry: Mapping[str, Any]) -> dict[str, float | None]:
    """An epoch's metrics from its history entry (``epoch``, ``train_loss``, ``lr`` and
    ``val`` where validated: ``mean``, ``loss``, ``groups``): ``train/epoch_loss``,
    ``train/epoch``, ``val/mean``, ``val/loss``, ``val/<group>``."""
    out: dict[str, float | None] = {"train/epoch_loss": entry.get("train_loss"), "train/epoch": entry.get("epoch")}
    val = entry.get("val")
    if val:
        out["val/mean"] = val.get("mean")
        out["val/loss"] = val.get("loss")
        out.update({f"val/{g}": v for g, v in (val.get("groups") or {}).items()})
    return out


def final_metrics(record: Any) -> dict[str, float | None]:
    """A complete run's figures from its record: ``final/samples_per_s``, ``train_time_s``,
    ``wall_time_s``, ``data_wait_fraction``, ``parameters`` and the last validation
    (``final/val_mean``, ``final/val/<group>``)."""
    out = {f"final/{k}": record.get(k)
           for k in ("samples_per_s", "train_time_s", "wall_time_s", "data_wait_fraction", "parameters")}  # fmt: skip
    final = record.get("final") or {}
    out["final/val_mean"] = final.get("mean")
    out.update({f"final/val/{g}": v for g, v in (final.get("groups") or {}).items()})
    return out


def learning_curves_png(history: list[dict], path: Path) -> Path | None:
    """One run's learning curves (training loss and validation mean per epoch, from a train
    record's ``history``) as a PNG at ``path``; None without an epoch. The report's
    ``learning_curves.png`` (:mod:`hgbench.analysis.plots`) compares runs; this one file goes
    with its run to the tracker."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2), layout="constrained")
    loss_ax, val_ax = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    loss_ax.plot(epochs, [h.get("train_loss", math.nan) for h in history], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    val = [(h["epoch"], h["val"]["mean"]) for h in history if h.get("val")]
    if val:
        val_ax.plot(*zip(*val, strict=True), marker="o", color="tab:green")
    val_ax.set(xlabel="epoch", ylabel="validation mean (%)", title="validation accuracy")
    fig.savefig(path, dpi=100)
    return path


def track_training(kind: str | None, folder: Path, spec: VariantSpec, settings: Protocol, dataset: str,
                   progress: Callable[[str, dict], None] | None) -> Callable[[str, dict], None] | None:  # fmt: skip
    """``progress`` with the run logged to the tracker ``kind`` (None: :data:`TRACKER_ENV`), or
    ``progress`` itself when there is none (:class:`TrainingTracking`; call it on rank 0 only).
    An unknown name or a missing extra is one :class:`TrackerWarning` and no tracking."""
    try:
        kind = resolve_tracker(kind)
    except ValueError as e:
        warn(f"{e}; the run goes on without a tracker")
        return progress
    if kind is None:
        return progress
    return TrainingTracking(kind, folder, spec, settings, dataset, progress)


# --- profile sweeps ----------------------------------------------------------------------------


def profile_metrics(record: Any) -> dict[str, float | None]:
    """One profile setting's figures: ``p50_ms``, ``p90_ms``, ``p99_ms``, ``throughput_samples_per_s``
    and, where the record has it, ``accuracy`` (its ``accuracy.mean``, percent)."""
    latency = record.get("latency_ms") or {}
    accuracy = record.get("accuracy")
    return {
        "p50_ms": latency.get("p50_ms"),
        "p90_ms": latency.get("p90_ms"),
        "p99_ms": latency.get("p99_ms"),
        "throughput_samples_per_s": record.get("throughput_samples_per_s"),
        "accuracy": accuracy.get("mean") if isinstance(accuracy, Mapping) else None,
    }


def _setting_name(record: Any, path: Path | None) -> str:
    """A setting's name: its record file's stem (the profile record key), else its fields."""
    if path is not None:
        return Path(path).stem
    parts = (record.get(k) for k in ("variant", "backend", "device", "precision", "batch_size", "input_size"))
    return "__".join(str(p) for p in parts)


def track_profile(kind: str | None, rows: Iterable[tuple[Any, Path | None]], results_dir: Path, device: str = "",
                  accuracy: Iterable[tuple[Any, float]] | None = None) -> None:  # fmt: skip
    """Log one profile sweep as one tracker run: each setting's latency, throughput and
    accuracy where present (:func:`profile_metrics`); settings that failed are left out.

    TensorBoard: ``<results>/profile/tensorboard/<UTC time>/``, one hparams session per setting
    (variant, backend, precision, batch, input size against its figures: TensorBoard's HPARAMS
    table). MLflow: one run in the experiment ``hgbench/profile`` with a metric
    ``<setting>/<figure>`` each and the table as ``profile.csv``.

    Args:
        kind: ``tensorboard``, ``mlflow``, None (:data:`TRACKER_ENV`) or ``none``.
        rows: ``(profile record, its path)`` per setting (:attr:`hgbench.profile.plan.ProfileRun.rows`).
        device: a word for the MLflow run's name (``cpu``, ``cuda``).
        accuracy: ``(profile record, accuracy in percent)`` of the settings evaluated through
            their artifact (``hgbench profile --evaluate``: the deployed evaluation's
            ``result.mean``), the records being those of ``rows``.

    A failure is one :class:`TrackerWarning`; nothing is raised.
    """
    try:
        kind = resolve_tracker(kind)
        if kind is None:
            return
        measured = {id(r): value for r, value in accuracy or []}
        table = []
        for record, path in rows:
            if record.get("status", "ok") == "ok":
                metrics = profile_metrics(record)
                metrics["accuracy"] = measured.get(id(record), metrics["accuracy"])
                table.append((_setting_name(record, path), record, metrics))
        stamp = utc_now().replace(":", "").replace("-", "")
        if kind == "tensorboard":
            _profile_tensorboard(Path(results_dir) / "profile" / TENSORBOARD_DIR / stamp, table)
        else:
            _profile_mlflow(Path(results_dir), f"profile-{device or 'sweep'}-{stamp}", table)
    except Exception as e:  # noqa: BLE001 - a tracker never fails the sweep
        warn(f"{kind} tracker of the profile sweep failed ({type(e).__name__}: {one_line(e)}); its records are written")


_SETTING_FIELDS = ("variant", "backend", "precision", "batch_size", "input_size", "device")


def _profile_tensorboard(log_dir: Path, table: list[tuple[str, Any, dict]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        for name, record, metrics in table:
            hparams = {k: record.get(k) if isinstance(record.get(k), (int, float, str, bool)) else str(record.get(k))
                       for k in _SETTING_FIELDS}  # fmt: skip
            figures = {f"profile/{k}": v for k, v in metrics.items() if v is not None}
            writer.add_hparams(hparams, figures, run_name=name)


def _profile_mlflow(results_dir: Path, run_name: str, table: list[tuple[str, Any, dict]]) -> None:
    uri, artifacts = default_mlflow_store(results_dir)
    tracker = MLflowTracker(uri, artifacts, "hgbench/profile", run_name, {"kind": "profile"})
    status = "FAILED"
    try:
        tracker.log_params({"settings": len(table)})
        for name, _, metrics in table:
            tracker.log_metrics({f"{name}/{k}": v for k, v in metrics.items()}, 0)
        lines = [",".join([*_SETTING_FIELDS, "setting", *next(iter(table), ("", None, {}))[2]])]
        for name, record, metrics in table:
            cells = [
                *(str(record.get(k)) for k in _SETTING_FIELDS),
                name,
                *("" if v is None else f"{v}" for v in metrics.values()),
            ]
            lines.append(",".join(cells))
        tracker.client.log_text(tracker.run_id, "\n".join(lines) + "\n", "profile.csv")
        status = "FINISHED"
    finally:
        tracker.close(status)
