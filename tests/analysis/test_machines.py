"""The report and compare over several machines (issue 29, part 4): the machine label of the
records names each machine; a latency matrix (networks x machine/backend/precision, p50 ms per
batch) and one accuracy-vs-latency figure with a panel per machine where the records span several
machines; ``hgbench compare`` of two machines' folders under their calibration rules.

The records are the committed LSPET CPU reference (``benchmarks/reference/lspet-cpu/records``:
profile records of host ``vm``, and the train and eval records their accuracy joins), copied into
one folder per machine label as ``hgbench profile --machine-label`` would write them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from hgbench.analysis.compare import compare_results
from hgbench.analysis.render import LATENCY_MATRIX_CSV
from hgbench.analysis.report import build_report, write_report
from hgbench.analysis.rows import Filters
from hgbench.analysis.tables import MATRIX_INDEX, machine_names

REFERENCE = Path(__file__).resolve().parents[2] / "benchmarks" / "reference" / "lspet-cpu" / "records"


def _scaled(block: dict, factor: float) -> dict:
    """A timing block (``latency_ms``, ``calibration``) with every ``*_ms`` entry times ``factor``."""
    out = dict(block)
    for k, v in block.items():
        if k.endswith("_ms") and isinstance(v, list):
            out[k] = [x * factor for x in v]
        elif k.endswith("_ms") and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = v * factor
    return out


def copy_machine(results: Path, label: str | None, factor: float = 1.0, *, calibration: bool = False) -> dict:
    """Copy the reference's profile records into ``results/profile/<label>`` with
    ``provenance.machine = label`` (None: a record made before labels, under its host's folder),
    latencies times ``factor`` (and the calibration too with ``calibration``: a machine that is
    uniformly slower). Returns ``{(batch, variant, joints, spec hash, input size, backend,
    precision): p50 ms}`` of the copies."""
    folder = results / "profile" / (label or "vm")
    folder.mkdir(parents=True, exist_ok=True)
    p50s = {}
    for src in sorted((REFERENCE / "profile" / "vm").glob("*.json")):
        rec = json.loads(src.read_text())
        if label is not None:
            rec["provenance"]["machine"] = label
        rec["latency_ms"] = _scaled(rec["latency_ms"], factor)
        rec["throughput_samples_per_s"] /= factor
        if calibration:
            rec["calibration"] = _scaled(rec["calibration"], factor)
        (folder / src.name).write_text(json.dumps(rec))
        key = (
            rec["batch_size"],
            rec["variant"],
            rec["num_joints"],
            rec["spec_hash"],
            rec["input_size"],
            rec["backend"],
            rec["precision"],
        )
        p50s[key] = rec["latency_ms"]["p50_ms"]
    return p50s


def with_accuracy(results: Path) -> Path:
    """``results`` with the reference's train and eval records (``runs/``), so that accuracy joins."""
    shutil.copytree(REFERENCE / "runs", results / "runs", dirs_exist_ok=True)
    return results


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory) -> tuple[Path, dict]:
    """Two machine labels of one host (two Slurm partitions over one node): ``a100`` and
    ``cpu-server`` (3x the latency), with the accuracy records."""
    results = with_accuracy(tmp_path_factory.mktemp("two-machines"))
    return results, {"a100": copy_machine(results, "a100"), "cpu-server": copy_machine(results, "cpu-server", 3.0)}


def test_the_latency_matrix_holds_each_records_p50_per_machine_backend_and_precision(two_machines, tmp_path):
    results, p50s = two_machines
    rep = build_report(results)
    matrix = rep.latency_matrix
    settings = [c for c in matrix.columns if c not in MATRIX_INDEX]
    assert set(settings) == {f"{m}/{b}/fp32" for m in p50s for b in ("eager", "onnxruntime", "torchscript")}
    assert sorted(matrix["batch_size"].unique()) == [1, 8]
    indexed = matrix.set_index(MATRIX_INDEX)
    cells = 0
    for machine, records in p50s.items():
        for (batch, variant, joints, spec, size, backend, precision), p50 in records.items():
            assert indexed.loc[
                (batch, variant, joints, spec, size), f"{machine}/{backend}/{precision}"
            ] == pytest.approx(p50)
            cells += 1
    assert indexed.notna().sum().sum() == cells  # no cell without its record
    # one row per batch size and network (keyed on the spec hash too, not the name alone)
    assert len(matrix) == len({k[:5] for k in p50s["a100"]})

    written = write_report(rep, tmp_path / "report", "md,csv,html")
    assert tmp_path / "report" / LATENCY_MATRIX_CSV in written
    csv = pd.read_csv(tmp_path / "report" / LATENCY_MATRIX_CSV, index_col=[0, 1, 2, 3, 4])
    assert list(csv.index.names) == ["batch size", "variant", "joints", "spec hash", "input size (px)"]
    key = next(iter(p50s["cpu-server"]))
    assert csv.loc[key[:5], f"cpu-server/{key[5]}/{key[6]}"] == pytest.approx(p50s["cpu-server"][key])
    md = (tmp_path / "report" / "report.md").read_text()
    html = (tmp_path / "report" / "report.html").read_text()
    for text in (md, html):
        assert "Latency across machines (p50, ms per batch)" in text
        assert "Batch 1: latency p50 (ms per batch)" in text and "Batch 8: latency p50 (ms per batch)" in text
        assert "a100/eager/fp32" in text and "cpu-server/onnxruntime/fp32" in text
    assert "### Machine `a100` on host `vm`: cpu, AMD EPYC" in md  # the label, and the host it ran on


def test_one_accuracy_vs_latency_figure_per_batch_with_a_panel_per_machine(two_machines, tmp_path):
    from hgbench.analysis.plots import machine_panel_figures, write_plots

    results, p50s = two_machines
    rep = build_report(results)
    figures = machine_panel_figures(rep)
    assert len(figures) == 2  # one accuracy (LSPET val PCK@0.2, protocol lspet-cpu), batch sizes 1 and 8, 64 px
    for caption, name, fig in figures:
        axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        assert len(axes) == len(p50s) == 2, caption
        assert [ax.get_title().split(" ")[0] for ax in axes] == ["a100", "cpu-server"]
        assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])  # one accuracy axis
        assert {t.get_text() for t in axes[1].get_legend().get_texts()} >= {
            "eager fp32",
            "onnxruntime fp32",
            "torchscript fp32",
        }
        assert name.startswith("accuracy_vs_latency__machines__") and ("-b1-" in name or "-b8-" in name)
    written = [p.name for _, p in write_plots(rep, tmp_path)]
    assert sum(n.startswith("accuracy_vs_latency__machines__") for n in written) == 2
    assert sum(n.startswith("accuracy_vs_latency__a100") for n in written) == 2  # each machine's own plots as before


def test_one_machine_gives_no_matrix_and_old_records_read_their_host(tmp_path):
    from hgbench.analysis.plots import machine_panel_figures

    results = with_accuracy(tmp_path / "results")
    copy_machine(results, None)  # records made before machine labels: provenance has the host only
    rep = build_report(results)
    assert rep.latency_matrix.empty and machine_panel_figures(rep) == []
    assert set(rep.cost["machine"]) == {"vm"} and rep.hosts == {"vm": ["vm"]}
    written = write_report(rep, tmp_path / "report", "md,csv")
    assert LATENCY_MATRIX_CSV not in {p.name for p in written}
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Latency across machines" not in md and "### Machine `vm`: cpu, AMD EPYC" in md
    assert pd.read_csv(tmp_path / "report" / "accuracy_vs_cost.csv").columns[0] == "machine"


def test_the_device_filter_and_its_message_know_the_machine_labels(two_machines):
    results, _ = two_machines
    rep = build_report(results, Filters.from_options(device=["cpu-server"]))
    assert set(rep.cost["machine"]) == {"cpu-server"} and rep.latency_matrix.empty
    with pytest.raises(ValueError, match="machines a100, cpu-server; hosts vm"):
        build_report(results, Filters.from_options(device=["h100"]))


def test_machine_names_add_what_tells_apart_two_machines_of_one_label():
    rows = pd.DataFrame({
        "machine": ["gpu1", "gpu1", "gpu1", "a100"], "device": ["cuda", "cpu", "cpu", "cuda"],
        "device_name": ["NVIDIA A100", "EPYC", "EPYC", "NVIDIA A100"], "threads": [None, 1, 4, None],
    })  # fmt: skip
    assert machine_names(rows) == ["gpu1 (cuda)", "gpu1 (cpu, 1 thread)", "gpu1 (cpu, 4 threads)", "a100"]


def test_compare_matches_two_machines_on_the_setting_under_the_calibration(tmp_path):
    """Two labels of one host, the second uniformly 3x slower (its calibration too): every setting
    is matched across the labels, the machine factor is 3 and nothing is a regression; without
    normalisation the same records are slower. The one-line summaries name the labels."""
    copy_machine(tmp_path, "a100")
    copy_machine(tmp_path, "cpu-server", 3.0, calibration=True)
    comp = compare_results(tmp_path / "profile" / "a100", tmp_path / "profile" / "cpu-server")
    timed = [r for r in comp.rows if r.metric == "p50"]
    assert len(timed) == len(list((REFERENCE / "profile" / "vm").glob("*.json")))
    assert all(r.factor == pytest.approx(3.0) and r.ratio == pytest.approx(1.0) for r in timed)
    assert not comp.failed
    assert (
        "machine a100 (host vm)" in comp.sides["baseline"] and "machine cpu-server (host vm)" in comp.sides["current"]
    )
    raw = compare_results(tmp_path / "profile" / "a100", tmp_path / "profile" / "cpu-server", normalize=False)
    assert raw.failed and {r.verdict for r in raw.rows if r.metric == "p50"} == {"regression"}
    # both machines in one folder: refused, naming the labels and the folder to pass
    with pytest.raises(ValueError, match=r"machines a100 and cpu-server.*<results>/profile/<machine label>"):
        compare_results(tmp_path / "profile", tmp_path / "profile" / "a100")


def test_the_cli_reports_and_compares_two_machines(two_machines, tmp_path):
    """``hgbench report`` over both machines writes the matrix and the panels and prints the
    machine column; ``hgbench compare`` of the two folders exits 0 (calibrations equal, 3x slower:
    a regression with --no-normalize, exit 1), its summary lines naming each label."""
    from typer.testing import CliRunner

    from hgbench.cli import app

    results, _ = two_machines
    runner = CliRunner()
    r = runner.invoke(
        app, ["report", "--results", str(results), "--out", str(tmp_path / "report"), "--format", "md,csv"]
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "report" / LATENCY_MATRIX_CSV).is_file() and "machine" in r.output
    a, b = (str(results / "profile" / m) for m in ("a100", "cpu-server"))
    r = runner.invoke(app, ["compare", a, b, "--no-normalize"])
    assert r.exit_code == 1, r.output
    assert "machine a100 (host vm)" in r.output and "machine cpu-server (host vm)" in r.output
    r = runner.invoke(app, ["compare", a, a])
    assert r.exit_code == 0, r.output
