"""The records package: one schema rule, one key, one reader (scan), atomic writes that never
replace a newer hgbench's record, and run folders that never leave --results."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import make_record, write_record_file

from hgbench.config import load_protocol
from hgbench.paths import UnsafePathError, run_dir, safe_component
from hgbench.records import (
    SCHEMA,
    NewerSchemaError,
    RecordError,
    protocol_hash,
    read_record,
    scan,
    spec_hash,
    write_record,
)


def test_write_then_read_gives_the_same_typed_record(tmp_path):
    body = {k: v for k, v in make_record("train").items() if k not in ("schema", "kind", "created")}
    written = write_record(tmp_path / "train.json", "train", body)
    back = read_record(tmp_path / "train.json")
    assert back.to_dict() == written.to_dict()
    assert back.kind == "train" and back.schema_ == SCHEMA and back.path == str(tmp_path / "train.json")
    assert back["history"][-1]["val"]["mean"] == 80.0 and back.get("no such field", 3) == 3


def test_a_writer_cannot_write_a_record_its_readers_would_refuse(tmp_path):
    with pytest.raises(RecordError, match="malformed train record: field 'spec'"):
        write_record(tmp_path / "r.json", "train", {"variant": "hg1"})
    assert not (tmp_path / "r.json").exists()


def test_newer_schema_is_refused_everywhere_and_never_overwritten(tmp_path):
    newer = make_record("train", schema="hgbench.record/99")
    path = write_record_file(tmp_path / "runs" / "train.json", newer)
    before = path.read_bytes()
    with pytest.raises(NewerSchemaError, match="written by a newer hgbench"):
        read_record(path)
    found = scan(tmp_path)
    assert found.records == [] and "written by a newer hgbench" in found.skipped[0][1]
    body = {k: v for k, v in make_record("train").items() if k not in ("schema", "kind", "created")}
    with pytest.raises(NewerSchemaError):
        write_record(path, "train", body)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("schema", "kind", "read"),
    [
        ("hgbench.record/1", "profile", False),  # no calibration, no raw samples
        ("hgbench.record/1", "train", True),
        ("hgbench.record/2", "profile", True),
        ("hgbench.record/2", "train", True),
        ("hgbench.record/2", "eval", False),  # no spec or protocol: readers would guess from the path
    ],
)
def test_older_schemas_are_read_or_refused_with_what_to_rerun(tmp_path, schema, kind, read):
    rec = make_record(kind, schema=schema)
    for field in ("spec_hash", "protocol_hash"):
        rec.pop(field, None)  # an old record has no hashes
    path = write_record_file(tmp_path / "r.json", rec)
    found = scan(tmp_path)
    if read:
        (got,) = found.records
        assert got.schema_ == SCHEMA and got.spec_hash == spec_hash(rec["spec"])
    else:
        assert (
            found.records == []
            and f"re-run hgbench {'profile' if kind == 'profile' else 'evaluate'}" in found.skipped[0][1]
        )
        with pytest.raises(RecordError, match="no longer read"):
            read_record(path)


def test_scan_says_what_it_skipped_and_keeps_the_newest_of_a_key(tmp_path):
    old = write_record_file(
        tmp_path / "a" / "x.json", make_record("profile", p50=9.0, created="2025-01-01T00:00:00+00:00")
    )
    new = write_record_file(
        tmp_path / "b" / "y.json", make_record("profile", p50=11.0, created="2025-02-01T00:00:00+00:00")
    )
    other = write_record_file(tmp_path / "b" / "z.json", make_record("profile", batch_size=8))
    (tmp_path / "broken.json").write_text('{"schema": ')
    write_record_file(tmp_path / "odd.json", {"schema": SCHEMA, "kind": "weights"})
    found = scan(tmp_path)
    assert sorted(r.path for r in found.records) == sorted([str(new), str(other)])
    reasons = dict(found.skipped)
    assert "superseded by the newer record" in reasons[str(old)]
    assert "not a readable JSON record" in reasons[str(tmp_path / "broken.json")]
    assert "field 'kind'" in reasons[str(tmp_path / "odd.json")]
    assert found.files == 5


def test_one_key_names_profile_files_and_ignores_the_machine_for_comparisons():
    a = make_record("profile", host="a", tf32=True, channels_last=True)
    b = make_record("profile", host="b", tf32=True, channels_last=True)
    from hgbench.records import parse_record

    ka, kb = parse_record(a, "a").key(), parse_record(b, "b").key()
    assert ka != kb and ka.without_machine() == kb.without_machine()
    assert ka.stem() == "hg1__j16__eager__cpu__fp32__tf32__cl__b1__s64"
    assert ka.label() == "hg1 j16 eager fp32 tf32 cl b1 s64 cpu" and ka.variant == "hg1"


def test_a_protocol_changed_under_the_same_name_is_another_run(tmp_path):
    p = load_protocol("smoke")
    changed = dataclasses.replace(p, epochs=p.epochs + 4)
    reworded = dataclasses.replace(p, description="other words")
    assert protocol_hash(changed) != protocol_hash(p)
    assert protocol_hash(reworded) == protocol_hash(p)
    assert run_dir(tmp_path, "synthetic", p.name, protocol_hash(changed), "hg1", "s") != run_dir(
        tmp_path, "synthetic", p.name, protocol_hash(p), "hg1", "s"
    )


@pytest.mark.parametrize("name", ["../../../../escaped", "a/b", "..", ".hidden", "", "a\\b", "x" * 200])
def test_no_name_leaves_the_results_folder(tmp_path, name):
    with pytest.raises(UnsafePathError, match="cannot be a folder or file name"):
        run_dir(tmp_path, "synthetic", name, "h", "hg1", "s")
    with pytest.raises(UnsafePathError):
        run_dir(tmp_path, "synthetic", "smoke", "h", name, "s")
    assert safe_component("hg1-ghost-s32", "variant") == "hg1-ghost-s32"


def test_the_committed_reference_records_are_all_read():
    root = Path(__file__).resolve().parents[2] / "benchmarks" / "reference"
    found = scan([root / "latency-gate", root / "cpu-registry-64px" / "records"], dedupe=False)
    assert found.files > 1000 and found.skipped == [] and len(found.records) == found.files
    assert all(json.loads(Path(r.path).read_text())["schema"] == "hgbench.record/2" for r in found.records[:5])


def test_a_failed_write_keeps_the_previous_record(tmp_path):
    body = {k: v for k, v in make_record("train").items() if k not in ("schema", "kind", "created")}
    path = tmp_path / "r.json"
    write_record(path, "train", body)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_record(path, "train", {**body, "notes": object()})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind


SMOKE_HASH = "e0d2dca3b329"  # smoke.yaml since 6b56071 (hgbench.records.schema.PIPELINE_CHECK_PROTOCOLS)


def under(protocol: str, hash_: str, **settings) -> dict:
    """Record fields of a run under ``protocol`` of content hash ``hash_`` (``settings``: the
    train record's ``protocol_settings`` beyond its name)."""
    return {"protocol": protocol, "protocol_hash": hash_, "protocol_settings": {"name": protocol, **settings}}


@pytest.mark.parametrize(
    ("kind", "over", "expected"),
    [
        ("train", under("real", "0123456789ab", pipeline_check=True), True),  # the settings say so
        ("train", under("smoke", SMOKE_HASH, pipeline_check=False), False),  # ... whatever the hash
        ("train", under("smoke", SMOKE_HASH), True),  # written before the field: smoke's hash
        ("train", under("smoke", "0123456789ab"), False),  # another protocol named smoke
        ("eval", {"protocol": "smoke", "protocol_hash": "652f95194a9c"}, True),  # smoke as of 32d9db3
        ("eval", {"protocol": "smoke", "protocol_hash": SMOKE_HASH, "pipeline_check": False}, False),  # its own word
        ("eval", {"protocol": "newell2016", "protocol_hash": SMOKE_HASH}, False),  # a hash counts under its name only
        ("eval", {"protocol": "mine", "protocol_hash": "0123456789ab", "pipeline_check": True}, True),
    ],
)
def test_pipeline_check_is_filled_on_read_from_the_record_alone(tmp_path, monkeypatch, kind, over, expected):
    """``pipeline_check`` of train and eval records comes from the record (its field, a train
    record's settings, or the hashes smoke had before records said so), never from the registry:
    an empty registry changes nothing."""
    (tmp_path / "registry" / "protocols").mkdir(parents=True)
    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(tmp_path / "registry"))
    path = write_record_file(tmp_path / "r.json", make_record(kind, **over))
    assert read_record(path).get("pipeline_check") is expected


def test_an_old_schema_train_record_of_smoke_is_a_pipeline_check(tmp_path):
    rec = make_record("train", schema="hgbench.record/2", protocol="smoke", protocol_hash="aee18b12ef20")
    rec["protocol_settings"].pop("pipeline_check", None)
    assert read_record(write_record_file(tmp_path / "r.json", rec)).get("pipeline_check") is True
