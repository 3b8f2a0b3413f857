"""Exact resume and preemption, with real processes: a training run killed with SIGKILL at
random moments (mid-epoch, during validation, in the middle of a checkpoint write) and
restarted each time ends with the same weights, optimiser state, losses and validation
figures as the run never interrupted, bit for bit (CPU, one thread); SIGTERM to
``hgbench train`` leaves a checkpoint and a one-line message; ``hgbench train-all`` writing to a
file shows progress while it runs.

The tiny variant and protocol come from the tiny registry of tests/conftest.py (3 epochs of 4 steps, a
checkpoint every 3 steps and at each epoch end, a plateau schedule whose learning rate
drops during the run).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import write_registry

REPO = Path(__file__).resolve().parents[2]
HGBENCH = [sys.executable, "-m", "hgbench"]

CHILD = """\
import os, signal, sys, tempfile
import torch
torch.set_num_threads(1)
import hgbench.train.checkpoint as checkpoint
from hgbench.config import get_variant, load_protocol
from hgbench.train import train_variant

kill_at_write = int(os.environ.get("KILL_AT_CHECKPOINT_WRITE", "0"))
real_write, writes = checkpoint.atomic_write_bytes, [0]

def write(path, data):
    writes[0] += 1
    if writes[0] == kill_at_write:  # die half-way through writing the temporary file, as atomic_write_bytes names it
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.write(fd, data[: len(data) // 2])
        print("killed in checkpoint write", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    real_write(path, data)

checkpoint.atomic_write_bytes = write

def progress(event, info):
    if event == "step":
        print(f"step {info['step']}", flush=True)

train_variant(get_variant("tiny"), load_protocol("tiny"), "synthetic", None, sys.argv[1], device="cpu", progress=progress)
print("DONE", flush=True)
"""


@pytest.fixture()
def env(tmp_path):
    registry = write_registry(tmp_path / "registry")
    return {**os.environ, "HGBENCH_VARIANTS_DIR": str(registry), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _run_folder(results: Path) -> Path:
    (folder,) = list(results.glob("runs/synthetic/tiny-*/tiny-*"))
    return folder


def _final_state(results: Path) -> tuple[dict, dict]:
    folder = _run_folder(results)
    record = json.loads((folder / "train.json").read_text())
    return record, torch.load(folder / "checkpoint.pt", weights_only=True)


def _numbers(history: list[dict]) -> str:
    """Losses, learning rates and validation figures of every epoch, as canonical JSON (NaN-safe)."""
    return json.dumps(
        [{"epoch": h["epoch"], "train_loss": h["train_loss"], "lr": h["lr"], "val": h.get("val")} for h in history],
        sort_keys=True,
    )


def _start(script: Path, results: Path, env: dict, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), str(results)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={**env, **extra},
    )


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path, env):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    why = f"random seed {seed}"

    reference = tmp_path / "reference"
    done = subprocess.run(
        [sys.executable, str(script), str(reference)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0 and "DONE" in done.stdout, done.stdout + done.stderr

    results, kills, log = tmp_path / "interrupted", [], []
    # kill 1 and 3 at a random step plus a random delay (mid-epoch, or in a validation or a
    # checkpoint write); kill 2 inside the first checkpoint write of its session
    for attempt, mode in enumerate(("random", "checkpoint-write", "random")):
        extra = {"KILL_AT_CHECKPOINT_WRITE": "1"} if mode == "checkpoint-write" else {}
        child = _start(script, results, env, **extra)
        target = None
        for line in child.stdout:
            log.append(f"[{attempt}] {line.rstrip()}")
            if line.startswith("step ") and mode == "random":
                step = int(line.split()[1])
                target = target or min(step + rng.randrange(0, 4), 11)
                if step >= target:
                    time.sleep(rng.uniform(0.0, 0.4))
                    child.send_signal(signal.SIGKILL)
                    kills.append(f"step {step}+")
                    break
        child.wait(timeout=300)
        if mode == "checkpoint-write":
            assert child.returncode == -signal.SIGKILL, "\n".join(log)
            kills.append("checkpoint write")
    final = _start(script, results, env)
    out, _ = final.communicate(timeout=300)
    log.append(out)
    assert final.returncode == 0 and "DONE" in out, "\n".join(log)

    ref_record, ref_ckpt = _final_state(reference)
    record, ckpt = _final_state(results)
    context = f"{why}; kills at {kills}"
    assert ref_ckpt["model_state"].keys() == ckpt["model_state"].keys()
    for name, value in ref_ckpt["model_state"].items():
        assert torch.equal(value, ckpt["model_state"][name]), f"{name} differs ({context})"
    for key, state in ref_ckpt["optimizer_state"]["state"].items():
        for field, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(ckpt["optimizer_state"]["state"][key][field])), (
                context
            )
    assert ckpt["scheduler_state"] == ref_ckpt["scheduler_state"], context
    assert _numbers(record["history"]) == _numbers(ref_record["history"]), context
    assert (
        record["history"][-1]["lr"] < record["history"][0]["lr"]
        or ref_record["history"][-1]["lr"] == ref_record["history"][0]["lr"]
    )
    assert record["steps"] == 12 and record["complete"], context
    # the sessions chain: each resumed where the checkpoint it read was saved (a session killed
    # before its first checkpoint leaves no trace); two at least when the last start resumed
    sessions, steps = record["sessions"], [line for line in out.splitlines() if line.startswith("step ")]
    assert sessions[0]["start_step"] == 0 and sessions[-1]["end_step"] == 12, context
    assert all(b["start_step"] == a["end_step"] for a, b in itertools.pairwise(sessions)), context
    assert len(sessions) >= 2 or (steps and steps[0] == "step 1"), context
    assert record["train_time_s"] <= record["wall_time_s"]
    assert not list(_run_folder(results).glob(".checkpoint.pt.*.tmp"))  # the killed write's temporary file is cleared


@pytest.mark.slow
def test_sigterm_to_hgbench_train_saves_a_checkpoint_and_says_so(tmp_path, env):
    results = tmp_path / "results"
    cmd = [*HGBENCH, "train", "tiny", "--protocol", "tiny", "--device", "cpu", "--results", str(results)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not list(results.glob("runs/*/*/*/checkpoint.pt")) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)  # wait for the first checkpoint (step 3): the run is mid-epoch 1 now
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signal.SIGTERM, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "tiny: SIGTERM received; checkpoint saved at step" in lines[0], err
    assert "run the same command again to resume (exit status 143)" in lines[0]
    ckpt = torch.load(_run_folder(results) / "checkpoint.pt", weights_only=True)
    assert 3 <= ckpt["step"] < 12 and not (_run_folder(results) / "train.json").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming at step {ckpt['step']}/12" in again.stdout
    record = json.loads((_run_folder(results) / "train.json").read_text())
    assert record["complete"] and record["steps"] == 12 and len(record["sessions"]) == 2


@pytest.mark.slow
def test_train_all_log_file_shows_progress_while_it_runs(tmp_path, env):
    log = tmp_path / "train-all.log"
    cmd = [
        *HGBENCH,
        "train-all",
        "--protocol",
        "tiny",
        "--variants",
        "tiny,tiny2",
        "--device",
        "cpu",
        "--results",
        str(tmp_path / "res"),
    ]
    with open(log, "w") as f:
        child = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        seen_while_running = ""
        while child.poll() is None:
            text = log.read_text()
            if "tiny | epoch 1/3 | validation" in text:
                seen_while_running = text
                break
            time.sleep(0.05)
        child.wait(timeout=300)
    assert child.returncode == 0, log.read_text()
    assert "tiny | training on cpu (fp32), 12 steps" in seen_while_running, seen_while_running
    assert (
        "tiny | epoch 1/3 | step 4/12 | loss " in seen_while_running and "samples/s | data wait" in seen_while_running
    )
    text = log.read_text()
    assert "tiny2 | epoch 3/3 | validation PCK@0.2 Mean" in text and "training runs" in text
