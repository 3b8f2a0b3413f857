"""The GPU install (issue 28, defects 1 and 2): the extras and the documented commands agree with
what the package indexes serve (torch-tensorrt's TensorRT libraries from NVIDIA's index,
onnxruntime-gpu built for CUDA 13 from 1.27 on), and the ONNX Runtime hint says the same."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from hgbench.profile.backends.onnx_runtime import ort_gpu_hint

ROOT = Path(__file__).resolve().parent.parent
NVIDIA_INDEX = "--extra-index-url https://pypi.nvidia.com"
GPU_STEPS = (
    "pip install torch==2.13.0",
    f"pip install {NVIDIA_INDEX} -e '.[tensorrt,onnx-gpu,gpu]'",
    "hgbench profile --device cuda --backend tensorrt",
    "pip uninstall -y onnxruntime onnxruntime-gpu",
    "pip install 'onnxruntime-gpu>=1.27'",
)


def _extras() -> dict[str, list[str]]:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python >= 3.11")
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_onnx_gpu_extra_takes_the_cuda_13_builds_of_onnxruntime_gpu():
    extras = _extras()
    (ort,) = [r for r in extras["onnx-gpu"] if r.startswith("onnxruntime-gpu")]
    assert ort == "onnxruntime-gpu>=1.27"  # 1.19-1.26 are CUDA 12 builds, 1.27+ CUDA 13 (torch 2.13's)
    assert not any(r.startswith("onnxruntime>") for r in extras["onnx-gpu"])  # never both packages
    assert ">= 1.27" in ort_gpu_hint("13.0") and "hgbench[onnx-gpu]" in ort_gpu_hint("13.0")


def test_tensorrt_extra_pairs_with_the_documented_torch():
    (trt,) = [r for r in _extras()["tensorrt"] if r.startswith("torch-tensorrt")]
    minor = re.fullmatch(r"torch-tensorrt==(\d+\.\d+)\.\*", trt).group(1)
    assert f"torch=={minor}.0" in GPU_STEPS[0]


@pytest.mark.parametrize("doc", ["README.md", "docs/getting-started.md"])
def test_the_gpu_install_gives_every_command_from_a_clean_machine(doc):
    text = (ROOT / doc).read_text()
    assert "## Install on a GPU machine" in text or "### On a GPU machine" in text, doc
    for step in GPU_STEPS:
        assert step in text, (doc, step)
    assert "tensorrt-cu13-libs" in text and "https://pypi.nvidia.com" in text
