"""The original network of Newell et al.: exact parameter counts, shapes, gradients."""

import pytest
import torch

from hgbench.config import get_variant, list_variants
from hgbench.models import Hourglass, ResidualModule, StackedHourglass, create_model
from hgbench.profile import count_parameters


def residual_params(cin: int, cout: int) -> int:
    """Closed form of pose-hg-train's Residual.lua (convs with bias, BN with weight and bias)."""
    m = cout // 2
    conv = 2 * cin + (cin * m + m) + 2 * m + (9 * m * m + m) + 2 * m + (m * cout + cout)
    return conv + (cin * cout + cout if cin != cout else 0)


def stacked_hourglass_params(stacks: int, joints: int, f: int = 256, depth: int = 4, modules: int = 1) -> int:
    """Closed form of hg.lua's createModel."""
    stem = (3 * 64 * 49 + 64) + 2 * 64 + residual_params(64, 128) + residual_params(128, 128) + residual_params(128, f)
    hourglass = modules * (3 * depth + 1) * residual_params(f, f)
    per_stack = hourglass + modules * residual_params(f, f) + (f * f + f) + 2 * f + (f * joints + joints)
    between = (f * f + f) + (joints * f + f)
    return stem + stacks * per_stack + (stacks - 1) * between


@pytest.mark.parametrize("cin,cout", [(64, 128), (128, 128), (128, 256), (256, 256)])
def test_residual_module_matches_closed_form(cin, cout):
    assert count_parameters(ResidualModule(cin, cout)) == residual_params(cin, cout)


@pytest.mark.parametrize("name,stacks", [("hg1", 1), ("hg2", 2), ("hg4", 4), ("hg8", 8)])
@pytest.mark.parametrize("joints", [14, 16])
def test_registered_hourglasses_match_original_parameter_count(name, stacks, joints):
    assert count_parameters(create_model(get_variant(name), joints)) == stacked_hourglass_params(stacks, joints)


def test_hg8_is_the_original_not_the_wider_port():
    # Issue 2: the original 8-stack with 16 MPII joints has about 25.4 M parameters;
    # bearpaw/pytorch-pose's port has 25.59 M (seed 002's "97.7M" = 25.59 M x 4 bytes in MiB).
    n = count_parameters(create_model(get_variant("hg8"), 16))
    assert 25.40e6 < n < 25.45e6
    assert abs(n - 25.59e6) > 0.1e6


def test_output_shapes_and_gradients():
    model = StackedHourglass(num_stacks=2, num_joints=14)
    x = torch.randn(2, 3, 256, 256)
    outputs = model(x)
    assert len(outputs) == 2
    assert all(o.shape == (2, 14, 64, 64) for o in outputs)
    sum(o.square().mean() for o in outputs).backward()
    assert model.stem[0].weight.grad is not None and model.stem[0].weight.grad.abs().sum() > 0


def test_hourglass_preserves_shape_and_uses_both_branches():
    hg = Hourglass(depth=2, channels=8).eval()
    x = torch.randn(1, 8, 16, 16)
    y = hg(x)
    assert y.shape == x.shape
    # the lower branch matters: zeroing its last block changes the output
    with torch.no_grad():
        for p in hg.low3.parameters():
            p.zero_()
    assert not torch.allclose(hg(x), y)


def test_every_variant_is_documented_with_its_source():
    for spec in list_variants():
        assert spec.source.paper and spec.source.seed.endswith(".txt") and spec.source.where
        assert get_variant(spec.name) is spec
