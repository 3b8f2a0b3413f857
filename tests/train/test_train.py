"""The training engine on the CPU: data pipeline, device and precision checks, the step in
every precision, checkpoints (refusals, corrupt files), records, progress lines.

The network is a tiny registered variant (2 stacks, 16 features, depth 2) under a tiny
protocol (64 px), from a registry written to a temporary folder (HGBENCH_VARIANTS_DIR), so
that every run here takes seconds on a shared 2-core CPU. The kill/resume and signal tests
are in test_train_resume.py.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from rich.console import Console

import hgbench
from hgbench.config import OptimizerConfig, get_variant, load_protocol
from hgbench.data import make_dataset
from hgbench.models import create_model
from hgbench.train import (
    CheckpointError,
    DeviceError,
    TrainingInterrupted,
    load_checkpoint,
    resolve_device,
    run_folder,
    train_variant,
)
from hgbench.train.device import check_precision
from hgbench.train.optim import build_optimizer
from hgbench.train.progress import TrainDisplay
from hgbench.train.sampler import TrainSampler, make_train_loader
from hgbench.train.step import TrainStep, prepare_model
from tests.conftest import TINY_PROTOCOL, write_registry


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    folder = write_registry(tmp_path / "registry")
    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(folder))
    return folder


def short(protocol, **changes):
    return dataclasses.replace(protocol, **changes)


# --- data pipeline ------------------------------------------------------------------------------


def test_batch_k_is_a_function_of_k_and_passes_are_permutations():
    full = TrainSampler(10, 3, seed=5, num_batches=9)
    batches = list(full)
    assert len(batches) == 9 and full.batches_per_pass == 3  # 10 // 3 batches a pass, the last sample dropped
    resumed = list(TrainSampler(10, 3, seed=5, start=4, num_batches=5))
    assert resumed == batches[4:]
    for p in range(3):
        seen = [i for b in batches[3 * p : 3 * p + 3] for i, _ in b]
        assert len(set(seen)) == 9 and set(seen) <= set(range(10))
        assert all(seed == (5, 0, p, i) for b in batches[3 * p : 3 * p + 3] for i, seed in b)
    assert [i for i, _ in batches[0]] != [i for i, _ in batches[3]]  # each pass its own order
    assert TrainSampler(10, 3, seed=6, num_batches=1).batch(0) != batches[0]
    assert full.position(7) == {"batch": 7, "pass": 2, "batch_in_pass": 1, "batches_per_pass": 3}


def test_replicas_split_each_pass_into_disjoint_shards():
    shards = [TrainSampler(12, 2, seed=0, num_replicas=3, rank=r) for r in range(3)]
    first_pass = [sorted(i for k in range(s.batches_per_pass) for i, _ in s.batch(k)) for s in shards]
    assert sorted(i for shard in first_pass for i in shard) == list(range(12))
    with pytest.raises(ValueError, match="fewer than one batch"):
        TrainSampler(5, 8, seed=0)


@pytest.mark.slow
def test_samples_do_not_depend_on_the_number_of_workers():
    protocol = load_protocol("smoke")
    ds = make_dataset("synthetic", None, "train", augmentation=protocol.augmentation, input_size=64, output_size=16)
    got = {}
    for workers in (0, 2):
        loader = make_train_loader(ds, TrainSampler(len(ds), 4, seed=3, start=7, num_batches=3), num_workers=workers)
        got[workers] = [(b["index"].tolist(), b["image"], b["heatmaps"]) for b in loader]
    assert len(got[0]) == 3
    for (i0, im0, hm0), (i2, im2, hm2) in zip(got[0], got[2]):
        assert i0 == i2 and torch.equal(im0, im2) and torch.equal(hm0, hm2)
    # the augmentation is drawn per sample: the same sample in another pass is augmented differently
    again = ds.item(got[0][0][0][0], (3, 0, 99, got[0][0][0][0]))
    assert not torch.equal(again["image"], got[0][0][1][0])


# --- device and precision -------------------------------------------------------------------------


def test_device_errors_name_the_option_and_the_fix(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match=r"--device 'gpu': expected cpu, cuda or cuda:N"):
        resolve_device("gpu")
    with pytest.raises(DeviceError, match="fp16 on --device cpu.*bf16 or fp32"):
        check_precision(torch.device("cpu"), "fp16", "protocol p")
    check_precision(torch.device("cpu"), "bf16")
    from hgbench.train import check_device

    message = "newell2016-bf16: compile: true with precision bf16 and channels_last: true fails on --device cpu"
    with pytest.raises(DeviceError, match=message):
        check_device("cpu", load_protocol("newell2016-bf16"))
    assert check_device("cpu", load_protocol("newell2016")) == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="--device cuda: no CUDA device.*use --device cpu"):
            resolve_device("cuda")
    # a one-GPU machine without bf16 (documented torch.cuda API, patched: no GPU here)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(DeviceError, match=r"--device cuda:7: this machine has 1 CUDA device\(s\) \(cuda:0\)"):
        resolve_device("cuda:7")
    assert resolve_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(
        DeviceError, match=r"protocol newell2016-bf16: precision bf16 needs.*Tesla T4 \(7\.5\).*fp16 or fp32"
    ):
        check_precision(torch.device("cuda", 0), "bf16", "protocol newell2016-bf16")


def test_cli_refuses_a_missing_gpu_before_any_work(registry, tmp_path):
    from typer.testing import CliRunner

    from hgbench.cli import app

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = CliRunner().invoke(
        app, ["train", "tiny", "--protocol", "tiny", "--device", "cuda", "--results", str(tmp_path / "res")]
    )
    assert r.exit_code == 2 and "--device cuda" in r.output and "--device cpu" in r.output
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("precision,channels_last", [("fp32", False), ("bf16", True), ("fp16", False)])
def test_train_step_runs_in_every_precision_on_the_cpu(registry, precision, channels_last):
    torch.manual_seed(0)
    spec = get_variant("tiny")
    device = torch.device("cpu")
    model = prepare_model(create_model(spec, 14, input_size=64), device, channels_last)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step = TrainStep(
        model,
        build_optimizer(OptimizerConfig(), model.parameters()),
        spec.supervision,
        device,
        precision,
        channels_last,
    )
    batch = {
        "image": torch.rand(2, 3, 64, 64),
        "heatmaps": torch.rand(2, 14, 16, 16),
        "target_weight": torch.ones(2, 14),
    }
    loss = step(batch)
    assert isinstance(loss, torch.Tensor) and loss.dtype == torch.float32 and torch.isfinite(loss)
    assert step.scaler.is_enabled() == (precision == "fp16")
    assert all(v.dtype == before[k].dtype for k, v in model.state_dict().items())  # weights stay fp32
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items() if v.is_floating_point())


# --- runs, records, checkpoints --------------------------------------------------------------------


def test_bf16_run_is_recorded_and_is_another_run_than_fp32(registry, tmp_path, one_thread, monkeypatch):
    spec, base = get_variant("tiny"), short(load_protocol("tiny"), epochs=1, steps_per_epoch=2, val_max_samples=8)
    bf16 = short(base, precision="bf16")
    for name, value in {"SLURM_JOB_ID": "80", "SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "3"}.items():
        monkeypatch.setenv(name, value)  # a task of a Slurm job array (one process: no job step)
    rec = train_variant(spec, bf16, "synthetic", None, tmp_path, device="cpu")
    assert rec["complete"] and rec["precision"] == "bf16" and rec["protocol_settings"]["precision"] == "bf16"
    assert rec["slurm_job_id"] == "77_3" and [(s["slurm_job_id"], s["world_size"]) for s in rec["sessions"]] == [
        ("77_3", 1)
    ]
    assert (rec["world_size"], rec["backend"], rec["per_rank_batch_size"]) == (1, None, bf16.batch_size)
    assert rec["device"] == "cpu" and rec["steps"] == 2 and rec["samples_per_s"] > 0
    assert 0 <= rec["data_wait_fraction"] <= 1 and 0 < rec["train_time_s"] <= rec["wall_time_s"]
    assert Path(rec.path).parent == run_folder(spec, bf16, "synthetic", tmp_path)
    assert run_folder(spec, base, "synthetic", tmp_path) != run_folder(spec, bf16, "synthetic", tmp_path)
    assert not run_folder(spec, base, "synthetic", tmp_path).exists()
    # a complete run is skipped, its record unchanged
    again = train_variant(spec, bf16, "synthetic", None, tmp_path, device="cpu")
    assert again["skipped"] and again["created"] == rec["created"]
    # the checkpoint rebuilds the network; evaluation runs where the model is
    model, ckpt = load_checkpoint(ckpt_path := Path(rec["checkpoint"]), device="cpu")
    assert ckpt["step"] == 2 and ckpt["protocol"]["precision"] == "bf16" and not model.training
    assert ckpt_path.parent == Path(rec.path).parent


def test_eval_record_carries_the_run_identity_and_pipeline_check(registry, tmp_path, one_thread):
    """The eval record's identity is the train record's (records.identity), and it says whether
    the protocol was a pipeline check, so a reader never asks the registry."""
    from hgbench.records.identity import NETWORK, TRAINING, join_key
    from hgbench.train.evaluation import evaluate_checkpoint

    protocol = short(load_protocol("tiny"), epochs=1, steps_per_epoch=1, val_max_samples=4, pipeline_check=True)
    rec = train_variant(get_variant("tiny"), protocol, "synthetic", None, tmp_path, device="cpu")
    ev = evaluate_checkpoint(rec["checkpoint"]).record
    assert ev["pipeline_check"] is True and ev["trained_on"] == ev["dataset"] == "synthetic"
    assert join_key(ev, NETWORK + TRAINING) == join_key(rec, NETWORK + TRAINING)
    assert ev["spec"] == rec["spec"] and ev["variant"] == "tiny"


def test_a_planned_run_checks_the_variant_and_the_device_once(registry, tmp_path, one_thread, monkeypatch):
    """plan_training checks before any work; the engine does not check again (checked=True)."""
    import hgbench.config
    import hgbench.train.device
    import hgbench.train.setup
    from hgbench.train.launch import plan_training, train_local

    calls = {"check_compatible": 0, "check_device": 0}

    def counted(module, name):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    for module in (hgbench.config, hgbench.train.setup):
        monkeypatch.setattr(module, "check_compatible", counted(module, "check_compatible"))
    for module in (hgbench.train.device, hgbench.train.setup):
        monkeypatch.setattr(module, "check_device", counted(module, "check_device"))
    protocol = tmp_path / "once.yaml"
    protocol.write_text(
        TINY_PROTOCOL.replace("epochs: 3", "epochs: 1").replace("steps_per_epoch: 4", "steps_per_epoch: 1")
    )
    plan = plan_training("tiny", str(protocol), "synthetic", None, tmp_path / "results", device="cpu")
    assert calls == {"check_compatible": 1, "check_device": 1}
    (rec,) = train_local(plan).records
    assert rec["complete"] and calls == {"check_compatible": 1, "check_device": 1}
    train_variant(get_variant("tiny"), plan.protocol, "synthetic", None, tmp_path / "direct", device="cpu")
    assert calls == {"check_compatible": 2, "check_device": 2}  # a direct call checks for itself


def test_a_run_without_steps_never_completes(registry, tmp_path):
    spec, protocol = get_variant("tiny"), load_protocol("tiny")
    object.__setattr__(protocol, "steps_per_epoch", 0)  # what validation forbids, forced past it
    with pytest.raises(ValueError):
        train_variant(spec, protocol, "synthetic", None, tmp_path, device="cpu")
    assert not list(tmp_path.rglob("train.json"))


TWO_STEPS = {"epochs": 1, "steps_per_epoch": 2, "val_max_samples": 8}


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    """A complete 1-epoch, 2-step run of tiny, trained once for the module."""
    results = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HGBENCH_VARIANTS_DIR", str(write_registry(tmp_path_factory.mktemp("registry"))))
        old = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            train_variant(
                get_variant("tiny"), short(load_protocol("tiny"), **TWO_STEPS), "synthetic", None, results, device="cpu"
            )
        finally:
            torch.set_num_threads(old)
    return results


@pytest.fixture()
def finished_run(registry, one_run, tmp_path):
    """A copy of ``one_run`` without its record, so the next call resumes from the checkpoint;
    returns (spec, protocol, results folder, checkpoint path)."""
    results = tmp_path / "results"
    shutil.copytree(one_run, results)
    (record,) = results.rglob("train.json")
    record.unlink()
    return get_variant("tiny"), short(load_protocol("tiny"), **TWO_STEPS), results, record.parent / "checkpoint.pt"


def test_corrupt_checkpoint_names_the_file_and_force(finished_run):
    spec, protocol, results, ckpt = finished_run
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        train_variant(spec, protocol, "synthetic", None, results, device="cpu")
    assert str(ckpt) in str(e.value) and "--force" in str(e.value) and "truncated or corrupt" in str(e.value)
    assert "weights_only=False" not in str(e.value)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(ckpt)
    # --force starts again; the refused file is replaced by a good checkpoint
    rec = train_variant(spec, protocol, "synthetic", None, results, device="cpu", force=True)
    assert rec["complete"] and torch.load(ckpt, weights_only=True)["hgbench_version"] == hgbench.__version__


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"variant": "tiny2"}, r"variant differs, checkpoint -> this run: 'tiny2' -> 'tiny'"),
        ({"protocol.epochs": 7}, r"protocol settings differs.*epochs: 7 -> 1"),
        ({"protocol.precision": "bf16"}, r"precision: 'bf16' -> 'fp32'"),
        ({"dataset": "lsp"}, r"dataset differs.*'lsp' -> 'synthetic'"),
        ({"hgbench_version": "99.0.0"}, r"written by hgbench 99\.0\.0.*upgrade hgbench"),
        ({"format": 1}, r"format 1.*no exact-resume state"),
    ],
)
def test_a_checkpoint_of_another_run_is_refused_naming_the_difference(finished_run, change, expected):
    spec, protocol, results, path = finished_run
    ckpt = torch.load(path, weights_only=True)
    for key, value in change.items():
        target = ckpt
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=expected) as e:
        train_variant(spec, protocol, "synthetic", None, results, device="cpu")
    assert "--force" in str(e.value) and str(path) in str(e.value)


def test_signals_save_a_checkpoint_and_name_the_exit_status(registry, tmp_path, one_thread):
    """SIGUSR1 (Slurm's warning signal) and SIGINT sent to this process during a run; the
    SIGTERM case runs the CLI in a subprocess (test_train_resume.py)."""
    import signal

    spec, protocol = get_variant("tiny"), short(load_protocol("tiny"), epochs=2, steps_per_epoch=3, val_max_samples=8)
    for sig, code in ((signal.SIGUSR1, 138), (signal.SIGINT, 130)):
        sent = []

        def progress(event, info, sig=sig, sent=sent):
            if event == "step" and not sent:
                sent.append(info["step"])
                os.kill(os.getpid(), sig)

        with pytest.raises(TrainingInterrupted) as e:
            train_variant(spec, protocol, "synthetic", None, tmp_path, device="cpu", progress=progress)
        assert e.value.exit_code == code and e.value.signal == sig.name
        assert f"{sig.name} received; checkpoint saved at step" in str(e.value) and "run the same command again" in str(
            e.value
        )
        assert (
            e.value.checkpoint.is_file() and torch.load(e.value.checkpoint, weights_only=True)["step"] == e.value.step
        )
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back
    rec = train_variant(spec, protocol, "synthetic", None, tmp_path, device="cpu")
    assert rec["complete"] and len(rec["sessions"]) == 3 and rec["steps"] == 6
    assert rec["train_time_s"] == pytest.approx(sum(s["train_time_s"] for s in rec["sessions"]))


def test_progress_lines_in_a_log_file():
    out = io.StringIO()
    with TrainDisplay(Console(file=out, width=200)) as display:
        assert not display.terminal and display.log_every_s == 30.0
        show = display.callback("hg1")
        show("start", {"total_steps": 20, "done_steps": 5, "device": "cpu", "precision": "bf16", "resumed": True})
        show("step", {"step": 6})
        show(
            "log",
            {
                "variant": "hg1",
                "epoch": 1,
                "epochs": 2,
                "step": 6,
                "total_steps": 20,
                "loss": 1.23e-3,
                "samples_per_s": 45.25,
                "data_wait": 0.031,
                "eta_s": 83.4,
                "lr": 2.5e-4,
            },
        )
        show(
            "validate",
            {
                "variant": "hg1",
                "epoch": 1,
                "epochs": 2,
                "metric": "pck",
                "threshold": 0.2,
                "mean": 12.34,
                "loss": 1.2e-3,
            },
        )
    lines = out.getvalue().splitlines()
    tty = io.StringIO()
    with TrainDisplay(Console(file=tty, width=200, force_terminal=True)) as display:  # the rich bar
        assert display.terminal and display.log_every_s == 2.0
        show = display.callback("hg1")
        show("start", {"total_steps": 20, "done_steps": 0, "device": "cpu", "precision": "fp32", "resumed": False})
        for step in (1, 2):
            show("step", {"step": step})
        show(
            "log",
            {
                "variant": "hg1",
                "epoch": 1,
                "epochs": 2,
                "step": 2,
                "total_steps": 20,
                "loss": 1.23e-3,
                "samples_per_s": 45.25,
                "data_wait": 0.031,
                "eta_s": None,
                "lr": 2.5e-4,
            },
        )
    assert "train hg1" in tty.getvalue() and "2/20" in tty.getvalue() and "loss 1.23e-03" in tty.getvalue()
    assert lines == [
        "hg1 | training on cpu (bf16), resuming at step 5/20",
        "hg1 | epoch 1/2 | step 6/20 | loss 1.230e-03 | 45.2 samples/s | data wait 3% | lr 0.00025 | ETA 0:01:23",
        "hg1 | epoch 1/2 | validation PCK@0.2 Mean 12.3% | loss 1.200e-03",
    ]


def test_the_fast_protocol_is_newell2016_with_bf16_channels_last_and_compile():
    paper, fast = load_protocol("newell2016"), load_protocol("newell2016-bf16")
    assert paper.precision == "fp32" and not paper.channels_last and not paper.compile
    assert (fast.precision, fast.channels_last, fast.compile) == ("bf16", True, True)
    assert "fast" in fast.description
    differing = ("name", "description", "precision", "channels_last", "compile", "num_workers")
    same = {k: v for k, v in dataclasses.asdict(fast).items() if k not in differing}
    assert same == {k: v for k, v in dataclasses.asdict(paper).items() if k in same}
    assert json.dumps(dataclasses.asdict(fast))  # plain data


def test_throughput_benchmark_measures_four_rates_and_flops(registry, one_thread):
    from hgbench.train.bench import add_flops, markdown_table, measure_training_throughput

    protocol = short(load_protocol("tiny"), batch_size=2)
    r = measure_training_throughput(get_variant("tiny"), protocol, "cpu", steps=2, warmup=1, repetitions=2)
    assert set(r.samples_per_s) == {"data", "step", "full", "bare"} and all(v > 0 for v in r.samples_per_s.values())
    assert all(len(v) == 2 for v in r.rounds.values()) and 0 <= r.data_wait <= 1
    add_flops(r, forward_flops_per_sample=1e9, ceiling_tflops=0.5)
    assert r.train_gflop_per_sample == 3.0 and "data" not in r.tflops
    assert r.tflops["step"] == pytest.approx(r.samples_per_s["step"] * 3e9 / 1e12)
    assert r.ceiling_ratio["full"] == pytest.approx(r.tflops["full"] / 0.5)
    row = markdown_table([r]).splitlines()[-1]
    assert row.startswith("| tiny | 64 | 2 | fp32 | 0 |") and f"{r.ratio('step', 'bare'):.3f}" in row
