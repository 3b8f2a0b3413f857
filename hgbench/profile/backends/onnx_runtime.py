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
version), beside ``<...>.spec.json`` (the output tree spec, ``torch.utils._pytree.treespec_dumps``),
and a later ``prepare`` of the same model and setting loads it instead of exporting again
(a note says so; ``build_time_s`` is then session creation only, else export + session
creation). Without one it goes to a temporary directory removed after loading.

Execution follows https://onnxruntime.ai/docs/api/python/api_summary.html: the
``CPUExecutionProvider`` on the CPU (``session.run`` on a NumPy view of the input, outputs
wrapped as torch tensors without a copy), the ``CUDAExecutionProvider`` on CUDA (needs the
``onnxruntime-gpu`` package) with I/O binding
(https://onnxruntime.ai/docs/performance/tune-performance/iobinding.html): the input is
bound by pointer to the torch tensor and outputs to preallocated torch tensors (static
buffers, overwritten by the next call), and the provider option ``user_compute_stream`` runs
ONNX Runtime's kernels on torch's current stream, so CUDA-event timing covers them
(https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html). On the CPU
the session's intra-op thread pool is set to ``torch.get_num_threads()`` (ONNX Runtime
otherwise uses one thread per physical core, whatever torch's setting).

Precisions: fp32; fp16 exports the half model (ONNX Runtime 1.31's CPU provider runs it,
mostly through fp16 kernels or inserted casts, so it is rarely faster on the CPU); bf16 is
not supported (ONNX Runtime's CPU provider has no bfloat16 ``Conv``: loading fails with
``INVALID_GRAPH``, and NumPy has no bfloat16 to feed it), so ``prepare`` raises.
``channels_last`` does not apply (ONNX tensors are NCHW and ONNX Runtime chooses its own
internal layouts), so ``prepare`` raises rather than record a layout that was not used.
The CUDA path never ran in development (no GPU there).
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
import logging
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
)

_ONNX_TO_TORCH = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16}


class OnnxRuntimeBackend(Backend):
    """Exported ONNX graph run by ONNX Runtime (CPU or CUDA execution provider)."""

    name = "onnxruntime"

    def available(self, device: torch.device) -> str | None:
        device = torch.device(device)
        missing = [m for m in ("onnxruntime", "onnx", "onnxscript") if importlib.util.find_spec(m) is None]
        if missing:
            return f"{', '.join(missing)} not installed: pip install 'hgbench[onnx]' (onnxruntime, onnx, onnxscript)"
        if device.type == "cuda":
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                return (
                    "this onnxruntime has no CUDAExecutionProvider: pip uninstall onnxruntime && "
                    "pip install onnxruntime-gpu (matching your CUDA)"
                )
        elif device.type != "cpu":
            return f"runs on cpu or cuda, not {device.type}"
        return None

    def prepare(self, model: nn.Module, example_input: Tensor, settings: RunSettings) -> Prepared:
        device = example_input.device
        self.check_available(device)
        if settings.precision == "bf16":
            raise RuntimeError(
                "onnxruntime: bf16 is not supported (ONNX Runtime has no bfloat16 Conv kernel on the CPU provider "
                "and NumPy has no bfloat16); use fp32 or fp16"
            )
        if settings.channels_last:
            raise RuntimeError(
                "onnxruntime: channels_last does not apply (ONNX tensors are NCHW; ONNX Runtime picks its own layouts)"
            )
        import onnxruntime

        cast = cast_model(model, settings)
        prepare_input = input_converter(settings, device)
        x = prepare_input(example_input)

        start = time.perf_counter()
        notes: list[str] = []
        cached = None
        if settings.cache_dir is not None:
            key = artefact_key(model, tuple(example_input.shape), settings, {"torch": torch.__version__})
            cached = Path(settings.cache_dir) / "onnx" / f"{type(model).__name__}_{key[:16]}.onnx"
        spec_path = cached.with_suffix(".spec.json") if cached is not None else None
        if cached is not None and cached.is_file() and spec_path.is_file():
            from torch.utils._pytree import treespec_loads

            out_spec = treespec_loads(json.loads(spec_path.read_text())["out_spec"])
            data = None
            notes.append(f"model reused from {cached}")
        else:
            out_spec, data, opset = _export(cast, x)
            notes.append(f"exporter: torch.onnx.export(dynamo=True), opset {opset}")

        options = onnxruntime.SessionOptions()
        if device.type == "cpu":
            options.intra_op_num_threads = torch.get_num_threads()
            providers: list = ["CPUExecutionProvider"]
        else:
            stream = torch.cuda.current_stream(device)
            providers = [
                (
                    "CUDAExecutionProvider",
                    {"device_id": device.index or 0, "user_compute_stream": str(stream.cuda_stream)},
                ),
                "CPUExecutionProvider",
            ]
        if cached is not None:
            if data is not None:
                from torch.utils._pytree import treespec_dumps

                from hgbench.records import atomic_write_bytes

                atomic_write_bytes(cached, data)
                atomic_write_bytes(spec_path, json.dumps({"out_spec": treespec_dumps(out_spec)}).encode())
                notes.append(f"model written to {cached}")
            session = self._session(str(cached), options, providers)
        else:
            with tempfile.TemporaryDirectory(prefix="hgbench-onnx-") as tmp:
                path = Path(tmp) / "model.onnx"
                path.write_bytes(data)
                session = self._session(str(path), options, providers)
        if device.type == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
            raise RuntimeError(f"onnxruntime: the session fell back to {session.get_providers()} instead of CUDA")

        if device.type == "cpu":
            fn = _cpu_runner(session, out_spec)
        else:
            fn = _cuda_runner(session, out_spec, x, device)
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


def _export(model: nn.Module, x: Tensor) -> tuple[object, bytes, int]:
    """``torch.onnx.export(model, (x,), dynamo=True)``: the output tree spec, the serialised
    ONNX model and its opset."""
    # The exporter logs a warning per torchvision operator it cannot register (torchvision is
    # not a dependency, and the hourglass uses none of them): noise in every profile run.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        # copyreg's FutureWarning about LeafSpec while the exporter copies tree specs: noise.
        warnings.filterwarnings("ignore", category=FutureWarning)
        program = torch.onnx.export(model, (x,), dynamo=True, external_data=False, verbose=False)
    return program.exported_program.call_spec.out_spec, program.model_proto.SerializeToString(), program.model_proto.opset_import[0].version


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


def _cuda_runner(session, out_spec, example: Tensor, device: torch.device):
    import numpy as np

    numpy_dtype = {torch.float32: np.float32, torch.float16: np.float16}[example.dtype]
    input_name = session.get_inputs()[0].name
    outputs = []
    for meta in session.get_outputs():
        if not all(isinstance(d, int) for d in meta.shape):
            raise RuntimeError(f"onnxruntime: output {meta.name} has a dynamic shape {meta.shape}; expected a static export")
        outputs.append(torch.empty(meta.shape, dtype=_ONNX_TO_TORCH[meta.type], device=device))
    binding = session.io_binding()
    for meta, out in zip(session.get_outputs(), outputs):
        binding.bind_output(
            meta.name, "cuda", device.index or 0, {torch.float32: np.float32, torch.float16: np.float16}[out.dtype],
            tuple(out.shape), out.data_ptr(),
        )
    structured = _unflatten(outputs, out_spec)

    def run(x: Tensor) -> object:
        x = x.contiguous()
        binding.bind_input(input_name, "cuda", device.index or 0, numpy_dtype, tuple(x.shape), x.data_ptr())
        session.run_with_iobinding(binding)
        return structured

    return run
