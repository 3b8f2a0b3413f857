"""Experiment trackers (hgbench/tracking.py), read back with the real libraries: TensorBoard's
``EventAccumulator`` on the event files and MLflow's ``MlflowClient`` on the local SQLite store.

* a run SIGKILLed while writing a checkpoint (after it had logged steps beyond its last good
  checkpoint, and an epoch's validation) and then resumed shows one curve per metric, each step
  once, in the same TensorBoard folder and the same MLflow run;
* a two-rank ``torchrun`` run logs once (rank 0), and ``HGBENCH_TRACKER`` reaches every rank;
* a run stopped by a signal is marked killed in MLflow, and its resume finishes the same run;
* a tracker that fails is a warning and the run completes; no tracker writes nothing;
* an unknown tracker on the command line is refused before any work (exit 2);
* a profile sweep is one tracker run with each setting's latency.

The network and protocol are the tiny ones of tests/conftest.py (3 epochs of 4 steps, a
checkpoint every 3 steps), with a progress line (and so a logged point) after every step.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_registry

REPO = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1"]
HGBENCH = [sys.executable, "-m", "hgbench"]
ALL_STEPS = list(range(1, 13))  # the tiny protocol: 3 epochs of 4 steps
EPOCH_ENDS = [4, 8, 12]

CHILD = """\
import os, signal, sys
import torch
torch.set_num_threads(1)
import hgbench.train.checkpoint as checkpoint
from hgbench.config import get_variant, load_protocol
from hgbench.train import train_variant

kill_at_write = int(os.environ.get("KILL_AT_CHECKPOINT_WRITE", "0"))
real_write, writes = checkpoint.atomic_write_bytes, [0]

def write(path, data):
    writes[0] += 1
    if writes[0] == kill_at_write:  # killed before this checkpoint reaches the disk
        os.kill(os.getpid(), signal.SIGKILL)
    real_write(path, data)

checkpoint.atomic_write_bytes = write
train_variant(get_variant("tiny"), load_protocol("tiny"), "synthetic", None, sys.argv[1], device="cpu",
              log_every_steps=1, tracker=sys.argv[2])
print("DONE", flush=True)
"""


def _env(tmp_path: Path, **extra: str) -> dict:
    registry = write_registry(tmp_path / "registry")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_", "MLFLOW_", "HGBENCH_TRACKER"))
    }
    env.update(HGBENCH_VARIANTS_DIR=str(registry), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **extra)
    return env


def _run_folder(results: Path) -> Path:
    (folder,) = list(results.glob("runs/synthetic/*/tiny-*"))
    return folder


def _killed_then_resumed(tmp_path: Path, tracker: str) -> Path:
    """Train the tiny run with ``tracker``, SIGKILLed at its 4th checkpoint write (the end of
    epoch 2, step 8: its last good checkpoint is step 6's, and steps 7-8 and epoch 2's
    validation were logged), then resume it to the end. Returns the results folder."""
    env, results = _env(tmp_path), tmp_path / "results"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    cmd = [sys.executable, str(script), str(results), tracker]
    killed = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**env, "KILL_AT_CHECKPOINT_WRITE": "4"}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and "DONE" in done.stdout, done.stdout + done.stderr
    assert json.loads((_run_folder(results) / "train.json").read_text())["sessions"][1]["start_step"] == 6
    return results


def _tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _raw_steps(folder: Path, tag: str) -> list[int]:
    """Every step ``tag`` was written at, across the event files, purged or not."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            steps += [event.step for v in event.summary.value if v.tag == tag]
    return steps


@pytest.mark.slow
def test_tensorboard_sigkill_and_resume_give_one_curve_without_duplicate_steps(tmp_path):
    pytest.importorskip("tensorboard")
    folder = _run_folder(_killed_then_resumed(tmp_path, "tensorboard")) / "tensorboard"
    # the killed session had logged steps 7 and 8 (and epoch 2's validation) after its last
    # checkpoint: both sessions wrote them, in two event files of the same folder
    assert len(list(folder.glob("events.out.tfevents.*"))) == 2
    raw = _raw_steps(folder, "train/loss")
    assert raw.count(7) == 2 and raw.count(8) == 2 and _raw_steps(folder, "val/mean").count(8) == 2
    # TensorBoard's reader shows one curve: each step once, in order (purge_step = 7)
    scalars = _tensorboard_scalars(folder)
    assert [s for s, _ in scalars["train/loss"]] == ALL_STEPS
    assert [s for s, _ in scalars["train/lr"]] == ALL_STEPS
    assert [s for s, _ in scalars["train/samples_per_s"]] == ALL_STEPS
    for tag in ("val/mean", "val/Head", "train/epoch_loss"):
        assert [s for s, _ in scalars[tag]] == EPOCH_ENDS, tag
    record = json.loads((folder.parent / "train.json").read_text())
    assert [round(v, 4) for _, v in scalars["val/mean"]] == [round(h["val"]["mean"], 4) for h in record["history"]]
    assert scalars["final/samples_per_s"] == [(12, pytest.approx(record["samples_per_s"], rel=1e-6))]


@pytest.mark.slow
def test_mlflow_sigkill_and_resume_continue_one_run_without_duplicate_steps(tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    results = _killed_then_resumed(tmp_path, "mlflow")
    folder = _run_folder(results)
    kept = json.loads((folder / ".mlflow-run.json").read_text())
    assert kept["tracking_uri"] == f"sqlite:///{(results / '.mlflow' / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=kept["tracking_uri"])
    run = client.get_run(kept["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == folder.name
    # one run for the two sessions
    assert len(client.search_runs([run.info.experiment_id])) == 1
    assert client.get_experiment(run.info.experiment_id).name == f"hgbench/synthetic/{folder.parent.name}"
    history = {key: [m.step for m in client.get_metric_history(kept["run_id"], key)] for key in run.data.metrics}
    for key in ("train/loss", "train/lr", "train/samples_per_s", "train/data_wait"):
        assert history[key] == ALL_STEPS, (key, history[key])
    for key in ("val/mean", "val/Head", "train/epoch_loss"):
        assert history[key] == EPOCH_ENDS, (key, history[key])
    assert history["final/val_mean"] == [12]
    assert run.data.params["variant.name"] == "tiny" and run.data.params["protocol.epochs"] == "3"
    assert {a.path for a in client.list_artifacts(kept["run_id"])} == {"train.json", "learning_curves.png"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("tracker", ["tensorboard", "mlflow"])
def test_two_rank_torchrun_logs_once(tmp_path, tracker):
    pytest.importorskip(tracker)
    if tracker == "mlflow":
        pytest.importorskip("sqlalchemy")  # the default local store
    results = tmp_path / "results"
    # the tracker through the environment, as a Slurm job or torchrun's ranks inherit it
    env = _env(tmp_path, HGBENCH_TRACKER=tracker)
    cmd = [*TORCHRUN, "--master-port", str(_free_port()), "-m", "hgbench", "train", "tiny", "--protocol", "tiny",
           "--device", "cpu", "--results", str(results)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = _run_folder(results)
    assert json.loads((folder / "train.json").read_text())["world_size"] == 2
    if tracker == "tensorboard":
        files = list((folder / "tensorboard").glob("events.out.tfevents.*"))
        assert len(files) == 1, files  # one writer: rank 0
        steps = [s for s, _ in _tensorboard_scalars(folder / "tensorboard")["train/loss"]]
    else:
        from mlflow.tracking import MlflowClient

        kept = json.loads((folder / ".mlflow-run.json").read_text())
        client = MlflowClient(tracking_uri=kept["tracking_uri"])
        experiments = client.search_experiments()
        runs = [r for e in experiments for r in client.search_runs([e.experiment_id])]
        assert len(runs) == 1 and runs[0].data.params["world_size"] == "2"
        steps = [m.step for m in client.get_metric_history(kept["run_id"], "train/loss")]
    assert steps == EPOCH_ENDS  # a progress line at each epoch's end, logged once


def test_a_failing_tracker_is_a_warning_and_the_run_completes(tmp_path, monkeypatch, one_thread):
    pytest.importorskip("mlflow")
    from hgbench.config import get_variant, load_protocol
    from hgbench.tracking import TrackerWarning
    from hgbench.train import train_variant

    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(write_registry(tmp_path / "registry")))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://nowhere")
    with pytest.warns(TrackerWarning, match="mlflow tracker of tiny-.* not opened"):
        record = train_variant(get_variant("tiny"), load_protocol("tiny"), "synthetic", None, tmp_path / "r",
                               device="cpu", tracker="mlflow")  # fmt: skip
    assert record["complete"] and record["steps"] == 12


def test_no_tracker_writes_nothing_and_reads_the_environment(tmp_path, monkeypatch):
    from hgbench.tracking import TRACKER_ENV, resolve_tracker, track_training

    monkeypatch.delenv(TRACKER_ENV, raising=False)
    assert resolve_tracker(None) is None and resolve_tracker("none") is None and resolve_tracker("NONE") is None
    inner = lambda event, info: None  # noqa: E731
    assert track_training(None, tmp_path, None, None, "synthetic", inner) is inner
    monkeypatch.setenv(TRACKER_ENV, "wandb")
    with pytest.raises(ValueError, match=r"--tracker 'wandb' \(or \$HGBENCH_TRACKER\): unknown tracker"):
        resolve_tracker(None)
    assert resolve_tracker("none") is None  # the option wins over the variable
    assert not any(tmp_path.iterdir())


def test_unknown_tracker_on_the_command_line_is_refused_before_any_work(tmp_path):
    env = _env(tmp_path)
    done = subprocess.run([*HGBENCH, "train", "tiny", "--protocol", "tiny", "--device", "cpu", "--results",
                           str(tmp_path / "r"), "--tracker", "wandb"], capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "unknown tracker; use tensorboard, mlflow or none" in done.stdout + done.stderr
    assert not (tmp_path / "r" / "runs").exists()


def _profile_rows() -> list:
    """Committed profile records of the CPU reference (benchmarks/reference), a few settings."""
    from hgbench.records import read_record

    paths = sorted(REPO.glob("benchmarks/reference/cpu-registry-64px/records/quiet-run1/profile/*/hg*__b1__*.json"))[:3]
    if not paths:
        pytest.skip("no committed profile records")
    return [(read_record(p), p) for p in paths]


def test_profile_sweep_is_one_tensorboard_run_with_each_settings_latency(tmp_path):
    pytest.importorskip("tensorboard")
    from hgbench.tracking import track_profile

    rows = _profile_rows()
    track_profile("tensorboard", rows, tmp_path)
    (sweep,) = list((tmp_path / "profile" / "tensorboard").iterdir())
    for record, path in rows:
        scalars = _tensorboard_scalars(sweep / path.stem)
        assert scalars["profile/p50_ms"][0][1] == pytest.approx(record["latency_ms"]["p50_ms"], rel=1e-6)


def test_profile_sweep_is_one_mlflow_run_with_each_settings_latency(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from hgbench.tracking import track_profile

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    rows = _profile_rows()
    track_profile("mlflow", rows, tmp_path, device="cpu", accuracy=[(rows[0][0], 71.5)])
    client = MlflowClient(tracking_uri=f"sqlite:///{(tmp_path / '.mlflow' / 'mlflow.db').resolve()}")
    (run,) = client.search_runs([client.get_experiment_by_name("hgbench/profile").experiment_id])
    assert run.info.status == "FINISHED"
    for record, path in rows:
        assert run.data.metrics[f"{path.stem}/p50_ms"] == pytest.approx(record["latency_ms"]["p50_ms"], rel=1e-6)
    assert run.data.metrics[f"{rows[0][1].stem}/accuracy"] == 71.5  # measured through its artifact
    assert f"{rows[1][1].stem}/accuracy" not in run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"profile.csv"}


@pytest.mark.slow
def test_mlflow_run_stopped_by_a_signal_is_killed_then_the_resume_finishes_it(tmp_path, monkeypatch, one_thread):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from hgbench.config import get_variant, load_protocol
    from hgbench.train import TrainingInterrupted, train_variant

    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(write_registry(tmp_path / "registry")))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("HGBENCH_TRACKER", "mlflow")  # the engine reads it when no tracker is passed
    results = tmp_path / "results"

    def stop_at_5(event, info):
        if event == "step" and info["step"] == 5:
            os.kill(os.getpid(), signal.SIGUSR1)

    args = (get_variant("tiny"), load_protocol("tiny"), "synthetic", None, results)
    with pytest.raises(TrainingInterrupted):
        train_variant(*args, device="cpu", progress=stop_at_5, log_every_steps=1)
    kept = json.loads((_run_folder(results) / ".mlflow-run.json").read_text())
    client = MlflowClient(tracking_uri=kept["tracking_uri"])
    assert client.get_run(kept["run_id"]).info.status == "KILLED"
    train_variant(*args, device="cpu", log_every_steps=1)
    run = client.get_run(kept["run_id"])
    assert run.info.status == "FINISHED"
    assert json.loads((_run_folder(results) / ".mlflow-run.json").read_text())["run_id"] == kept["run_id"]
    assert [m.step for m in client.get_metric_history(kept["run_id"], "train/loss")] == ALL_STEPS
