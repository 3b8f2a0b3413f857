"""The blocks of seeds 001 (HRU, deconvolution upsampling) and 002 (depthwise-separable, Ghost,
multi-dilated bottlenecks): closed-form parameter counts written out independently here,
shapes, export, and the registered variants built by name."""

import math

import pytest
import torch

from hgbench.config import get_variant
from hgbench.models import create_model
from hgbench.models.blocks import BLOCKS
from hgbench.models.hru import HourglassResidualUnit
from hgbench.models.layers import DepthwiseSeparableConv, make_upsample
from hgbench.models.lightweight import (
    GhostBottleneck,
    GhostModule,
    MultiDilatedBottleneck,
    MultiDilatedConv,
    SingleDepthwiseSeparableBottleneck,
    TripleDepthwiseSeparableBottleneck,
)
from hgbench.profile import count_parameters

WIDTHS = [(64, 128), (128, 128), (128, 256), (256, 256), (32, 64)]


def bn(c):  # weight + bias
    return 2 * c


def conv(cin, cout, k=1, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def dwconv(c, k=3, bias=True):
    return c * k * k + (c if bias else 0)


def ds(cin, cout):
    """3x3 depthwise (bias) + 1x1 pointwise (bias)."""
    return dwconv(cin) + conv(cin, cout)


def skip(cin, cout):
    return 0 if cin == cout else conv(cin, cout)


def residual(cin, cout):
    m = cout // 2
    return bn(cin) + conv(cin, m) + bn(m) + conv(m, m, 3) + bn(m) + conv(m, cout) + skip(cin, cout)


def hru(cin, cout):
    m = cout // 2
    return residual(cin, cout) + bn(cin) + conv(cin, m, 3) + bn(m) + conv(m, cout, 3)


def ds1(cin, cout):
    m = cout // 2
    return bn(cin) + conv(cin, m) + bn(m) + ds(m, m) + bn(m) + conv(m, cout) + skip(cin, cout)


def ds3(cin, cout):
    m = cout // 2
    return bn(cin) + ds(cin, m) + bn(m) + ds(m, m) + bn(m) + ds(m, cout) + skip(cin, cout)


def multidilated(cin, cout):
    m = cout // 2
    return bn(cin) + conv(cin, m) + bn(m) + 3 * ds(m, m) + bn(m) + conv(m, cout) + skip(cin, cout)


def ghost_module(cin, cout):
    p = math.ceil(cout / 2)
    return conv(cin, p, bias=False) + bn(p) + dwconv(p, bias=False) + bn(p)


def ghost(cin, cout):
    m = cout // 2
    shortcut = 0 if cin == cout else dwconv(cin, bias=False) + bn(cin) + conv(cin, cout, bias=False) + bn(cout)
    return ghost_module(cin, m) + ghost_module(m, cout) + shortcut


CLOSED_FORMS = {"hru": hru, "ds1": ds1, "ds3": ds3, "ghost": ghost, "multidilated": multidilated}
CLASSES = {
    "hru": HourglassResidualUnit,
    "ds1": SingleDepthwiseSeparableBottleneck,
    "ds3": TripleDepthwiseSeparableBottleneck,
    "ghost": GhostBottleneck,
    "multidilated": MultiDilatedBottleneck,
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
@pytest.mark.parametrize("cin,cout", WIDTHS)
def test_block_matches_closed_form(name, cin, cout):
    assert BLOCKS[name] is CLASSES[name]
    assert count_parameters(BLOCKS[name](cin, cout)) == CLOSED_FORMS[name](cin, cout)


@pytest.mark.parametrize("cin,cout", WIDTHS)
def test_pieces_match_closed_form(cin, cout):
    assert count_parameters(DepthwiseSeparableConv(cin, cout)) == cin * 9 + cin + cin * cout + cout
    assert (
        count_parameters(DepthwiseSeparableConv(cin, cout, batch_norm=True))
        == cin * 9 + 2 * cin + cin * cout + 2 * cout
    )
    assert count_parameters(DepthwiseSeparableConv(cin, cout, dilation=3)) == cin * 9 + cin + cin * cout + cout
    assert count_parameters(MultiDilatedConv(cin, cout)) == 3 * (cin * 9 + cin + cin * cout + cout)
    for n in (cout, cout + 1):  # odd widths: ceil(n/2) intrinsic maps, truncated to n
        p = (n + 1) // 2
        assert count_parameters(GhostModule(cin, n)) == cin * p + 2 * p + 9 * p + 2 * p
        assert GhostModule(cin, n)(torch.randn(1, cin, 4, 4)).shape == (1, n, 4, 4)


@pytest.mark.parametrize("c", [16, 256])
def test_deconv_upsampling(c):
    up = make_upsample("deconv", c)
    assert count_parameters(up) == 9 * c * c + c  # 3x3 transposed conv with bias
    assert up(torch.randn(1, c, 4, 6)).shape == (1, c, 8, 12)
    assert count_parameters(make_upsample("nearest", c)) == 0
    with pytest.raises(ValueError):
        make_upsample("bilinear", c)


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
@pytest.mark.parametrize("cin,cout", [(32, 64), (64, 64)])
def test_block_shapes_and_gradients(name, cin, cout):
    block = BLOCKS[name](cin, cout)
    x = torch.randn(2, cin, 16, 12, requires_grad=True)
    y = block(x)
    assert y.shape == (2, cout, 16, 12)
    y.square().mean().backward()
    assert x.grad is not None and all(p.grad is not None for p in block.parameters())


EXPORTED = {
    **{name: (lambda f=f: f(32, 64)) for name, f in CLASSES.items()},
    "ghost-same": lambda: GhostBottleneck(64, 64),  # identity shortcut
    "ghost-module-odd": lambda: GhostModule(16, 33),  # truncation of the concatenation
    "deconv": lambda: make_upsample("deconv", 16),
}


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_trace_and_export_match_eager(name):
    torch.manual_seed(0)
    block = EXPORTED[name]().eval()
    cin = next(m for m in block.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))).in_channels
    x = torch.randn(2, cin, 16, 16)
    with torch.no_grad():
        expected = block(x)
        traced = torch.jit.trace(block, (x,))
        exported = torch.export.export(block, (x,)).module()
        x2 = torch.randn(2, cin, 16, 16)
        torch.testing.assert_close(traced(x), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(exported(x), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(traced(x2), block(x2), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(exported(x2), block(x2), atol=1e-5, rtol=1e-5)


NEW_VARIANTS = {
    "hru1": 1, "hru2": 2, "hru8": 8, "hru-deconv1": 1, "hru-deconv2": 2, "hru-deconv8": 8,
    "hg1-ds1": 1, "hg2-ds1": 2, "hg1-ds3": 1, "hg1-ghost": 1, "hg1-ghost-s32": 1,
    "hg1-multidilated": 1, "hg2-multidilated": 2,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(NEW_VARIANTS))
def test_new_variants_build_and_predict(name):
    model = create_model(get_variant(name), 16).eval()
    # 1-stack nearest-upsampling variants run for real; the others (2 and 8 stacks, and the
    # transposed convs, slow on CPU) on the meta device, which checks every shape without
    # computing (the file stays well under a minute on 2 cores).
    device = "cpu" if NEW_VARIANTS[name] == 1 and "deconv" not in name else "meta"
    model = model.to(device)
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 256, 256, device=device))
    assert len(outputs) == NEW_VARIANTS[name]
    assert all(o.shape == (1, 16, 64, 64) for o in outputs)


def test_deconv_variant_adds_one_transposed_conv_per_level_and_stack():
    # seed 001: the hourglass's upsampling (4 levels) becomes a 3x3 transposed conv, 256 wide
    for stacks in (1, 2):
        extra = count_parameters(create_model(get_variant(f"hru-deconv{stacks}"), 16)) - count_parameters(
            create_model(get_variant(f"hru{stacks}"), 16)
        )
        assert extra == stacks * 4 * (9 * 256 * 256 + 256)


def test_reduced_stem_changes_only_the_first_blocks():
    # seed 002 section 3.1.4: stem conv 3->32, ghost 32->64, ghost 64->64, ghost 64->256
    full, reduced = create_model(get_variant("hg1-ghost"), 16), create_model(get_variant("hg1-ghost-s32"), 16)
    stem64 = conv(3, 64, 7) + bn(64) + ghost(64, 128) + ghost(128, 128) + ghost(128, 256)
    stem32 = conv(3, 32, 7) + bn(32) + ghost(32, 64) + ghost(64, 64) + ghost(64, 256)
    assert count_parameters(full) - count_parameters(reduced) == stem64 - stem32
