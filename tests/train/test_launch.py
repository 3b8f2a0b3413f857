"""Launchers without a cluster: the run lock (a second owner refused, a dead owner's lock taken
over), the launcher environment of data-parallel runs (torchrun, srun), the run states of
``hgbench runs``, the train-all launcher options, and one variant per GPU with subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hgbench.cli import app
from hgbench.train.distributed import (
    MASTER_PORT_RANGE,
    DistInfo,
    DistributedError,
    device_for_rank,
    dist_info_from_env,
    first_host,
    per_rank_batch,
    slurm_job_id,
)
from hgbench.train.launch import (
    LAUNCH_FILE,
    LaunchError,
    SlurmOptions,
    parse_gpus,
    read_launch,
    slurm_options,
    submit_slurm,
    train_command,
)
from hgbench.train.lock import LOCK_FILE, RunLockedError, lock_owner, run_lock
from hgbench.train.status import decide_state, run_statuses
from tests.conftest import make_record, tiny_protocol_yaml, write_record_file

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()

# The smoke protocol cut to 2 epochs of 2 steps of 4 samples at 64 px (a few seconds per run).
TINY_PROTOCOL = tiny_protocol_yaml()


@pytest.fixture
def tiny_protocol(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_PROTOCOL)
    return path


# --- the run lock ------------------------------------------------------------------------------

HOLDER = """
import sys, time
from hgbench.train.lock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def _hold_lock(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_owner_is_refused_with_the_lock_file_and_pid(tmp_path):
    folder = tmp_path / "run"
    holder = _hold_lock(folder)
    try:
        owner = lock_owner(folder)
        assert owner["pid"] == holder.pid and owner["host"] == socket.gethostname()
        with pytest.raises(RunLockedError) as err, run_lock(folder, wait_s=0.2):
            pass
        message = str(err.value)
        assert str(folder / LOCK_FILE) in message and f"pid {holder.pid}" in message and f"kill {holder.pid}" in message
        assert isinstance(err.value, ValueError)  # the CLI's user errors: exit status 2
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    holder = _hold_lock(folder)
    holder.send_signal(signal.SIGKILL)  # no chance to clean up: the file still names it
    holder.wait()
    assert json.loads((folder / LOCK_FILE).read_text())["pid"] == holder.pid
    assert lock_owner(folder) is None
    with run_lock(folder, wait_s=0):
        assert lock_owner(folder)["pid"] == os.getpid()
    assert lock_owner(folder) is None
    assert (folder / LOCK_FILE).read_text() == ""  # released: no owner named


def test_the_lock_is_reentrant_in_one_process_and_free_after(tmp_path):
    folder = tmp_path / "run"
    assert lock_owner(folder) is None  # no lock file: nobody
    with run_lock(folder), run_lock(folder):
        assert lock_owner(folder)["pid"] == os.getpid()
    assert lock_owner(folder) is None
    with run_lock(folder, wait_s=0):  # taken again at once
        pass


# --- launcher environment of a data-parallel run -----------------------------------------------


def test_torchrun_environment():
    env = {
        "RANK": "3",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "4",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "n1",
        "MASTER_PORT": "29500",
    }
    assert dist_info_from_env(env) == DistInfo(
        rank=3, local_rank=1, world_size=4, local_world_size=2, master_addr="n1", master_port=29500, launcher="torchrun"
    )
    info = dist_info_from_env(env)
    assert info.distributed and not info.is_main


def test_srun_environment_as_timm_reads_it():
    env = {
        "SLURM_PROCID": "1",
        "SLURM_LOCALID": "1",
        "SLURM_NTASKS": "2",
        "SLURM_STEP_ID": "0",
        "SLURM_JOB_ID": "4711",
        "SLURM_STEP_TASKS_PER_NODE": "2",
        "SLURM_JOB_NODELIST": "gpu07",
    }
    info = dist_info_from_env(env)
    assert (info.rank, info.local_rank, info.world_size, info.local_world_size, info.launcher) == (1, 1, 2, 2, "slurm")
    assert info.master_addr == "gpu07"
    low, high = MASTER_PORT_RANGE
    assert low <= info.master_port < high and info.master_port == dist_info_from_env(env).master_port
    assert dist_info_from_env({**env, "SLURM_JOB_ID": "4712"}).master_port != info.master_port
    assert dist_info_from_env({**env, "MASTER_ADDR": "login", "MASTER_PORT": "1234"}).master_addr == "login"


def test_a_batch_script_is_one_process_and_torchrun_wins_inside_slurm():
    batch = {"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "9"}  # sbatch -n 4, python run without srun
    assert dist_info_from_env(batch) == DistInfo()
    torchrun = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert dist_info_from_env({**batch, "SLURM_STEP_ID": "0", **torchrun}).launcher == "torchrun"
    assert dist_info_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_STEP_ID": "0"}).world_size == 1
    assert dist_info_from_env({}) == DistInfo() and not DistInfo().distributed


def test_a_multi_node_step_rendezvouses_on_its_first_host():
    env = {
        "SLURM_PROCID": "5",
        "SLURM_LOCALID": "1",
        "SLURM_NTASKS": "8",
        "SLURM_STEP_ID": "0",
        "SLURM_JOB_ID": "12",
        "SLURM_STEP_TASKS_PER_NODE": "4(x2)",
        "SLURM_STEP_NODELIST": "gpu[07-08]",
        "SLURM_JOB_NODELIST": "gpu[01-08]",
    }
    info = dist_info_from_env(env)
    assert (info.master_addr, info.local_world_size) == ("gpu07", 4)
    for nodelist, first in (
        ("gpu[07-08,11],cpu01", "gpu07"),
        ("rack[1-2]-n[01-04]", "rack1-n01"),
        ("a,b", "a"),
        ("n[3]", "n3"),
    ):
        assert first_host(nodelist) == first


@pytest.mark.parametrize(
    "env, words",
    [
        ({"RANK": "x", "WORLD_SIZE": "2"}, ["RANK", "'x'"]),
        ({"RANK": "2", "WORLD_SIZE": "2"}, ["rank 2", "world size 2"]),
        ({"SLURM_PROCID": "-1", "SLURM_NTASKS": "2", "SLURM_STEP_ID": "0"}, ["SLURM_PROCID", "negative"]),
    ],
)
def test_bad_launcher_variables_are_named(env, words):
    with pytest.raises(DistributedError) as err:
        dist_info_from_env(env)
    assert all(w in str(err.value) for w in words)


def test_the_global_batch_is_split_over_the_ranks():
    assert per_rank_batch(16, 4) == 4 and per_rank_batch(6, 1) == 6
    with pytest.raises(DistributedError) as err:
        per_rank_batch(6, 4, "protocol newell2016")
    message = str(err.value)
    assert (
        "protocol newell2016" in message
        and "batch_size 6" in message
        and "4 processes" in message
        and "1, 2, 3, 6" in message
    )


def test_device_of_a_rank():
    two = DistInfo(rank=1, local_rank=1, world_size=2)
    assert str(device_for_rank(two, "cpu")) == "cpu" and str(device_for_rank(DistInfo(), "cpu")) == "cpu"
    with pytest.raises(DistributedError, match="pass --device cuda"):
        device_for_rank(two, "cuda:1")


def test_two_gloo_ranks_join_one_process_group(tmp_path):
    """init_distributed on the CPU: two processes with torchrun's variables all-reduce a tensor."""
    script = textwrap.dedent("""
        import torch
        from hgbench.train.distributed import dist_info_from_env, init_distributed, destroy_distributed, is_main_process
        info = dist_info_from_env()
        init_distributed(info, torch.device("cpu"))
        t = torch.tensor([info.rank + 1.0])
        torch.distributed.all_reduce(t)
        print(torch.distributed.get_backend(), int(t.item()), is_main_process(), flush=True)
        destroy_distributed()
    """)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o[0].split() for o in outs] == [["gloo", "3", "True"], ["gloo", "3", "False"]]


def test_slurm_job_id_names_the_array_task():
    assert slurm_job_id({"SLURM_JOB_ID": "101", "SLURM_ARRAY_JOB_ID": "100", "SLURM_ARRAY_TASK_ID": "1"}) == "100_1"
    assert slurm_job_id({"SLURM_JOB_ID": "7"}) == "7"
    assert slurm_job_id({}) is None


# --- launcher options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, words",
    [
        (SlurmOptions(gpus_per_job=-1), ["--slurm-gpus-per-job -1"]),
        (SlurmOptions(time_min=2), ["--slurm-time 2", "120 s"]),
        (SlurmOptions(cpus_per_task=0), ["--slurm-cpus-per-task 0"]),
    ],
)
def test_bad_slurm_options_are_named(options, words):
    with pytest.raises(LaunchError) as err:
        options.check()
    assert all(w in str(err.value) for w in words)


def test_slurm_defaults_and_a_machine_without_slurm(monkeypatch, tmp_path):
    assert slurm_options("cpu").gpus_per_job == 0 and slurm_options(None).gpus_per_job == 1
    assert slurm_options("cuda", time_min=None, partition="gpu") == SlurmOptions(partition="gpu", gpus_per_job=1)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(LaunchError, match="sbatch is not on PATH"):
        submit_slurm([], None, "synthetic", None, tmp_path, SlurmOptions())


def test_a_slurm_job_trains_forced_once_and_requeues_on_usr1(monkeypatch, tmp_path):
    """TrainJob without a cluster: --force applies to the first start only (a restarted job
    resumes), the run's lock is held while it trains, and an engine stopped by SIGUSR1 hands
    the signal to the handler submitit installed (which requeues), then exits 138."""
    import hgbench.train
    from hgbench.config import get_variant, load_protocol
    from hgbench.train import TrainingInterrupted
    from hgbench.train.launch import TrainJob

    calls = []

    def fake_train(spec, protocol, dataset, data_root, results_dir, **kw):
        folder = hgbench.train.run_folder(spec, protocol, dataset, results_dir)
        calls.append((kw["force"], lock_owner(folder)["pid"]))
        if len(calls) == 3:
            raise TrainingInterrupted(spec.name, signal.SIGUSR1, 3, 8, folder / "checkpoint.pt")
        return {"skipped": False}

    monkeypatch.setattr(hgbench.train, "train_variant", fake_train)
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    job = TrainJob(get_variant("hg1"), load_protocol("smoke"), "synthetic", None, str(tmp_path), "cpu", force=True)
    assert job()["variant"] == "hg1"
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    job()
    assert calls == [(True, os.getpid()), (False, os.getpid())]
    assert job.checkpoint().function.force is False  # what submitit requeues

    requeued = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: requeued.append(signum))
    try:
        with pytest.raises(SystemExit) as stop:
            job()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert requeued == [signal.SIGUSR1] and stop.value.code == 138


def test_gpus_and_the_train_command():
    assert parse_gpus("0, 1,3") == ["0", "1", "3"]
    for bad in ("", "0,0"):
        with pytest.raises(LaunchError, match="--gpus"):
            parse_gpus(bad)
    cmd = train_command("hg1", "/p/tiny.yaml", "synthetic", None, "/r", device="cuda", force=True)
    assert cmd[:4] == [sys.executable, "-m", "hgbench", "train"]
    assert cmd[4:] == [
        "hg1",
        "--protocol",
        "/p/tiny.yaml",
        "--dataset",
        "synthetic",
        "--results",
        "/r",
        "--device",
        "cuda",
        "--force",
    ]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--launcher", "pbs"], ["--launcher 'pbs'", "local or slurm"]),
        (["--slurm-partition", "gpu"], ["--slurm-partition", "--launcher slurm"]),
        (["--wait"], ["--wait", "--launcher slurm"]),
        (["--launcher", "slurm", "--gpus", "0,1"], ["--gpus", "--slurm-gpus-per-job"]),
    ],
)
def test_train_all_launcher_options_exit_2(args, words):
    res = runner.invoke(app, ["train-all", "--protocol", "smoke", "--variants", "hg1", *args])
    assert res.exit_code == 2, res.output
    assert all(w in res.output for w in words), res.output


# --- run states ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, state, words",
    [
        (dict(complete=True, owner={"pid": 1}), "complete", []),
        (dict(owner={"pid": 42, "host": "n1"}), "running", ["pid 42 on n1"]),
        (
            dict(launch={"launcher": "slurm", "job_id": "7_0"}, slurm=("PENDING", "Priority")),
            "queued",
            ["PENDING", "Priority"],
        ),
        (dict(launch={"launcher": "slurm", "job_id": "7_0"}, slurm=("RUNNING", "None")), "running", ["RUNNING"]),
        (
            dict(launch={"launcher": "slurm", "job_id": "7_0"}, slurm=("CANCELLED", "None")),
            "interrupted",
            ["7_0", "CANCELLED"],
        ),
        (
            dict(launch={"launcher": "slurm", "job_id": "7_0"}, slurm=("OUT_OF_MEMORY", "None")),
            "failed",
            ["OUT_OF_MEMORY"],
        ),
        (dict(launch={"launcher": "slurm", "job_id": "7_0"}, result_file=True), "failed", ["raised"]),
        (dict(launch={"launcher": "slurm", "job_id": "7_0"}, has_checkpoint=True), "interrupted", ["ended"]),
        (dict(launch={"launcher": "local", "exit_code": 143}), "interrupted", ["SIGTERM"]),
        (dict(launch={"launcher": "local", "exit_code": 1}), "failed", ["exit status 1"]),
        (
            dict(launch={"launcher": "local", "pid": 2**22 + 12345, "host": socket.gethostname()}),
            "interrupted",
            ["launcher stopped"],
        ),
        (dict(has_checkpoint=True), "interrupted", []),
    ],
)
def test_run_state(kw, state, words):
    args = dict(complete=False, owner=None, launch=None, slurm=None, has_checkpoint=False) | kw
    got, detail = decide_state(**args)
    assert got == state and all(w in detail for w in words), (got, detail)


def _run_folder(results: Path, variant: str) -> Path:
    folder = results / "runs" / "synthetic" / "tiny-0123456789ab" / f"{variant}-ba9876543210"
    folder.mkdir(parents=True)
    return folder


def test_runs_lists_every_state_with_job_step_and_error_tail(tmp_path):
    results = tmp_path / "results"
    done = _run_folder(results, "hg1")
    write_record_file(done / "train.json", make_record("train", variant="hg1", protocol="tiny", steps=40))
    failed = _run_folder(results, "hg2")
    log = results / "logs" / "local" / "hg2.log"  # where the launchers write logs: runs reads no other file
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {i}\n" for i in range(30)) + "ValueError: the last line\n")
    (failed / LAUNCH_FILE).write_text(
        json.dumps(
            {
                "launcher": "local",
                "variant": "hg2",
                "protocol": "tiny",
                "dataset": "synthetic",
                "pid": 1,
                "host": "elsewhere",
                "gpu": "1",
                "stdout": str(log),
                "stderr": str(log),
                "exit_code": 1,
            }
        )
    )
    running = _run_folder(results, "hg4")
    _run_folder(results, "hg8")  # nothing in it: interrupted before a checkpoint
    with run_lock(running):
        by_variant = {s.variant: s for s in run_statuses(results, tail_lines=3)}
        res = runner.invoke(app, ["runs", "--results", str(results)])
    assert {v: s.state for v, s in by_variant.items()} == {
        "hg1": "complete",
        "hg2": "failed",
        "hg4": "running",
        "hg8": "interrupted",
    }
    assert by_variant["hg1"].step == 40 and by_variant["hg1"].checkpoint_time is None
    assert by_variant["hg2"].error_tail == ["line 28", "line 29", "ValueError: the last line"]
    assert by_variant["hg2"].job_id == "1" and by_variant["hg2"].log == log
    assert by_variant["hg4"].detail == f"pid {os.getpid()} on {socket.gethostname()}"
    assert by_variant["hg8"].detail == "no checkpoint"
    assert res.exit_code == 0, res.output
    for word in ("complete", "failed", "running", "interrupted", "ValueError: the last line", "exit status 1"):
        assert word in res.output, res.output
    assert runner.invoke(app, ["runs", "--results", str(tmp_path / "none")]).output.startswith("no training run")


# --- local launcher: one subprocess per GPU ----------------------------------------------------


@pytest.mark.slow
def test_one_variant_per_gpu_at_once(tmp_path, tiny_protocol):
    """--gpus 0,1 runs hg1 and hg2 as two `hgbench train` processes at once, each with its GPU in
    CUDA_VISIBLE_DEVICES (on the CPU here: --device cpu), and `hgbench runs` shows both complete."""
    results = tmp_path / "results"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "hgbench",
            "train-all",
            "--protocol",
            str(tiny_protocol),
            "--variants",
            "hg1,hg2",
            "--device",
            "cpu",
            "--gpus",
            "0,1",
            "--results",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    statuses = {s.variant: s for s in run_statuses(results)}
    assert {v: s.state for v, s in statuses.items()} == {"hg1": "complete", "hg2": "complete"}
    launches = {v: read_launch(s.folder) for v, s in statuses.items()}
    assert sorted(x["gpu"] for x in launches.values()) == ["0", "1"]
    assert all(x["exit_code"] == 0 and Path(x["stdout"]).is_file() for x in launches.values())
    started = sorted(x["started"] for x in launches.values())
    ended = sorted(x["ended"] for x in launches.values())
    assert started[1] <= ended[0]  # at once: the second started before the first ended
    for v, x in launches.items():
        assert f"{v} | done" in Path(x["stdout"]).read_text()


@pytest.mark.slow
def test_two_trains_of_one_run_one_exits_2_naming_the_lock(tmp_path, tiny_protocol):
    results = tmp_path / "results"
    long_protocol = tmp_path / "long.yaml"  # long enough that the first is still training when the second starts
    long_protocol.write_text(tiny_protocol.read_text().replace("steps_per_epoch: 2", "steps_per_epoch: 2000"))
    cmd = [
        sys.executable,
        "-m",
        "hgbench",
        "train",
        "hg1",
        "--protocol",
        str(long_protocol),
        "--device",
        "cpu",
        "--results",
        str(results),
    ]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not list(results.glob(f"runs/*/*/*/{LOCK_FILE}")) or lock_owner(next(results.glob("runs/*/*/*"))) is None:
            assert first.poll() is None and time.monotonic() < deadline, (
                first.stdout.read() if first.poll() is not None else "timeout"
            )
            time.sleep(0.1)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert second.returncode == 2, second.stdout + second.stderr
        assert LOCK_FILE in second.stderr and f"pid {first.pid}" in second.stderr, second.stderr
        first.send_signal(signal.SIGTERM)  # the first saves a checkpoint and stops: 128 + SIGTERM
        assert first.wait(timeout=300) == 128 + signal.SIGTERM
    finally:
        if first.poll() is None:
            first.kill()


def test_waiting_goes_on_through_a_squeue_outage_and_ends_when_the_job_has(monkeypatch):
    """squeue does not answer for two polls (a partial answer leaves the job out): the job is
    "unknown", not gone, and the wait goes on until Slurm says it completed; the outage timer
    starts again after an answer; an outage longer than SQUEUE_OUTAGE_S ends the wait, the job
    gone with the reason; a complete answer without the job means Slurm forgot it: gone."""
    from types import SimpleNamespace

    from hgbench import slurm

    def wait(answers):
        answers, seen = iter(answers), []
        monkeypatch.setattr(slurm, "squeue_query", lambda ids: next(answers))
        slurm.wait_slurm([SimpleNamespace(job_id="7")], poll_s=0,
                         on_change=lambda job, state, reason: seen.append((state, reason)))  # fmt: skip
        return seen

    running, done = ({"7": ("RUNNING", "None")}, True), ({"7": ("COMPLETED", "None")}, True)
    assert [s for s, _ in wait([running, ({}, False), ({}, False), done])] == ["RUNNING", "unknown", "COMPLETED"]

    clock = iter([0.0, 100.0, 200.0, 1000.0, 1200.0, 2100.0])  # the monotonic clock at each incomplete answer
    monkeypatch.setattr(slurm.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(slurm.time, "sleep", lambda s: None)
    seen = wait([({}, False), ({}, False), ({}, False), running, ({}, False), ({}, False), ({}, False)])
    assert [s for s, _ in seen] == ["unknown", "RUNNING", "unknown", "gone"]  # not 1000 s after 0: 1100 s after 1000
    assert "squeue did not answer for 900 s" in seen[-1][1] and "hgbench runs" in seen[-1][1]
    assert wait([running, ({}, True)]) == [("RUNNING", "None"), ("gone", "")]


def test_squeue_tells_a_forgotten_job_from_no_answer(monkeypatch):
    """One forgotten id: exit 1 "Invalid job id" (answered: the job is gone); a controller that
    does not answer, or a timeout: not answered."""
    import subprocess
    from types import SimpleNamespace

    from hgbench import slurm

    monkeypatch.setattr(slurm.shutil, "which", lambda cmd: "/usr/bin/" + cmd)

    def squeue(stderr, code=1, stdout=""):
        monkeypatch.setattr(slurm.subprocess, "run", lambda *a, **k: SimpleNamespace(
            returncode=code, stdout=stdout, stderr=stderr))  # fmt: skip
        return slurm.squeue_query(["7", "8_1"])

    assert squeue("slurm_load_jobs error: Invalid job id specified") == ({}, True)
    assert squeue("slurm_load_jobs error: Unable to contact slurm controller (connect failure)") == ({}, False)
    assert squeue("", code=0, stdout="8_1|RUNNING|None\n") == ({"8_1": ("RUNNING", "None")}, True)

    def timeout(*a, **k):
        raise subprocess.TimeoutExpired("squeue", 60)

    monkeypatch.setattr(slurm.subprocess, "run", timeout)
    assert slurm.squeue_query(["7"]) == ({}, False)
