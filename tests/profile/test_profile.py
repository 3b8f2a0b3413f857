"""profile_model (record body, fault isolation, numerics against eager fp32), record paths and
schema, provenance, and the `hgbench profile` command."""

from __future__ import annotations

import contextlib
import json
import sys
import types

import pytest
import torch
from conftest import make_record
from torch import nn
from typer.testing import CliRunner

from hgbench import paths
from hgbench.cli import app
from hgbench.profile import backends as backends_pkg
from hgbench.profile import (
    complexity_record,
    count_parameters,
    make_input,
    profile_model,
    reference_output,
    save_profile_record,
)
from hgbench.profile.backends import Backend, Prepared, RunSettings
from hgbench.profile.roofline import Ceilings
from hgbench.profile.run import is_reference
from hgbench.records import SCHEMA, ProfileRecord, key_of, read_record
from hgbench.records.provenance import collect_provenance
from hgbench.records.schema import PROFILE_FIELDS

CEILINGS = Ceilings(matmul_tflops=0.1, copy_gib_s=10.0, precision="fp32", measured="2026-01-01T00:00:00+00:00")
CONTRACT_KEYS = {
    "variant", "num_joints", "backend", "precision", "tf32", "channels_last", "compile_mode", "device", "device_name",
    "batch_size", "input_size", "threads", "parameters", "model_size_mib", "macs", "gmacs_fvcore", "gmacs_thop",
    "gflops_flop_counter", "skipped_ops", "activation_memory_mib", "latency_ms", "throughput_samples_per_s",
    "peak_memory_mib", "build_time_s", "numerics", "roofline", "calibration", "status", "error",
}  # fmt: skip
PROVENANCE_KEYS = {
    "hgbench_version", "git_commit", "git_dirty", "python", "torch", "cuda", "cudnn", "tensorrt", "onnxruntime",
    "gpu_name", "gpu_driver", "gpu_compute_capability", "gpu_clocks_mhz", "gpu_power_limit_w", "gpu_throttle_reasons",
    "cpu_model", "threads", "hostname", "platform", "command",
}  # fmt: skip


class TwoHeads(nn.Module):
    """Returns a list of two tensors, like a 2-stack hourglass returns per-stack heatmaps."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head1 = nn.Conv2d(8, 4, 1)
        self.head2 = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.body(x)
        return [self.head1(y), self.head2(y) + self.head1(y)]


class Scripted(Backend):
    """A test backend: ``behaviour`` decides what goes wrong."""

    name = "fake"
    behaviour = "ok"

    def available(self, device):
        return "pip install fake-backend" if self.behaviour == "unavailable" else None

    def prepare(self, model, example_input, settings):
        if self.behaviour == "prepare":
            raise RuntimeError("cannot compile this\nmodel")
        model = model.eval()
        behaviour = self.behaviour

        def fn(x):
            if behaviour == "oom":
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            with torch.inference_mode():
                out = model(x)
            if behaviour == "wrong":  # a fast but wrong backend: heatmaps shifted by one pixel
                out = [torch.roll(o, shifts=1, dims=-1) for o in out]
            return out

        return Prepared(fn=fn, prepare_input=lambda x: x, build_time_s=0.25, notes=["scripted"])


@pytest.fixture
def fake_backend(monkeypatch):
    monkeypatch.setitem(backends_pkg.BACKENDS, "fake", Scripted)

    def set_behaviour(behaviour):
        monkeypatch.setattr(Scripted, "behaviour", behaviour)

    return set_behaviour


def _profile(model, **kw):
    args = {
        "variant": "tiny",
        "num_joints": 4,
        "backend": "eager",
        "batch_size": 2,
        "input_size": 16,
        "threads": 1,
        "warmup_iters": 1,
        "min_iters": 3,
        "min_time_s": 0.0,
        "ceilings": CEILINGS,
    }
    return profile_model(model, **{**args, **kw})


# --- profile_model ------------------------------------------------------------------------------


def test_ok_record_has_every_contract_key():
    threads_before = torch.get_num_threads()
    model = TwoHeads().train()
    rec = _profile(model, calibration={"workload": "w", "p50_ms": 1.0, "samples_ms": [1.0]})
    assert rec["status"] == "ok" and rec["error"] is None
    assert isinstance(rec, ProfileRecord)
    body = rec.to_body()
    assert CONTRACT_KEYS <= set(body) and list(body) == list(PROFILE_FIELDS)  # every field, in the written order
    json.dumps(body)  # plain JSON
    assert rec["threads"] == 1 and torch.get_num_threads() == threads_before
    assert model.training  # restored
    assert (rec["device"], rec["precision"], rec["tf32"], rec["channels_last"], rec["compile_mode"]) == (
        "cpu",
        "fp32",
        False,
        False,
        None,
    )
    assert rec["parameters"] == count_parameters(model)
    assert rec["latency_ms"]["n"] == 3 and len(rec["latency_ms"]["samples_ms"]) == 3
    assert rec["throughput_samples_per_s"] == pytest.approx(2 / (rec["latency_ms"]["p50_ms"] / 1000))
    assert rec["numerics"] is None  # eager fp32 is the reference itself
    assert rec["calibration"]["p50_ms"] == 1.0
    roof = rec["roofline"]
    assert roof["floor_ms"] == max(roof["compute_floor_ms"], roof["memory_floor_ms"])
    assert roof["efficiency"] == pytest.approx(roof["floor_ms"] / rec["latency_ms"]["p50_ms"])
    assert roof["flops"] == pytest.approx(2 * rec["gflops_flop_counter"] * 1e9)  # batch 2
    assert rec["peak_memory_mib"] is None or rec["peak_memory_mib"] >= 0
    assert rec["memory"]["peak_source"] == "rss" and rec["memory"]["method"]


def test_precomputed_complexity_is_taken_as_given():
    model = TwoHeads()
    complexity = complexity_record(model, 16)
    complexity["macs"]["fvcore"] = 123  # marker
    rec = _profile(model, backend="torchscript", complexity=complexity)
    assert rec["status"] == "ok" and rec["macs"]["fvcore"] == 123


def test_a_forward_error_is_recorded_with_its_stage():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            raise RuntimeError("boom\nsecond line")

    rec = _profile(Broken(), complexity={"parameters": 12})
    assert rec["status"] == "error"
    assert rec["error"].startswith("timing: RuntimeError: boom") and "\n" not in rec["error"]
    assert rec["latency_ms"] is None and rec["roofline"] is None


def test_unavailable_backend_is_recorded(fake_backend):
    fake_backend("unavailable")
    rec = _profile(TwoHeads(), backend="fake")
    assert rec["status"] == "error" and rec["error"] == "backend unavailable: pip install fake-backend"


def test_prepare_failure_is_recorded(fake_backend):
    fake_backend("prepare")
    rec = _profile(TwoHeads(), backend="fake")
    assert rec["error"] == "prepare: RuntimeError: cannot compile this model"
    assert rec["parameters"] is not None  # complexity was measured before


def test_out_of_memory_is_recorded_with_the_batch_size(fake_backend):
    fake_backend("oom")
    rec = _profile(TwoHeads(), backend="fake", batch_size=4)
    assert rec["status"] == "error"
    assert rec["error"].startswith("timing: CUDA out of memory at batch size 4")


def test_numerics_flag_a_deliberately_wrong_backend(fake_backend):
    model = TwoHeads()
    reference = reference_output(model, 2, 16)
    fake_backend("ok")
    good = _profile(model, backend="fake", reference=reference)
    fake_backend("wrong")
    wrong = _profile(model, backend="fake", reference=reference)
    assert good["status"] == wrong["status"] == "ok"  # measured fine; the numerics say it is wrong
    assert good["numerics"]["ok"] is True and good["numerics"]["max_abs_error"] == pytest.approx(0.0, abs=1e-6)
    assert wrong["numerics"]["ok"] is False and wrong["numerics"]["argmax_moved_fraction"] > 0.5
    assert good["build_time_s"] == 0.25 and good["notes"] == ["scripted"]


def test_the_run_context_is_entered_once_around_the_timed_calls_not_per_call():
    """Process-wide flags (TF32 on CUDA) are set once around warm-up and timed calls and once
    around the numerical check's call, never inside a timed call."""
    events = []

    class Counting(Backend):
        name = "counting"

        def prepare(self, model, example_input, settings):
            model = model.eval()

            @contextlib.contextmanager
            def context():
                events.append("enter")
                yield
                events.append("exit")

            def fn(x):
                events.append("call")
                with torch.inference_mode():
                    return model(x)

            return Prepared(fn=fn, prepare_input=lambda x: x, context=context)

    model = TwoHeads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(backends_pkg.BACKENDS, "counting", Counting)
        rec = _profile(model, backend="counting", reference=reference_output(model, 2, 16), min_iters=6)
    assert rec["status"] == "ok" and rec["numerics"]["ok"]
    timed = 1 + 6  # one warm-up call, six timed calls
    assert events == ["enter"] + ["call"] * timed + ["exit", "enter", "call", "exit"]


def test_numerics_reference_is_computed_when_not_given():
    rec = _profile(TwoHeads(), backend="torchscript")
    assert rec["status"] == "ok" and rec["numerics"]["ok"] is True


def test_reference_output_is_eager_fp32_on_the_fixed_input():
    model = TwoHeads().eval()
    ref = reference_output(model, 2, 16)
    x = make_input(2, 16)
    assert torch.equal(x, make_input(2, 16))  # same seed, same tensor
    with torch.no_grad():
        expected = model(x)
    for a, b in zip(ref, expected):
        torch.testing.assert_close(a, b)
    assert is_reference("eager", RunSettings()) and not is_reference("eager", RunSettings(precision="bf16"))
    assert not is_reference("eager", RunSettings(channels_last=True)) and not is_reference("torchscript", RunSettings())


# --- record path and schema ----------------------------------------------------------------------


def test_record_path_names_every_configuration_axis(tmp_path):
    body = {
        "variant": "hg2",
        "num_joints": 16,
        "backend": "compile",
        "compile_mode": "max-autotune",
        "device": "cuda",
        "precision": "bf16",
        "tf32": True,
        "channels_last": True,
        "batch_size": 8,
        "input_size": 256,
    }

    def profile_record_path(results, host, body):
        return paths.profile_record_path(results, host, key_of("profile", body).stem())

    assert (
        profile_record_path(tmp_path, "h", body)
        == tmp_path / "profile/h/hg2__j16__compile-max-autotune__cuda__bf16__tf32__cl__b8__s256.json"
    )
    body.update(tf32=False, channels_last=False, compile_mode="default", device="cpu")
    assert profile_record_path(tmp_path, "h", body).name == "hg2__j16__compile__cpu__bf16__b8__s256.json"
    # every axis that tells two configurations apart changes the file name: none overwrites another
    variants = [
        dict(body, **change)
        for change in (
            {},
            {"device": "cuda"},
            {"compile_mode": "reduce-overhead"},
            {"precision": "fp16"},
            {"tf32": True},
            {"channels_last": True},
            {"batch_size": 1},
            {"input_size": 128},
        )
    ]
    assert len({profile_record_path(tmp_path, "h", b) for b in variants}) == len(variants)


def test_saved_record_round_trips_with_provenance(tmp_path):
    rec = _profile(TwoHeads())
    path = save_profile_record(rec, tmp_path, collect_provenance(["hgbench", "profile"], threads=1))
    assert path.parent.parent == tmp_path / "profile" and path.name == "tiny__j4__eager__cpu__fp32__b2__s16.json"
    back = read_record(path)
    assert back["schema"] == SCHEMA and back["kind"] == "profile"
    assert PROVENANCE_KEYS <= set(back["provenance"]) and back["provenance"]["threads"] == 1
    assert back["latency_ms"] == rec["latency_ms"]


# --- provenance ----------------------------------------------------------------------------------


def test_provenance_has_every_key():
    prov = collect_provenance(["hgbench", "profile", "--backend", "eager", "a b"], threads=3)
    assert PROVENANCE_KEYS <= set(prov)
    assert prov["command"] == "hgbench profile --backend eager 'a b'"
    assert prov["torch"] == torch.__version__ and prov["threads"] == 3
    assert prov["hostname"] and prov["python"].count(".") == 2
    if not torch.cuda.is_available():
        assert prov["gpu_name"] is None and prov["gpu_driver"] is None and prov["gpu_compute_capability"] is None
        assert (
            prov["gpu_clocks_mhz"] is None
            and prov["gpu_power_limit_w"] is None
            and prov["gpu_throttle_reasons"] is None
        )
    json.dumps(prov)


class FakeNvml(types.ModuleType):
    """nvidia-ml-py's ``pynvml`` as far as provenance uses it: an H100 at its power limit, SM
    clock capped by the software power cap, the power brake query refused."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2

    def __init__(self, event_api=True, fail_init=False):
        super().__init__("pynvml")
        self.calls, self.fail_init = [], fail_init
        if event_api:
            self.nvmlDeviceGetCurrentClocksEventReasons = lambda h: 0x4 | 0x20  # sw_power_cap | sw_thermal_slowdown
        else:
            self.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: 0x1  # gpu_idle

    def nvmlInit(self):
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")
        self.calls.append("init")

    def nvmlShutdown(self):
        self.calls.append("shutdown")

    def nvmlDeviceGetHandleByIndex(self, index):
        self.calls.append(("handle", index))
        return f"gpu{index}"

    def nvmlDeviceGetClockInfo(self, handle, clock):
        return {1: 1755, 2: 2619}[clock]

    def nvmlDeviceGetMaxClockInfo(self, handle, clock):
        return {1: 1980, 2: 2619}[clock]

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        raise RuntimeError("NVMLError_NotSupported")


def test_provenance_reads_gpu_clocks_power_limit_and_throttle_reasons_through_nvml(monkeypatch):
    from hgbench.records import provenance

    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(provenance, "_nvml_index", lambda: 3)
    prov = collect_provenance(["hgbench"], threads=1)
    assert prov["gpu_clocks_mhz"] == {"sm": 1755, "sm_max": 1980, "memory": 2619, "memory_max": 2619}
    assert prov["gpu_power_limit_w"] is None  # refused alone, the rest is read
    assert prov["gpu_throttle_reasons"] == ["sw_power_cap", "sw_thermal_slowdown"]
    assert fake.calls == ["init", ("handle", 3), "shutdown"]
    json.dumps(prov)

    fake.nvmlDeviceGetEnforcedPowerLimit = lambda h: 700_000  # mW
    assert provenance.gpu_nvml_state(0)["gpu_power_limit_w"] == 700.0
    older = FakeNvml(event_api=False)  # nvidia-ml-py before the "clocks event" rename
    monkeypatch.setitem(sys.modules, "pynvml", older)
    assert provenance.gpu_nvml_state(0)["gpu_throttle_reasons"] == ["gpu_idle"]


def test_provenance_gpu_fields_are_none_without_nvml_or_without_a_gpu(monkeypatch):
    from hgbench.records import provenance

    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(fail_init=True))
    assert provenance.gpu_nvml_state(0) == dict.fromkeys(provenance.NVML_FIELDS)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed: import raises ImportError
    assert provenance.gpu_nvml_state(0) == dict.fromkeys(provenance.NVML_FIELDS)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    assert provenance.gpu_nvml_state(None) == dict.fromkeys(provenance.NVML_FIELDS)  # no CUDA device


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_unavailable_backend_fails_before_profiling(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    r = CliRunner().invoke(
        app, ["profile", "--variants", "hg1", "--backend", "eager,tensorrt", "--results", str(tmp_path)]
    )
    assert r.exit_code == 2
    assert "tensorrt" in r.output.lower() and "install" in r.output.lower()
    assert not (tmp_path / "profile").exists()  # nothing profiled half-way


@pytest.mark.parametrize(
    "args, message",
    [
        (["--precision", "fp8"], "fp8"),
        (["--batch-size", "0"], "--batch-size"),
        (["--input-size", "100"], "--input-size 100"),
        (["--device", "tpu"], "--device"),
        (["--compile-mode", "fastest"], "fastest"),
        (["--quiet-attempts", "0"], "--quiet-attempts"),
        (["--quiet-tolerance", "-0.1"], "--quiet-tolerance"),
    ],
)
def test_cli_bad_options_exit_2(tmp_path, args, message):
    r = CliRunner().invoke(app, ["profile", "--variants", "hg1", "--results", str(tmp_path), *args])
    assert r.exit_code == 2 and message in r.output
    assert not (tmp_path / "profile").exists()


@pytest.mark.slow
def test_cli_records_a_failing_backend_and_goes_on(tmp_path, fake_backend, monkeypatch):
    monkeypatch.setenv("HGBENCH_CACHE_DIR", str(tmp_path / "cache"))
    fake_backend("prepare")
    args = [
        "profile",
        "--variants",
        "hg1",
        "--backend",
        "eager,fake,torchscript",
        "--batch-size",
        "1,2",
        "--input-size",
        "64",
        "--min-time-s",
        "0",
        "--min-iters",
        "2",
        "--warmup",
        "1",
        "--warmup-s",
        "0",
        "--threads",
        "1",
        "--results",
        str(tmp_path / "results"),
    ]
    monkeypatch.setattr("sys.argv", ["hgbench", *args])  # what a shell would pass; the record keeps it
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1, r.output
    assert "2 of 6 settings failed" in r.output and "prepare: RuntimeError: cannot compile this model" in r.output
    records = sorted((tmp_path / "results/profile").glob("*/*.json"))
    assert len(records) == 6
    (sweep,) = (tmp_path / "results/profile").glob("*/sweeps/*.json")  # and one sweep record
    assert read_record(sweep)["status"] == "failed" and read_record(sweep)["failed"] == 2
    bodies = {p.name: read_record(p) for p in records}
    ok = bodies["hg1__j16__torchscript__cpu__fp32__b2__s64.json"]
    assert ok["status"] == "ok" and ok["numerics"]["ok"] and ok["threads"] == 1
    assert ok["calibration"]["p50_ms"] > 0 and ok["roofline"]["ceilings"]["precision"] == "fp32"
    assert len(ok["latency_ms"]["windows"]) == 3 and "timing windows:" in r.output  # one per repetition, summarised
    assert PROVENANCE_KEYS <= set(ok["provenance"]) and ok["provenance"]["command"] == " ".join(["hgbench", *args])
    assert bodies["hg1__j16__fake__cpu__fp32__b1__s64.json"]["status"] == "error"
    assert (tmp_path / "cache/ceilings.json").is_file()


def test_a_failed_measurement_never_replaces_a_good_record(tmp_path):
    from hgbench.profile.run import save_profile_record

    prov = {"hostname": "h"}
    good = {k: v for k, v in make_record("profile").items() if k not in ("schema", "kind", "created", "provenance")}
    path = save_profile_record(ProfileRecord(**good), tmp_path, prov)
    before = path.read_bytes()
    failed = ProfileRecord(
        **{**good, "status": "error", "error": "timing: RuntimeError: out of memory", "latency_ms": None}
    )
    assert save_profile_record(failed, tmp_path, prov) == path and "is kept" in failed["not_written"]
    assert path.read_bytes() == before
    path.unlink()  # with no good record, the failure is recorded (and why it was not written is not)
    save_profile_record(failed, tmp_path, prov)
    assert read_record(path)["status"] == "error" and "not_written" not in json.loads(path.read_text())


# --- the one typed profile record ----------------------------------------------------------------


def test_committed_profile_records_read_and_write_back_byte_for_byte_in_their_layout():
    """ProfileRecord declares every field, in the order written: a committed record (schema 3)
    parses and dumps back to the same JSON object, key order included; a schema-2 record (the
    latency gate's reference) reads with the three newer fields as None."""
    from pathlib import Path

    from hgbench.records import parse_record

    root = Path(__file__).resolve().parents[2] / "benchmarks/reference"
    for f in sorted((root / "lspet-cpu/records/profile").rglob("*.json"))[:5]:
        data = json.loads(f.read_text())
        back = parse_record(data, str(f)).to_dict()
        assert back == data and list(back) == list(data)
    f = root / "latency-gate/hg1__j16__eager__cpu__fp32__b1__s64.json"
    rec = parse_record(json.loads(f.read_text()), str(f))
    assert isinstance(rec, ProfileRecord) and rec.memory is None and rec.spec is None
    assert rec.latency_ms["p50_ms"] > 0 and rec["calibration"]["workload"].startswith("frozen one-stack")


def test_a_profile_of_a_registered_variant_carries_its_network_identity():
    from hgbench.config import get_variant
    from hgbench.profile.run import profile_identity
    from hgbench.records import identity
    from hgbench.records.identity import network_identity

    spec = get_variant("hg1")
    rec = _profile(TwoHeads(), variant="hg1", spec=spec)
    assert {k: rec[k] for k in ("variant", "spec", "spec_hash", "num_joints")} == network_identity(spec, 4)
    assert _profile(TwoHeads())["spec_hash"] is None  # a model built outside the registry: its name only
    artifact = {k: rec[k] for k in ("backend", "precision", "tf32", "channels_last", "compile_mode", "batch_size",
                                    "input_size", "device")}  # fmt: skip
    assert profile_identity("hg1", 4, artifact, spec) == identity(spec=spec, num_joints=4, artifact=artifact)
    with pytest.raises(ValueError, match="the spec of 'hg1' was given for variant 'hg2'"):
        profile_identity("hg2", 4, artifact, spec)


def test_assignments_to_a_profile_record_are_validated():
    import pydantic

    rec = _profile(TwoHeads())
    with pytest.raises(pydantic.ValidationError, match="finite number"):
        rec.update(throughput_samples_per_s=float("nan"))
    with pytest.raises(pydantic.ValidationError):
        rec.batch_size = "two"
    assert rec.batch_size == 2 and rec.throughput_samples_per_s > 0  # unchanged
