"""Forward-pass latency of every registered variant (pytest-benchmark).

CPU, batch 1, a small input (64 x 64), one thread, eval mode, ``torch.inference_mode``. Not part
of the test suite (``testpaths = tests``): timings are measurements, not assertions. Compare
with the committed baseline (README, "Latency regressions"), from the repository root:

    .venv/bin/python -m pytest benchmarks/test_forward_latency.py --benchmark-only \
        --benchmark-compare=benchmarks/baseline.json --benchmark-compare-fail=median:20%

Refresh the baseline on a quiet machine (then commit it):

    .venv/bin/python -m pytest benchmarks/test_forward_latency.py --benchmark-only --benchmark-json=benchmarks/baseline.json

The baseline holds raw seconds of the machine that measured it: on another machine, save your own
baseline from the unchanged code first. The CI gate, which does not depend on the machine, is
``hgbench latency-check`` (hgbench/profile/gate.py).
"""

import pytest
import torch

from hgbench.config import list_variants
from hgbench.models import create_model

INPUT_SIZE = 64
THREADS = 1


@pytest.mark.parametrize("name", [v.name for v in list_variants()])
def test_forward(benchmark, name):
    spec = next(v for v in list_variants() if v.name == name)
    model = create_model(spec, num_joints=16, input_size=INPUT_SIZE).eval()
    x = torch.randn(1, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0))
    old = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        with torch.inference_mode():
            out = benchmark(model, x)
    finally:
        torch.set_num_threads(old)
    assert out[-1].shape == (1, 16, INPUT_SIZE // 4, INPUT_SIZE // 4)
