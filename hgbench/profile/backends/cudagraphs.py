"""CUDA graphs: the eager model captured once with ``torch.cuda.CUDAGraph`` and replayed.

Follows the "Whole-network capture" recipe of the PyTorch CUDA semantics notes
(https://pytorch.org/docs/stable/notes/cuda.html#cuda-graphs) and
https://pytorch.org/docs/stable/generated/torch.cuda.graph.html:

1. a static input buffer, shaped and typed like the (converted) example input;
2. a few warm-up iterations on a side stream (``s.wait_stream(current)``, run under
   ``torch.cuda.stream(s)``, then ``current.wait_stream(s)``), so that lazy initialisation,
   cuDNN/cuBLAS handle creation and workspace allocation happen outside the capture;
3. capture of one forward in ``with torch.cuda.graph(g):``, whose outputs are the static
   outputs;
4. each call: ``static_input.copy_(x)``, ``g.replay()``, return the static outputs.

Everything runs under ``torch.inference_mode()`` and with the TF32 flags of the settings
(kernels are fixed at capture; :attr:`~hgbench.profile.backends.base.Prepared.context` sets
the same flags around the replays, which do not read them). The returned tensors are the *static* outputs: the next
call overwrites them (clone them to keep a result). The graph replays exactly the captured
kernels, so one prepared graph serves one input shape: a new batch size or input size is a
new ``prepare``. ``build_time_s`` is warm-up plus capture. CUDA only.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from hgbench.profile.backends.base import (
    Backend,
    Prepared,
    RunSettings,
    cast_model,
    device_flags,
    input_converter,
    run_context,
)

WARMUP_ITERS = 3
"""Warm-up forwards on the side stream before capture (the PyTorch notes' example uses 3)."""


class CudaGraphsBackend(Backend):
    """Capture-and-replay of the eager model; batch-1 latency without launch overhead."""

    name = "cudagraphs"
    static_shape = True  # captured for one input shape

    def available(self, device: torch.device) -> str | None:
        device = torch.device(device)
        if device.type != "cuda":
            return (
                "needs a CUDA device (CUDA graphs capture GPU kernels); run with a CUDA build of torch on an NVIDIA GPU"
            )
        if not torch.cuda.is_available():
            return "needs a CUDA device, and torch.cuda.is_available() is False; install a CUDA build of torch"
        return None

    def peak_memory_source(self, settings: RunSettings) -> str:
        """``"device"``: a replay allocates nothing through the caching allocator (the captured
        activations live in the graph's private memory pool), so the allocator's peak after a
        reset would be weights plus I/O only."""
        return "device"

    def prepare(self, model: nn.Module, example_input: Tensor, settings: RunSettings) -> Prepared:
        device = example_input.device
        self.check_available(device)
        cast = cast_model(model, settings)
        prepare_input = input_converter(settings, device)

        start = time.perf_counter()
        with device_flags(settings, device), torch.inference_mode():
            static_input = prepare_input(example_input).clone(memory_format=torch.preserve_format)
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(WARMUP_ITERS):
                    cast(static_input)
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_output = cast(static_input)
            torch.cuda.synchronize(device)
        build_time_s = time.perf_counter() - start

        def replay(x: Tensor) -> object:
            with torch.inference_mode():
                static_input.copy_(x)
                graph.replay()
                return static_output

        return Prepared(
            fn=replay,
            prepare_input=prepare_input,
            build_time_s=build_time_s,
            notes=[
                f"captured after {WARMUP_ITERS} warm-up iterations; outputs are static buffers overwritten by each call"
            ],
            context=run_context(settings, device),
        )
