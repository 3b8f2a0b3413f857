"""Variant and protocol YAML: strict loading with errors that name the file and the field."""

import pytest

from hgbench.config import ConfigError, available_protocols, load_protocol, load_variant_file


def test_shipped_protocols_load():
    assert {"newell2016", "smoke"} <= set(available_protocols())
    p = load_protocol("newell2016")
    assert (p.optimizer.name, p.optimizer.lr, p.input_size, p.output_size) == ("rmsprop", 2.5e-4, 256, 64)
    assert p.augmentation.rotation_deg == 30 and p.augmentation.scale == (0.75, 1.25) and p.augmentation.flip


def test_unknown_field_names_file_and_field(tmp_path):
    path = tmp_path / "hgx.yaml"
    path.write_text("name: hgx\ndescription: x\nsource: {paper: p}\narchitecture: {num_stacks: 2, blok: residual}\n")
    with pytest.raises(
        ConfigError, match=r"hgx.yaml: field 'architecture.blok': unknown field.*fields here: num_stacks, "
    ):
        load_variant_file(path)


def test_wrong_type_and_unknown_block(tmp_path):
    path = tmp_path / "hgx.yaml"
    path.write_text("name: hgx\ndescription: x\nsource: {paper: p}\narchitecture: {num_stacks: two}\n")
    with pytest.raises(ConfigError, match=r"field 'architecture.num_stacks': 'two' is not an integer"):
        load_variant_file(path)
    path.write_text("name: hgx\ndescription: x\nsource: {paper: p}\narchitecture: {num_stacks: 2, block: nope}\n")
    with pytest.raises(ConfigError, match=r"field 'architecture.block': 'nope' is not one of 'residual', 'hru'"):
        load_variant_file(path)


def test_protocol_output_size_must_match_the_stem(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("input_size: 128\noutput_size: 64\n")
    with pytest.raises(
        ConfigError, match=r"p.yaml: field 'output_size': 64 is not input_size / 4 .*set output_size: 32"
    ):
        load_protocol(path)


def test_ints_are_accepted_for_floats_and_lists_for_tuples(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "optimizer: {lr: 1, betas: [0, 0.5]}\naugmentation: {scale: [1, 2]}\ninput_size: 64\noutput_size: 16\n"
    )
    p = load_protocol(path)
    assert p.name == "p" and p.optimizer.lr == 1.0 and isinstance(p.optimizer.lr, float)
    assert p.optimizer.betas == (0.0, 0.5) and p.augmentation.scale == (1.0, 2.0)


def test_from_dict_round_trips_every_shipped_spec_and_protocol():
    """train.loop.load_checkpoint rebuilds a spec from dataclasses.asdict (tuples) or from a JSON record (lists)."""
    import dataclasses
    import json

    from hgbench.config import Protocol, VariantSpec, from_dict, list_variants

    for spec in list_variants():
        d = dataclasses.asdict(spec)
        assert from_dict(VariantSpec, d, "ckpt") == spec
        assert from_dict(VariantSpec, json.loads(json.dumps(d)), "record.json") == spec
    for name in available_protocols():
        p = load_protocol(name)
        assert from_dict(Protocol, json.loads(json.dumps(dataclasses.asdict(p))), "record.json") == p
    with pytest.raises(ConfigError, match=r"^ckpt: field 'architecture.depth': 0 is not >= 1"):
        d = dataclasses.asdict(list_variants()[0])
        d["architecture"]["depth"] = 0
        from_dict(VariantSpec, d, "ckpt")
