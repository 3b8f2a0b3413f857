"""Phase 1 of a two-phase training: the bottleneck autoencoder trained alone.

Andersen (bachelor thesis 2021, seed ``003_c160231480bcc829.txt``, section 7.2): "First the
autoencoder is trained isolated. Then, the trained autoencoder is placed in the developed
Stacked hourglass [...] and the whole network is trained." Phase 1 is a denoising
autoencoder on the bottleneck features (the output of the bottleneck's third residual): SGD
with momentum 0.9, MSE, learning rate 5e-4 halved every 25th epoch, mini-batches of 16, and
noise from N(0, x^2 * 1e-2) added to each input value x (the author's code: ``x + randn * 0.1
* x``); the clean features are the target.

Reading choice: the paper takes the features from its trained single hourglass (and starts
phase 2 from that network's weights). A harness run trains every variant from scratch under
one protocol, so here the features come from the network's own layers as built (initialised)
when phase 1 runs; they are computed in eval mode without gradients, so phase 1 changes the
autoencoder's weights and nothing else. Phase 1's size follows the protocol (its epochs,
steps per epoch and batch size unless the variant's ``pretrain`` sets them), so the smoke
protocol stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from hgbench.config import PretrainConfig, Protocol
from hgbench.models.autoencoder import BottleneckAutoencoder
from hgbench.train.optim import build_optimizer, learning_rate
from hgbench.train.sampler import PRETRAIN_STREAM, TrainSampler, make_train_loader


class _Stop(Exception):
    """Raised by the feature hook to end a forward pass once the bottleneck is reached."""


def autoencoders(model: nn.Module) -> list[BottleneckAutoencoder]:
    """The bottleneck autoencoders in ``model``, in forward order (one per hourglass)."""
    return [m for m in model.modules() if isinstance(m, BottleneckAutoencoder)]


@torch.no_grad()
def bottleneck_features(model: nn.Module, images: Tensor) -> list[Tensor]:
    """The inputs of every bottleneck autoencoder of ``model`` for ``images``, computed in
    eval mode (batch-norm running statistics, no buffer updates; the mode is restored) and
    without running the layers after the last autoencoder."""
    aes = autoencoders(model)
    feats: list[Tensor] = []

    def hook(module, args):
        feats.append(args[0].detach().clone())
        if len(feats) == len(aes):
            raise _Stop

    handles = [ae.register_forward_pre_hook(hook) for ae in aes]
    was_training = model.training
    model.eval()
    try:
        model(images)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return feats


def add_noise(x: Tensor, noise_std: float) -> Tensor:
    """``x`` plus noise drawn from ``N(0, (noise_std * x)^2)`` elementwise (section 7.2)."""
    return x + torch.randn_like(x) * noise_std * x


def reconstruction_loss(aes: list[BottleneckAutoencoder], feats: list[Tensor], noise_std: float = 0.0) -> Tensor:
    """Mean over autoencoders of the MSE between the reconstruction of the (noisy) features
    and the clean ones."""
    losses = [
        nn.functional.mse_loss(ae(add_noise(f, noise_std) if noise_std else f), f)
        for ae, f in zip(aes, feats, strict=True)
    ]
    return sum(losses) / len(losses)


def phase_size(config: PretrainConfig, protocol: Protocol, num_samples: int) -> tuple[int, int, int]:
    """``(epochs, batch_size, steps_per_epoch)`` of phase 1: the variant's ``pretrain`` values
    where set, else the protocol's (steps per epoch: the protocol's, else one pass over
    ``num_samples`` training samples).

    Raises:
        ValueError: phase 1 has no step.
    """
    epochs = config.epochs if config.epochs is not None else protocol.epochs
    batch_size = config.batch_size or protocol.batch_size
    steps_per_epoch = config.steps_per_epoch or protocol.steps_per_epoch or num_samples // batch_size
    if epochs * steps_per_epoch < 1:
        raise ValueError(
            f"pretrain: {epochs} epoch(s) of {steps_per_epoch} step(s) is no training; set pretrain.epochs and steps_per_epoch >= 1"
        )
    return epochs, batch_size, steps_per_epoch


def _step(
    model: nn.Module,
    aes: list[BottleneckAutoencoder],
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    noise_std: float,
) -> Tensor:
    """One optimiser step of the autoencoders on the bottleneck features of ``images``; returns
    the (detached) reconstruction loss."""
    feats = bottleneck_features(model, images)
    loss = reconstruction_loss(aes, feats, noise_std)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def pretrain_autoencoder(
    model: nn.Module,
    train_set,
    config: PretrainConfig,
    protocol: Protocol,
    progress: Callable[[str, dict], None] | None = None,
    device: torch.device | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict | None:
    """Train the bottleneck autoencoder(s) of ``model`` alone (phase 1, see the module
    docstring); every other weight and buffer is left as it is.

    Runs on ``device`` (default: where the model is), in fp32, through the training data
    pipeline (:mod:`hgbench.train.sampler`, its own seed stream, the protocol's workers), and
    reads the loss from the device once per epoch. Phase 1 is not checkpointed: a run
    interrupted during it starts it again.

    Args:
        progress: called as ``progress("pretrain", {"step", "total_steps"})`` after each step.
        should_stop: polled after each step; when it returns True, phase 1 stops and None is
            returned.

    Returns:
        Phase-1 record: ``epochs``, ``steps_per_epoch``, ``steps``, ``batch_size``,
        ``optimizer``, ``lr_final``, ``noise_std``, ``loss_first``/``loss_final`` (noisy
        training MSE of the first step and mean of the last epoch), ``time_s``; None when
        stopped by ``should_stop``.

    Raises:
        ValueError: ``model`` has no bottleneck autoencoder, or phase 1 has no step.
    """
    aes = autoencoders(model)
    if not aes:
        raise ValueError("pretrain: the network has no bottleneck autoencoder (architecture.bottleneck: autoencoder)")
    device = device if device is not None else next(model.parameters()).device
    epochs, batch_size, steps_per_epoch = phase_size(config, protocol, len(train_set))
    total = epochs * steps_per_epoch
    sampler = TrainSampler(len(train_set), batch_size, protocol.seed, num_batches=total, stream=PRETRAIN_STREAM)
    loader = make_train_loader(train_set, sampler, protocol.num_workers, pin_memory=device.type == "cuda")
    params = [p for ae in aes for p in ae.parameters()]
    optimizer = build_optimizer(config.optimizer, params, device.type)
    scheduler = None
    if config.lr_step_epochs > 0:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step_epochs, config.lr_gamma)

    t0 = time.perf_counter()
    first, epoch_sum = None, torch.zeros((), dtype=torch.float64, device=device)
    for ae in aes:
        ae.train()
    batches = iter(loader)
    for epoch in range(epochs):
        epoch_sum.zero_()
        for i in range(steps_per_epoch):
            loss = _step(model, aes, optimizer, next(batches)["image"].to(device, non_blocking=True), config.noise_std)
            epoch_sum += loss
            first = float(loss) if first is None else first
            step = epoch * steps_per_epoch + i + 1
            if progress:
                progress("pretrain", {"step": step, "total_steps": total})
            if should_stop is not None and should_stop():
                return None
        if scheduler is not None:
            scheduler.step()
    return {
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "steps": total,
        "batch_size": batch_size,
        "optimizer": config.optimizer.name,
        "lr_final": learning_rate(optimizer),
        "noise_std": config.noise_std,
        "loss_first": first,
        "loss_final": float(epoch_sum) / steps_per_epoch,
        "time_s": time.perf_counter() - t0,
    }
