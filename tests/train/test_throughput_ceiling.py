"""benchmarks/train_throughput.py divides a training step by the ceiling of the precision the step
really runs in (issue 28, defect 4): fp32 training on CUDA runs its convolutions in TF32 under
torch's default cuDNN flags, so its ceiling is measured with TF32."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from hgbench.train.device import conv_tf32

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_throughput.py"
CUDA = torch.device("cuda")


@pytest.fixture
def cudnn_tf32():
    """Restore cuDNN's TF32 flag (read and set without a GPU: flags only)."""
    before = torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cudnn.allow_tf32 = before


def test_conv_tf32_follows_cudnns_flag_for_fp32_on_cuda_only(cudnn_tf32):
    torch.backends.cudnn.allow_tf32 = True  # torch's default
    assert conv_tf32(CUDA, "fp32") is True
    assert conv_tf32(CUDA, "bf16") is False and conv_tf32(CUDA, "fp16") is False  # autocast: not fp32 convolutions
    assert conv_tf32(torch.device("cpu"), "fp32") is False
    torch.backends.cudnn.allow_tf32 = False
    assert conv_tf32(CUDA, "fp32") is False


class _Measured(Exception):
    pass


@pytest.mark.parametrize(("precision", "allowed", "expected"), [("fp32", True, True), ("fp32", False, False),
                                                                 ("bf16", True, False)])  # fmt: skip
def test_train_throughput_measures_the_ceiling_of_the_steps_precision(
    monkeypatch, cudnn_tf32, precision, allowed, expected
):
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)
    spec.loader.exec_module(script)
    torch.backends.cudnn.allow_tf32 = allowed
    asked = {}

    def fake_ceilings(device, precision, *, tf32=False, **kw):
        asked.update(device=device, precision=precision, tf32=tf32)
        raise _Measured

    monkeypatch.setattr(script, "resolve_device", lambda device: CUDA)
    monkeypatch.setattr(script, "measure_ceilings", fake_ceilings)
    with pytest.raises(_Measured):
        script.main(["--variants", "hg1", "--device", "cuda", "--precision", precision])
    assert asked == {"device": CUDA, "precision": precision, "tf32": expected}
