"""TorchScript: ``torch.jit.trace`` -> ``torch.jit.freeze`` -> ``torch.jit.optimize_for_inference``.

Follows the PyTorch documentation of the three calls
(https://pytorch.org/docs/stable/generated/torch.jit.trace.html,
https://pytorch.org/docs/stable/generated/torch.jit.freeze.html,
https://pytorch.org/docs/stable/generated/torch.jit.optimize_for_inference.html).

TorchScript is deprecated: in torch 2.13 each of these calls emits a ``DeprecationWarning``
("Please switch to torch.compile or torch.export"); they still work and are silenced here,
because the backend is kept to compare with results reported for TorchScript. Tracing
records one path through the model: the hourglass networks return a *list* of per-stack
heatmaps whose length is fixed by the architecture, which tracing handles (the traced
module returns a list too). With the default ``strict=True`` torch only warns about the
list output (``TracerWarning``); ``strict=False`` says that a fixed-length list is intended.
``check_trace=False`` skips the tracer's check, which traces and runs the model again (more
preparation time, and spurious failures on nondeterministic kernels). On the CPU,
``optimize_for_inference`` folds batch norm into the convolutions and converts them to
oneDNN (MKLDNN) layouts; on CUDA it folds batch norm and fuses conv + add/relu.

The model is traced in the run's precision and layout (a cast copy, see
:func:`~hgbench.profile.backends.base.cast_model`). ``build_time_s`` is the time of
copy + trace + freeze + optimize.

**Frozen-module cache.** With a cache directory (:attr:`RunSettings.cache_dir`, as the ONNX
files) the frozen module is saved with ``torch.jit.save``, atomically, to
``<cache_dir>/torchscript/<Model>_<digest>.frozen.pt`` (digest:
:func:`~hgbench.profile.backends.base.artefact_key`: weights, input shape, precision, layout,
device kind, torch version, the model code:
:func:`~hgbench.profile.backends.base.model_code_digest`), and a later ``prepare`` of the same
model and setting loads it (``torch.jit.load``) instead of tracing and freezing again, then
optimises it as above (a note says so; ``build_time_s`` is then load + optimize: no copy of the
model is made). A loaded module that fails to optimise is traced again and written over, as an
unreadable file is. The optimised module is not cached: on the CPU it does not load again in
torch 2.13 (``torch.jit.load`` fails with "required keyword attribute 'value' is undefined":
its oneDNN weight constants). Measured on the 2-vCPU development VM, 64 px, batch 1, fp32
(issue 29): hg8 takes 2.4 s to trace, 1.0 s to freeze and 0.45 s to optimise; its frozen module
loads in 0.3 s and then optimises in 0.6-0.7 s (the trace cache before it loaded in 0.8 s and
froze again): a cached prepare, timed whole in one process, took 0.9 s instead of 2.3 s (hru8:
2.3 s instead of 4.7 s). The loaded frozen module optimises to a graph of the same nodes, with
bit-identical outputs and the same latency (hg8 78-82 ms either way). Only that round trip was
checked, on the CPU; the CUDA, fp16/bf16 and channels_last round trips have not been run. The
trace files of the cache before (``<Model>_<digest>.pt``, not ``.frozen.pt``) are no longer read:
delete them to reclaim their space.
"""

from __future__ import annotations

import io
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from hgbench.fileio import atomic_write_bytes
from hgbench.profile.backends.base import (
    Backend,
    Prepared,
    RunSettings,
    artefact_key,
    cast_model,
    device_flags,
    in_inference_mode,
    input_converter,
    model_code_digest,
    run_context,
)


class TorchScriptBackend(Backend):
    """Traced, frozen and optimised TorchScript; CPU and CUDA."""

    name = "torchscript"

    def available(self, device: torch.device) -> str | None:
        if not all(hasattr(torch.jit, f) for f in ("trace", "freeze", "optimize_for_inference")):
            return (
                f"this torch ({torch.__version__}) no longer ships torch.jit.trace/freeze/optimize_for_inference; "
                "install torch<=2.13 for this backend or use the compile backend"
            )
        return None

    def release(self) -> None:
        """Clear TorchScript's global class registry, where every trace registers its module's
        type and so keeps its frozen weights alive (measured: hg2 at 64 px grew the process by
        ~60 MiB per prepare; a whole-registry sweep in 3 repetitions exhausted 24 GiB). PyTorch's
        own JIT tests clear it between cases (``torch.testing._internal.jit_utils.clear_class_registry``).
        It invalidates every traced module still alive in the process (calling one then
        crashes): call it only when none is."""
        torch._C._jit_clear_class_registry()

    def prepare(self, model: nn.Module, example_input: Tensor, settings: RunSettings) -> Prepared:
        device = example_input.device
        self.check_available(device)
        prepare_input = input_converter(settings, device)
        x = prepare_input(example_input)
        notes: list[str] = []
        path = _frozen_path(model, x, settings)
        start = time.perf_counter()
        with torch.no_grad(), device_flags(settings, device), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
            optimized = _optimized_from_cache(path, device, notes)
            if optimized is None:
                traced = torch.jit.trace(cast_model(model, settings), x, check_trace=False, strict=False)
                frozen = torch.jit.freeze(traced.eval())
                _save_frozen(frozen, path, notes)  # before optimising, which changes the module in place
                optimized = torch.jit.optimize_for_inference(frozen)
        build_time_s = time.perf_counter() - start
        return Prepared(
            fn=in_inference_mode(optimized),
            prepare_input=prepare_input,
            build_time_s=build_time_s,
            notes=notes,
            context=run_context(settings, device),
        )


def _frozen_path(model: nn.Module, x: Tensor, settings: RunSettings) -> Path | None:
    """Where the frozen trace of ``model`` cast to the setting at ``x``'s shape is cached (module
    docstring); ``None`` without a cache directory."""
    if settings.cache_dir is None:
        return None
    versions = {"torch": torch.__version__, "device": x.device.type, "models": model_code_digest()}
    key = artefact_key(model, tuple(x.shape), settings, versions)
    return Path(settings.cache_dir) / "torchscript" / f"{type(model).__name__}_{key[:16]}.frozen.pt"


def _cached_frozen(path: Path | None, device: torch.device, notes: list[str]) -> torch.jit.ScriptModule | None:
    """The frozen module saved at ``path``, loaded onto ``device``; ``None`` when there is none, or
    when it cannot be loaded (a partial or foreign file: traced again and written over)."""
    if path is None or not path.is_file():
        return None
    try:
        frozen = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, OSError) as exc:
        notes.append(f"frozen module in {path} not loaded ({type(exc).__name__}): traced again")
        return None
    notes.append(f"frozen module reused from {path}")
    return frozen


def _optimized_from_cache(path: Path | None, device: torch.device, notes: list[str]) -> torch.jit.ScriptModule | None:
    """The cached frozen module (:func:`_cached_frozen`), optimised; ``None`` when there is none,
    or when the loaded module does not optimise (it is then traced again and written over)."""
    frozen = _cached_frozen(path, device, notes)
    if frozen is None:
        return None
    try:
        return torch.jit.optimize_for_inference(frozen)
    except RuntimeError as exc:
        notes.append(f"frozen module from {path} did not optimise ({type(exc).__name__}): traced again")
        return None


def _save_frozen(frozen: torch.jit.ScriptModule, path: Path | None, notes: list[str]) -> None:
    """Write ``frozen`` to ``path`` atomically (nothing without a cache); a cache that cannot be
    written costs the next sweep the trace again, and says so in a note."""
    if path is None:
        return
    buffer = io.BytesIO()
    try:
        torch.jit.save(frozen, buffer)
        atomic_write_bytes(path, buffer.getvalue())
    except (RuntimeError, OSError) as exc:
        notes.append(f"frozen module not cached ({type(exc).__name__}: {exc})")
        return
    notes.append(f"frozen module written to {path}")
