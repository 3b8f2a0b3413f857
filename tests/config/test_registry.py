"""The whole registry: every variant trains a few steps through train_variant and survives the
inference backends (torch.jit.trace and torch.export.export match eager)."""

import math
import warnings

import pytest
import torch

from hgbench.config import Protocol, list_variants
from hgbench.models import create_model
from hgbench.profile.tf32 import tf32_mode
from hgbench.train import train_variant

VARIANTS = [v.name for v in list_variants()]
TINY = Protocol(
    name="tiny", epochs=1, steps_per_epoch=2, batch_size=2, input_size=64, output_size=16, val_max_samples=4
)


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_trains_a_few_steps(name, tmp_path):
    spec = next(v for v in list_variants() if v.name == name)
    record = train_variant(spec, TINY, "synthetic", None, tmp_path)
    assert record["complete"] and record["steps"] == 2
    assert math.isfinite(record["history"][0]["train_loss"])
    assert record["protocol_settings"]["batch_size"] == (spec.batch_size or TINY.batch_size)
    if spec.optimizer is not None:
        assert record["protocol_settings"]["optimizer"]["name"] == spec.optimizer.name


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_exports_and_matches_eager(name):
    spec = next(v for v in list_variants() if v.name == name)
    torch.manual_seed(0)
    model = create_model(spec, 16, input_size=64).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated in 2.13 but still shipped
            traced = torch.jit.trace(model, x, strict=False, check_trace=False)
        got_trace = traced(x)
        with tf32_mode(False):  # consistent TF32 flags: torch.export reads the legacy cuDNN flag (see conftest)
            exported = torch.export.export(model, (x,))
        got_export = exported.module()(x)
    assert len(got_trace) == len(expected) == len(got_export)
    for e, t, g in zip(expected, got_trace, got_export, strict=True):
        assert e.shape == (1, 16, 16, 16)
        torch.testing.assert_close(t, e, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)


def test_block_names_match_the_models_blocks():
    import typing

    from hgbench.config import BlockName
    from hgbench.config.axes import BLOCKS as BLOCK_NAMES
    from hgbench.models.blocks import BLOCKS

    assert typing.get_args(BlockName) == BLOCK_NAMES
    assert set(BLOCKS) == set(BLOCK_NAMES)


def test_every_implementation_registry_holds_exactly_its_axis():
    """One list per axis (hgbench.config.axes): the backends, precisions, datasets and compile
    modes the implementations know are exactly the names there (adding one touches that list and
    one module)."""
    import typing

    from hgbench import data
    from hgbench.config import Protocol, axes
    from hgbench.config.protocol import Precision
    from hgbench.profile import backends
    from hgbench.profile.backends import base
    from hgbench.train import device

    assert list(backends.BACKENDS) == list(axes.BACKENDS)
    assert set(backends._CLASSES) == set(axes.BACKENDS)  # no backend class left out of the axis
    assert all(cls.name == name for name, cls in backends.BACKENDS.items())
    assert list(base.PRECISIONS) == list(axes.INFERENCE_PRECISIONS)
    assert device.PRECISIONS == axes.PRECISIONS
    assert typing.get_args(Precision) == axes.PRECISIONS
    assert Protocol.__dataclass_fields__["precision"].type == "Precision"
    assert base.COMPILE_MODES == axes.COMPILE_MODES
    assert list(data.LOADERS) == list(axes.DATASETS) and data.DATASETS == axes.DATASETS
    assert data.DEFAULT_DATASET in axes.DATASETS
    for name in axes.DATASETS:  # every loader is importable and names its class and splits
        module = data.LOADERS[name].load()
        assert issubclass(getattr(module, data.LOADERS[name].cls), data.PoseDataset)
        assert data.dataset_splits(name)


def test_axes_import_without_torch():
    import subprocess
    import sys

    code = "import sys; import hgbench.config.axes; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_shipped_variant_fits_every_shipped_protocol():
    from hgbench.config import available_protocols, check_compatible, load_protocol

    for name in available_protocols():
        for spec in list_variants():
            check_compatible(spec, load_protocol(name))
