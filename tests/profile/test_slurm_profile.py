"""profile --launcher slurm on a real Slurm cluster (one node, partitions kindA and kindB over it:
.ci/slurm/up.sh, which .ci/run starts): the same sweep on two partitions, one machine label each,
followed with --wait; ``hgbench runs`` and ``hgbench report`` over it; an unknown partition
refused before anything is submitted; a job that fails while the other's records stay.

Skipped with the reason where ``sbatch`` is absent or no cluster answers. The sweep is hg1, eager
fp32, batch 1 at 64 px, one timed repetition of two calls, one CPU and one thread per job
(seconds per job), so that both jobs run at once on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hgbench.profile.launch import profile_job_statuses
from hgbench.slurm import squeue_states
from tests.train.test_slurm import _cluster_missing

_MISSING = _cluster_missing()
needs_cluster = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")
pytestmark = [pytest.mark.slow]

SWEEP = ["--variants", "hg1", "--backend", "eager", "--device", "cpu", "--input-size", "64", "--min-time-s", "0.01",
         "--min-iters", "2", "--repetitions", "1", "--quiet-attempts", "1", "--warmup", "0", "--warmup-s", "0",
         "--threads", "1", "--slurm-cpus-per-task", "1", "--slurm-time", "10"]  # fmt: skip
TIMEOUT_S = 240


def _hgbench(*args: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "hgbench", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)  # fmt: skip


def _profile(results: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    """``hgbench profile --launcher slurm SWEEP ARGS --wait``; cancels what it left in the queue."""
    try:
        return _hgbench("profile", "--launcher", "slurm", *SWEEP, "--results", str(results), "--cache-dir", str(cache),
                        "--wait", *args)  # fmt: skip
    finally:
        for job in profile_job_statuses(results):
            if job.state in ("pending", "running"):
                subprocess.run(["scancel", job.job_id], check=False)


def _records(results: Path, label: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "profile" / label).glob("*.json"))]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def two_partitions(tmp_path_factory, cache):
    """The sweep on kindA and kindB, each job labelled by its partition."""
    results = tmp_path_factory.mktemp("two") / "results"
    return results, _profile(results, cache, "--slurm-partition", "kindA,kindB")


@needs_cluster
def test_one_job_per_partition_each_with_its_machine_label(two_partitions):
    results, proc = two_partitions
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "kindA: Slurm job" in out and "kindB: Slurm job" in out and "COMPLETED" in out, out
    for label in ("kindA", "kindB"):
        (record,) = _records(results, label)
        assert record["provenance"]["machine"] == label and record["status"] == "ok", record
    jobs = profile_job_statuses(results)
    assert sorted((j.partition, j.label, j.state) for j in jobs) == [
        ("kindA", "kindA", "complete"),
        ("kindB", "kindB", "complete"),
    ], jobs
    listing = _hgbench("runs", "--results", str(results), timeout=120)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    for j in jobs:
        line = next(line for line in listing.stdout.splitlines() if f" {j.job_id} " in line)
        assert j.partition in line and "complete" in line, listing.stdout


@needs_cluster
def test_the_report_runs_over_both_machines(two_partitions):
    results, proc = two_partitions
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rep = _hgbench("report", "--results", str(results), timeout=180)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "logs/profile" not in rep.stdout, rep.stdout  # the jobs' notes are hidden from the record scan
    written = "\n".join(p.read_text() for p in (results / "report").glob("*.md"))
    named = rep.stdout + written
    if not ("kindA" in named and "kindB" in named):
        pytest.skip("the report does not name machine labels yet (the cross-machine report of issue 29 part 4)")


@needs_cluster
def test_an_unknown_partition_is_refused_by_slurm_and_nothing_is_submitted(tmp_path, cache):
    before = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True).stdout.split()
    proc = _profile(tmp_path / "results", cache, "--slurm-partition", "kindA,no-such-kind")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--slurm-partition no-such-kind" in proc.stderr and "invalid partition" in proc.stderr.lower(), proc.stderr
    after = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True).stdout.split()
    assert set(after) <= set(before), (before, after)  # kindA, checked first and fine, was not submitted either
    assert not profile_job_statuses(tmp_path / "results")


@needs_cluster
def test_a_failed_job_is_named_and_the_other_s_records_stay(tmp_path, cache):
    """The job labelled ``broken`` cannot write its records (``profile/broken`` is a file, a fault
    only the job meets: the submit host checks the results folder, the jobs write under it)."""
    results = tmp_path / "results"
    (results / "profile").mkdir(parents=True)
    (results / "profile" / "broken").write_text("not a folder")
    proc = _profile(results, cache, "--slurm-partition", "kindA,kindB", "--machine-label", "good,broken")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    jobs = {j.label: j for j in profile_job_statuses(results)}
    assert (jobs["good"].state, jobs["broken"].state) == ("complete", "failed"), jobs
    bad = jobs["broken"]
    (named,) = [line for line in proc.stderr.splitlines() if line.startswith("failed: broken")]
    assert "partition kindB" in named and f"job {bad.job_id}" in named and str(bad.error_log) in named, proc.stderr
    assert not [line for line in proc.stderr.splitlines() if line.startswith("failed: good")], proc.stderr
    (record,) = _records(results, "good")
    assert record["provenance"]["machine"] == "good" and record["status"] == "ok"
    assert squeue_states([bad.job_id]).get(bad.job_id, ("gone",))[0] in ("FAILED", "gone")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--slurm-partition", "kindA,kindB", "--machine-label", "one"], ["--machine-label one", "--slurm-partition", "2"]),
        (["--machine-label", "x", "--slurm-partition", "kindA", "--launcher", "local"], ["--slurm-partition", "--launcher slurm"]),
        (["--slurm-partition", "kindA", "--evaluate"], ["--evaluate", "--launcher local"]),
        (["--slurm-partition", "kindA", "--slurm-gpus-per-job", "0"], ["--slurm-gpus-per-job 0", "--device cpu"]),
    ],
)  # fmt: skip
def test_bad_launcher_options_exit_2_naming_them(tmp_path, args, words):
    proc = _hgbench(
        "profile", "--launcher", "slurm", "--variants", "hg1", "--results", str(tmp_path), *args, timeout=120
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert all(w in proc.stderr for w in words), proc.stderr


def test_a_job_s_state_comes_from_its_outcome_then_from_slurm():
    from hgbench.profile.launch import _job_state

    assert _job_state("7", {"state": "complete", "detail": "2 record(s)"}, ("RUNNING", "None")) == (
        "complete",
        "2 record(s)",
    )
    assert _job_state("7", None, ("PENDING", "Priority")) == ("pending", "Slurm PENDING (Priority)")
    assert _job_state("7", None, ("RUNNING", "None"))[0] == "running"
    assert _job_state("7", None, ("CANCELLED", "None")) == ("failed", "job 7 CANCELLED")
    state, detail = _job_state("7", None, None)
    assert state == "failed" and "without an outcome" in detail


def test_runs_reads_no_file_a_profile_note_names_outside_the_logs(tmp_path):
    """The trust rule of hgbench.train.status (issue 26): a note edited to name another file is
    said, not read."""
    notes = tmp_path / "logs" / "profile"
    notes.mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("do not print me\n")
    (notes / ".job-41.json").write_text(
        json.dumps({"job_id": "41", "partition": "p", "label": "l", "stdout": str(secret), "stderr": str(secret)})
    )
    (notes / ".job-41.end.json").write_text(json.dumps({"state": "failed", "detail": "boom"}))
    (notes / ".job-42.json").symlink_to(notes / ".job-41.json")  # a link: not a note
    (job,) = profile_job_statuses(tmp_path)
    assert (job.job_id, job.state, job.log, job.error_log, job.error_tail) == ("41", "failed", None, None, [])
    assert "outside" in job.detail and "not read" in job.detail
    listing = _hgbench("runs", "--results", str(tmp_path), timeout=120)
    assert listing.returncode == 0 and "41" in listing.stdout and "do not print me" not in listing.stdout, (
        listing.stdout
    )


def test_the_submit_host_checks_the_sweep_and_leaves_the_gpu_to_the_job(tmp_path, monkeypatch):
    """A login node without a GPU: TensorRT and int8 are the GPU job's to check; every other option is
    checked here, an unknown backend name too."""
    import torch

    from hgbench.profile.launch import check_here

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    sweep = {"variants": "hg1", "backend": "tensorrt", "precision": "fp16,int8", "input_size": 64, "results": tmp_path}
    check_here(sweep)
    with pytest.raises(ValueError, match="--backend 'nope'"):
        check_here({**sweep, "backend": "tensorrt,nope"})
    with pytest.raises(ValueError, match="--input-size 60"):
        check_here({**sweep, "input_size": 60})
    with pytest.raises(Exception, match="--backend tensorrt: not available on cpu"):
        check_here({**sweep, "device": "cpu"})  # a CPU job: checked here as it will run


def test_the_submit_host_leaves_the_batch_memory_to_the_job_node(tmp_path, monkeypatch):
    """A login node with 16 GiB: a CPU batch of 20000 at 256 px (234 GiB) is refused by a local
    plan, and left to the job's node by the submit host's check (its node checks it again)."""
    from hgbench.profile import memory
    from hgbench.profile.launch import check_here
    from hgbench.profile.plan import plan_profile

    monkeypatch.setattr(memory, "available_memory_bytes", lambda device: 16 * 2**30)
    sweep = {"variants": "hg1", "backend": "eager", "device": "cpu", "batch_size": "20000", "input_size": 256,
             "results": tmp_path}  # fmt: skip
    with pytest.raises(ValueError, match="--batch-size 20000"):
        plan_profile(sweep.pop("variants"), **sweep)
    check_here({"variants": "hg1", **sweep})
