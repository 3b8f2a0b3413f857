"""Up-front limits (issue 26 item 5): a variant or protocol value that cannot fit in memory
(``num_features`` 10^6, ``num_stacks`` 10^9, a batch of 10^9, an input side of 10^6) or that
makes NumPy fail (a rotation range of 1e308 degrees, a zoom of 1e300) is refused when the file is
read, with the estimated size and the limit, before anything is allocated; the shipped files and
the registry's networks are all within the limits."""

from __future__ import annotations

import dataclasses
import time
import tracemalloc

import pytest
from conftest import tiny_protocol_yaml, write_registry
from typer.testing import CliRunner

from hgbench.config import ConfigError, check_compatible, list_variants, load_protocol, load_variant_file
from hgbench.config.protocol import MAX_BATCH_INPUT_BYTES, available_protocols
from hgbench.config.variant import MAX_WEIGHT_BYTES, PretrainConfig, _load_all, parameter_lower_bound

runner = CliRunner()
VARIANT = "description: x\nsource: {paper: p}\narchitecture: {%s}\n"

# (architecture fields, words the message must hold)
HUGE_VARIANTS = [
    ("num_stacks: 1000000000", ["num_stacks 1,000,000,000", "at least 4.26e+14 parameters", "GiB of float32 weights"]),
    ("num_stacks: 1, num_features: 1000000", ["num_features 1,000,000", "at least 6.5e+12 parameters"]),
    ("num_stacks: 2, num_modules: 100000000", ["num_modules 100,000,000", "parameters"]),
    ("num_stacks: 1, bottom_modules: 1000000000000", ["at least", "parameters"]),
    ("num_stacks: 1, bottleneck: autoencoder, latent_dim: 1000000000000", ["at least", "parameters"]),
]


@pytest.mark.parametrize(("fields", "words"), HUGE_VARIANTS, ids=[f for f, _ in HUGE_VARIANTS])
def test_a_variant_too_large_for_memory_is_refused_when_read_with_its_estimated_size(tmp_path, fields, words):
    path = tmp_path / "huge.yaml"
    path.write_text(VARIANT % fields)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ConfigError) as e:
            load_variant_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = str(e.value)
    assert text.startswith(f"{path}: field 'architecture': "), text
    assert "too large to fit in memory" in text and "over the 64 GiB limit" in text, text
    assert all(w in text for w in words), text
    assert "\n" not in text and time.perf_counter() - start < 1 and peak < 16 * 2**20  # nothing built


# (protocol text, field, words)
HUGE_PROTOCOLS = [
    ("input_size: 1000000\noutput_size: 250000\n", "input_size", ["3 x 1,000,000 x 1,000,000", "GiB", "64 GiB limit"]),
    ("batch_size: 1000000000\n", "input_size", ["batch_size 1,000,000,000", "7.32e+05 GiB", "smaller batch_size"]),
    (
        "augmentation: {rotation_deg: 1.0e+308}\n",
        "augmentation.rotation_deg",
        ["1e+308", "every rotation", "at most 180"],
    ),
    ("augmentation: {rotation_deg: 181}\n", "augmentation.rotation_deg", ["181 is over 180 degrees"]),
    ("augmentation: {scale: [1.0e-300, 1.0e+300]}\n", "augmentation.scale", ["zooms past 16x", "[0.75, 1.25]"]),
    ("augmentation: {scale: [0.5, 20]}\n", "augmentation.scale", ["[0.5, 20]", "zooms past 16x"]),
    ("augmentation: {scale: [0.01, 1]}\n", "augmentation.scale", ["zooms past 16x"]),
]


@pytest.mark.parametrize(
    ("text", "field", "words"), HUGE_PROTOCOLS, ids=[f"{f}-{t[:30]}" for t, f, _ in HUGE_PROTOCOLS]
)
def test_a_protocol_value_too_large_is_refused_when_read(tmp_path, text, field, words):
    path = tmp_path / "huge.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_protocol(path)
    message = str(e.value)
    assert message.startswith(f"{path}: field '{field}': "), message
    assert all(w in message for w in words), message


@pytest.mark.parametrize("text", ["augmentation: {rotation_deg: 180, scale: [0.0625, 16]}\n", "batch_size: 256\n"])
def test_values_at_the_limits_are_read(tmp_path, text):
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    load_protocol(path)


def test_a_variants_batch_override_too_large_for_the_protocol_is_refused_before_training():
    protocol = load_protocol("smoke")
    spec = next(s for s in list_variants() if s.name == "hg1")
    with pytest.raises(ConfigError, match=r"field 'batch_size': input_size 64 with batch_size 10,000,000 does not fit"):
        check_compatible(dataclasses.replace(spec, batch_size=10**7), protocol)
    pretrain = PretrainConfig(batch_size=10**7)
    with pytest.raises(ConfigError, match=r"field 'pretrain.batch_size': .* 458 GiB before any activation"):
        check_compatible(dataclasses.replace(spec, pretrain=pretrain), protocol)
    check_compatible(dataclasses.replace(spec, batch_size=64), protocol)


def test_every_shipped_variant_and_protocol_is_within_the_limits_and_the_estimate_is_a_lower_bound():
    from hgbench.models import create_model

    for name in available_protocols():
        p = load_protocol(name)
        assert p.batch_size * 3 * p.input_size**2 * 4 <= MAX_BATCH_INPUT_BYTES
    for spec in list_variants():
        model = create_model(spec, 16, input_size=256)
        actual = sum(t.numel() for t in model.parameters())
        assert parameter_lower_bound(spec.architecture) <= actual, spec.name
        assert actual * 4 < MAX_WEIGHT_BYTES / 100, spec.name


def test_hgbench_train_refuses_a_huge_protocol_or_variant_in_one_line_before_any_work(tmp_path, monkeypatch):
    """Before: NumPy's OverflowError in the data loader (a traceback), or the allocator killed."""
    from hgbench.cli import app

    registry = write_registry(tmp_path / "registry")
    (registry / "huge.yaml").write_text("name: huge\n" + VARIANT % "num_stacks: 1000000000")
    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(registry))
    _load_all.cache_clear()
    try:
        bad = tmp_path / "bad.yaml"
        bad.write_text(tiny_protocol_yaml(augmentation={"rotation_deg": 1e308}))
        r = runner.invoke(app, ["train", "tiny", "--protocol", str(bad), "--results", str(tmp_path / "res")])
        text = " ".join(r.output.split())
        assert r.exit_code == 2 and "augmentation.rotation_deg" in text and str(bad) in text, r.output
        assert not (tmp_path / "res" / "runs").exists()
        r = runner.invoke(app, ["variants"])
        text = " ".join(r.output.split())
        assert r.exit_code == 2 and "huge.yaml" in text and "too large to fit in memory" in text, r.output
        assert "Traceback" not in r.output
    finally:
        _load_all.cache_clear()


# --- hgbench profile: a batch that cannot fit, refused before any allocation ----------------------


def test_batch_memory_counts_a_layers_input_and_output_once_each():
    import torch
    from torch import nn

    from hgbench.profile.memory import batch_memory

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 2, 1))
    need = batch_memory(net.to("meta"), 4)
    assert need.per_sample == 3 * 16 + 8 * 16  # the first conv: input + output; the in-place ReLU once
    assert need.weights == sum(p.numel() for p in net.parameters())
    assert need.bytes(10, 2) == (need.weights + 10 * need.per_sample) * 2
    assert all(p.device.type == "meta" for p in net.parameters()) and torch.zeros(1).device.type == "cpu"


def test_check_batch_fits_names_the_estimate_the_memory_and_the_largest_batch_that_fits():
    from hgbench.profile.memory import BatchMemory, check_batch_fits

    need = {"big": BatchMemory(weights=1000, per_sample=2**20), "small": BatchMemory(weights=10, per_sample=10)}
    free = 4 * 2**30  # 4 GiB: 1024 fp32 samples of 1 Mi elements, less the weights
    check_batch_fits(need, [1, 1000], ["fp32"], "cpu", available=free)
    with pytest.raises(ValueError) as e:
        check_batch_fits(need, [1, 2000], ["fp32"], "cpu", available=free)
    text = str(e.value)
    assert text.startswith("--batch-size 2000: big needs at least 7.81 GiB on cpu"), text
    assert "4 MiB per sample" in text and "4 GiB is available" in text and "use --batch-size 1023 or less" in text
    check_batch_fits(need, [2000], ["fp32", "fp16"], "cpu", available=free)  # fp16 halves the bound


def test_hgbench_profile_refuses_a_batch_of_20000_before_any_allocation(tmp_path, monkeypatch):
    """Before: the kernel killed the process after it took the machine's memory."""
    from hgbench.cli import app
    from hgbench.profile import memory
    from hgbench.profile.plan import plan_profile

    monkeypatch.setattr(memory, "available_memory_bytes", lambda device: 16 * 2**30)
    with pytest.raises(
        ValueError, match=r"^--batch-size 20000: hg1 needs at least 234 GiB on cpu .* 16 GiB is available"
    ):
        plan_profile("hg1", backend="eager", device="cpu", batch_size="1,20000", input_size=256, results=tmp_path)
    plan = plan_profile("hg1", backend="eager", device="cpu", batch_size="1,64", input_size=256, results=tmp_path)
    assert plan.batch_sizes == [1, 64]
    args = ["profile", "--variants", "hg1", "--backend", "eager", "--device", "cpu", "--batch-size", "20000",
            "--input-size", "256", "--results", str(tmp_path / "res")]  # fmt: skip
    tracemalloc.start()
    try:
        r = runner.invoke(app, args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = " ".join(r.output.split())
    assert r.exit_code == 2 and "--batch-size 20000" in text and "use --batch-size" in text, r.output
    assert "Traceback" not in r.output and peak < 256 * 2**20
    assert not list((tmp_path / "res").rglob("*.json"))


def test_available_memory_is_read_on_this_machine():
    from hgbench.profile.memory import available_memory_bytes

    free = available_memory_bytes("cpu")
    assert free is None or free > 0


def _cgroup_tree(root, files):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_a_control_group_limit_caps_the_cpu_memory_available(tmp_path, monkeypatch):
    """A Slurm job's --mem (cgroup v2 at the job, none at the step) or a container's v1 limit caps
    what the plan and the sweep count as available: limit - (usage - inactive file pages), the
    smallest over the cgroup and its ancestors; no limit (v2 "max", v1 ~2**63): no cap."""
    from hgbench.profile import memory

    gib = 2**30
    v2 = tmp_path / "v2"
    _cgroup_tree(v2, {
        "proc": "0::/slurm/job_7/step_0\n",
        "sys/slurm/job_7/memory.max": f"{8 * gib}\n", "sys/slurm/job_7/memory.current": f"{3 * gib}\n",
        "sys/slurm/job_7/memory.stat": f"anon 1\nfile {gib}\nfile_mapped {gib // 2}\ninactive_file 7\n",
        "sys/slurm/job_7/step_0/memory.max": "max\n", "sys/slurm/job_7/step_0/memory.current": f"{2 * gib}\n",
        "sys/slurm/memory.max": "max\n",
    })  # fmt: skip
    assert memory.cgroup_headroom_bytes(v2 / "proc", v2 / "sys") == 6 * gib  # 8 - (3 - 1)
    v1 = tmp_path / "v1"
    _cgroup_tree(v1, {
        "proc": "5:cpu,cpuacct:/\n4:memory:/docker/abc\n0::/\n",
        "sys/memory/docker/abc/memory.limit_in_bytes": f"{4 * gib}\n",
        "sys/memory/docker/abc/memory.usage_in_bytes": f"{gib}\n",
        "sys/memory/docker/abc/memory.stat": f"cache 5\ntotal_cache {gib // 2}\ntotal_inactive_file 7\n",
        "sys/memory/docker/memory.limit_in_bytes": "9223372036854771712\n",
        "sys/memory/memory.limit_in_bytes": "9223372036854771712\n",
    })  # fmt: skip
    assert memory.cgroup_headroom_bytes(v1 / "proc", v1 / "sys") == 3 * gib + gib // 2  # 4 - (1 - 0.5)
    _cgroup_tree(v1, {"outside": "4:memory:/../../etc\n"})  # outside its cgroup namespace: not followed
    assert memory.cgroup_headroom_bytes(v1 / "outside", v1 / "sys") is None
    unlimited = tmp_path / "none"
    _cgroup_tree(unlimited, {"proc": "0::/\n", "sys/memory.current": "5\n"})
    assert memory.cgroup_headroom_bytes(unlimited / "proc", unlimited / "sys") is None
    assert memory.cgroup_headroom_bytes(tmp_path / "missing", tmp_path) is None

    uncapped = memory.available_memory_bytes("cpu")
    monkeypatch.setattr(memory, "cgroup_headroom_bytes", lambda: 2 * gib)  # a job's --mem below the node's free memory
    assert memory.available_memory_bytes("cpu") == min(2 * gib, uncapped or 2 * gib)
