"""Variant and protocol YAML: strict loading with errors that name the file and the field."""

import pytest

from hgbench.config import ConfigError
from hgbench.config import available_protocols, load_protocol
from hgbench.config import load_variant_file
from hgbench.records import read_record, write_record


def test_shipped_protocols_load():
    assert {"newell2016", "smoke"} <= set(available_protocols())
    p = load_protocol("newell2016")
    assert (p.optimizer.name, p.optimizer.lr, p.input_size, p.output_size) == ("rmsprop", 2.5e-4, 256, 64)
    assert p.augmentation.rotation_deg == 30 and p.augmentation.scale == (0.75, 1.25) and p.augmentation.flip


def test_unknown_field_names_file_and_field(tmp_path):
    path = tmp_path / "hgx.yaml"
    path.write_text("name: hgx\ndescription: x\nsource: {paper: p}\narchitecture: {num_stacks: 2, blok: residual}\n")
    with pytest.raises(ConfigError, match=r"hgx.yaml: field 'architecture'.*unknown field\(s\) \['blok'\]"):
        load_variant_file(path)


def test_wrong_type_and_unknown_block(tmp_path):
    path = tmp_path / "hgx.yaml"
    path.write_text("name: hgx\ndescription: x\nsource: {paper: p}\narchitecture: {num_stacks: two}\n")
    with pytest.raises(ConfigError, match=r"field 'architecture.num_stacks': expected an integer"):
        load_variant_file(path)
    path.write_text("name: hgx\ndescription: x\nsource: {paper: p}\narchitecture: {num_stacks: 2, block: nope}\n")
    with pytest.raises(ConfigError, match="known blocks:.*residual"):
        load_variant_file(path)


def test_protocol_output_size_must_match_the_stem(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("input_size: 128\noutput_size: 64\n")
    with pytest.raises(ConfigError, match="output_size"):
        load_protocol(path)


def test_a_failed_write_keeps_the_previous_record(tmp_path):
    path = tmp_path / "r.json"
    write_record(path, "train", {"value": 1})
    with pytest.raises(TypeError):
        write_record(path, "train", {"value": object()})
    assert read_record(path)["value"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind
