"""The report on training runs: the pipeline-check note of smoke-sized runs (issue 20, item 5)
and the learning curves (validation accuracy and training loss per epoch) from the train
records' ``history``.

Records come from :func:`conftest.make_record`; nothing is trained.
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
from conftest import make_record, write_record_file

from hgbench.analysis.labels import header
from hgbench.analysis.plots import learning_curves_figure
from hgbench.analysis.render import REFERENCE_README
from hgbench.analysis.report import build_report, write_report
from hgbench.analysis.tables import LEARNING_COLUMNS
from hgbench.config import load_protocol
from hgbench.records import protocol_hash

CHECK = {"name": "smoke", "input_size": 64, "output_size": 16, "pipeline_check": True}
REAL = {"name": "real", "input_size": 64, "output_size": 16, "pipeline_check": False}


def train(variant: str, settings: dict | None = None, **over) -> dict:
    """A complete train record of ``variant`` under ``settings`` (its name the protocol's)."""
    settings = settings or REAL
    return make_record(
        "train", variant=variant, protocol=settings["name"], protocol_hash=protocol_hash(settings),
        protocol_settings=settings, **over,
    )  # fmt: skip


def write_train(results, rec: dict):
    return write_record_file(results / "runs" / rec["protocol"] / rec["variant"] / "train.json", rec)


def report_files(tmp_path, records: list[dict], profiled: tuple[str, ...] = (), formats: str = "md,csv"):
    """Write ``records`` (and a profile record per variant in ``profiled``), build and write the
    report (``formats``); return ``(report, out folder, report.md text)``."""
    results = tmp_path / "results"
    for rec in records:
        write_train(results, rec)
    for variant in profiled:
        write_record_file(results / "profile" / f"{variant}.json", make_record("profile", variant=variant))
    report = build_report(results)
    out = tmp_path / "report"
    write_report(report, out, formats)
    return report, out, (out / "report.md").read_text()


def flagged(md: str) -> bool:
    """Whether the Markdown says anywhere that accuracies are pipeline checks (the note or a title)."""
    return "pipeline check, not a ranking" in md.lower()


def head(md: str) -> str:
    """The report's first block under its title."""
    return md.split("\n\n")[1]


# --------------------------------------------------------------------------------------------
# The protocol field


def test_pipeline_check_is_set_on_smoke_only_and_leaves_the_protocol_hash_and_run_folders_alone():
    smoke = load_protocol("smoke")
    assert smoke.pipeline_check is True and load_protocol("newell2016").pipeline_check is False
    # a run folder named before the field existed hashed the protocol without it
    before = {k: v for k, v in dataclasses.asdict(smoke).items() if k != "pipeline_check"}
    assert (
        protocol_hash(before) == protocol_hash(smoke) == protocol_hash(dataclasses.replace(smoke, pipeline_check=False))
    )
    assert protocol_hash(dataclasses.replace(smoke, epochs=smoke.epochs + 1)) != protocol_hash(
        smoke
    )  # not all excluded


# --------------------------------------------------------------------------------------------
# The note


def test_the_note_appears_exactly_when_a_pipeline_check_accuracy_is_shown(tmp_path):
    _, out, md = report_files(tmp_path / "a", [train("hg1", CHECK), train("hg2", CHECK)], profiled=("hg1",))
    note = head(md)
    assert md.startswith("# hgbench report\n\n") and flagged(note)
    assert "`smoke`" in note and "20-step runs" in note and REFERENCE_README in note and "do not rank" in note
    cost = pd.read_csv(out / "accuracy_vs_cost.csv")
    per_joint = pd.read_csv(out / "per_joint.csv")
    assert cost["pipeline check only"].tolist() == [True]
    assert per_joint.set_index("variant")["pipeline check only"].to_dict() == {"hg1": True, "hg2": True}
    assert "protocol smoke (pipeline check, not a ranking)" in md

    report, out, md = report_files(tmp_path / "b", [train("hg1"), train("hg2")], profiled=("hg1",))
    assert report.pipeline_checks == {} and not flagged(md)
    for name in ("accuracy_vs_cost.csv", "per_joint.csv"):
        assert "pipeline check only" not in pd.read_csv(out / name).columns


def test_a_mixed_report_names_only_the_pipeline_check_protocol_and_flags_only_its_rows(tmp_path):
    records = [train("hg1", CHECK), train("hg1", REAL, curve=[60.0, 70.0], mean=70.0)]
    report, out, md = report_files(tmp_path, records, profiled=("hg1",))
    assert report.pipeline_checks == {"smoke": [20]}
    assert "`smoke`" in head(md) and "`real`" not in head(md)
    cost = pd.read_csv(out / "accuracy_vs_cost.csv").set_index("protocol")
    assert cost.loc["smoke", "pipeline check only"] and not cost.loc["real", "pipeline check only"]


def test_a_pipeline_check_without_accuracy_shown_gives_no_note(tmp_path):
    # validated never: the run is listed, but no accuracy of it is shown
    silent = train("hg1", CHECK, history=[{"epoch": 1, "steps": 10, "train_loss": 0.01, "lr": 2.5e-4}], final=None)
    report, _, md = report_files(tmp_path, [silent, train("hg2")])
    assert report.pipeline_checks == {} and not flagged(md)


def test_an_older_record_of_the_shipped_smoke_protocol_is_a_pipeline_check(tmp_path):
    """Records written before the field existed (same hash: the field is not part of it) are
    recognised by their protocol's name and hash among those smoke had
    (:data:`hgbench.records.schema.PIPELINE_CHECK_PROTOCOLS`, read from the record alone);
    another hash is not."""
    smoke = dataclasses.asdict(load_protocol("smoke"))
    old = {k: v for k, v in smoke.items() if k != "pipeline_check"}
    rec = make_record("train", protocol="smoke", protocol_hash=protocol_hash(old), protocol_settings=old)
    report, _, md = report_files(tmp_path / "a", [rec])
    assert list(report.pipeline_checks) == ["smoke"] and "`smoke`" in head(md)

    changed = {**old, "epochs": old["epochs"] + 1}
    rec = make_record("train", protocol="smoke", protocol_hash=protocol_hash(changed), protocol_settings=changed)
    report, _, md = report_files(tmp_path / "b", [rec])
    assert report.pipeline_checks == {} and not flagged(md)


def test_an_evaluation_of_a_pipeline_check_run_is_one_too(tmp_path):
    results = tmp_path / "results"
    rec = train("hg1", CHECK)
    write_train(results, rec)
    ev = make_record(
        "eval", variant="hg1", protocol="smoke", protocol_hash=rec["protocol_hash"], spec=rec["spec"], mean=42.0
    )
    write_record_file(results / "runs" / "smoke" / "hg1" / "eval-val.json", ev)
    report = build_report(results)
    row = report.per_joint.iloc[0]
    assert row["mean_pct"] == pytest.approx(42.0) and row["pipeline_check"]  # the eval's accuracy, still a check
    assert report.pipeline_checks == {"smoke": [20]}


# --------------------------------------------------------------------------------------------
# Learning curves


HISTORY = [
    {
        "epoch": 1,
        "steps": 50,
        "train_loss": 0.0031,
        "lr": 1e-3,
        "val": {"metric": "pck", "threshold": 0.2, "mean": 21.5},
    },
    {"epoch": 2, "steps": 100, "train_loss": 0.0024, "lr": 1e-3},  # not validated
    {
        "epoch": 3,
        "steps": 150,
        "train_loss": 0.0019,
        "lr": 1e-4,
        "val": {"metric": "pck", "threshold": 0.2, "mean": 40.25},
    },
]


def test_the_learning_curves_csv_holds_the_history(tmp_path):
    final = {**HISTORY[-1]["val"], "groups": {}, "num_persons": 50}
    report, out, md = report_files(tmp_path, [train("hg1", history=HISTORY, final=final), train("hg2", CHECK)])
    lc = pd.read_csv(out / "learning_curves.csv")
    hg1 = lc[lc.variant == "hg1"].sort_values("epoch")
    assert hg1["epoch"].tolist() == [1, 2, 3]
    assert hg1["optimiser steps"].tolist() == [h["steps"] for h in HISTORY]
    assert hg1["training loss (epoch mean)"].tolist() == pytest.approx([h["train_loss"] for h in HISTORY])
    assert hg1["learning rate"].tolist() == pytest.approx([h["lr"] for h in HISTORY])
    val = hg1["validation mean accuracy (%)"].tolist()
    assert (
        val[0] == pytest.approx(21.5) and math.isnan(val[1]) and val[2] == pytest.approx(40.25)
    )  # missing stays missing
    assert (
        set(hg1["metric"]) == {"PCK@0.2"} and set(hg1["protocol"]) == {"real"} and set(hg1["dataset"]) == {"synthetic"}
    )
    assert set(lc.variant) == {"hg1", "hg2"} and len(lc[lc.variant == "hg2"]) == 2  # make_record's two epochs
    assert "## Learning curves" in md and "`learning_curves.csv`" in md


def test_the_learning_curves_plot_is_written_and_embedded(tmp_path):
    records = [train("hg1", curve=[10.0, 30.0, 45.0], mean=45.0), train("hg2", CHECK)]
    _, out, md = report_files(tmp_path, records, formats="md,csv,png")
    png = out / "plots" / "learning_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "](plots/learning_curves.png)" in md
    assert md.count("learning_curves.png") == 1  # in its section, not again under Plots


def test_the_plot_has_a_row_per_protocol_and_a_line_style_per_number_of_stacks(tmp_path):
    """What the former per-(dataset, split, metric, protocol) validation-curve plots did, in the
    one learning-curves figure: protocols never share an axis, and the number of stacks (from
    each record's ``spec``) sets the line style and shows in the legend."""

    def stacked(variant, n, settings=REAL):
        return train(variant, settings, spec={"name": variant, "architecture": {"num_stacks": n, "depth": 4}},
                     curve=[20.0, 30.0, 35.0], mean=35.0)  # fmt: skip

    records = [stacked("hg1", 1), stacked("hg8", 8), stacked("hg1", 1, CHECK)]
    report, out, _ = report_files(tmp_path, records, formats="md,csv,png")
    assert list(pd.read_csv(out / "learning_curves.csv").columns) == [header(c) for c in LEARNING_COLUMNS]
    assert not list((out / "plots").glob("val_curves*")) and (out / "plots" / "learning_curves.png").exists()
    fig = learning_curves_figure(report.learning, "t", "s")
    axes = fig.get_axes()
    assert len(axes) == 4  # (validation, training) for protocols real and smoke
    titles = [ax.get_title() for ax in axes]
    assert sum("protocol real" in t for t in titles) == 2 and sum("protocol smoke" in t for t in titles) == 2
    real_acc = next(ax for ax in axes if ax.get_title().startswith("validation") and "protocol real" in ax.get_title())
    styles = {line.get_label(): line.get_linestyle() for line in real_acc.get_lines()}
    assert set(styles) == {"hg1 (1 stack)", "hg8 (8 stacks)"} and styles["hg1 (1 stack)"] != styles["hg8 (8 stacks)"]

    one = [stacked("hg1", 1), stacked("hg2", 1)]  # one number of stacks: plain labels, one style
    report, _, _ = report_files(tmp_path / "one", one)
    lines = learning_curves_figure(report.learning, "t", "s").get_axes()[0].get_lines()
    assert {ln.get_label() for ln in lines} == {"hg1", "hg2"} and len({ln.get_linestyle() for ln in lines}) == 1


def test_a_record_without_history_gives_no_curve_and_no_error(tmp_path):
    bare = train("hg2", history=[])
    report, out, md = report_files(tmp_path / "a", [bare], formats="md,csv,png")
    assert report.learning.empty and not (out / "learning_curves.csv").exists()
    assert not (out / "plots" / "learning_curves.png").exists() and "Learning curves" not in md
    assert report.per_joint.iloc[0]["mean_pct"] == pytest.approx(bare["final"]["mean"])  # its accuracy still shown

    report, out, _ = report_files(tmp_path / "b", [bare, train("hg1")])
    assert set(pd.read_csv(out / "learning_curves.csv").variant) == {"hg1"}


def test_one_validation_per_run_is_no_curve(tmp_path):
    one = train("hg1", curve=[50.0], mean=50.0)
    report, out, _ = report_files(tmp_path, [one])
    assert report.learning.empty and not (out / "learning_curves.csv").exists()
