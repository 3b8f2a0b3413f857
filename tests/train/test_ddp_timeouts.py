"""A stuck or failed rank stops a data-parallel run soon (issue 28, defect 8): the control
group's timeout is 30 minutes, not 2 hours, and configurable; a Slurm job's ``srun`` ends every
task when one exits with an error (``--kill-on-bad-exit=1``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hgbench.config import load_protocol
from hgbench.train import distributed, launch


def test_the_control_timeout_is_half_an_hour_unless_the_environment_says_otherwise():
    assert distributed.CONTROL_TIMEOUT == timedelta(minutes=30)
    assert distributed.control_timeout({}) == distributed.CONTROL_TIMEOUT
    assert distributed.control_timeout({distributed.CONTROL_TIMEOUT_ENV: "90"}) == timedelta(minutes=90)
    assert distributed.control_timeout({distributed.CONTROL_TIMEOUT_ENV: "0.5"}) == timedelta(seconds=30)


@pytest.mark.parametrize("bad", ["0", "-5", "half an hour", "inf", "nan"])
def test_a_bad_control_timeout_is_refused_naming_the_variable(bad):
    with pytest.raises(distributed.DistributedError, match=distributed.CONTROL_TIMEOUT_ENV):
        distributed.control_timeout({distributed.CONTROL_TIMEOUT_ENV: bad})


def test_the_slurm_job_runs_its_tasks_with_kill_on_bad_exit(tmp_path):
    options = launch.slurm_options("cuda", gpus_per_job=2)
    executor = launch._slurm_executor(tmp_path, load_protocol("smoke"), options)
    sbatch = executor._executor._make_submission_file_text("python -m job", "uid")
    (srun,) = [line for line in sbatch.splitlines() if line.startswith("srun ")]
    assert "--kill-on-bad-exit=1" in srun.split()
