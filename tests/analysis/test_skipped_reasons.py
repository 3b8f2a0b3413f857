"""Why the report leaves a training record out: a diverged run says so (issue 26), not "resume it"."""

from __future__ import annotations

from hgbench.analysis.rows import read_store
from tests.conftest import make_record, write_record_file


def test_a_diverged_run_is_skipped_as_diverged_not_as_interrupted(tmp_path):
    rec = make_record("train", complete=False, diverged={"step": 3, "epoch": 2, "loss": "nan", "checkpoint_step": 2})
    path = write_record_file(tmp_path / "runs" / "hg1" / "train.json", rec)
    write_record_file(tmp_path / "runs" / "hg2" / "train.json", make_record("train", variant="hg2", complete=False))
    reasons = dict(read_store([tmp_path]).skipped)
    assert reasons[str(path)].startswith("training diverged (loss nan at step 3)")
    assert "resume it" in reasons[str(tmp_path / "runs" / "hg2" / "train.json")]
