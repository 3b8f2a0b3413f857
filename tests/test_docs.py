"""The documentation's "Adding a variant" steps (README.md, docs/extending.md), followed as written:
a new YAML in a copy of the registry appears in `hgbench variants` and trains under `smoke`."""

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hgbench.cli import app
from hgbench.paths import variants_dir
from hgbench.records import read_record

ROOT = Path(__file__).resolve().parent.parent
COPY_STEP = "cp variants/hg1.yaml variants/hg1-w128.yaml"


def test_both_documents_give_the_steps_this_test_follows():
    for doc in ("README.md", "docs/extending.md"):
        text = (ROOT / doc).read_text()
        assert "### Adding a variant" in text or "## Adding a variant" in text, doc
        assert COPY_STEP in text and "hgbench train hg1-w128 --protocol smoke" in text, doc


@pytest.mark.slow
def test_a_new_variant_yaml_is_listed_and_trains_under_smoke(tmp_path, monkeypatch):
    registry = tmp_path / "variants"
    shutil.copytree(variants_dir(), registry)
    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(registry))

    # 1. copy the closest variant under the new name
    shutil.copy(registry / "hg1.yaml", registry / "hg1-w128.yaml")
    # 2. edit it: the name (= the file name), the description, an architecture field, the notes
    spec = yaml.safe_load((registry / "hg1-w128.yaml").read_text())
    spec["name"] = "hg1-w128"
    spec["description"] = "hg1 at half the feature width"
    spec["architecture"]["num_features"] = 128
    spec["notes"] = "a documentation example: half of hg1's width"
    (registry / "hg1-w128.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    runner = CliRunner()
    # 3. the registry lists it
    listed = runner.invoke(app, ["variants"], env={"COLUMNS": "240"})
    assert listed.exit_code == 0, listed.output
    assert "hg1-w128" in listed.output

    # 4. it trains under the pipeline check
    results = tmp_path / "results"
    trained = runner.invoke(app, ["train", "hg1-w128", "--protocol", "smoke", "--results", str(results)])
    assert trained.exit_code == 0, trained.output
    (record_path,) = results.glob("runs/synthetic/smoke-*/hg1-w128-*/train.json")
    record = read_record(record_path)
    assert record["complete"] and record["variant"] == "hg1-w128"
    assert record["spec"]["architecture"]["num_features"] == 128
