"""Post-training static INT8 quantization of an hourglass: ONNX Runtime (QDQ) and torchao PT2E (x86 Inductor).

Both take a :class:`~hgbench.profile.calibration_data.CalibrationSet` (its inputs fed in batches of
the artifact's static batch size, :meth:`CalibrationSet.batches`) and give an artifact whose
outputs are the model's (a list of per-stack heatmaps).

**ONNX Runtime** (:func:`quantize_onnx_static`), following ONNX Runtime's "Quantize ONNX models"
page (https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html):

* pre-processing with ``onnxruntime.quantization.shape_inference.quant_pre_process`` (graph
  optimisation, e.g. a Conv followed by BatchNormalization fused into one, and ONNX shape inference: "our quantization
  tool works best when the tensor's shape is known"; the page recommends optimising here rather
  than during quantization). Symbolic shape inference is skipped: the page says it is "best
  suited for transformer models", ONNX shape inference for the others;
* ``quantize_static`` with ``QuantFormat.QDQ``, ``per_channel=True`` (one scale per output
  channel of each Conv weight) and S8S8 (activations and weights ``QInt8``): "S8S8 with QDQ is the
  default setting and balances performance and accuracy. It should be the first choice", and the
  only format ONNX Runtime's GPU path runs ("Data type selection"). ``reduce_range`` (7-bit
  weights) is on where the CPU is x86-64 without VNNI (:func:`needs_reduce_range`): there ONNX
  Runtime runs the int8 products with ``VPMADDUBSW``, whose 16-bit sums saturate, and the page's
  FAQ says "On AVX2 and AVX512 machines, you will generally need to enable reduce-range as well
  if per-channel is enabled" ("not needed on machines supporting VNNI"). Measured on the
  development CPU (AMD EPYC, AVX2, no VNNI), tiny two-stack hourglass, 32 px, 64 validation
  crops: largest heatmap error 0.109 without it, 0.023 with it (heatmap range 0.48), 0.016 in
  U8U8 (which does not saturate);
* calibration ``method`` from the spec (``CalibrationMethod.MinMax``/``Entropy``/``Percentile``),
  collected one batch at a time (``CalibStridedMinMax=1``: every calibrator merges its ranges or
  histograms across calls), so memory holds the intermediate tensors of one batch, not those of
  every calibration crop at once.

The result is cached under ``<cache_dir>/onnx-int8/<stem>_<key>.onnx``, ``key`` from the fp32
file's SHA-256, the calibration set's digest, the options and the onnxruntime version, written
atomically (a temporary file in the same folder, then ``os.replace``) beside a ``.json`` that
records the calibration set and options; a later call with the same key reuses it.

**torchao PT2E** (:func:`quantize_pt2e_x86`), following torchao's "PT2E Quantization" page
(https://docs.pytorch.org/ao/stable/pt2e_quantization/index.html) and its x86 Inductor tutorial:
``torch.export.export(model, (x,)).module()``, ``prepare_pt2e`` with ``X86InductorQuantizer``
set to ``get_default_x86_inductor_quantization_config()`` (static, per-channel symmetric int8
weights, per-tensor uint8 activations; ``reduce_range`` as for ONNX Runtime), the calibration
batches run through the observed model, ``convert_pt2e``, then ``torch.compile`` with Inductor's ``freezing`` on (the tutorial's
``torch._inductor.config.freezing = True``, here as a scoped ``config.patch``): the int8 lowering
patterns torchao registers (``torchao/quantization/pt2e/inductor_passes/x86.py``) are registered
with ``register_freezing_graph_pattern``, which Inductor applies only when freezing. Tested with torchao 0.18.0 on torch
2.13.0 (CPU); importing the quantizer sets ``torch._inductor.config.pre_grad_custom_pass``
(torchao's ``quant_lift_up``, which leaves float graphs alone).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from hgbench.fileio import atomic_write_json
from hgbench.profile.calibration_data import CalibrationSet
from hgbench.profile.tf32 import readable_flags

ORT_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
"""Spec method -> ``onnxruntime.quantization.CalibrationMethod`` member."""


def needs_reduce_range(cpuinfo: str | None = None) -> bool:
    """Whether ONNX Runtime's int8 products may saturate on this CPU: x86-64 without VNNI
    (no ``avx512_vnni``/``avx_vnni`` among the flags of ``/proc/cpuinfo``, or of ``cpuinfo``'s
    text when given). False on other architectures and where the flags cannot be read (ARM
    and VNNI machines have no saturation issue, ONNX Runtime's quantization page)."""
    import platform

    if cpuinfo is None:
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return False
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    if not flags:
        return False
    return "avx2" in flags and not flags & {"avx512_vnni", "avx_vnni"}


@dataclass(frozen=True)
class OrtInt8Options:
    """Options of ONNX Runtime static quantization (see the module docstring for each default's source).

    Attributes:
        per_channel: one weight scale per output channel.
        activation_type, weight_type: ``"QInt8"`` or ``"QUInt8"`` (``QuantType`` members); S8S8 by default.
        reduce_range: 7-bit weights; default :func:`needs_reduce_range` of this CPU (so a QDQ
            file written here is calibrated for CPUs like this one; the option is in its cache key).
    """

    per_channel: bool = True
    activation_type: str = "QInt8"
    weight_type: str = "QInt8"
    reduce_range: bool = dataclasses.field(default_factory=needs_reduce_range)


@dataclass(frozen=True)
class QuantizedOnnx:
    """A QDQ model written by :func:`quantize_onnx_static`.

    Attributes:
        path: the ``.onnx`` file.
        key: its cache key (hex).
        reused: True when it was in the cache (nothing was quantized).
        seconds: wall time of the call (pre-processing, calibration and quantization, or the cache look-up).
        calibration: :meth:`CalibrationSet.record` of the set it was calibrated on.
    """

    path: Path
    key: str
    reused: bool
    seconds: float
    calibration: dict


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _input_shape(path: Path) -> tuple[str, tuple[int, ...]]:
    """Name and static shape of the ONNX model's one input.

    Raises:
        ValueError: several inputs, or a dynamic dimension.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(f"{path}: expected one input, found {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    if not all(d.HasField("dim_value") for d in dims):
        raise ValueError(f"{path}: input {inputs[0].name} has a dynamic shape; export with a static one")
    return inputs[0].name, tuple(d.dim_value for d in dims)


def _reader(input_name: str, batches: list[Tensor]):
    """A ``CalibrationDataReader`` over ``batches`` with ``__len__``/``set_range`` (needed by
    ``CalibStridedMinMax``, which calls ``collect_data`` once per range)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.set_range(0, len(batches))

        def __len__(self) -> int:
            return len(batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._items = iter(batches[start_index:end_index])

        def get_next(self) -> dict | None:
            batch = next(self._items, None)
            return None if batch is None else {input_name: batch.numpy()}

    return Reader()


def ort_int8_key(fp32_path: str | Path, calibration: CalibrationSet, options: OrtInt8Options | None = None) -> str:
    """Cache key (24 hex digits) of the QDQ model of ``fp32_path`` calibrated on ``calibration``
    with ``options``: SHA-256 of the fp32 file's SHA-256, the set's digest, the options and the
    onnxruntime version (its quantizer may write other graphs). ``options``: default :class:`OrtInt8Options`."""
    import onnxruntime

    options = options or OrtInt8Options()
    text = f"{_file_sha256(Path(fp32_path))}\0{calibration.digest}\0{dataclasses.asdict(options)}\0{onnxruntime.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def quantize_onnx_static(
    fp32_path: str | Path,
    calibration: CalibrationSet,
    cache_dir: str | Path,
    options: OrtInt8Options | None = None,
) -> QuantizedOnnx:
    """The QDQ INT8 model of the fp32 ONNX model ``fp32_path`` (static input shape ``(B, 3, H, W)``),
    calibrated on ``calibration`` in batches of B, from ``cache_dir`` when it is there, else written
    there (see the module docstring for the steps, their sources and the file layout).

    Raises:
        ImportError: onnxruntime or onnx is not installed (``pip install 'hgbench[quant]'``).
        ValueError: the calibration inputs' side is not the model's input side, or the model's
            input is not one static ``(B, 3, H, W)`` tensor.
    """
    start = time.perf_counter()
    options = options or OrtInt8Options()
    fp32_path = Path(fp32_path)
    key = ort_int8_key(fp32_path, calibration, options)
    out = Path(cache_dir) / "onnx-int8" / f"{fp32_path.stem}_{key}.onnx"
    if out.is_file():
        return QuantizedOnnx(out, key, True, time.perf_counter() - start, calibration.record())
    input_name, shape = _input_shape(fp32_path)
    if len(shape) != 4 or tuple(shape[2:]) != tuple(calibration.inputs.shape[2:]):
        raise ValueError(
            f"calibration inputs are {tuple(calibration.inputs.shape[1:])}, the model {fp32_path} takes {shape}: "
            f"draw the calibration set at the model's input size"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hgbench-int8-") as tmp:
        pre = Path(tmp) / "preprocessed.onnx"
        _pre_process(fp32_path, pre)
        fd, partial = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".onnx.tmp", dir=out.parent)
        os.close(fd)
        try:
            _quantize(pre, Path(partial), list(calibration.batches(shape[0])), input_name, calibration, options)
            os.replace(partial, out)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    record = {"calibration": calibration.record(), "options": dataclasses.asdict(options), "source": str(fp32_path)}
    atomic_write_json(out.with_suffix(".json"), record)
    return QuantizedOnnx(out, key, False, time.perf_counter() - start, calibration.record())


def _pre_process(source: Path, target: Path) -> None:
    """``quant_pre_process``: ONNX Runtime graph optimisation and ONNX shape inference (no symbolic shapes)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(source), str(target), skip_symbolic_shape=True)


def _quantize(
    source: Path,
    target: Path,
    batches: list[Tensor],
    input_name: str,
    calibration: CalibrationSet,
    options: OrtInt8Options,
) -> None:
    """``quantize_static`` of ``source`` into ``target`` (QDQ, per the options), calibrated on ``batches``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(source),
        str(target),
        _reader(input_name, batches),
        quant_format=QuantFormat.QDQ,
        per_channel=options.per_channel,
        reduce_range=options.reduce_range,
        activation_type=QuantType[options.activation_type],
        weight_type=QuantType[options.weight_type],
        calibrate_method=CalibrationMethod[ORT_METHODS[calibration.spec.method]],
        extra_options={
            "CalibStridedMinMax": 1,  # one batch per collect_data call (module docstring)
            # BatchNormalization's scale is rank 1 (channel axis 0); ONNX Runtime's default axis 1
            # is out of range for it, and it warns once per node and falls back to per-tensor.
            "QDQOpTypePerChannelSupportToAxis": {"BatchNormalization": 0},
        },
    )


def torchao_problem() -> str | None:
    """``None`` when torchao's PT2E x86 Inductor quantizer imports, else why not and what to install."""
    if importlib.util.find_spec("torchao") is None:
        return (
            f"int8 on the compile backend needs torchao (PT2E quantization): pip install 'hgbench[quant]' "
            f"(torchao 0.18.0 was tested with torch {torch.__version__})"
        )
    try:
        _torchao_api()
    except Exception as exc:  # noqa: BLE001 - whatever a torchao/torch mismatch raises
        return (
            f"torchao is installed but its PT2E x86 quantizer does not load with torch {torch.__version__} "
            f"({type(exc).__name__}: {exc}); install the torchao release built for this torch"
        )
    return None


def _torchao_api():
    """``(prepare_pt2e, convert_pt2e, X86InductorQuantizer, get_default_x86_inductor_quantization_config)``.

    torchao warns at import about each of its CUDA kernel libraries that a CPU torch cannot load
    (they are not used here), and torch's pytree about an Enum it registers: both loggers are
    quieted while importing.
    """
    # torchao warns about its CUDA kernel libraries, and torch's pytree about an Enum torchao registers
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer,
            get_default_x86_inductor_quantization_config,
        )
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    return prepare_pt2e, convert_pt2e, X86InductorQuantizer, get_default_x86_inductor_quantization_config


@dataclass
class QuantizedPt2e:
    """A torchao PT2E INT8 model.

    Attributes:
        converted: the Q/DQ graph module from ``convert_pt2e`` (in eager it runs as float code).
        fn: ``torch.compile(converted)`` with Inductor's freezing, already compiled (at the
            example's shape) by :func:`quantize_pt2e_x86`; calls run under ``torch.no_grad()``.
        reduce_range: whether activations were quantized to 7 bits (0..127).
        seconds: export + calibration + convert + compilation (the first call), wall time.
        calibration: :meth:`CalibrationSet.record` of the set it was calibrated on.
    """

    converted: nn.Module
    fn: object
    reduce_range: bool
    seconds: float
    calibration: dict


def quantize_pt2e_x86(
    model: nn.Module, example_input: Tensor, calibration: CalibrationSet, *, reduce_range: bool | None = None
) -> QuantizedPt2e:
    """INT8 ``model`` through torchao's PT2E flow with the x86 Inductor quantizer, calibrated on
    ``calibration`` in batches of ``example_input``'s batch size (module docstring), for the CPU.

    The quantizer's activation observer is its own (``HistogramObserver``); the spec's method
    applies to ONNX Runtime only. ``reduce_range`` (default :func:`needs_reduce_range`) is the
    quantizer's option "Set it to True on earlier CPUs without VNNI to avoid accuracy issue"
    (``get_default_x86_inductor_quantization_config``'s docstring): 7-bit activations.

    Compilation happens here, on ``example_input``, inside ``torch._inductor.config.patch(freezing=True)``:
    with ``torch.compile(..., options={"freezing": True})`` instead, torch 2.13 left the int8
    weight pre-packing (``onednn.qconv_prepack``, which has no meta kernel) in the traced graph
    and compilation failed with ``UnsupportedOperatorException``.

    Raises:
        RuntimeError: torchao is missing or does not work with this torch (:func:`torchao_problem`),
            or ``example_input`` is not on the CPU.
        ValueError: the calibration inputs' side is not ``example_input``'s.
    """
    problem = torchao_problem()
    if problem is not None:
        raise RuntimeError(problem)
    if example_input.device.type != "cpu":
        raise RuntimeError(f"torchao's x86 Inductor quantizer runs on the CPU, not {example_input.device.type}")
    if tuple(example_input.shape[1:]) != tuple(calibration.inputs.shape[1:]):
        raise ValueError(
            f"calibration inputs are {tuple(calibration.inputs.shape[1:])}, the example {tuple(example_input.shape[1:])}: "
            f"draw the calibration set at the model's input size"
        )
    reduce_range = needs_reduce_range() if reduce_range is None else reduce_range
    prepare_pt2e, convert_pt2e, quantizer_class, default_config = _torchao_api()
    start = time.perf_counter()
    quantizer = quantizer_class().set_global(default_config(reduce_range=reduce_range))
    readable_flags()  # torch.export reads the legacy cuDNN TF32 flag while tracing
    with torch.no_grad():
        exported = torch.export.export(model.eval(), (example_input,)).module()
        with warnings.catch_warnings():  # "The input of maxpool2d is not quantized, skip annotate": per pooling layer
            warnings.filterwarnings("ignore", message="The input of maxpool2d is not quantized")
            observed = prepare_pt2e(exported, quantizer)
        for batch in calibration.batches(example_input.shape[0]):
            observed(batch)
        converted = convert_pt2e(observed)
        compiled = torch.compile(converted, backend="inductor", dynamic=False)
        with torch._inductor.config.patch(freezing=True):
            compiled(example_input)

    def fn(x: Tensor) -> object:
        with torch.no_grad():
            return compiled(x)

    seconds = time.perf_counter() - start
    return QuantizedPt2e(converted, fn, reduce_range, seconds, calibration.record())


__all__ = [
    "ORT_METHODS",
    "OrtInt8Options",
    "QuantizedOnnx",
    "QuantizedPt2e",
    "needs_reduce_range",
    "ort_int8_key",
    "quantize_onnx_static",
    "quantize_pt2e_x86",
    "torchao_problem",
]
