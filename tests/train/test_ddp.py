"""Data-parallel training on the CPU (gloo), with real processes: two ranks started by
``torchrun`` with ``sync_batchnorm`` and the same global batch reach the same weights as one
process; a stop signal to rank 0 alone stops both ranks at the same step, and the run resumes
from rank 0's checkpoint; without ``sync_batchnorm`` the ranks normalise their own halves (so
the comparison can fail); a global batch that does not divide over the ranks is one line
before any work; :class:`hgbench.train.distributed.CpuSyncBatchNorm` against ``BatchNorm2d``
on the whole batch.

The network is the tiny variant of tests/conftest.py (2 stacks, 16 features, depth 2) at 64 px: at that
size its fp32 training follows the fp64 one to ~1e-7 over a few small SGD steps, so a 1e-5
tolerance tests the data-parallel engine and not rounding. (hg1 at 64 px has a 1 x 1
bottleneck whose batch norm over 4 values amplifies rounding: one process in fp32 is already
~1 % off its own fp64 gradient, and RMSprop's first step, ``lr * g / |g|``, turns any rounding
of a near-zero gradient into a full ``lr``: neither could be compared to 1e-5.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import tiny_protocol_yaml, write_registry

REPO = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1"]
HGBENCH = [sys.executable, "-m", "hgbench"]

PROTOCOL = tiny_protocol_yaml(
    description="tests: 2 epochs of 2 SGD steps of 4 samples at 64 px, batch norm over both ranks",
    optimizer={"name": "sgd", "lr": 5.0e-4, "momentum": 0.9},
    augmentation={"rotation_deg": 30, "rotation_prob": 0.5, "scale": [0.8, 1.2], "flip": True},
    flip_test=False,
    sync_batchnorm=True,
    heatmap_sigma=None,
    val_every=None,
    num_workers=None,
)

CHILD = """\
import os, signal, sys
from hgbench.config import get_variant, load_protocol
from hgbench.train import TrainingInterrupted, train_variant

stop_at = int(os.environ["STOP_RANK0_AT_STEP"])

def progress(event, info):  # called on rank 0 only
    if event == "step" and info["step"] == stop_at:
        os.kill(os.getpid(), signal.SIGUSR1)

try:
    train_variant(get_variant("tiny"), load_protocol(sys.argv[1]), "synthetic", None, sys.argv[2], device="cpu", progress=progress)
except TrainingInterrupted as e:
    print(f"rank {os.environ['RANK']}: {e}", flush=True)
    sys.exit(e.exit_code)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """The registry, the protocol (and its twin without sync_batchnorm), the environment of
    every process (one thread, no Slurm variables) and the one-process reference run."""
    root = tmp_path_factory.mktemp("ddp")
    registry = write_registry(root / "registry")
    sync, nosync = root / "sync.yaml", root / "nosync.yaml"
    sync.write_text(PROTOCOL)
    nosync.write_text(PROTOCOL.replace("sync_batchnorm: true", "sync_batchnorm: false"))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))
    }
    env.update(HGBENCH_VARIANTS_DIR=str(registry), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    reference = root / "reference"
    done = subprocess.run(
        [*HGBENCH, "train", "tiny", "--protocol", str(sync), "--device", "cpu", "--results", str(reference)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=root,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {"root": root, "sync": sync, "nosync": nosync, "env": env, "reference": _final(reference)}


def _torchrun(args: list[str], env: dict, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    cmd = [*TORCHRUN, "--master-port", str(_free_port()), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**env, **extra}, timeout=300, cwd=cwd)


def _final(results: Path) -> tuple[dict, dict]:
    """(record, checkpoint) of the one run under ``results``."""
    (folder,) = list(results.glob("runs/synthetic/*/tiny-*"))
    return json.loads((folder / "train.json").read_text()), torch.load(folder / "checkpoint.pt", weights_only=True)


def _max_difference(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


@pytest.mark.slow
def test_two_ranks_with_sync_batchnorm_follow_one_process_through_a_stop_and_resume(setup):
    env, root = setup["env"], setup["root"]
    results = root / "two-ranks"
    script = root / "child.py"
    script.write_text(CHILD)

    # SIGUSR1 to rank 0 alone after step 1: both ranks stop there, rank 0 saves, both exit 138
    stopped = _torchrun([str(script), str(setup["sync"]), str(results)], env, root, STOP_RANK0_AT_STEP="1")
    log = stopped.stdout + stopped.stderr
    assert stopped.returncode != 0, log
    for rank in (0, 1):
        assert f"rank {rank}: tiny: SIGUSR1 received; checkpoint saved at step 1/4" in log, log
    (folder,) = list(results.glob("runs/synthetic/*/tiny-*"))
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["step"] == 1 and not (folder / "train.json").exists()

    # every rank resumes from that checkpoint (through python -m hgbench, as a user types it)
    resumed = _torchrun(
        [
            "-m",
            "hgbench",
            "train",
            "tiny",
            "--protocol",
            str(setup["sync"]),
            "--device",
            "cpu",
            "--results",
            str(results),
        ],
        env,
        root,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming at step 1/4" in resumed.stdout and "2 processes" in resumed.stdout

    record, ckpt = _final(results)
    ref_record, ref_ckpt = setup["reference"]
    state, ref_state = ckpt["model_state"], ref_ckpt["model_state"]
    assert state.keys() == ref_state.keys()
    for name, value in ref_state.items():
        torch.testing.assert_close(state[name], value, rtol=1e-5, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
    torch.manual_seed(0)  # the protocol's seed: the weights the run started from
    from hgbench.config import get_variant
    from hgbench.models import create_model

    os.environ["HGBENCH_VARIANTS_DIR"] = env["HGBENCH_VARIANTS_DIR"]
    try:
        start = create_model(get_variant("tiny"), record["num_joints"], input_size=64).state_dict()
    finally:
        os.environ.pop("HGBENCH_VARIANTS_DIR")
    assert _max_difference(ref_state, start) > 1e-3  # the weights moved: 1e-5 is not a vacuous tolerance

    assert (record["world_size"], record["backend"], record["per_rank_batch_size"], record["batch_size"]) == (
        2,
        "gloo",
        2,
        4,
    )
    assert (ref_record["world_size"], ref_record["backend"], ref_record["per_rank_batch_size"]) == (1, None, 4)
    assert record["slurm_job_id"] is None
    assert [(s["world_size"], s["start_step"], s["end_step"]) for s in record["sessions"]] == [(2, 0, 1), (2, 1, 4)]
    assert all("slurm_job_id" in s for s in record["sessions"])
    for h, ref in zip(record["history"], ref_record["history"], strict=True):
        assert h["train_loss"] == pytest.approx(ref["train_loss"], rel=1e-5)  # the mean over both ranks' halves
        assert h["val"]["mean"] == pytest.approx(ref["val"]["mean"], abs=1e-6)
        assert h["val"]["loss"] == pytest.approx(ref["val"]["loss"], rel=1e-4)


@pytest.mark.slow
def test_without_sync_batchnorm_each_rank_normalises_its_own_half(setup):
    env, root = setup["env"], setup["root"]
    results = root / "no-sync"
    done = _torchrun(
        [
            "-m",
            "hgbench",
            "train",
            "tiny",
            "--protocol",
            str(setup["nosync"]),
            "--device",
            "cpu",
            "--results",
            str(results),
        ],
        env,
        root,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    record, ckpt = _final(results)
    assert record["world_size"] == 2 and record["protocol_settings"]["sync_batchnorm"] is False
    assert _max_difference(ckpt["model_state"], setup["reference"][1]["model_state"]) > 1e-3


def test_a_batch_that_does_not_divide_over_the_ranks_is_one_line_before_any_work(tmp_path, monkeypatch):
    from hgbench.cli import app

    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(write_registry(tmp_path / "registry")))
    protocol = tmp_path / "odd.yaml"
    protocol.write_text(PROTOCOL.replace("batch_size: 4", "batch_size: 3"))
    results = tmp_path / "results"
    torchrun_env = {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }
    res = CliRunner().invoke(
        app,
        ["train", "tiny", "--protocol", str(protocol), "--device", "cpu", "--results", str(results)],
        env=torchrun_env,
    )
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "batch_size 3" in lines[0] and "2 processes" in lines[0], lines[0]
    assert not torch.distributed.is_initialized()  # refused before the process group
    assert not (results / "runs").exists()


# --- CpuSyncBatchNorm against BatchNorm2d on the whole batch ------------------------------------


def _batchnorm_worker(rank: int, world: int, port: int) -> None:
    import torch.distributed as dist
    from torch import nn

    from hgbench.train.distributed import CpuSyncBatchNorm, convert_sync_batchnorm

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        x = torch.randn(6, 5, 7, 7) * 3 + 1  # 6 samples: 3 per rank
        weight = torch.randn(5, 7, 7)  # a loss that weighs every output differently
        full = nn.BatchNorm2d(5)
        with torch.no_grad():
            full.weight.uniform_(0.5, 1.5)
            full.bias.uniform_(-0.5, 0.5)
        sync = convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(5)), torch.device("cpu"))[0]
        assert type(sync) is CpuSyncBatchNorm
        sync.load_state_dict(full.state_dict())
        mine = x[rank::world].clone().requires_grad_()
        whole = x.clone().requires_grad_()
        mine_out = sync(mine)
        (mine_out * weight).sum().backward()  # the sum over the ranks of these is the whole batch's loss
        out = full(whole)
        (out * weight).sum().backward()
        torch.testing.assert_close(mine_out, out[rank::world], rtol=1e-5, atol=1e-5)
        sync.eval()
        full.eval()
        torch.testing.assert_close(mine.grad, whole.grad[rank::world], rtol=1e-5, atol=1e-5)
        grads = torch.cat([sync.weight.grad, sync.bias.grad])
        dist.all_reduce(grads)  # each rank holds its share (DistributedDataParallel averages them)
        torch.testing.assert_close(grads, torch.cat([full.weight.grad, full.bias.grad]), rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(sync.running_mean, full.running_mean)
        torch.testing.assert_close(sync.running_var, full.running_var)
        torch.testing.assert_close(sync(mine.detach()), full(whole.detach())[rank::world])  # eval: running statistics
    finally:
        dist.destroy_process_group()


def test_cpu_sync_batchnorm_is_batchnorm_over_every_ranks_samples():
    torch.multiprocessing.spawn(_batchnorm_worker, args=(2, _free_port()), nprocs=2)
