"""Trust in a shared results folder, the training side (issue 26): no write through a symbolic
link (the run lock, atomic writes), no file read or printed that a launcher's note names outside
the run's own folders, a linked ``runs/`` read alike by every command, divergence as a failure,
a failed ``--force`` putting the complete run back, and checkpoints that do not fit, lack a
field or are empty named in one line.

Every run is the tiny variant of tests/conftest.py for 2 steps at 64 px on the CPU, trained once
for the module and copied where a test changes it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hgbench import fileio
from hgbench.cli import app
from tests.conftest import make_record, tiny_protocol_yaml, write_record_file, write_registry

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")

PROTOCOL = tiny_protocol_yaml(epochs=1, steps_per_epoch=2, val_max_samples=4)
TWO_EPOCHS = tiny_protocol_yaml(epochs=2, steps_per_epoch=2, val_max_samples=4, checkpoint_every_steps=1)


@pytest.fixture()
def here(tmp_path, monkeypatch):
    """A working folder with the tiny registry and the protocols ``p.yaml`` and ``two.yaml``."""
    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(write_registry(tmp_path / "registry")))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(PROTOCOL)
    (tmp_path / "two.yaml").write_text(TWO_EPOCHS)
    return tmp_path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``results/`` holding one complete run of tiny under ``p.yaml`` (trained once)."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HGBENCH_VARIANTS_DIR", str(write_registry(root / "registry")))
        mp.chdir(root)
        (root / "p.yaml").write_text(PROTOCOL)
        old = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            r = runner.invoke(app, ["train", "tiny", "--protocol", "p.yaml", "--device", "cpu"])
        finally:
            torch.set_num_threads(old)
    assert r.exit_code == 0, r.output
    return root / "results"


def _train(*extra: str, protocol: str = "p.yaml"):
    return runner.invoke(app, ["train", "tiny", "--protocol", protocol, "--device", "cpu", *extra])


def _folder(results: Path) -> Path:
    (folder,) = list(Path(results).glob("runs/synthetic/*/tiny-*"))
    return folder


def _text(r) -> str:
    return " ".join(r.output.split())


def _one_error_line(r) -> str:
    lines = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return _text(r)


def _planned_folder(here: Path, protocol: str = "p.yaml") -> Path:
    from hgbench.config import get_variant, load_protocol
    from hgbench.train import run_folder

    return run_folder(get_variant("tiny"), load_protocol(str(here / protocol)), "synthetic", here / "results")


# --- no write through a link ------------------------------------------------------------------------


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_left_untouched(here):
    victim = here / "someone-elses.txt"
    victim.write_text("precious\n")
    folder = _planned_folder(here)
    folder.mkdir(parents=True)
    (folder / ".lock").symlink_to(victim)
    r = _train()
    text = _one_error_line(r)
    assert r.exit_code == 2, r.output
    assert f"{folder.resolve() / '.lock'}: this lock file is a symbolic link" in text and "rm " in text
    assert victim.read_text() == "precious\n" and not (folder / "checkpoint.pt").exists()
    from hgbench.train.lock import lock_owner

    assert lock_owner(folder) is None and victim.read_text() == "precious\n"  # the probe never opens it


def test_an_atomic_write_refuses_a_destination_that_is_a_link(tmp_path):
    victim = tmp_path / "victim.json"
    victim.write_text("{}\n")
    link = tmp_path / "runs" / "train.json"
    link.parent.mkdir()
    link.symlink_to(victim)
    with pytest.raises(
        fileio.LinkedFileError, match=r"train\.json: this file is a symbolic link \(to .*victim\.json\)"
    ):
        fileio.atomic_write_json(link, {"a": 1})
    assert victim.read_text() == "{}\n" and link.is_symlink()
    assert sorted(p.name for p in link.parent.iterdir()) == ["train.json"]  # no temporary file left
    linked_folder = tmp_path / "elsewhere"
    linked_folder.mkdir()
    (tmp_path / "linked").symlink_to(linked_folder)
    fileio.atomic_write_bytes(tmp_path / "linked" / "x.json", b"ok")  # a folder above may be a link
    assert (linked_folder / "x.json").read_bytes() == b"ok"


def test_a_record_that_is_a_link_is_not_replaced_by_train(here):
    victim = here / "victim.json"
    victim.write_text("{}\n")
    folder = _planned_folder(here)
    folder.mkdir(parents=True)
    (folder / "train.json").symlink_to(victim)
    r = _train()
    text = _one_error_line(r)
    assert r.exit_code == 2 and "train.json: this file is a symbolic link" in text, r.output
    assert victim.read_text() == "{}\n"


# --- full disk: the file named; a failed --force puts the complete run back ---------------------------


REAL_FSYNC = os.fsync


def _full_disk(monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio.os, "fsync", no_space)


def test_a_full_disk_names_the_file_that_could_not_be_written(tmp_path, monkeypatch):
    _full_disk(monkeypatch)
    with pytest.raises(OSError) as e:
        fileio.atomic_write_bytes(tmp_path / "a" / "checkpoint.pt", b"x")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "a" / "checkpoint.pt")
    assert os.listdir(tmp_path / "a") == []


def test_a_full_disk_while_training_names_the_checkpoint(here, monkeypatch):
    _full_disk(monkeypatch)
    r = _train()
    text = _one_error_line(r)
    assert r.exit_code == 1, r.output
    ckpt = _planned_folder(here).relative_to(here) / "checkpoint.pt"
    assert f"{ckpt}: No space left on device" in text and not ckpt.exists()


def test_a_failed_force_puts_the_complete_run_back(here, trained, monkeypatch):
    shutil.copytree(trained, here / "results")
    folder = _folder(here / "results")
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert set(before) == {"train.json", "checkpoint.pt"}
    _full_disk(monkeypatch)
    r = _train("--force")
    text = _one_error_line(r)
    assert r.exit_code == 1, r.output
    put_back = f"the complete run from before --force is put back in {folder.relative_to(here)}"
    assert "No space left on device" in text and put_back in text, r.output
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert after == before  # nothing left as *.previous, the complete run where it was
    monkeypatch.setattr(fileio.os, "fsync", REAL_FSYNC)
    r = runner.invoke(app, ["runs"])
    assert r.exit_code == 0 and "complete" in r.output, r.output


# --- divergence is a failure ------------------------------------------------------------------------


def _nan_from_step(monkeypatch, step: int) -> dict:
    """The loss of every step from ``step`` on (1-based, this session) is multiplied by NaN: the
    gradients and then the weights become NaN, as in a real divergence. Returns a switch:
    ``["on"] = False`` ends it."""
    from hgbench.train import step as step_module

    original = step_module.TrainStep._eager_forward_loss
    calls = {"n": 0, "on": True}

    def forward_loss(self, *args):
        calls["n"] += 1
        loss = original(self, *args)
        return loss * float("nan") if calls["on"] and calls["n"] >= step else loss

    monkeypatch.setattr(step_module.TrainStep, "_eager_forward_loss", forward_loss)
    return calls


def test_a_loss_that_becomes_nan_stops_the_run_naming_step_and_epoch(here, monkeypatch):
    _nan_from_step(monkeypatch, 3)
    r = _train(protocol="two.yaml")
    text = _one_error_line(r)
    assert r.exit_code == 1, r.output
    folder = _planned_folder(here, "two.yaml").relative_to(here)
    assert "training diverged: the loss is nan at step 3 (epoch 2 of 2)" in text, r.output
    assert f"the last checkpoint of finite losses (step 2) is kept: {folder / 'checkpoint.pt'}" in text
    ckpt = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 2 and all(
        torch.isfinite(v).all() for v in ckpt["model_state"].values() if v.is_floating_point()
    )
    record = json.loads((folder / "train.json").read_text())
    assert record["complete"] is False and record["diverged"] == {
        "step": 3, "epoch": 2, "loss": "nan", "checkpoint_step": 2
    }  # fmt: skip
    r = runner.invoke(app, ["runs"])
    assert r.exit_code == 0 and "failed" in r.output and "diverged: loss nan at step 3 (epoch 2)" in _text(r), r.output
    r = runner.invoke(app, ["report", "--format", "csv"])  # not reported (at 0.0 % or otherwise)
    assert r.exit_code == 2 and "1 x training diverged (loss nan at step 3)" in _text(r), r.output


def test_a_loss_nan_from_the_first_step_leaves_no_complete_run(here, monkeypatch):
    switch = _nan_from_step(monkeypatch, 1)
    r = _train()
    text = _one_error_line(r)
    assert r.exit_code == 1, r.output
    assert "the loss is nan at step 1 (epoch 1 of 1); no checkpoint was written before it" in text
    folder = _planned_folder(here)
    assert not (folder / "checkpoint.pt").exists()
    assert json.loads((folder / "train.json").read_text())["complete"] is False
    switch["on"] = False
    r = _train()  # trained again (nothing to resume): complete, the failure note gone
    assert r.exit_code == 0, r.output
    record = json.loads((folder / "train.json").read_text())
    assert record["complete"] is True and "diverged" not in record


def test_train_all_goes_on_after_a_diverged_variant(here, monkeypatch):
    _nan_from_step(monkeypatch, 1)
    r = runner.invoke(app, ["train-all", "--variants", "tiny", "--protocol", "p.yaml", "--device", "cpu"])
    text = _one_error_line(r)
    assert r.exit_code == 1 and "error: tiny: training diverged: the loss is nan at step 1" in text, r.output


def test_a_gradient_scaler_skipping_an_infinite_gradient_is_not_divergence(here):
    """fp16's scaler meets infinite gradients as a matter of course: only the loss is watched."""
    from hgbench.train.divergence import LossWatch

    watch = LossWatch(step=10)
    for value in (1.0, 2.0, 3.0):
        watch.add(torch.tensor(value))
    assert watch.first_non_finite() is None and watch.start == 13
    watch.add(torch.tensor(1.0))
    watch.add(torch.tensor(float("-inf")))
    assert watch.first_non_finite() == (15, "-inf")
    assert LossWatch.decode(max(LossWatch.encode((15, "x")), LossWatch.encode((14, "y")), 0)) == 14


# --- checkpoints that do not fit, lack a field, are empty or truncated --------------------------------


def _evaluate(path: Path):
    return runner.invoke(app, ["evaluate", str(path), "--device", "cpu"])


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda c: c.pop("num_joints"), ["field 'num_joints' missing", "--force"]),
        (lambda c: c.pop("protocol"), ["field 'protocol' missing"]),
        (lambda c: c.update(num_joints="16"), ["field 'num_joints' is a str, not a int"]),
        (
            lambda c: c["spec"]["architecture"].update(num_features=32),
            ["holds weights that cannot be loaded into the network its stored spec builds", "size mismatch"],
        ),
        (
            lambda c: c["model_state"].pop(next(iter(c["model_state"]))),
            ["holds weights that cannot be loaded", "Missing key"],
        ),
    ],
    ids=["no-num-joints", "no-protocol", "num-joints-text", "weights-too-narrow", "weights-missing"],
)
def test_evaluate_refuses_a_checkpoint_that_does_not_fit_in_one_line(here, trained, edit, words):
    shutil.copytree(trained, here / "results")
    path = _folder(here / "results") / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)
    r = _evaluate(path)
    text = _one_error_line(r)
    assert r.exit_code == 2 and f"error: {path}:" in text, r.output
    assert all(w in text for w in words), r.output


def test_resuming_a_checkpoint_whose_optimiser_state_does_not_fit_is_one_line(here, trained):
    shutil.copytree(trained, here / "results")
    folder = _folder(here / "results")
    (folder / "train.json").unlink()
    ckpt = torch.load(folder / "checkpoint.pt", weights_only=True)
    ckpt["optimizer_state"]["param_groups"][0]["params"] = [0]
    torch.save(ckpt, folder / "checkpoint.pt")
    r = _train()
    text = _one_error_line(r)
    assert r.exit_code == 2 and "holds an optimiser state that cannot be loaded" in text and "--force" in text


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda data: b"", "checkpoint.pt is empty (0 bytes"),
        (lambda data: data[: len(data) // 2], "checkpoint.pt unreadable (truncated or corrupt"),
    ],
    ids=["zero-bytes", "truncated"],
)
def test_runs_says_why_a_checkpoint_is_unreadable(here, trained, damage, words):
    shutil.copytree(trained, here / "results")
    folder = _folder(here / "results")
    (folder / "train.json").unlink()
    ckpt = folder / "checkpoint.pt"
    ckpt.write_bytes(damage(ckpt.read_bytes()))
    r = runner.invoke(app, ["runs"])
    assert r.exit_code == 0 and "interrupted" in r.output and words in _text(r) and "--force" in _text(r), r.output


# --- runs reads only the run's own files ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["named", "linked"])
def test_runs_never_prints_a_file_named_outside_the_run(here, how):
    secret = here / "secret.txt"
    secret.write_text("root:x:0:0:SECRET-LINE\n")
    folder = here / "results" / "runs" / "synthetic" / "p-0123456789ab" / "tiny-0123456789ab"
    folder.mkdir(parents=True)
    log = secret
    if how == "linked":  # a log inside results/logs that is a link to the secret
        log = here / "results" / "logs" / "local" / "tiny.log"
        log.parent.mkdir(parents=True)
        log.symlink_to(secret)
    note = {"launcher": "local", "variant": "tiny", "protocol": "p", "dataset": "synthetic", "pid": 1, "host": "h",
            "stdout": str(log), "stderr": str(log), "exit_code": 1}  # fmt: skip
    (folder / ".launch.json").write_text(json.dumps(note))
    r = runner.invoke(app, ["runs"])
    assert r.exit_code == 0 and "failed" in r.output and "not read" in r.output, r.output
    assert "SECRET-LINE" not in r.output
    from hgbench.train.status import run_statuses

    (status,) = run_statuses("results")
    assert status.error_log is None and status.log is None and status.error_tail == []
    assert (
        status.detail
        == f"exit status 1; .launch.json names a file outside the run folder and results/logs ({log}): not read"
    )


def test_runs_still_prints_the_tail_of_its_own_log(here):
    folder = here / "results" / "runs" / "synthetic" / "p-0123456789ab" / "tiny-0123456789ab"
    folder.mkdir(parents=True)
    log = here / "results" / "logs" / "local" / "tiny.log"
    log.parent.mkdir(parents=True)
    log.write_text("step 1\nRuntimeError: OWN-LOG-LINE\n")
    note = {"launcher": "local", "variant": "tiny", "protocol": "p", "dataset": "synthetic", "pid": 1, "host": "h",
            "stdout": str(log.resolve()), "stderr": str(log.resolve()), "exit_code": 1}  # fmt: skip
    (folder / ".launch.json").write_text(json.dumps(note))
    r = runner.invoke(app, ["runs"])
    assert r.exit_code == 0 and "OWN-LOG-LINE" in r.output and "not read" not in r.output, r.output


# --- a linked runs/ folder is read alike by every command -----------------------------------------------


def test_a_linked_runs_folder_is_read_by_report_as_by_runs(here, trained):
    elsewhere = here / "disk2"
    shutil.copytree(trained / "runs", elsewhere / "runs")
    write_record_file(here / "results" / "profile" / "h" / "x.json", make_record("profile"))
    (here / "results" / "runs").symlink_to(elsewhere / "runs")
    r = runner.invoke(app, ["runs"])
    assert r.exit_code == 0 and "complete" in r.output, r.output
    from hgbench.records import scan

    assert scan(here / "results").files == 2  # the train record under the link and the profile record
    r = runner.invoke(app, ["report", "--format", "csv"])
    assert r.exit_code == 0 and "2 record files read" in _text(r), r.output
    (elsewhere / "runs" / "loop").symlink_to(elsewhere)  # a link back up is read once, not forever
    assert scan(here / "results").files == 2


# --- a torchrun rank killed: the others say so in one line -----------------------------------------------

GLOO_PEER_GONE = (
    "\n[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] \nConnection closed by peer "
    "[127.0.0.1]:9867. This is typically caused by a remote worker crashing. Check the logs of the remote worker."
)


def test_a_broken_collective_is_one_line_naming_the_rank_that_died():
    from hgbench.train.distributed import DistInfo, lost_rank_error

    two = DistInfo(
        rank=0, world_size=2, local_world_size=2, master_addr="127.0.0.1", master_port=1, launcher="torchrun"
    )
    lost = lost_rank_error(RuntimeError(GLOO_PEER_GONE), two, "results/runs/x")
    assert lost is not None and lost.exit_code == 1
    assert str(lost).startswith("results/runs/x: rank 1 of this 2-process run stopped")
    assert "(Connection closed by peer [127.0.0.1]:9867)" in str(lost) and "\n" not in str(lost)
    four = DistInfo(
        rank=2, world_size=4, local_world_size=4, master_addr="127.0.0.1", master_port=1, launcher="torchrun"
    )
    assert "one of ranks 0, 1, 3 of this 4-process run" in str(lost_rank_error(RuntimeError(GLOO_PEER_GONE), four, "f"))
    assert lost_rank_error(RuntimeError("CUDA out of memory"), two, "f") is None  # another error stays itself
    assert lost_rank_error(RuntimeError(GLOO_PEER_GONE), DistInfo(), "f") is None  # one process: no peer


KILL_RANK1 = """\
import os, signal, sys
from hgbench.train import step as step_module

original = step_module.TrainStep.__call__
calls = {"n": 0}

def call(self, batch):  # rank 1 is killed (SIGKILL) at its second step
    calls["n"] += 1
    if os.environ.get("RANK") == "1" and calls["n"] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, batch)

step_module.TrainStep.__call__ = call
from hgbench.cli import app

app(["train", "tiny", "--protocol", sys.argv[1], "--device", "cpu", "--results", sys.argv[2]])
"""


@pytest.mark.slow
def test_rank_0_says_in_one_line_that_rank_1_was_killed(here):
    import socket
    import subprocess
    import sys

    (here / "four.yaml").write_text(
        tiny_protocol_yaml(epochs=1, steps_per_epoch=4, val_max_samples=4, checkpoint_every_steps=1)
    )
    (here / "child.py").write_text(KILL_RANK1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))
    }
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[2]), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(port), "--log-dir", "logs", "--redirects", "3", "child.py", "four.yaml", "results"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=here)
    assert done.returncode != 0, done.stdout + done.stderr
    (rank0,) = list((here / "logs").glob("*/attempt_0/0/stderr.log"))
    said = rank0.read_text()
    assert "Traceback" not in said and "│" not in said, said  # no traceback, plain or rich
    (line,) = [x for x in said.splitlines() if x.strip()]
    assert line.startswith("error: results/runs/synthetic/") and "rank 1 of this 2-process run stopped" in line, said
    assert "run the same command again to resume" in line
    assert torch.load(_folder(here / "results") / "checkpoint.pt", weights_only=True)["step"] >= 1  # kept
