"""Eager PyTorch: ``model(x)`` in eval mode under ``torch.inference_mode()``.

The reference every other backend is checked against (in fp32). Follows the PyTorch
documentation of inference mode (https://pytorch.org/docs/stable/generated/torch.autograd.grad_mode.inference_mode.html):
no autograd recording, no version counter bumps. Precision and layout are applied by
:func:`~hgbench.profile.backends.base.cast_model` on a copy of the model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hgbench.profile.backends.base import (
    Backend,
    Prepared,
    RunSettings,
    cast_model,
    in_inference_mode,
    input_converter,
    run_context,
)


class EagerBackend(Backend):
    """Plain PyTorch; available on every device."""

    name = "eager"

    def available(self, device: torch.device) -> str | None:
        return None

    def prepare(self, model: nn.Module, example_input: Tensor, settings: RunSettings) -> Prepared:
        device = example_input.device
        cast = cast_model(model, settings)
        return Prepared(
            fn=in_inference_mode(cast),
            prepare_input=input_converter(settings, device),
            build_time_s=0.0,
            notes=[],
            context=run_context(settings, device),
        )
