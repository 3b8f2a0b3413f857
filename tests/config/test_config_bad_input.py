"""Bad variant and protocol files: each is refused with one line naming the file, the field,
the value and the fix (issue 15 item 3, issue 18); the published JSON Schema matches the
shipped files."""

import dataclasses
import json
import time
import tracemalloc

import pytest
import yaml
from typer.testing import CliRunner

from hgbench.config import (
    Architecture,
    ConfigError,
    Source,
    VariantSpec,
    available_protocols,
    check_compatible,
    json_schema,
    list_variants,
    load_protocol,
    load_variant_file,
)
from hgbench.config.loading import MAX_FILE_BYTES
from hgbench.config.variant import _load_all
from hgbench.paths import protocols_dir, variants_dir

VARIANT = "description: x\nsource: {paper: p}\n"
ARCH = "architecture: {num_stacks: 2%s}\n"

# (kind, file text, field the message names, words it must contain)
CASES = [
    ("protocol", "val_every: 0\n", "val_every", ["0 is not >= 1"]),
    ("protocol", "augmentation: {scale: [0, 0]}\n", "augmentation.scale[0]", ["0 is not > 0", "(and 1 more)"]),
    ("protocol", "augmentation: {scale: [1.5, 1.25]}\n", "augmentation.scale", ["low > high", "[low, high]"]),
    ("protocol", "augmentation: {rotation_prob: 1.5}\n", "augmentation.rotation_prob", ["1.5 is not <= 1"]),
    ("protocol", "augmentation: {color_jitter: 1}\n", "augmentation.color_jitter", ["1 is not < 1"]),
    ("protocol", "epochs: 0\n", "epochs", ["0 is not >= 1"]),
    ("protocol", "steps_per_epoch: 0\n", "steps_per_epoch", ["0 is not >= 1"]),
    ("protocol", "batch_size: -1\n", "batch_size", ["-1 is not >= 1"]),
    ("protocol", "optimizer: {lr: -1}\n", "optimizer.lr", ["-1 is not > 0", "use a value > 0"]),
    ("protocol", "optimizer: {lr: 1e-4}\n", "optimizer.lr", ["'1e-4' is not a number", "1.0e-4"]),
    ("protocol", "optimizer: {lr: .nan}\n", "optimizer.lr", ["nan is not a finite number"]),
    ("protocol", "optimizer: {momentum: 1.0}\n", "optimizer.momentum", ["1.0 is not < 1"]),
    ("protocol", "optimizer: {betas: [0.9, 1]}\n", "optimizer.betas[1]", ["1 is not < 1"]),
    ("protocol", "optimizer: {name: lamb}\n", "optimizer.name", ["'lamb' is not one of", "'rmsprop'"]),
    ("protocol", "schedule: {milestones: [30, 20]}\n", "schedule.milestones", ["[30, 20]", "increasing"]),
    ("protocol", "heatmap_sigma: 0\n", "heatmap_sigma", ["0 is not > 0"]),
    ("protocol", "num_workers: -1\n", "num_workers", ["-1 is not >= 0"]),
    ("protocol", "name: ../../../../escaped\n", "name", ["'../../../../escaped'", "plain name", "rename"]),
    ("protocol", "name: a/b\n", "name", ["'a/b'", "plain name"]),
    ("protocol", "name: .hidden\n", "name", ["'.hidden'", "plain name"]),
    ("protocol", "input_size: 60\noutput_size: 16\n", "output_size", ["16 is not input_size / 4", "output_size: 15"]),
    ("protocol", "epochs: '3'\n", "epochs", ["'3' is not an integer", "without quotes"]),
    ("protocol", "epochs: 2.5\n", "epochs", ["2.5 is not an integer"]),
    ("protocol", "flip_test: 1\n", "flip_test", ["1 is not true or false"]),
    ("protocol", "epochs: 2\nepochs: 3\n", "epochs", ["given twice", "line 2"]),
    ("protocol", "optimiser: {lr: 0.1}\n", "optimiser", ["unknown field", "optimizer"]),
    ("protocol", "epochs: " + "9" * 500 + "x\n", "epochs", ["is not an integer", "..."]),
    ("variant", VARIANT + ARCH % ", num_features: 0", "architecture.num_features", ["0 is not >= 2"]),
    ("variant", VARIANT + ARCH % ", num_features: 255", "architecture.num_features", ["255 is odd", "even"]),
    ("variant", VARIANT + ARCH % ", depth: 9", "architecture.depth", ["9 is not <= 6"]),
    ("variant", VARIANT + ARCH % ", num_modules: 0", "architecture.num_modules", ["0 is not >= 1"]),
    (
        "variant",
        VARIANT + ARCH % ", input_size: 60",
        "architecture.input_size",
        ["60 is not a multiple of 4 * 2**depth = 64", "64"],
    ),
    ("variant", VARIANT + ARCH % ", blok: residual", "architecture.blok", ["unknown field", "num_stacks"]),
    ("variant", VARIANT + ARCH % ", block: nope", "architecture.block", ["'nope' is not one of", "'ghost'"]),
    ("variant", VARIANT + "architecture: {num_stacks: '3'}\n", "architecture.num_stacks", ["'3' is not an integer"]),
    ("variant", VARIANT + ARCH % "" + "batch_size: 0\n", "batch_size", ["0 is not >= 1"]),
    ("variant", VARIANT + ARCH % "" + "pretrain: {lr_gamma: 0}\n", "pretrain.lr_gamma", ["0 is not > 0"]),
    ("variant", VARIANT + ARCH % "" + "name: other\n", "name", ["'other'", "hgx.yaml", "make them equal"]),
    ("variant", VARIANT + ARCH % "" + "name: ../../../../escaped\n", "name", ["plain name"]),
    ("variant", VARIANT, "architecture", ["required", "add it"]),
    ("variant", VARIANT + "architecture: [2]\n", "architecture", ["is not a mapping"]),
]


def _load(kind, path):
    return load_protocol(path) if kind == "protocol" else load_variant_file(path)


def _assert_one_line(message: str, path, field: str | None) -> None:
    assert "\n" not in message and len(message) < 600, message
    assert message.startswith(f"{path}: "), message
    if field is not None:
        assert f"field '{field}'" in message, message


@pytest.mark.parametrize("kind,text,field,words", CASES, ids=[f"{c[0]}:{c[2]}:{i}" for i, c in enumerate(CASES)])
def test_bad_field_is_refused_in_one_line(tmp_path, kind, text, field, words):
    path = tmp_path / "hgx.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        _load(kind, path)
    message = str(info.value)
    _assert_one_line(message, path, field)
    for word in words:
        assert word in message, (word, message)


def test_output_not_divisible_by_the_hourglass_is_refused_before_training(tmp_path):
    path = tmp_path / "p60.yaml"
    path.write_text("input_size: 60\noutput_size: 15\n")
    protocol = load_protocol(path)  # a valid protocol on its own (60 = 4 * 15)
    spec = VariantSpec(
        name="hgx", description="x", source=Source(paper="p"), architecture=Architecture(num_stacks=1, depth=4)
    )
    with pytest.raises(ConfigError) as info:
        check_compatible(spec, protocol, source=str(path))
    message = str(info.value)
    _assert_one_line(message, path, "architecture.depth")
    assert "15" in message and "multiple of 4*2**depth = 64" in message and "e.g. 64" in message


def test_check_compatible_rules(tmp_path):
    p = load_protocol("smoke")  # input 64, output 16
    spec = VariantSpec(
        name="hgx", description="x", source=Source(paper="p"), architecture=Architecture(num_stacks=1, depth=4)
    )
    check_compatible(spec, p)
    with pytest.raises(
        ConfigError, match=r"field 'architecture.depth': 2 needs heatmaps divisible by 2\*\*2 = 4.*e\.g\. 64"
    ):
        depth2 = dataclasses.replace(spec, architecture=Architecture(num_stacks=1, depth=2))
        check_compatible(depth2, dataclasses.replace(p, input_size=56, output_size=14))
    with pytest.raises(ConfigError, match=r"field 'batch_size': 0 is not >= 1"):
        check_compatible(dataclasses.replace(spec, batch_size=0), p)
    fixed = Architecture(num_stacks=1, bottleneck="autoencoder", input_size=256)
    with pytest.raises(
        ConfigError, match=r"field 'architecture.input_size': 256 differs from the protocol's input_size 64"
    ):
        check_compatible(dataclasses.replace(spec, architecture=fixed), p)
    with pytest.raises(ConfigError, match=r"field 'epochs': 0 is not >= 1"):  # a Protocol(...) built in code
        check_compatible(spec, dataclasses.replace(p, epochs=0))


def test_yaml_bomb_is_refused_quickly_without_expanding(tmp_path):
    levels = ["a: &a [" + ", ".join(['"lol"'] * 10) + "]"]
    for i in range(1, 10):  # 10**10 strings once expanded
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("description:\n  " + "\n  ".join(levels) + "\nepochs: 1\n")
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ConfigError) as info:
            load_protocol(path)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    _assert_one_line(message, path, None)
    assert "field 'description'" in message and "aliases" in message, message
    assert elapsed < 0.5 and peak < 20 * 2**20, (elapsed, peak)


def test_small_alias_use_is_allowed(tmp_path):
    path = tmp_path / "hgx.yaml"
    path.write_text(VARIANT + ARCH % "" + "optimizer: &opt {name: sgd, lr: 0.01}\npretrain: {optimizer: *opt}\n")
    spec = load_variant_file(path)
    assert spec.optimizer == spec.pretrain.optimizer and spec.optimizer.lr == 0.01


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("description: &d [*d]\n")
    with pytest.raises(ConfigError, match=r"p.yaml: field 'description' \(line 1\): YAML aliases"):
        load_protocol(path)


def test_unreadable_files_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_bytes(b"description: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"p.yaml: not UTF-8 text at byte 16; save the file as UTF-8$"):
        load_protocol(path)
    path.write_text("description: x\n" + "#" * MAX_FILE_BYTES)
    with pytest.raises(ConfigError, match=r"p.yaml: over 1 MiB"):
        load_protocol(path)
    path.write_text("optimizer: {lr: 0.1\nepochs: 2\n")
    with pytest.raises(ConfigError) as info:
        load_protocol(path)
    _assert_one_line(str(info.value), path, None)
    assert "not valid YAML: line 2" in str(info.value)
    path.write_text("- epochs\n")
    with pytest.raises(ConfigError, match=r"p.yaml: expected a mapping .* got list"):
        load_protocol(path)
    with pytest.raises(ConfigError, match=r"missing.yaml: no such file"):
        load_protocol(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"unknown protocol '../smoke'"):
        load_protocol("../smoke")


def test_a_garbage_file_among_the_variants_is_named(tmp_path, monkeypatch):
    for name in ("hg1", "hg2"):
        (tmp_path / f"{name}.yaml").write_text((variants_dir() / f"{name}.yaml").read_text())
    (tmp_path / "protocols").mkdir()
    (tmp_path / "hg1b.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage: [")
    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(tmp_path))
    _load_all.cache_clear()
    try:
        with pytest.raises(ConfigError) as info:
            list_variants()
        _assert_one_line(str(info.value), tmp_path / "hg1b.yaml", None)
        (tmp_path / "hg1b.yaml").write_text("name: hg1b\n{{{\n")
        with pytest.raises(ConfigError, match=r"hg1b.yaml: not valid YAML: line \d+, column \d+: "):
            list_variants()
        (tmp_path / "hg1b.yaml").unlink()
        assert [v.name for v in list_variants()] == ["hg1", "hg2"]
    finally:
        _load_all.cache_clear()


def _check_against_schema(data, schema, defs, where=""):
    """A minimal JSON Schema check (jsonschema is not a dependency): object fields, required
    fields, forbidden extras and numeric bounds, following $ref and anyOf [X, null]."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:
        if data is None:
            assert {"type": "null"} in schema["anyOf"], where
            return
        schema = next(s for s in schema["anyOf"] if s != {"type": "null"})
        return _check_against_schema(data, schema, defs, where)
    if schema.get("type") == "object":
        assert schema["additionalProperties"] is False, where
        assert set(data) <= set(schema["properties"]), (where, set(data) - set(schema["properties"]))
        assert set(schema.get("required", [])) <= set(data), where
        for key, value in data.items():
            _check_against_schema(value, schema["properties"][key], defs, f"{where}.{key}")
    elif schema.get("type") in ("number", "integer"):
        assert isinstance(value := data, (int, float)) and not isinstance(value, bool), where
        assert value >= schema.get("minimum", value) and value > schema.get("exclusiveMinimum", value - 1), where
        assert value <= schema.get("maximum", value) and value < schema.get("exclusiveMaximum", value + 1), where
    elif "enum" in schema:
        assert data in schema["enum"], where


def test_json_schema_describes_the_shipped_files():
    for kind, paths in (
        ("variant", sorted(variants_dir().glob("*.yaml"))),
        ("protocol", sorted(protocols_dir().glob("*.yaml"))),
    ):
        schema = json_schema(kind)
        assert schema["additionalProperties"] is False and "name" not in schema["required"]
        assert all(d["additionalProperties"] is False for d in schema["$defs"].values())
        for path in paths:
            _check_against_schema(yaml.safe_load(path.read_text()), schema, schema["$defs"], str(path))
    arch = json_schema("variant")["$defs"]["Architecture"]["properties"]
    assert arch["depth"]["maximum"] == 6 and arch["num_features"]["minimum"] == 2
    assert json_schema("protocol")["properties"]["name"]["pattern"] == "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$"
    assert {"architecture", "description", "source"} <= set(json_schema("variant")["required"])
    assert len(list_variants()) == 27 and {"newell2016", "smoke"} <= set(available_protocols())


def test_cli_schema_prints_json_and_refuses_an_unknown_kind():
    from hgbench.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["schema", "protocol"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["properties"]["epochs"]["minimum"] == 1
    r = runner.invoke(app, ["schema", "nope"])
    assert r.exit_code == 2 and "'nope' is not one of variant, protocol" in r.output.replace("\n", "")
