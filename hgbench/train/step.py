"""One optimisation step of a stacked-hourglass network: device, precision, memory format,
compilation and the optimiser, without a host synchronisation.

The step returns the loss as a detached tensor on the device; the engine adds it to an
accumulator there and reads it only when it logs (reading a CUDA tensor's value waits for
the GPU, so a ``float(loss)`` per step would keep the CPU from queueing the next step while
the GPU runs this one). The one synchronisation left is fp16's gradient scaler, which must
know whether any gradient overflowed before it lets the optimiser step
(``torch.amp.GradScaler.step``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hgbench.models.loss import stacked_loss
from hgbench.train.device import autocast


class TrainStep:
    """The training step of ``model``: batch to the device, forward pass and loss under
    autocast, backward, optimiser step.

    Args:
        model: the network, already on ``device`` (and in channels_last when asked).
        optimizer: its optimiser.
        supervision: the variant's supervision (:func:`hgbench.models.loss.stacked_loss`).
        device: where the step runs.
        precision: ``fp32``, ``bf16`` or ``fp16`` (:mod:`hgbench.train.device`); fp16 uses a
            ``torch.amp.GradScaler`` (:attr:`scaler`, part of the checkpoint).
        channels_last: convert the input batch to channels_last (the model is converted by
            the caller, :func:`prepare_model`).
        compile: ``torch.compile`` the forward pass and loss (the backward pass is compiled
            with it by AOTAutograd); the optimiser step stays eager. The model's state dict
            is unchanged (the function is compiled, not the module).

    Calling it with a batch (a dict with ``image (B, 3, S, S)``, ``heatmaps (B, J, S/4,
    S/4)``, ``target_weight (B, J)``, on any device) returns the detached scalar loss on
    ``device``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        supervision: str,
        device: torch.device,
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        self.model, self.optimizer, self.supervision = model, optimizer, supervision
        self.device, self.precision, self.channels_last = device, precision, channels_last
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self._forward_loss = torch.compile(self._eager_forward_loss) if compile else self._eager_forward_loss

    def _eager_forward_loss(self, images: Tensor, heatmaps: Tensor, weight: Tensor) -> Tensor:
        with autocast(self.device, self.precision):
            outputs = self.model(images)
        # the loss in fp32: a heatmap MSE of values around 1e-3 loses digits in bf16
        return stacked_loss([o.float() for o in outputs], heatmaps, weight, self.supervision)

    def to_device(self, batch: dict) -> tuple[Tensor, Tensor, Tensor]:
        """``(images, heatmaps, target_weight)`` of ``batch`` on the device (non-blocking
        copies from pinned memory; images in channels_last when asked)."""
        images = batch["image"].to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return (
            images,
            batch["heatmaps"].to(self.device, non_blocking=True),
            batch["target_weight"].to(self.device, non_blocking=True),
        )

    def __call__(self, batch: dict) -> Tensor:
        images, heatmaps, weight = self.to_device(batch)
        loss = self._forward_loss(images, heatmaps, weight)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool = False) -> nn.Module:
    """``model`` moved to ``device`` (weights stay fp32) and, when asked, to the
    channels_last memory format; returns it."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model
