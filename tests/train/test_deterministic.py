"""Deterministic training (issue 28, defects 6 and 9): ``hgbench train --deterministic`` sets
torch's deterministic algorithms, cuDNN's deterministic mode without ``benchmark`` and cuBLAS's
workspace setting for the run, restores the flags after it and records them; a run stopped by
SIGTERM and resumed under it ends with the weights of a run never stopped; ``samples_per_s``
leaves each session's warm-up steps out and says how many. CUDA's part of the promise (bit-
identical resume there too) is checked by ``benchmarks/gpu_check.py`` on a GPU."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from hgbench.cli import app
from hgbench.config import get_variant, load_protocol
from hgbench.train import TrainingInterrupted, train_variant
from hgbench.train import device as train_device
from hgbench.train.device import CUBLAS_WORKSPACE_CONFIG, DETERMINISTIC_ENV, DeviceError, training_flags
from hgbench.train.epoch import WARMUP_STEPS
from hgbench.train.record import _rates
from tests.conftest import write_registry

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(write_registry(tmp_path / "registry")))


@pytest.fixture()
def clean_env(monkeypatch):
    """The two variables unset here and put back as they were after the test."""
    for name in (DETERMINISTIC_ENV, "CUBLAS_WORKSPACE_CONFIG"):
        monkeypatch.setenv(name, "x")  # registers the original value for the undo
        monkeypatch.delenv(name)


def _flags():
    cudnn = torch.backends.cudnn
    return cudnn.benchmark, cudnn.deterministic, torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("device", ["cpu", "cuda"])  # flags only: no CUDA call is made
def test_training_flags_set_the_run_and_restore_the_process(device, clean_env, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    before = _flags()
    with training_flags(torch.device(device), deterministic=True) as record:
        assert _flags() == (False, True, True)
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE_CONFIG
    assert _flags() == before
    assert record == {"deterministic": True, "cudnn_benchmark": None if device == "cpu" else False,
                      "cublas_workspace_config": CUBLAS_WORKSPACE_CONFIG}  # fmt: skip
    with training_flags(torch.device(device), deterministic=False) as record:  # the default: benchmark on CUDA
        assert _flags()[0] is (device == "cuda") and not torch.are_deterministic_algorithms_enabled()
    assert _flags() == before and record["deterministic"] is False


def test_training_flags_are_restored_when_the_run_fails(clean_env):
    before = _flags()
    with pytest.raises(RuntimeError, match="boom"), training_flags(torch.device("cpu"), deterministic=True):
        raise RuntimeError("boom")
    assert _flags() == before


def test_too_late_for_cublas_is_refused_naming_the_variable(clean_env, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # CUDA already started
    with pytest.raises(DeviceError, match="CUBLAS_WORKSPACE_CONFIG=:4096:8"):
        with training_flags(torch.device("cuda"), deterministic=True):
            pass
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # set before CUDA started: fine
    with training_flags(torch.device("cuda"), deterministic=True) as record:
        assert record["cublas_workspace_config"] == ":16:8"


def test_request_deterministic_sets_both_variables_for_this_process_and_its_ranks(clean_env):
    train_device.request_deterministic()
    assert os.environ[DETERMINISTIC_ENV] == "1" and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert train_device.deterministic_requested()


def _session(start, end, warm_steps=None, warm_time=None):
    s = {"start_step": start, "end_step": end, "train_time_s": 0.0}
    if warm_steps is not None:
        s.update(warmup_steps=warm_steps, warmup_time_s=warm_time)
    return s


def test_samples_per_s_leaves_each_sessions_warm_up_out_and_says_how_many():
    two = SimpleNamespace(step=12, train_time_s=11.0, wall_time_s=20.0, data_wait_s=1.0,
                          sessions=[_session(0, 5, 3, 3.0), _session(5, 12, 3, 2.0)])  # fmt: skip
    rates = _rates(two, batch_size=4)
    assert rates["samples_per_s"] == pytest.approx((12 - 6) * 4 / (11.0 - 5.0))
    assert rates["warmup_steps_excluded"] == 6 and rates["samples_per_s_all_steps"] == pytest.approx(12 * 4 / 11.0)
    only_warm = SimpleNamespace(step=2, train_time_s=3.0, wall_time_s=4.0, data_wait_s=0.0,
                                sessions=[_session(0, 2, 2, 3.0)])  # fmt: skip
    rates = _rates(only_warm, batch_size=4)  # no step after a warm-up: the rate over every step
    assert rates["warmup_steps_excluded"] == 0 and rates["samples_per_s"] == rates["samples_per_s_all_steps"]
    older = SimpleNamespace(step=8, train_time_s=4.0, wall_time_s=5.0, data_wait_s=0.0, sessions=[_session(0, 8)])
    assert _rates(older, batch_size=2)["warmup_steps_excluded"] == 0  # a checkpoint from before warm-up was noted


def test_hgbench_train_deterministic_records_its_flags_and_restores_them(tmp_path, registry, clean_env):
    before = _flags()
    result = CliRunner().invoke(app, ["train", "tiny", "--protocol", "tiny", "--device", "cpu", "--deterministic",
                                      "--results", str(tmp_path / "results")])  # fmt: skip
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "results").glob("runs/synthetic/*/*/train.json")
    record = json.loads(path.read_text())
    assert record["deterministic"] is True and record["cudnn_benchmark"] is None  # the CPU: no cuDNN
    assert record["cublas_workspace_config"] == ":4096:8"
    assert record["warmup_steps_excluded"] == WARMUP_STEPS == record["sessions"][0]["warmup_steps"]
    assert record["samples_per_s"] > 0 and record["samples_per_s_all_steps"] > 0
    assert _flags() == before


def test_a_deterministic_run_stopped_by_sigterm_and_resumed_ends_with_the_same_weights(tmp_path, registry):
    spec, protocol = get_variant("tiny"), load_protocol("tiny")
    whole = train_variant(spec, protocol, "synthetic", None, tmp_path / "whole", device="cpu", deterministic=True)

    def stop_at_step_5(event, info):
        if event == "step" and info["step"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # the engine saves a checkpoint after this step and stops

    with pytest.raises(TrainingInterrupted):
        train_variant(spec, protocol, "synthetic", None, tmp_path / "split", device="cpu", deterministic=True,
                      progress=stop_at_step_5)  # fmt: skip
    resumed = train_variant(spec, protocol, "synthetic", None, tmp_path / "split", device="cpu", deterministic=True)
    assert len(resumed["sessions"]) == 2 and resumed["sessions"][1]["start_step"] == 5
    assert resumed["warmup_steps_excluded"] == 2 * WARMUP_STEPS
    a = torch.load(Path(whole.path).parent / "checkpoint.pt", weights_only=True)["model_state"]
    b = torch.load(Path(resumed.path).parent / "checkpoint.pt", weights_only=True)["model_state"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["train_loss"] for h in whole["history"]] == [h["train_loss"] for h in resumed["history"]]
