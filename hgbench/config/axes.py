"""The names along each axis of a benchmark, one tuple per axis, in the order users see them.

This module is the one list of each axis: the config types (``BlockName``, a protocol's
``precision``), the command line's help texts, the report's filters and the implementations
(:data:`hgbench.models.blocks.BLOCKS`, :data:`hgbench.profile.backends.BACKENDS`,
:data:`hgbench.profile.backends.base.PRECISIONS`, :data:`hgbench.data.LOADERS`) read it, and
``tests/config/test_registry.py`` checks that every implementation registry holds exactly these names.
Adding a block or a backend is one name here and one module beside the others.

Plain strings only: it imports nothing (no torch), so that a report or a help text can read it
on a machine without the engine.
"""

from __future__ import annotations

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16")
"""Floating-point precisions of training (a protocol's ``precision``: autocast to fp16 or bf16,
weights in fp32) and of inference (``hgbench profile --precision``: model and input cast)."""

QUANTIZED_PRECISIONS: tuple[str, ...] = ("int8", "fp8")
"""Post-training quantized precisions of inference only (``hgbench profile --precision``,
``hgbench evaluate --precision``): weights and activations quantized with scales calibrated on a
recorded calibration set (:mod:`hgbench.profile.quantization`); never a training precision."""

INFERENCE_PRECISIONS: tuple[str, ...] = PRECISIONS + QUANTIZED_PRECISIONS
"""Every precision a deployed artifact may run in: the floating-point ones, then the quantized ones."""

BACKENDS: tuple[str, ...] = ("eager", "torchscript", "compile", "cudagraphs", "onnxruntime", "tensorrt")
"""Inference backends (``hgbench profile --backend``), one module each in
:mod:`hgbench.profile.backends`."""

COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune")
"""``torch.compile`` modes of the ``compile`` backend (``hgbench profile --compile-mode``)."""

DATASETS: tuple[str, ...] = ("synthetic", "lspet", "lsp", "mpii", "coco")
"""Datasets a run trains or is evaluated on (``--dataset``); ``synthetic`` is embedded (rendered,
no download, the default), the others are read from a data folder (``--data-root``)."""

DEFAULT_DATASET = "synthetic"
"""The dataset of ``--dataset`` when none is given."""

BLOCKS: tuple[str, ...] = ("residual", "hru", "ds1", "ds3", "ghost", "multidilated")
"""Residual-module kinds a variant's ``architecture.block`` may name (:mod:`hgbench.models.blocks`)."""


def spoken(names: tuple[str, ...] | list[str], last: str = "or") -> str:
    """``("a", "b", "c")`` -> ``"a, b or c"`` (for help texts and messages)."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


__all__ = [
    "BACKENDS",
    "BLOCKS",
    "COMPILE_MODES",
    "DATASETS",
    "DEFAULT_DATASET",
    "INFERENCE_PRECISIONS",
    "PRECISIONS",
    "QUANTIZED_PRECISIONS",
    "spoken",
]
