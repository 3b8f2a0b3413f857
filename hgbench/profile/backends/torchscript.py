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
trace + freeze + optimize.
"""

from __future__ import annotations

import time
import warnings

import torch
from torch import Tensor, nn

from hgbench.profile.backends.base import (
    Backend,
    Prepared,
    RunSettings,
    cast_model,
    device_flags,
    in_inference_mode,
    input_converter,
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
        cast = cast_model(model, settings)
        prepare_input = input_converter(settings, device)
        x = prepare_input(example_input)
        start = time.perf_counter()
        with torch.no_grad(), device_flags(settings, device), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
            traced = torch.jit.trace(cast, x, check_trace=False, strict=False)
            frozen = torch.jit.freeze(traced)
            optimized = torch.jit.optimize_for_inference(frozen)
        build_time_s = time.perf_counter() - start
        return Prepared(
            fn=in_inference_mode(optimized),
            prepare_input=prepare_input,
            build_time_s=build_time_s,
            notes=[],
            context=run_context(settings, device),
        )
