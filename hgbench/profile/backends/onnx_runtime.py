"""ONNX Runtime: ``torch.onnx.export`` to an ONNX file, run by ``onnxruntime.InferenceSession``.

Export follows https://pytorch.org/docs/stable/onnx_export.html. In torch 2.13
``torch.onnx.export`` defaults to ``dynamo=True``: the model is captured with
``torch.export.export(..., strict=False)`` and translated by onnxscript (installed with
``pip install 'hgbench[onnx]'``). That path is used here, explicitly: it exports the
hourglass networks as they are, and their output, a Python *list* of per-stack heatmaps,
becomes one ONNX graph output per stack in list order (the exported program's output
tree spec, ``ONNXProgram.exported_program.call_spec.out_spec``, is used to rebuild the list).
The legacy TorchScript-based exporter (``dynamo=False``) is deprecated and not needed.
``external_data=False`` keeps weights inside the one ``.onnx`` file (the hourglass
variants are far below ONNX's 2 GiB protobuf limit). With a cache directory the file is
written atomically to ``<cache_dir>/onnx/<Model>_<digest>.onnx`` (digest:
:func:`~hgbench.profile.backends.base.artefact_key`: weights, input shape, precision, torch
version, the model code), beside ``<...>.spec.json`` (the output tree spec, ``torch.utils._pytree.treespec_dumps``),
and a later ``prepare`` of the same model and setting loads it instead of exporting again
(a note says so; ``build_time_s`` is then session creation only, else copy + export + session
creation). Without one it goes to a temporary directory removed after loading.

Execution follows https://onnxruntime.ai/docs/api/python/api_summary.html: the
``CPUExecutionProvider`` on the CPU (``session.run`` on a NumPy view of the input, outputs
wrapped as torch tensors without a copy), the ``CUDAExecutionProvider`` on CUDA (needs the
``onnxruntime-gpu`` package, ``pip install 'hgbench[onnx-gpu]'``) with I/O binding
(https://onnxruntime.ai/docs/performance/tune-performance/iobinding.html): the input is
bound by pointer to the torch tensor and outputs to preallocated torch tensors (static
buffers, overwritten by the next call). On the CPU the session's intra-op thread pool is set
to ``torch.get_num_threads()`` (ONNX Runtime otherwise uses one thread per physical core,
whatever torch's setting). CUDA provider options (:func:`cuda_provider_options`; option names
and defaults from ONNX Runtime's ``onnxruntime/core/providers/cuda/cuda_execution_provider_info.{h,cc}``,
documented on https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html):

* ``use_tf32`` from :attr:`RunSettings.tf32`. ONNX Runtime's default is 1 ("By default,
  enable TF32 to speed up float GEMM/MatMul or cuDNN convolution of float matrices"), so
  without it an fp32 session ran in TF32 while the record said IEEE fp32 and the numerical
  check applied the fp32 bound.
* ``user_compute_stream`` = a dedicated ``torch.cuda.Stream`` of this session, with
  ``has_user_compute_stream=1``. Not torch's current stream: the default stream's handle is
  0, and ONNX Runtime sets ``has_user_compute_stream = (user_compute_stream != nullptr)``, so
  passing it meant "no user stream". Each call makes the session's stream wait for the
  caller's current stream (the input was written there) and the caller's stream wait for the
  session's (``Stream.wait_stream``: device-side events, no host synchronisation), so CUDA
  events recorded on the caller's stream around a call bracket ONNX Runtime's kernels, as
  Torch-TensorRT's runtime does with its engine stream (``core/runtime/execute_engine.cpp``).

:meth:`OnnxRuntimeBackend.available` creates a one-node session with the CUDA provider and
checks that ``session.get_providers()`` really contains it: an ``onnxruntime-gpu`` wheel is
built for one CUDA major version (PyPI's, from 1.19 on, for CUDA 12.x and cuDNN 9) and, beside
a torch built for another, it lists the provider but cannot load it and falls back to the CPU
(:func:`ort_gpu_hint` says which wheel fits the installed torch). Its peak memory on CUDA is
the device-wide figure (its arena allocates past PyTorch's allocator; see
:meth:`OnnxRuntimeBackend.peak_memory_source`).

Precisions: fp32; int8 exports the fp32 model and quantizes the file with ONNX Runtime's static
quantization (QDQ, per-channel int8 weights; :func:`hgbench.profile.quantization.quantize_onnx_static`),
calibrated on :attr:`RunSettings.calibration` and cached beside the fp32 file; the CUDA provider
runs the same QDQ file (its int8 kernels where it has them, else dequantized float kernels: a
GPU deployment of int8 is TensorRT's); fp16 exports the half model (ONNX Runtime 1.31's CPU provider runs it,
mostly through fp16 kernels or inserted casts, so it is rarely faster on the CPU); bf16 is
not supported (ONNX Runtime's CPU provider has no bfloat16 ``Conv``: loading fails with
``INVALID_GRAPH``, and NumPy has no bfloat16 to feed it), so ``prepare`` raises.
``channels_last`` does not apply (ONNX tensors are NCHW and ONNX Runtime chooses its own
internal layouts), so ``prepare`` raises rather than record a layout that was not used
(:meth:`OnnxRuntimeBackend.unsupported`). The CUDA path has not run in development (no GPU
there); ``benchmarks/gpu_check.py`` exercises it on a GPU.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from hgbench.profile.backends.base import (
    Backend,
    Prepared,
    RunSettings,
    artefact_key,
    cast_model,
    input_converter,
    model_code_digest,
    quantized_support,
)
from hgbench.profile.tf32 import readable_flags

_ONNX_TO_TORCH = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16}
_CUDA_EP_PAGE = "https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html#requirements"


def ort_gpu_hint(torch_cuda: str | None = torch.version.cuda) -> str:
    """Which ``onnxruntime-gpu`` fits a torch built for CUDA ``torch_cuda`` (``torch.version.cuda``,
    e.g. ``"13.0"``; ``None`` for a CPU build), one line naming the install command.

    Sources: ONNX Runtime's CUDA Execution Provider page, "Requirements" (a wheel is built for
    one CUDA major version, minor versions compatible; cuDNN 9 from 1.19 on) and the wheels'
    own metadata on PyPI: ``onnxruntime-gpu`` 1.19 to 1.26 require ``nvidia-*-cu12`` (CUDA
    12.x), 1.27 and later ``nvidia-*-cu13`` (CUDA 13.x; checked with ``pip install --dry-run
    --report`` for 1.26.0 and 1.27.0). PyPI's torch 2.13.0 is built for CUDA 13. The CPU
    ``onnxruntime`` (the ``test`` and ``onnx`` extras) installs the same module folder and is
    removed first: README "Install on a GPU machine".
    """
    major = (torch_cuda or "").split(".")[0]
    swap = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install"
    if major == "13":
        return (
            f"this torch is built for CUDA {torch_cuda}: {swap} 'hgbench[onnx-gpu]' (PyPI's onnxruntime-gpu >= 1.27, "
            f"built for CUDA 13.x and cuDNN 9; README 'Install on a GPU machine'; {_CUDA_EP_PAGE})"
        )
    if major == "12":
        return (
            f"this torch is built for CUDA {torch_cuda}: {swap} 'onnxruntime-gpu>=1.19,<1.27' (PyPI's builds for "
            f"CUDA 12.x and cuDNN 9; 1.27 and later, the onnx-gpu extra's, need CUDA 13; {_CUDA_EP_PAGE})"
        )
    if major:
        return (
            f"this torch is built for CUDA {torch_cuda}, PyPI's onnxruntime-gpu for CUDA 12 (< 1.27) or 13 (>= 1.27): "
            f"install a torch built for CUDA 13 and 'hgbench[onnx-gpu]', or ONNX Runtime's CUDA {major} build "
            f"({_CUDA_EP_PAGE})"
        )
    return (
        "this torch is a CPU build: install a CUDA build of torch (PyPI's torch 2.13 on Linux is built for CUDA 13), "
        "then 'hgbench[onnx-gpu]' (README 'Install on a GPU machine')"
    )


def cuda_provider_options(settings: RunSettings, device_index: int, stream_handle: int) -> dict[str, str]:
    """The ``CUDAExecutionProvider`` options of a session for ``settings`` (see the module
    docstring): ``device_id``, ``use_tf32`` (``"1"`` when ``settings.tf32``, else ``"0"``: ONNX
    Runtime's default is on), ``has_user_compute_stream="1"`` and ``user_compute_stream``
    (the ``cudaStream_t`` handle as a decimal string, ``str(torch.cuda.Stream().cuda_stream)``).

    Raises:
        ValueError: ``stream_handle`` 0 (the default stream), which ONNX Runtime reads as no
            user stream at all.
    """
    if not stream_handle:
        raise ValueError(
            "onnxruntime: user_compute_stream 0 is the default stream, which ONNX Runtime reads as 'no user stream' "
            "(has_user_compute_stream = user_compute_stream != nullptr); pass a dedicated torch.cuda.Stream()"
        )
    return {
        "device_id": str(device_index),
        "use_tf32": "1" if settings.tf32 else "0",
        "has_user_compute_stream": "1",
        "user_compute_stream": str(stream_handle),
    }


def _probe_model() -> bytes:
    """A one-node ONNX model (``y = Relu(x)``, ``x`` float ``[1]``, opset 13, IR version 8, which
    every supported onnxruntime reads) to check that a provider loads."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "hgbench_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


@functools.cache
def cuda_provider_problem(device_index: int) -> str | None:
    """``None`` when ONNX Runtime's CUDA provider really loads on CUDA device ``device_index``
    (a one-node session created with it lists it in ``session.get_providers()``), else why
    not and what to install (:func:`ort_gpu_hint`). Cached per process and device."""
    import warnings

    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return f"this onnxruntime ({onnxruntime.__version__}) has no CUDAExecutionProvider; {ort_gpu_hint()}"
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # the fallback is reported below, not as a log line
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            session = onnxruntime.InferenceSession(
                _probe_model(), sess_options=options,
                providers=[("CUDAExecutionProvider", {"device_id": str(device_index)}), "CPUExecutionProvider"],
            )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
        return (
            f"onnxruntime {onnxruntime.__version__} could not create a session with its CUDA provider "
            f"({type(exc).__name__}: {exc}); {ort_gpu_hint()}"
        )
    if "CUDAExecutionProvider" not in session.get_providers():
        return (
            f"onnxruntime {onnxruntime.__version__} lists CUDAExecutionProvider but it does not load beside torch "
            f"{torch.__version__} (a session fell back to {session.get_providers()}); {ort_gpu_hint()}"
        )
    return None


class OnnxRuntimeBackend(Backend):
    """Exported ONNX graph run by ONNX Runtime (CPU or CUDA execution provider)."""

    name = "onnxruntime"
    quantized = ("int8",)
    static_shape = True  # exported with a static input shape

    def available(self, device: torch.device) -> str | None:
        device = torch.device(device)
        missing = [m for m in ("onnxruntime", "onnx", "onnxscript") if importlib.util.find_spec(m) is None]
        if missing:
            return f"{', '.join(missing)} not installed: pip install 'hgbench[onnx]' (onnxruntime, onnx, onnxscript)"
        if device.type == "cuda":
            return cuda_provider_problem(device.index or 0)
        if device.type != "cpu":
            return f"runs on cpu or cuda, not {device.type}"
        return None

    def unsupported(self, settings: RunSettings) -> str | None:
        """bf16 (no bfloat16 ``Conv`` on the CPU provider, no bfloat16 in NumPy) and
        channels_last (ONNX tensors are NCHW) are refused, and fp8 (:func:`quantized_support`)."""
        reason = quantized_support(self, settings)
        if reason is not None:
            return reason
        if settings.precision == "bf16":
            return (
                "bf16 is not supported (ONNX Runtime has no bfloat16 Conv kernel on the CPU provider "
                "and NumPy has no bfloat16); use fp32 or fp16"
            )
        if settings.channels_last:
            return "channels_last does not apply (ONNX tensors are NCHW; ONNX Runtime picks its own layouts)"
        return None

    def peak_memory_source(self, settings: RunSettings) -> str:
        """``"device"``: ONNX Runtime's CUDA arena allocates past PyTorch's caching allocator."""
        return "device"

    def prepare(self, model: nn.Module, example_input: Tensor, settings: RunSettings) -> Prepared:
        device = example_input.device
        self.check_settings(settings)
        self.check_available(device)
        import onnxruntime

        prepare_input = input_converter(settings, device)
        x = prepare_input(example_input)

        start = time.perf_counter()
        notes: list[str] = []
        options = onnxruntime.SessionOptions()
        stream = None
        if device.type == "cpu":
            options.intra_op_num_threads = torch.get_num_threads()
            providers: list = ["CPUExecutionProvider"]
        else:
            stream = torch.cuda.Stream(device)
            cuda_options = cuda_provider_options(settings, device.index or 0, stream.cuda_stream)
            providers = [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]
            notes.append(f"CUDA provider: use_tf32={cuda_options['use_tf32']}, its own stream")
        with tempfile.TemporaryDirectory(prefix="hgbench-onnx-") as tmp:
            path, out_spec = _model_file(model, x, settings, Path(tmp), notes)
            if settings.quantized:
                path = _quantized_file(path, settings, Path(tmp), notes)
            session = self._session(str(path), options, providers)
        if device.type == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
            raise RuntimeError(f"onnxruntime: the session fell back to {session.get_providers()} instead of CUDA")

        if device.type == "cpu":
            fn = _cpu_runner(session, out_spec)
        else:
            fn = _cuda_runner(session, out_spec, x, device, stream)
        fn(x)  # first run: allocations and kernel selection, part of the build
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        build_time_s = time.perf_counter() - start
        notes.append(f"providers: {', '.join(session.get_providers())}")
        return Prepared(fn=fn, prepare_input=prepare_input, build_time_s=build_time_s, notes=notes)

    @staticmethod
    def _session(path: str, options, providers: list):
        import onnxruntime

        try:
            return onnxruntime.InferenceSession(path, sess_options=options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types (InvalidGraph, NotImplemented, Fail, ...)
            raise RuntimeError(f"onnxruntime could not load the exported model {path}: {exc}") from exc


def _model_file(model: nn.Module, x: Tensor, settings: RunSettings, tmp: Path, notes: list[str]) -> tuple[Path, object]:
    """The exported ``.onnx`` file of ``model`` cast to the setting (:func:`cast_model`, a copy made
    only to export) at ``x``'s shape and its output tree spec: from ``<cache_dir>/onnx`` when it is
    there, else exported and written there (atomically), or into ``tmp`` without a cache (module
    docstring). A quantized setting exports the fp32 model."""
    from torch.utils._pytree import treespec_dumps, treespec_loads

    from hgbench.fileio import atomic_write_bytes

    if settings.cache_dir is None:
        out_spec, data, opset = _export(cast_model(model, settings), x)
        notes.append(f"exporter: torch.onnx.export(dynamo=True), opset {opset}")
        path = tmp / "model.onnx"
        path.write_bytes(data)
        return path, out_spec
    # TF32 is a session option (use_tf32), not part of the file: one export serves both; the
    # quantized precisions quantize the fp32 file
    file_settings = dataclasses.replace(
        settings, tf32=False, precision="fp32" if settings.quantized else settings.precision
    )
    key = artefact_key(
        model, tuple(x.shape), file_settings, {"torch": torch.__version__, "models": model_code_digest()}
    )
    path = Path(settings.cache_dir) / "onnx" / f"{type(model).__name__}_{key[:16]}.onnx"
    spec_path = path.with_suffix(".spec.json")
    if path.is_file() and spec_path.is_file():
        notes.append(f"model reused from {path}")
        return path, treespec_loads(json.loads(spec_path.read_text())["out_spec"])
    out_spec, data, opset = _export(cast_model(model, settings), x)
    notes.append(f"exporter: torch.onnx.export(dynamo=True), opset {opset}")
    atomic_write_bytes(path, data)
    atomic_write_bytes(spec_path, json.dumps({"out_spec": treespec_dumps(out_spec)}).encode())
    notes.append(f"model written to {path}")
    return path, out_spec


def _quantized_file(fp32_path: Path, settings: RunSettings, tmp: Path, notes: list[str]) -> Path:
    """The QDQ int8 model of ``fp32_path`` (:func:`hgbench.profile.quantization.quantize_onnx_static`),
    calibrated on the setting's calibration set, cached under ``cache_dir`` (else in ``tmp``)."""
    from hgbench.profile.quantization import OrtInt8Options, quantize_onnx_static

    calibration = settings.require_calibration()
    options = OrtInt8Options()
    quantized = quantize_onnx_static(fp32_path, calibration, settings.cache_dir or tmp, options)
    how = "reused from" if quantized.reused else "written to"
    notes.append(
        f"int8: ONNX Runtime static quantization (QDQ, S8S8, per-channel weights, reduce_range={options.reduce_range}, "
        f"{calibration.spec.method}) on {calibration.spec.count} {calibration.dataset} {calibration.spec.split} crops "
        f"(seed {calibration.spec.seed}, digest {calibration.digest}); {how} {quantized.path}"
    )
    return quantized.path


def export_onnx(model: nn.Module, example_input: Tensor, path: str | Path) -> object:
    """Export ``model`` at ``example_input``'s static shape to ``path`` (fp32, weights inside the file)
    with this backend's exporter (:func:`_export`); returns the output tree spec that rebuilds the
    list of per-stack heatmaps from the ONNX outputs (``torch.utils._pytree.tree_unflatten``).
    Written atomically (:func:`hgbench.fileio.atomic_write_bytes`)."""
    from hgbench.fileio import atomic_write_bytes

    out_spec, data, _opset = _export(model.eval(), example_input)
    atomic_write_bytes(Path(path), data)
    return out_spec


def _export(model: nn.Module, x: Tensor) -> tuple[object, bytes, int]:
    """``torch.onnx.export(model, (x,), dynamo=True)``: the output tree spec, the serialised
    ONNX model and its opset."""
    # The exporter logs a warning per torchvision operator it cannot register (torchvision is
    # not a dependency, and the hourglass uses none of them): noise in every profile run.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    readable_flags()  # torch.export reads the legacy cuDNN TF32 flag while tracing
    with torch.no_grad(), warnings.catch_warnings():
        # copyreg's FutureWarning about LeafSpec while the exporter copies tree specs: noise.
        warnings.filterwarnings("ignore", category=FutureWarning)
        program = torch.onnx.export(model, (x,), dynamo=True, external_data=False, verbose=False)
    return (
        program.exported_program.call_spec.out_spec,
        program.model_proto.SerializeToString(),
        program.model_proto.opset_import[0].version,
    )


def _unflatten(outputs: list[Tensor], out_spec) -> object:
    """Rebuild the model's output structure (a list of per-stack heatmaps) from ONNX outputs."""
    from torch.utils import _pytree

    return _pytree.tree_unflatten(outputs, out_spec)


def _cpu_runner(session, out_spec):
    input_name = session.get_inputs()[0].name

    def run(x: Tensor) -> object:
        outputs = session.run(None, {input_name: x.detach().contiguous().numpy()})
        return _unflatten([torch.from_numpy(o) for o in outputs], out_spec)

    return run


def _cuda_runner(session, out_spec, example: Tensor, device: torch.device, stream: torch.cuda.Stream):
    """I/O-bound calls of ``session`` on its own ``stream``, ordered after the caller's current
    stream and before its next work (see the module docstring)."""
    import numpy as np

    numpy_dtype = {torch.float32: np.float32, torch.float16: np.float16}[example.dtype]
    input_name = session.get_inputs()[0].name
    outputs = []
    for meta in session.get_outputs():
        if not all(isinstance(d, int) for d in meta.shape):
            raise RuntimeError(
                f"onnxruntime: output {meta.name} has a dynamic shape {meta.shape}; expected a static export"
            )
        outputs.append(torch.empty(meta.shape, dtype=_ONNX_TO_TORCH[meta.type], device=device))
    binding = session.io_binding()
    for meta, out in zip(session.get_outputs(), outputs, strict=True):
        binding.bind_output(
            meta.name,
            "cuda",
            device.index or 0,
            {torch.float32: np.float32, torch.float16: np.float16}[out.dtype],
            tuple(out.shape),
            out.data_ptr(),
        )
    structured = _unflatten(outputs, out_spec)

    def run(x: Tensor) -> object:
        x = x.contiguous()
        caller = torch.cuda.current_stream(device)
        stream.wait_stream(caller)  # the input was written on the caller's stream
        binding.bind_input(input_name, "cuda", device.index or 0, numpy_dtype, tuple(x.shape), x.data_ptr())
        session.run_with_iobinding(binding)
        caller.wait_stream(stream)  # the caller's next work (an end event, a read of the outputs) follows ORT's
        return structured

    return run
