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
    from hgbench.models.blocks import BLOCKS

    assert set(typing.get_args(BlockName)) == set(BLOCKS)


def test_every_shipped_variant_fits_every_shipped_protocol():
    from hgbench.config import available_protocols, check_compatible, load_protocol

    for name in available_protocols():
        for spec in list_variants():
            check_compatible(spec, load_protocol(name))
