"""Bad input and faults through the command line (issue 18): every case is one row of
:data:`CASES`: the command, the exit status, words the one-line message must contain, and the
files that must be byte-identical afterwards. A new case is one more row.

Each row runs in a fresh folder holding ``results/`` with a good run record and a good eval
record (so that "a good earlier result is never replaced" is checked for every case), and the
protocol and record files a case needs (:func:`_fixtures`). ``{stalled}``, ``{refused}`` and
``{http}`` in a row's arguments and words stand for loopback URLs (:func:`net`): a socket that
accepts connections and never answers, a port that refuses them, and an HTTP server that
answers 503 under ``/busy`` and 404 elsewhere.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import scipy.io
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
    absent: list[str] = field(default_factory=list)  # must not exist afterwards (nothing made before the refusal)


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
    # a list that names no variant would select all of them (an empty shell variable)
    Case("train-variant-empty", ["train", "", "--protocol", "tiny.yaml"], 2, ["''", "no variant named"]),
    Case(
        "train-all-variants-comma",
        ["train-all", "--variants", ",", "--protocol", "tiny.yaml"],
        2,
        ["','", "--variants"],
    ),
    Case("profile-variants-empty", ["profile", "--variants", ""], 2, ["''", "no variant named"]),
    Case("latency-check-variants-empty", ["latency-check", "--variants", ""], 2, ["''", "no variant named"]),
    # more options checked before any work
    Case(
        "train-all-gpus-not-an-index",
        ["train-all", "--variants", "hg1", "--protocol", "tiny.yaml", "--gpus", "a"],
        2,
        ["--gpus", "'a'", "GPU index"],
    ),
    Case(
        "train-all-gpus-absent",
        ["train-all", "--variants", "hg1", "--protocol", "tiny.yaml", "--gpus", "99"],
        2,
        ["--gpus 99"],
    ),
    Case("evaluate-device-unknown", ["evaluate", "results/ckpt.pt", "--device", "tpu"], 2, ["--device", "'tpu'"]),
    Case(
        "evaluate-threshold-percent",
        ["evaluate", "results/ckpt.pt", "--threshold", "50"],
        2,
        ["--threshold", "(0, 1]", "50"],
    ),
    Case(
        "profile-threads-beyond-cpus",
        ["profile", "--variants", "hg1", "--threads", "100000"],
        2,
        ["--threads 100000", "logical CPUs"],
    ),
    Case(
        "profile-results-a-file",
        ["profile", "--variants", "hg1", "--results", "afile"],
        2,
        ["--results", "afile"],
        unchanged=["results", "afile"],
    ),
    Case(
        "profile-cache-dir-a-file",
        ["profile", "--variants", "hg1", "--cache-dir", "afile"],
        2,
        ["--cache-dir", "afile"],
        unchanged=["results", "afile"],
    ),
    Case("protocol-binary", ["train", "hg1", "--protocol", "binary.yaml"], 2, ["binary.yaml", "U+0000"]),
    # outputs that are a folder, a file, or an input
    Case(
        "score-out-is-the-gt",
        ["score", "pred.mat", "--gt", "gt.mat", "--out", "gt.mat"],
        2,
        ["--out gt.mat", "--gt"],
        unchanged=["results", "gt.mat", "pred.mat"],
    ),
    Case(
        "score-out-is-a-folder",
        ["score", "pred.mat", "--gt", "gt.mat", "--out", "results"],
        2,
        ["--out results", "folder"],
    ),
    Case(
        "compare-json-is-a-folder",
        ["compare", "prof", "prof", "--json", "prof"],
        2,
        ["--json prof: is a folder", "--json prof/comparison.json"],
        unchanged=["results", "prof"],
    ),
    Case(
        "compare-json-under-a-file",
        ["compare", "prof", "prof", "--json", "afile/c.json"],
        2,
        ["--json afile/c.json", "afile is a file"],
        unchanged=["results", "prof", "afile"],
    ),
    Case(
        "compare-json-is-the-baseline",
        ["compare", "prof/profile/h/x.json", "prof", "--json", "prof/profile/h/x.json"],
        2,
        ["--json prof/profile/h/x.json", "is the BASELINE record"],
        unchanged=["results", "prof"],
    ),
    Case(
        "report-out-is-a-file",
        ["report", "--results", "prof", "--out", "afile"],
        2,
        ["--out afile", "is a file"],
        unchanged=["results", "prof", "afile"],
    ),
    Case(
        "latency-check-out-is-a-file",
        ["latency-check", "--reference", "prof", "--variants", "hg1", "--out", "afile"],
        2,
        ["--out afile", "is a file"],
        unchanged=["results", "prof", "afile"],
    ),
    # report filters: a value no record can hold is refused, naming the option, the value and the values allowed
    Case(
        "report-precision-unknown",
        ["report", "--results", "prof", "--precision", "fp64"],
        2,
        ["--precision 'fp64'", "fp32, fp16, bf16"],
        unchanged=["results", "prof"],
        absent=["prof/report"],
    ),
    Case(
        "report-backend-unknown",
        ["report", "--results", "prof", "--backend", "eager,foo"],
        2,
        ["--backend 'foo'", "eager, torchscript, compile"],
        unchanged=["results", "prof"],
        absent=["prof/report"],
    ),
    Case(
        "report-batch-size-negative",
        ["report", "--results", "prof", "--batch-size", "-1"],
        2,
        ["--batch-size -1", "positive integers"],
        unchanged=["results", "prof"],
        absent=["prof/report"],
    ),
    Case(
        "report-input-size-0",
        ["report", "--results", "prof", "--input-size", "0"],
        2,
        ["--input-size 0", "positive integers"],
        unchanged=["results", "prof"],
        absent=["prof/report"],
    ),
    Case(
        "report-dataset-unknown",
        ["report", "--results", "prof", "--dataset", "h36m"],
        2,
        ["--dataset 'h36m'", "synthetic, lspet, lsp"],
        unchanged=["results", "prof"],
        absent=["prof/report"],
    ),
    Case(
        "report-device-unknown",
        ["report", "--results", "prof", "--device", "tpu"],
        2,
        ["--device 'tpu'", "cpu nor cuda", "hosts h", "Test CPU"],
        unchanged=["results", "prof"],
        absent=["prof/report"],
    ),
    # hand-edited records: a timing statistic that is not a finite number is refused, naming the file and the field
    Case(
        "report-latency-nan",
        ["report", "--results", "nanrec"],
        2,
        ["none of the 1 record files is usable", "field 'latency_ms.p50_ms' is nan"],
        unchanged=["results", "nanrec"],
        absent=["nanrec/report"],
    ),
    Case(
        "compare-latency-nan",
        ["compare", "nanrec/profile/h/x.json", "prof"],
        2,
        ["BASELINE nanrec/profile/h/x.json", "field 'latency_ms.p50_ms' is nan", "hgbench profile"],
        unchanged=["results", "nanrec", "prof"],
    ),
    Case(
        "compare-latency-infinite",
        ["compare", "prof", "infrec"],
        2,
        ["CURRENT infrec", "infrec/profile/h/x.json", "field 'latency_ms.samples_ms[3]' is inf"],
        unchanged=["results", "infrec", "prof"],
    ),
    # runs, evaluate, train, variants: the options named
    Case("runs-results-a-file", ["runs", "--results", "afile"], 2, ["--results afile", "is a file"]),
    Case("results-empty", ["report", "--results", ""], 2, ["--results", "empty path"]),
    Case(
        "evaluate-split-unknown",
        ["evaluate", "results/ckpt.pt", "--split", "test"],
        2,
        ["--split 'test'", "train, val, all"],
    ),
    Case(
        "evaluate-split-not-of-the-dataset",
        ["evaluate", "results/ckpt.pt", "--dataset", "synthetic", "--split", "all"],
        2,
        ["--split 'all'", "dataset synthetic has splits train, val"],
    ),
    Case(
        "evaluate-data-root-with-synthetic",
        ["evaluate", "results/ckpt.pt", "--dataset", "synthetic", "--data-root", "data"],
        2,
        ["--data-root is not used by the embedded synthetic dataset", "--dataset lspet|lsp"],
    ),
    Case(
        "train-data-root-with-synthetic",
        ["train", "hg1", "--protocol", "tiny.yaml", "--data-root", "data"],
        2,
        ["--data-root is not used by the embedded synthetic dataset", "drop it"],
        absent=["results/runs/synthetic"],
    ),
    Case(
        "train-dataset-unknown",
        ["train", "hg1", "--protocol", "tiny.yaml", "--dataset", "h36m"],
        2,
        ["--dataset 'h36m'", "lspet"],
        absent=["results/runs/h36m"],
    ),
    Case(
        "variants-num-joints-huge",
        ["variants", "--num-joints", "100000"],
        2,
        ["--num-joints 100000", "at most 1000"],
    ),
    Case(
        "profile-num-joints-huge",
        ["profile", "--variants", "hg1", "--num-joints", "100000"],
        2,
        ["--num-joints 100000", "at most 1000"],
    ),
    Case(
        "profile-backend-unknown", ["profile", "--variants", "hg1", "--backend", "foo"], 2, ["--backend 'foo'", "eager"]
    ),
    # downloads: a fault of the network is exit 1 naming the URL, the timeout and the fix; a wrong URL is exit 2
    Case(
        "download-stalled",
        ["data", "download", "lspet", "--to", "data", "--base-url", "{stalled}", "--timeout", "0.3", "--retries", "1"],
        1,
        ["{stalled}/lspet_dataset.zip", "no answer within 0.3 s, 2 attempts", "--timeout", "again later"],
    ),
    Case(
        "download-refused",
        ["data", "download", "lspet", "--to", "data", "--base-url", "{refused}", "--timeout", "1", "--retries", "0"],
        1,
        ["{refused}/lspet_dataset.zip", "refused", "again later"],
    ),
    Case(
        "download-http-503",
        ["data", "download", "lspet", "--to", "data", "--base-url", "{http}/busy", "--retries", "0"],
        1,
        ["{http}/busy/lspet_dataset.zip", "HTTP 503", "again later"],
    ),
    Case(
        "download-http-404",
        ["data", "download", "lspet", "--to", "data", "--base-url", "{http}/gone", "--retries", "0"],
        2,
        ["{http}/gone/lspet_dataset.zip", "HTTP 404", "--base-url"],
    ),
    Case(
        "download-base-url-not-a-url",
        ["data", "download", "lspet", "--to", "data", "--base-url", "mirror"],
        2,
        ["--base-url", "'mirror'", "https://"],
    ),
    Case(
        "download-base-url-empty",
        ["data", "download", "lspet", "--to", "data", "--base-url", ""],
        2,
        ["--base-url", "''"],
    ),
    Case(
        "download-to-a-file",
        ["data", "download", "lspet", "--to", "afile"],
        2,
        ["--to", "afile", "not a folder"],
        unchanged=["results", "afile"],
    ),
    # issue 26, train side: no write through a link; checkpoints that lack a field or do not fit their spec
    Case(
        "train-lock-is-a-link",
        ["train", "hg1", "--protocol", "tiny.yaml", "--results", "shared"],
        2,
        [".lock: this lock file is a symbolic link", "victim.txt", "rm "],
        unchanged=["results", "shared", "victim.txt"],
    ),
    Case(
        "evaluate-checkpoint-without-num-joints",
        ["evaluate", "results/nofield.pt"],
        2,
        ["results/nofield.pt: field 'num_joints' missing", "--force"],
    ),
    Case(
        "evaluate-checkpoint-weights-do-not-fit",
        ["evaluate", "results/misfit.pt"],
        2,
        ["results/misfit.pt: holds weights that cannot be loaded into the network its stored spec builds", "--force"],
    ),
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
    (root / "binary.yaml").write_bytes(b"\x00\x01\x02" + SMOKE.encode())
    # MPII evaluation layout (gt_valid_detections_our_format.mat): 3 persons, head boxes 30 x 40 px
    gt = np.stack([np.stack([np.arange(16) * 10.0 + 100, np.full(16, 200.0 + i)], axis=-1) for i in range(3)])
    boxes = np.tile(np.array([[[0.0], [0.0]], [[30.0], [40.0]]]), (1, 1, 3))
    mat = {"pos_gt_src": gt.transpose(1, 2, 0), "jnt_missing": np.zeros((16, 3), np.uint8), "headboxes_src": boxes}
    scipy.io.savemat(root / "gt.mat", mat)
    scipy.io.savemat(root / "pred.mat", {"preds": gt + 1})
    write_record_file(root / "prof" / "profile" / "h" / "x.json", make_record("profile"))
    nan, inf = make_record("profile"), make_record("profile")  # hand-edited: json writes NaN and Infinity
    nan["latency_ms"]["p50_ms"] = float("nan")
    inf["latency_ms"]["samples_ms"][3] = float("inf")
    write_record_file(root / "nanrec" / "profile" / "h" / "x.json", nan)
    write_record_file(root / "infrec" / "profile" / "h" / "x.json", inf)
    (root / "afile").write_text("not a folder\n")
    write_record_file(root / "newer" / "profile" / "h" / "x.json", make_record("profile", schema="hgbench.record/99"))
    results = root / "results"
    write_record_file(results / "runs" / "train.json", make_record("train"))
    write_record_file(results / "runs" / "eval.json", make_record("eval"))
    (results / "ckpt.pt").write_bytes(b"not a checkpoint")
    _trust_fixtures(root)


def _trust_fixtures(root: Path) -> None:
    """Issue 26's train-side files: a run folder under ``shared/`` whose ``.lock`` is a link to
    ``victim.txt``, a checkpoint without ``num_joints`` and one whose weights do not fit its spec."""
    import dataclasses

    import torch

    from hgbench.config import get_variant, load_protocol
    from hgbench.train import run_folder

    (root / "victim.txt").write_text("someone else's file\n")
    spec = get_variant("hg1")
    folder = run_folder(spec, load_protocol(str(root / "tiny.yaml")), "synthetic", root / "shared")
    folder.mkdir(parents=True)
    (folder / ".lock").symlink_to(root / "victim.txt")
    ckpt = {"spec": dataclasses.asdict(spec), "model_state": {"stem.weight": torch.zeros(1)}, "dataset": "synthetic",
            "protocol": {"input_size": 64}}  # fmt: skip
    torch.save(ckpt, root / "results" / "nofield.pt")
    torch.save({**ckpt, "num_joints": 16}, root / "results" / "misfit.pt")


def _snapshot(root: Path, names: list[str]) -> dict[str, bytes]:
    files = {}
    for name in names:
        p = root / name
        for f in [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file()):
            files[str(f.relative_to(root))] = f.read_bytes()
    return files


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_error(503 if self.path.startswith("/busy/") else 404)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def net():
    """``{stalled, refused, http}`` loopback URLs (module docstring)."""
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(8)  # the kernel completes the connections; nobody reads or answers them
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = s.getsockname()[1]  # closed again: connecting is refused
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield {
        "stalled": f"http://127.0.0.1:{stalled.getsockname()[1]}",
        "refused": f"http://127.0.0.1:{refused}",
        "http": f"http://127.0.0.1:{http.server_address[1]}",
    }
    http.shutdown()
    http.server_close()
    stalled.close()


@pytest.fixture(autouse=True)
def _no_retry_wait(monkeypatch):
    from hgbench.data.download import fetch

    monkeypatch.setattr(fetch, "RETRY_DELAY_S", 0.0)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_and_loses_nothing(tmp_path, monkeypatch, case, net):
    _fixtures(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path, case.unchanged)
    r = runner.invoke(app, [a.format(**net) for a in case.args])
    out = r.output
    assert r.exit_code == case.code, out
    assert "Traceback" not in out and not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), out
    error_lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, out
    text = " ".join(out.split())
    for w in case.words:
        assert w.format(**net) in text, (w, out)
    assert _snapshot(tmp_path, case.unchanged) == before
    assert not [a for a in case.absent if (tmp_path / a).exists()], out
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
    assert r.exit_code == 1 and "--results" in r.output and "writ" in r.output  # a fault of the machine
    assert json.dumps(sorted(os.listdir(ro))) == "[]"


def test_a_read_only_file_system_is_a_fault_of_the_machine_said_once(tmp_path, monkeypatch):
    """As root too: the write check meets EROFS (a read-only mount); exit 1, the fix said once."""
    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "ro" / "x"))

    _fixtures(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    r = runner.invoke(app, ["train", "hg1", "--protocol", "tiny.yaml", "--results", "ro"])
    text = " ".join(r.output.split())
    assert r.exit_code == 1, r.output
    assert "error: --results ro: cannot be written (Read-only file system)" in text
    assert text.count("writable") == 1 and "Traceback" not in text


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


@pytest.mark.parametrize(
    "files, words",
    [
        ({}, ["no variant files", "HGBENCH_VARIANTS_DIR"]),  # an empty registry: every command says so
        ({"junk.yaml": b"\x00\x01junk"}, ["junk.yaml", "U+0000"]),  # a binary file among the YAMLs is named
    ],
)
@pytest.mark.parametrize("args", [["variants"], ["train", "hg1", "--protocol", "tiny.yaml"]])
def test_a_broken_registry_is_named(tmp_path, monkeypatch, files, words, args):
    registry = tmp_path / "registry"
    registry.mkdir()
    for name, data in files.items():
        (registry / name).write_bytes(data)
    _fixtures(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(registry))
    r = runner.invoke(app, args)
    text = " ".join(r.output.split())
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error:") and all(w in text for w in words), r.output


def test_runs_says_which_record_is_unreadable(tmp_path):
    run = tmp_path / "runs" / "synthetic" / "tiny-0123456789ab" / "hg1-0123456789ab"
    record = write_record_file(run / "train.json", make_record("train", complete=True))
    record.write_text(record.read_text()[:100])  # truncated: the run is not complete, and runs says why
    r = runner.invoke(app, ["runs", "--results", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "interrupted" in r.output and "train.json unreadable" in " ".join(r.output.split())


def test_a_non_finite_timing_among_good_records_is_skipped_by_report_naming_file_and_field(tmp_path, monkeypatch):
    good = make_record("profile", variant="hg1")
    bad = make_record("profile", variant="hg2", p50=3.0)
    bad["latency_ms"]["p90_ms"] = float("inf")
    write_record_file(tmp_path / "res" / "profile" / "h" / "good.json", good)
    write_record_file(tmp_path / "res" / "profile" / "h" / "bad.json", bad)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["report", "--results", "res", "--format", "csv"])
    text = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert "field 'latency_ms.p90_ms' is inf" in text and "res/profile/h/bad.json" in text
    cost = (tmp_path / "res" / "report" / "accuracy_vs_cost.csv").read_text()
    assert "hg1" in cost and "hg2" not in cost


@pytest.mark.parametrize(
    "known, code, words",
    [
        (["--device", "cuda"], 2, ["none of the 1 record files is usable", "filtered out by --device cuda"]),
        (["--backend", "tensorrt"], 2, ["none of the 1 record files is usable", "filtered out by --backend tensorrt"]),
        (["--dataset", "mpii"], 0, ["skipped 1 x no accuracy of hg1 (16 joints, spec ", ") on --dataset mpii"]),
    ],
)
def test_a_known_filter_value_matching_no_record_says_why_records_were_skipped(
    tmp_path, monkeypatch, known, code, words
):
    """Only values no record can hold are refused up front; a known one that matches nothing
    keeps the report's own answer (which filter left which record out)."""
    _fixtures(tmp_path)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["report", "--results", "prof", "--format", "csv", *known])
    text = " ".join(r.output.split())
    assert r.exit_code == code, r.output
    assert all(w in text for w in words), r.output
    assert (tmp_path / "prof" / "report").exists() == (code == 0)  # a refused report leaves no output folder


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda r: r["latency_ms"].update(p50_ms=float("nan")), "latency_ms.p50_ms"),
        (lambda r: r["latency_ms"].update(std_ms=float("-inf")), "latency_ms.std_ms"),
        (lambda r: r["latency_ms"]["repetition_p50_ms"].append(float("nan")), "latency_ms.repetition_p50_ms[0]"),
        (lambda r: r["calibration"].update(p50_ms=float("inf")), "calibration.p50_ms"),
        (lambda r: r.update(throughput_samples_per_s=float("nan")), "throughput_samples_per_s"),
        (lambda r: r["latency_ms"].update(min_ms=-1.0), "latency_ms.min_ms"),
    ],
)
def test_the_record_schema_refuses_non_finite_timings_naming_the_field(edit, field):
    from hgbench.records import RecordError, parse_record

    rec = make_record("profile")
    rec["latency_ms"].setdefault("repetition_p50_ms", [])
    parse_record(rec, "x.json")  # the record as written is read
    edit(rec)
    with pytest.raises(RecordError, match=rf"^x\.json: malformed profile record: field '{field}'".replace("[", r"\[")):
        parse_record(rec, "x.json")
    failed = make_record("profile", status="error", latency_ms=None, throughput_samples_per_s=None)
    assert parse_record(failed, "y.json").status == "error"  # a failed setting has no timings: still read
