"""Bad input and faults through the command line (issue 18): every case is one row of
:data:`CASES`: the command, the exit status, words the one-line message must contain, and the
files that must be byte-identical afterwards. A new case is one more row.

Each row runs in a fresh folder holding ``results/`` with a good run record and a good eval
record (so that "a good earlier result is never replaced" is checked for every case), and the
protocol and record files a case needs (:func:`_fixtures`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import make_record, write_record_file
from typer.testing import CliRunner

from hgbench.cli import app

runner = CliRunner()

SMOKE = """\
epochs: 1
steps_per_epoch: 1
batch_size: 2
input_size: 64
output_size: 16
val_max_samples: 4
"""


@dataclass
class Case:
    """One bad input: ``args`` run in a fresh folder prepared by :func:`_fixtures`."""

    id: str
    args: list[str]
    code: int
    words: list[str]
    unchanged: list[str] = field(default_factory=lambda: ["results"])


CASES = [
    # options checked before any work
    Case("variants-input-size", ["variants", "--input-size", "63"], 2, ["--input-size", "63"]),
    Case("variants-num-joints", ["variants", "--num-joints", "0"], 2, ["--num-joints", "0"]),
    Case("profile-min-time-nan", ["profile", "--variants", "hg1", "--min-time-s", "nan"], 2, ["--min-time-s", "nan"]),
    Case("profile-input-size-0", ["profile", "--variants", "hg1", "--input-size", "0"], 2, ["--input-size"]),
    Case("profile-unknown-variant", ["profile", "--variants", "hg99"], 2, ["hg99", "registered"]),
    Case("evaluate-threshold", ["evaluate", "results/ckpt.pt", "--threshold", "-1"], 2, ["--threshold", "-1"]),
    # protocols: strict config, names that would leave --results
    Case("protocol-escape", ["train", "hg1", "--protocol", "escape.yaml"], 2, ["escape.yaml", "name"]),
    Case("protocol-epochs-0", ["train", "hg1", "--protocol", "epochs0.yaml"], 2, ["epochs0.yaml", "epochs"]),
    Case("protocol-steps-0", ["train", "hg1", "--protocol", "steps0.yaml"], 2, ["steps0.yaml", "steps_per_epoch"]),
    Case("protocol-val-every-0", ["train", "hg1", "--protocol", "val0.yaml"], 2, ["val0.yaml", "val_every"]),
    Case("protocol-scale-0", ["train", "hg1", "--protocol", "scale0.yaml"], 2, ["scale0.yaml", "scale"]),
    Case("protocol-lr-negative", ["train", "hg1", "--protocol", "lr.yaml"], 2, ["lr.yaml", "lr"]),
    Case("protocol-batch-negative", ["train", "hg1", "--protocol", "batch.yaml"], 2, ["batch.yaml", "batch_size"]),
    Case(
        "protocol-workers-negative", ["train", "hg1", "--protocol", "workers.yaml"], 2, ["workers.yaml", "num_workers"]
    ),
    Case("protocol-input-60", ["train", "hg1", "--protocol", "in60.yaml"], 2, ["in60.yaml", "input_size"]),
    Case("protocol-yaml-bomb", ["train", "hg1", "--protocol", "bomb.yaml"], 2, ["bomb.yaml"]),
    Case("protocol-not-utf8", ["train", "hg1", "--protocol", "latin1.yaml"], 2, ["latin1.yaml", "UTF-8"]),
    Case("protocol-unknown", ["train", "hg1", "--protocol", "nope"], 2, ["nope", "smoke"]),
    # results folders that cannot be written, checked before training
    Case(
        "results-is-a-file",
        ["train", "hg1", "--protocol", "tiny.yaml", "--results", "afile"],
        2,
        ["--results", "afile"],
        unchanged=["results", "afile"],
    ),  # fmt: skip
    # records
    Case(
        "report-newer-schema",
        ["report", "--results", "newer", "--out", "out"],
        2,
        ["newer hgbench"],
        unchanged=["newer"],
    ),
    Case("compare-newer-schema", ["compare", "newer", "newer"], 2, ["newer hgbench"], unchanged=["newer"]),
]


def _fixtures(root: Path) -> None:
    """The files the cases refer to, in ``root`` (the command's working folder)."""
    (root / "escape.yaml").write_text('name: "../../../../escaped"\n' + SMOKE)
    (root / "tiny.yaml").write_text(SMOKE)
    bad = {
        "epochs0": SMOKE.replace("epochs: 1", "epochs: 0"),
        "steps0": SMOKE.replace("steps_per_epoch: 1", "steps_per_epoch: 0"),
        "val0": SMOKE + "val_every: 0\n",
        "scale0": SMOKE + "augmentation:\n  scale: [0, 0]\n",
        "lr": SMOKE + "optimizer:\n  lr: -1\n",
        "batch": SMOKE.replace("batch_size: 2", "batch_size: -1"),
        "workers": SMOKE + "num_workers: -1\n",
        "in60": SMOKE.replace("input_size: 64", "input_size: 60").replace("output_size: 16", "output_size: 15"),
    }
    for name, text in bad.items():
        (root / f"{name}.yaml").write_text(text)
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        levels.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    (root / "bomb.yaml").write_text("\n".join(levels) + "\ndescription: *i\n" + SMOKE)
    (root / "latin1.yaml").write_bytes("description: caf\xe9\n".encode("latin-1") + SMOKE.encode())
    (root / "afile").write_text("not a folder\n")
    write_record_file(root / "newer" / "profile" / "h" / "x.json", make_record("profile", schema="hgbench.record/99"))
    results = root / "results"
    write_record_file(results / "runs" / "train.json", make_record("train"))
    write_record_file(results / "runs" / "eval.json", make_record("eval"))
    (results / "ckpt.pt").write_bytes(b"not a checkpoint")


def _snapshot(root: Path, names: list[str]) -> dict[str, bytes]:
    files = {}
    for name in names:
        p = root / name
        for f in [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file()):
            files[str(f.relative_to(root))] = f.read_bytes()
    return files


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_and_loses_nothing(tmp_path, monkeypatch, case):
    _fixtures(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path, case.unchanged)
    r = runner.invoke(app, case.args)
    out = r.output
    assert r.exit_code == case.code, out
    assert "Traceback" not in out and not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), out
    error_lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, out
    text = " ".join(out.split())
    for w in case.words:
        assert w in text, (w, out)
    assert _snapshot(tmp_path, case.unchanged) == before
    assert not (tmp_path.parent / "escaped").exists() and not any(tmp_path.parent.glob("escaped*"))


def test_every_case_has_a_unique_id():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_results_folder_is_refused_before_training(tmp_path, monkeypatch):
    _fixtures(tmp_path)
    monkeypatch.chdir(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    r = runner.invoke(app, ["train", "hg1", "--protocol", "tiny.yaml", "--results", "ro"])
    assert r.exit_code == 2 and "--results" in r.output and "writ" in r.output
    assert json.dumps(sorted(os.listdir(ro))) == "[]"


def test_a_full_disk_ends_that_run_only_and_train_all_exits_1_listing_it(tmp_path, monkeypatch):
    import errno

    from hgbench.records import parse_record
    from hgbench.train import loop

    trained = []

    def fake_train_variant(spec, *args, **kwargs):
        if spec.name == "hg1":
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "results" / "checkpoint.pt"))
        trained.append(spec.name)
        return parse_record(make_record("train", variant=spec.name), "a fake run")

    monkeypatch.setattr(loop, "train_variant", fake_train_variant)
    monkeypatch.chdir(tmp_path)
    _fixtures(tmp_path)
    r = runner.invoke(app, ["train-all", "--variants", "hg1,hg2", "--protocol", "tiny.yaml", "--results", "results"])
    text = " ".join(r.output.split())
    assert r.exit_code == 1 and trained == ["hg2"], r.output
    assert "hg1:" in text and "No space left on device" in text and "last good checkpoint is kept" in text
