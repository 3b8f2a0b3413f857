"""Forward-pass latency of every registered variant (pytest-benchmark).

CPU, batch 1, a small input (64 x 64), one thread, eval mode, no autograd. Run with

    .venv/bin/python -m pytest benchmarks --benchmark-only

Not part of the test suite (``testpaths = tests``): timings are measurements, not assertions.
"""

import pytest
import torch

from hgbench.registry import list_variants

INPUT_SIZE = 64
THREADS = 1


@pytest.mark.parametrize("name", [v.name for v in list_variants()])
def test_forward(benchmark, name):
    spec = next(v for v in list_variants() if v.name == name)
    model = spec.build(num_joints=16, input_size=INPUT_SIZE).eval()
    x = torch.randn(1, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0))
    old = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        with torch.inference_mode():
            out = benchmark(model, x)
    finally:
        torch.set_num_threads(old)
    assert out[-1].shape == (1, 16, INPUT_SIZE // 4, INPUT_SIZE // 4)
