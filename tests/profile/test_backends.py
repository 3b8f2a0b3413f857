"""Inference backends: registry, availability reasons, casting without touching the caller's
model, and every backend that runs on this CPU matching eager fp32 (hgbench.profile.backends)."""

from __future__ import annotations

import contextlib
import importlib.util
import warnings

import pytest
import torch

from hgbench.models.hourglass import StackedHourglass
from hgbench.profile.backends import BACKENDS, Backend, Prepared, RunSettings, base, get_backend, onnx_runtime
from hgbench.profile.backends.base import artefact_key, device_flags, run_context, tf32_mode
from hgbench.profile.backends.onnx_runtime import cuda_provider_options, cuda_provider_problem, ort_gpu_hint
from hgbench.profile.backends.tensorrt import tensorrt_cache_path
from hgbench.profile.numerics import compare_outputs, tolerance_for
from hgbench.profile.tf32 import has_fp32_precision_api, tf32_state
from tests.conftest import tiny_hourglass

CUDA = torch.device("cuda")  # a device object only: nothing below allocates on it

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


def run_backend(name: str, model, x, settings: RunSettings | None = None):
    prepared = get_backend(name).prepare(model, x, settings or RunSettings())
    assert isinstance(prepared, Prepared)
    with torch.inference_mode():
        return prepared, prepared.fn(prepared.prepare_input(x))


def eager_reference(model, x):
    with torch.inference_mode():
        return model(x)


# --- registry ---------------------------------------------------------------------------------


def test_registry_has_every_backend_of_the_issue():
    assert list(BACKENDS) == ["eager", "torchscript", "compile", "cudagraphs", "onnxruntime", "tensorrt"]
    for name in BACKENDS:
        backend = get_backend(name)
        assert isinstance(backend, Backend) and backend.name == name


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(
        ValueError, match="unknown backend 'onnx'.*eager, torchscript, compile, cudagraphs, onnxruntime, tensorrt"
    ):
        get_backend("onnx")


@pytest.mark.parametrize("field, value", [("precision", "fp64"), ("compile_mode", "fastest")])
def test_run_settings_reject_unknown_values(field, value):
    with pytest.raises(ValueError, match=f"unknown {field.replace('_', ' ')}"):
        RunSettings(**{field: value})


# --- availability -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["eager", "torchscript", "onnxruntime"])
def test_portable_backends_are_available_on_the_cpu(name):
    assert get_backend(name).available(CPU) is None


def test_cudagraphs_needs_cuda_and_builds_nothing_on_the_cpu():
    backend = get_backend("cudagraphs")
    assert "needs a CUDA device" in backend.available(CPU)
    with pytest.raises(RuntimeError, match="cudagraphs: needs a CUDA device"):
        backend.prepare(tiny_hourglass(), torch.randn(1, 3, 16, 16), RunSettings())


@pytest.mark.skipif(importlib.util.find_spec("torch_tensorrt") is not None, reason="torch-tensorrt is installed")
def test_tensorrt_without_torch_tensorrt_says_what_to_install():
    backend = get_backend("tensorrt")
    reason = backend.available(CPU)
    assert (
        "pip install --extra-index-url https://pypi.nvidia.com 'hgbench[tensorrt]'" in reason and "NVIDIA GPU" in reason
    )
    with pytest.raises(RuntimeError, match=r"tensorrt: torch-tensorrt is not installed"):
        backend.prepare(tiny_hourglass(), torch.randn(1, 3, 16, 16), RunSettings())


def test_tensorrt_with_torch_tensorrt_but_no_gpu_asks_for_cuda(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return object() if name == "torch_tensorrt" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert "needs a CUDA GPU" in get_backend("tensorrt").available(CPU)


def test_compile_without_a_cpp_compiler_says_what_to_install(monkeypatch):
    from torch._inductor import cpp_builder

    def no_compiler():
        raise RuntimeError("no working C++ compiler found")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    reason = get_backend("compile").available(CPU)
    assert "needs a C++ compiler" in reason and "install g++" in reason


# --- TensorRT cache naming (the part of the TensorRT backend that runs without a GPU) ----------

VERSIONS = {
    "torch": "2.13.0",
    "torch_tensorrt": "2.13.0",
    "tensorrt": "10.13",
    "gpu": "H100",
    "compute_capability": "9.0",
}


def test_tensorrt_cache_path_names_shape_precision_and_flags(tmp_path):
    model = tiny_hourglass()
    path = tensorrt_cache_path(
        tmp_path, model, (8, 3, 64, 64), RunSettings(precision="fp16", tf32=True, channels_last=True), VERSIONS
    )
    assert path.parent == tmp_path / "tensorrt"
    assert path.name.startswith("StackedHourglass__8x3x64x64__fp16__tf32__cl__") and path.suffix == ".ep"


def test_tensorrt_cache_key_reuses_only_the_same_model_shape_settings_and_software(tmp_path):
    model = tiny_hourglass()
    same_weights = tiny_hourglass()  # same seed: same weights
    settings = RunSettings(precision="fp16")
    base = tensorrt_cache_path(tmp_path, model, (1, 3, 64, 64), settings, VERSIONS)
    assert tensorrt_cache_path(tmp_path, same_weights, (1, 3, 64, 64), settings, VERSIONS) == base

    other_weights = tiny_hourglass()
    with torch.no_grad():
        next(other_weights.parameters())[0].add_(1e-3)
    changed = [
        tensorrt_cache_path(tmp_path, other_weights, (1, 3, 64, 64), settings, VERSIONS),
        tensorrt_cache_path(tmp_path, model, (2, 3, 64, 64), settings, VERSIONS),
        tensorrt_cache_path(tmp_path, model, (1, 3, 64, 64), RunSettings(precision="bf16"), VERSIONS),
        tensorrt_cache_path(tmp_path, model, (1, 3, 64, 64), RunSettings(precision="fp16", tf32=True), VERSIONS),
        tensorrt_cache_path(tmp_path, model, (1, 3, 64, 64), settings, {**VERSIONS, "tensorrt": "10.14"}),
        tensorrt_cache_path(
            tmp_path, model, (1, 3, 64, 64), settings, {**VERSIONS, "gpu": "A100", "compute_capability": "8.0"}
        ),
    ]
    assert len({base, *changed}) == 1 + len(changed)


def test_artefact_key_of_a_larger_architecture_differs():
    settings = RunSettings()
    torch.manual_seed(0)
    wider = StackedHourglass(num_stacks=2, num_joints=16, num_features=32, depth=1, stem_channels=8)
    assert artefact_key(tiny_hourglass(), (1, 3, 16, 16), settings, {}) != artefact_key(
        wider, (1, 3, 16, 16), settings, {}
    )


@pytest.mark.parametrize("settings", [RunSettings(), RunSettings(precision="fp16"), RunSettings(channels_last=True)])
def test_artefact_key_of_the_model_is_that_of_its_cast_copy(settings):
    """A backend names its artefact from the caller's model and copies it only to build: the key
    must be the one the cast copy (what is built) has, else a cache made by an older hgbench, or
    by another path, would be missed or, worse, hit for other weights."""
    model = tiny_hourglass()
    key = artefact_key(model, (1, 3, 16, 16), settings, {})
    assert key == artefact_key(base.cast_model(model, settings), (1, 3, 16, 16), settings, {})
    assert key != artefact_key(model, (1, 3, 16, 16), RunSettings(precision="bf16"), {})


# --- precision, layout and TF32 -----------------------------------------------------------------


def test_casting_leaves_the_callers_model_untouched():
    model = tiny_hourglass().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(1, 3, 16, 16)
    get_backend("eager").prepare(model, x, RunSettings(precision="bf16", channels_last=True))
    assert model.training
    for name, tensor in model.state_dict().items():
        assert tensor.dtype == before[name].dtype and tensor.is_contiguous()
        assert torch.equal(tensor, before[name])


def test_prepare_input_casts_and_lays_out_without_touching_its_argument():
    model, x = tiny_hourglass(), torch.randn(2, 3, 16, 16)
    prepared = get_backend("eager").prepare(model, x, RunSettings(precision="bf16", channels_last=True))
    converted = prepared.prepare_input(x)
    assert converted.dtype == torch.bfloat16 and converted.is_contiguous(memory_format=torch.channels_last)
    assert x.dtype == torch.float32 and x.is_contiguous()


@pytest.mark.parametrize("name", ["eager", "torchscript"])
def test_channels_last_matches_eager_fp32(name):
    model, x = tiny_hourglass(), torch.randn(2, 3, 16, 16)
    _, out = run_backend(name, model, x, RunSettings(channels_last=True))
    assert compare_outputs(eager_reference(model, x), out, tolerance_for("fp32"))["ok"]


@pytest.mark.parametrize("name", ["eager", "torchscript"])
def test_bf16_on_the_cpu_runs_in_bf16_within_the_bf16_tolerance(name):
    model, x = tiny_hourglass(), torch.randn(2, 3, 16, 16)
    try:
        _, out = run_backend(name, model, x, RunSettings(precision="bf16"))
    except RuntimeError as exc:  # a CPU without bf16 kernels: the reason is what the record keeps
        assert str(exc)
        pytest.skip(f"bf16 does not run on this CPU: {exc}")
    assert out[-1].dtype == torch.bfloat16
    result = compare_outputs(eager_reference(model, x), out, tolerance_for("bf16"))
    assert result["ok"] and result["max_abs_error"] > 0  # really computed in bf16


@pytest.mark.parametrize("settings", [RunSettings(precision="bf16"), RunSettings(channels_last=True)])
def test_onnxruntime_refuses_what_it_cannot_run_before_exporting(settings):
    with pytest.raises(RuntimeError, match="onnxruntime: (bf16 is not supported|channels_last does not apply)"):
        get_backend("onnxruntime").prepare(tiny_hourglass(), torch.randn(1, 3, 16, 16), settings)


def test_tf32_mode_sets_both_flags_and_restores_them_on_error():
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    before = tf32_state()
    with pytest.raises(KeyError), tf32_mode(not old[0]):
        assert torch.backends.cuda.matmul.allow_tf32 == torch.backends.cudnn.allow_tf32 == (not old[0])
        raise KeyError("boom")
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == old
    assert tf32_state() == before


@pytest.mark.skipif(not has_fp32_precision_api(), reason="torch < 2.9 has only the legacy TF32 flags")
@pytest.mark.parametrize("enabled", [True, False])
def test_tf32_mode_sets_the_new_api_that_inductor_reads_and_legacy_reads_still_work(enabled):
    value = "tf32" if enabled else "ieee"
    before = tf32_state()
    with tf32_mode(enabled):
        # Inductor's conv template reads torch.backends.cudnn.fp32_precision, its matmuls the matmul setting
        assert torch.backends.cudnn.fp32_precision == torch.backends.cuda.matmul.fp32_precision == value
        assert torch.backends.cudnn.conv.fp32_precision == torch.backends.cudnn.rnn.fp32_precision == value
        # ...and the legacy getters (Dynamo, Inductor's backward templates) agree instead of raising
        assert torch.backends.cuda.matmul.allow_tf32 is enabled and torch.backends.cudnn.allow_tf32 is enabled
        assert torch.get_float32_matmul_precision() == ("high" if enabled else "highest")
    assert tf32_state() == before


@pytest.mark.skipif(not has_fp32_precision_api(), reason="torch < 2.9 has only the legacy TF32 flags")
def test_tf32_mode_works_after_someone_mixed_the_apis_and_restores_their_state():
    old = torch.backends.cudnn.conv.fp32_precision
    try:
        torch.backends.cudnn.conv.fp32_precision = "ieee"  # the new API alone: legacy reads now raise
        with pytest.raises(RuntimeError, match="mix of the legacy and new APIs"):
            bool(torch.backends.cudnn.allow_tf32)
        mixed = tf32_state()
        with tf32_mode(False):
            assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cudnn.fp32_precision == "ieee"
        assert tf32_state() == mixed
    finally:
        torch.backends.cudnn.conv.fp32_precision = old


def test_device_flags_set_tf32_on_cuda_only():
    with device_flags(RunSettings(tf32=True), CUDA):
        assert torch.backends.cuda.matmul.allow_tf32 is True
    before = tf32_state()
    with device_flags(RunSettings(tf32=True), CPU):
        assert tf32_state() == before  # the CPU is left alone


def test_flags_are_set_once_around_a_run_not_inside_every_call(monkeypatch):
    """Defect: run_in_mode entered tf32_mode in every timed call of eager, TorchScript, compile
    and TensorRT (host overhead CUDA graphs and ONNX Runtime did not pay). Now ``fn`` touches no
    flag and ``Prepared.context`` sets them once around a run of calls."""
    entered = []

    @contextlib.contextmanager
    def counting(enabled):
        entered.append(enabled)
        yield

    monkeypatch.setattr(base, "tf32_mode", counting)
    assert not hasattr(base, "run_in_mode")
    model, x = tiny_hourglass(), torch.randn(1, 3, 16, 16)
    for name in ("eager", "torchscript"):
        prepared = get_backend(name).prepare(model, x, RunSettings(tf32=True))
        xi = prepared.prepare_input(x)
        for _ in range(5):
            prepared.fn(xi)
    assert entered == []  # no call toggled a flag
    context = run_context(RunSettings(tf32=True), CUDA)  # what a CUDA Prepared carries
    with context():
        pass
    assert entered == [True]


def test_compile_release_resets_dynamo_and_its_cuda_graph_trees(monkeypatch):
    resets = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(True))
    get_backend("compile").release()
    assert resets == [True]


@pytest.mark.parametrize("name, settings, source", [
    ("eager", RunSettings(), "allocator"), ("torchscript", RunSettings(), "allocator"),
    ("compile", RunSettings(), "allocator"), ("compile", RunSettings(compile_mode="reduce-overhead"), "device"),
    ("compile", RunSettings(compile_mode="max-autotune"), "device"), ("cudagraphs", RunSettings(), "device"),
    ("onnxruntime", RunSettings(), "device"), ("tensorrt", RunSettings(precision="fp16"), "device"),
])  # fmt: skip
def test_backends_whose_memory_bypasses_the_allocator_report_the_device_figure(name, settings, source):
    assert get_backend(name).peak_memory_source(settings) == source


# --- TensorRT and ONNX Runtime on CUDA: what can be checked without one --------------------------


def test_tensorrt_refuses_channels_last_before_anything_else():
    backend = get_backend("tensorrt")
    assert backend.unsupported(RunSettings(precision="fp16")) is None
    assert "channels_last" in backend.unsupported(RunSettings(channels_last=True))
    with pytest.raises(RuntimeError, match="tensorrt: channels_last does not apply"):
        backend.prepare(tiny_hourglass(), torch.randn(1, 3, 16, 16), RunSettings(channels_last=True))


@pytest.mark.parametrize("tf32, expected", [(False, "0"), (True, "1")])
def test_onnxruntime_cuda_options_carry_tf32_and_a_real_stream(tf32, expected):
    options = cuda_provider_options(RunSettings(tf32=tf32), 1, 0x7F3A5C001230)
    assert options == {"device_id": "1", "use_tf32": expected, "has_user_compute_stream": "1",
                       "user_compute_stream": str(0x7F3A5C001230)}  # fmt: skip
    assert cuda_provider_options(RunSettings(precision="fp16"), 0, 5)["use_tf32"] == "0"


def test_onnxruntime_cuda_options_refuse_the_default_stream():
    with pytest.raises(ValueError, match="user_compute_stream 0 is the default stream"):
        cuda_provider_options(RunSettings(), 0, 0)


def test_onnxruntime_on_cuda_is_unavailable_when_its_cuda_provider_does_not_load(monkeypatch):
    """A wheel that lists CUDAExecutionProvider but cannot load it (built for another CUDA major
    version than torch's) falls back to the CPU: available() must say so. Here the CPU wheel is
    told to list CUDA; creating the probe session then really falls back."""
    import onnxruntime

    cuda_provider_problem.cache_clear()
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    try:
        reason = get_backend("onnxruntime").available(CUDA)
    finally:
        cuda_provider_problem.cache_clear()
    assert reason is not None and "does not load beside torch" in reason and "CPUExecutionProvider" in reason


def test_onnxruntime_on_cuda_is_available_when_a_session_really_has_the_provider(monkeypatch):
    import onnxruntime

    class Session:
        def __init__(self, model, sess_options, providers):
            assert isinstance(model, bytes) and providers[0][0] == "CUDAExecutionProvider"

        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    cuda_provider_problem.cache_clear()
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(onnxruntime, "InferenceSession", Session)
    try:
        assert onnx_runtime.OnnxRuntimeBackend().available(CUDA) is None
    finally:
        cuda_provider_problem.cache_clear()


def test_onnxruntime_without_a_cuda_provider_names_the_wheel_for_torchs_cuda():
    cuda_provider_problem.cache_clear()
    try:
        reason = get_backend("onnxruntime").available(CUDA)  # the CPU wheel installed here
    finally:
        cuda_provider_problem.cache_clear()
    assert "no CUDAExecutionProvider" in reason
    # PyPI's onnxruntime-gpu: CUDA 12 up to 1.26, CUDA 13 from 1.27 (the onnx-gpu extra's floor)
    assert "'hgbench[onnx-gpu]'" in ort_gpu_hint("13.0") and ">= 1.27" in ort_gpu_hint("13.0")
    assert "'onnxruntime-gpu>=1.19,<1.27'" in ort_gpu_hint("12.8") and "hgbench[onnx-gpu]" not in ort_gpu_hint("12.8")
    assert "pip uninstall -y onnxruntime" in ort_gpu_hint("13.0") and "CUDA 11 build" in ort_gpu_hint("11.8")
    assert "CPU build" in ort_gpu_hint(None)


# --- backends against eager fp32 --------------------------------------------------------------


def test_torchscript_matches_eager_and_keeps_the_list_of_stacks():
    model, x = tiny_hourglass(), torch.randn(2, 3, 16, 16)
    prepared, out = run_backend("torchscript", model, x)
    reference = eager_reference(model, x)
    assert isinstance(out, list) and len(out) == len(reference) == 2
    for a, b in zip(reference, out):
        assert a.shape == b.shape == (2, 16, 4, 4)
    assert compare_outputs(reference, out)["ok"]
    assert prepared.build_time_s > 0


def test_torchscript_reuses_its_frozen_module_only_for_the_same_weights_and_shape(tmp_path, monkeypatch):
    """With a cache directory the frozen module is saved; the same weights and shape load it
    instead of tracing and freezing (then optimise it as before: the output still matches eager); other
    weights trace anew; an unreadable cached file is traced again and written over."""
    model, x = tiny_hourglass(), torch.randn(2, 3, 16, 16)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    settings = RunSettings(cache_dir=tmp_path)
    first, _ = run_backend("torchscript", model, x, settings)
    [saved] = (tmp_path / "torchscript").glob("*.frozen.pt")
    assert any(note == f"frozen module written to {saved}" for note in first.notes)
    traces, freezes = [], []
    real_trace, real_freeze = torch.jit.trace, torch.jit.freeze
    monkeypatch.setattr(torch.jit, "trace", lambda *a, **k: traces.append(a) or real_trace(*a, **k))
    monkeypatch.setattr(torch.jit, "freeze", lambda *a, **k: freezes.append(a) or real_freeze(*a, **k))

    again, out = run_backend("torchscript", model, x, settings)
    assert traces == [] and any(note == f"frozen module reused from {saved}" for note in again.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load's, in torch 2.13
        reloaded = torch.jit.load(str(saved))
    assert freezes == [] and not hasattr(reloaded, "training")  # saved frozen, not frozen again
    assert compare_outputs(eager_reference(model, x), out)["ok"]

    real_optimize = torch.jit.optimize_for_inference
    failures = iter([RuntimeError("cannot optimise")])

    def optimize_once_failing(module, *a, **k):
        error = next(failures, None)
        if error is not None:
            raise error
        return real_optimize(module, *a, **k)

    monkeypatch.setattr(torch.jit, "optimize_for_inference", optimize_once_failing)
    retraced, out = run_backend("torchscript", model, x, settings)  # the loaded module fails: traced again
    assert len(traces) == 1 and any("did not optimise" in note for note in retraced.notes)
    assert compare_outputs(eager_reference(model, x), out)["ok"]
    monkeypatch.setattr(torch.jit, "optimize_for_inference", real_optimize)

    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    changed, out = run_backend("torchscript", model, x, settings)  # other weights: traced anew, their output
    assert len(traces) == 2 and len(list((tmp_path / "torchscript").glob("*.pt"))) == 2
    assert compare_outputs(eager_reference(model, x), out)["ok"]

    saved.write_bytes(b"not a module")  # a partial or foreign file
    model.load_state_dict(original)
    repaired, out = run_backend("torchscript", model, x, settings)
    assert len(traces) == 3 and any("not loaded" in note for note in repaired.notes)
    assert compare_outputs(eager_reference(model, x), out)["ok"] and saved.stat().st_size > 100


@pytest.mark.slow
def test_onnxruntime_matches_eager_and_keeps_the_list_of_stacks(tmp_path):
    model, x = tiny_hourglass(), torch.randn(2, 3, 16, 16)
    prepared, out = run_backend("onnxruntime", model, x, RunSettings(cache_dir=tmp_path))
    reference = eager_reference(model, x)
    assert isinstance(out, list) and [o.shape for o in out] == [r.shape for r in reference]
    assert compare_outputs(reference, out)["ok"]
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
    assert any("CPUExecutionProvider" in note for note in prepared.notes)
    assert any(note.startswith("model written to") for note in prepared.notes)


@pytest.mark.slow
def test_onnxruntime_reuses_its_export_only_for_the_same_weights_and_shape(tmp_path, monkeypatch):
    from hgbench.profile.backends import onnx_runtime

    model, x = tiny_hourglass(), torch.randn(2, 3, 16, 16)
    settings = RunSettings(cache_dir=tmp_path)
    run_backend("onnxruntime", model, x, settings)
    exports = []
    real_export = onnx_runtime._export
    monkeypatch.setattr(onnx_runtime, "_export", lambda *a: exports.append(a) or real_export(*a))

    again, out = run_backend("onnxruntime", model, x, settings)  # same weights and shape: loaded, not exported
    assert exports == [] and any(note.startswith("model reused from") for note in again.notes)
    reference = eager_reference(model, x)
    assert isinstance(out, list) and compare_outputs(reference, out)["ok"]

    run_backend("onnxruntime", model, torch.randn(1, 3, 16, 16), settings)  # another batch size: a new export
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    changed, out = run_backend("onnxruntime", model, x, settings)  # other weights: a new export, their output
    assert len(exports) == 2 and any(note.startswith("model written to") for note in changed.notes)
    assert compare_outputs(eager_reference(model, x), out)["ok"]
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 3


@pytest.mark.slow
def test_compile_matches_eager():
    if get_backend("compile").available(CPU) is not None:
        pytest.skip(get_backend("compile").available(CPU))
    torch.manual_seed(0)  # one stack: Inductor's C++ build time grows with the number of kernels
    model = StackedHourglass(num_stacks=1, num_joints=16, num_features=16, depth=1, stem_channels=8).eval()
    x = torch.randn(2, 3, 16, 16)
    prepared, out = run_backend("compile", model, x)
    assert compare_outputs(eager_reference(model, x), out)["ok"]
    assert prepared.build_time_s > 0 and "mode=default" in prepared.notes


@pytest.mark.slow
@pytest.mark.parametrize("name", ["torchscript", "onnxruntime"])
def test_registry_hg1_matches_eager_at_64(name):
    from hgbench.config import get_variant
    from hgbench.models import create_model

    torch.manual_seed(0)
    model, x = create_model(get_variant("hg1"), 16).eval(), torch.randn(1, 3, 64, 64)
    _, out = run_backend(name, model, x)
    result = compare_outputs(eager_reference(model, x), out)
    assert result["ok"] and result["argmax_moved_fraction"] == 0.0


def test_an_onnx_export_survives_tf32_flags_mixed_through_both_apis(one_thread):
    """Mixing torch's two TF32 APIs leaves the legacy cuDNN flag unreadable, and torch.export reads it
    while tracing; the ONNX Runtime backend makes it readable first (hgbench.profile.tf32.readable_flags)."""
    from hgbench.profile.tf32 import _legacy

    if not has_fp32_precision_api():
        pytest.skip("torch before 2.9 has one TF32 API")
    torch.backends.cudnn.conv.fp32_precision = "ieee"  # conv and RNN apart: the legacy read raises
    assert _legacy() is None
    model = tiny_hourglass()
    prepared = get_backend("onnxruntime").prepare(model, torch.zeros(1, 3, 32, 32), RunSettings())
    assert _legacy() is not None and len(prepared.fn(torch.zeros(1, 3, 32, 32))) == 2
