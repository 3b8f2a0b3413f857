"""Complexity counters against closed-form counts: conv, depthwise conv, transposed conv,
linear; what each counter skips; the optional cross-checks missing; parameters, size in MiB,
activation memory.

Closed forms (per batch of N, kernel k x k, g groups, bias not counted by any counter):
    Conv2d           MACs = N * C_out * H_out * W_out * (C_in / g) * k * k
    ConvTranspose2d  MACs = N * C_in * (C_out / g) * k * k * H_in * W_in
    FLOPs (flop_counter) = 2 x MACs for conv and linear.
"""

from __future__ import annotations

import sys

import pytest
from torch import nn

from hgbench.profile.complexity import (
    activation_memory_mib,
    complexity_record,
    count_flops,
    count_macs,
    count_parameters,
    model_size_mib,
)


def _all(model, shape):
    macs = count_macs(model, shape)
    flops = count_flops(model, shape)
    return macs.fvcore_macs, macs.thop_macs, flops.flops


@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_closed_form(bias):
    conv = nn.Conv2d(16, 32, 3, padding=1, bias=bias)
    expected = 32 * 20 * 20 * 16 * 3 * 3
    fvcore, thop, flops = _all(conv, (1, 16, 20, 20))
    assert fvcore == thop == expected  # bias addition not counted, with or without bias
    assert flops == 2 * expected
    assert not hasattr(conv, "total_ops")  # thop worked on a copy


@pytest.mark.parametrize(
    ("conv", "shape", "expected_macs"),
    [
        (nn.Conv2d(16, 32, 3, padding=1), (1, 16, 20, 20), 32 * 20 * 20 * 16 * 3 * 3),
        (nn.Conv2d(16, 32, 5, stride=2, padding=2, groups=4), (3, 16, 21, 21), 3 * 32 * 11 * 11 * 4 * 5 * 5),
        (nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), (1, 16, 10, 10), 16 * 8 * 4 * 4 * 10 * 10),
    ],
)
def test_flop_counter_headline_equals_closed_form(conv, shape, expected_macs):
    """The headline (torch.utils.flop_counter) alone, without fvcore or thop: FLOPs = 2 x MACs."""
    flops = count_flops(conv, shape)
    assert flops.flops == 2 * expected_macs and flops.macs == expected_macs
    assert flops.gmacs == pytest.approx(expected_macs / 1e9) and flops.gflops == pytest.approx(2 * expected_macs / 1e9)
    assert set(flops.by_operator) == {"aten.convolution"}


def test_strided_grouped_conv_closed_form():
    conv = nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=4)
    expected = 2 * 32 * 10 * 10 * (16 // 4) * 3 * 3  # N=2, H_out = W_out = 10
    fvcore, thop, flops = _all(conv, (2, 16, 20, 20))
    assert fvcore == thop == expected and flops == 2 * expected


def test_depthwise_conv_closed_form():
    conv = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
    expected = 2 * 16 * 20 * 20 * 3 * 3  # N * C * H_out * W_out * k * k
    fvcore, thop, flops = _all(conv, (2, 16, 20, 20))
    assert fvcore == thop == expected and flops == 2 * expected


def test_transposed_conv_closed_form_and_thops_documented_overcount():
    deconv = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)  # 10x10 -> 20x20
    true = 16 * 8 * 4 * 4 * 10 * 10  # C_in * C_out * k * k * H_in * W_in
    fvcore, thop, flops = _all(deconv, (1, 16, 10, 10))
    assert fvcore == true
    assert flops == 2 * true
    # thop applies the conv formula to the output: C_out * H_out * W_out * C_in * k * k = stride^2 x true
    assert thop == 8 * 20 * 20 * 16 * 4 * 4 == 4 * true


def test_transposed_conv_stride_1_all_agree():
    deconv = nn.ConvTranspose2d(16, 8, 3, stride=1, padding=1, groups=2)
    true = 16 * (8 // 2) * 3 * 3 * 10 * 10
    assert _all(deconv, (1, 16, 10, 10)) == (true, true, 2 * true)


def test_linear_closed_form():
    linear = nn.Linear(64, 10)
    assert _all(linear, (3, 64)) == (3 * 64 * 10, 3 * 64 * 10, 2 * 3 * 64 * 10)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return self.gate(x + self.bn(self.conv(x)))


def test_skipped_operators_of_each_counter():
    model = Residual().train()
    macs = count_macs(model, (1, 4, 8, 8))
    flops = count_flops(model, (1, 4, 8, 8))
    assert model.training  # restored
    conv = 4 * 8 * 8 * 4
    assert flops.flops == 2 * conv  # batch norm, add and sigmoid count 0
    assert "aten.add" in flops.skipped and "aten.sigmoid" in flops.skipped
    assert "aten._native_batch_norm_legit_no_training" in flops.skipped  # eval-mode batch norm
    assert "aten.convolution" not in flops.skipped
    assert not any(op in flops.skipped for op in ("aten.view", "aten.empty", "aten.t"))  # views and creation left out
    assert macs.fvcore_skipped == {"aten::add": 1, "aten::sigmoid": 1}
    assert macs.fvcore_macs == conv + 4 * 8 * 8 * 2  # fvcore: affine batch norm = 2 per element
    assert macs.thop_skipped == ["Sigmoid"]  # thop has no rule for Sigmoid; Conv2d and BatchNorm2d it knows
    assert macs.thop_macs == conv + 4 * 8 * 8 * 4  # thop 0.1.1: affine batch norm = 4 per element


def test_count_parameters_closed_form():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(10, 5))
    model[2].weight.requires_grad_(False)  # frozen parameters count too
    expected = (8 * 3 * 3 * 3 + 8) + (8 + 8) + (10 * 5 + 5)  # BN running stats are buffers
    assert count_parameters(model) == expected


def test_model_size_counts_float_params_and_buffers_at_4_bytes():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)).half()  # current dtype does not matter
    floats = (8 * 3 * 3 * 3 + 8) + (8 + 8) + (8 + 8)  # conv, BN affine, BN running mean/var; not num_batches_tracked
    assert model_size_mib(model) == pytest.approx(floats * 4 / 2**20)
    assert model_size_mib(model, bytes_per_element=2) == pytest.approx(floats * 2 / 2**20)


def test_activation_memory_sums_leaf_outputs_at_fp32():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Sequential(nn.MaxPool2d(2)))
    leaf_outputs = 8 * 10 * 10 + 8 * 10 * 10 + 8 * 5 * 5  # conv, relu, pool (the inner Sequential is not a leaf)
    assert activation_memory_mib(model, (1, 3, 10, 10)) == pytest.approx(leaf_outputs * 4 / 2**20)
    assert activation_memory_mib(model, (3, 3, 10, 10)) == pytest.approx(3 * leaf_outputs * 4 / 2**20)


def test_complexity_record_is_per_sample_and_complete():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    rec = complexity_record(model, 16)
    conv = 8 * 16 * 16 * 3 * 3 * 3
    assert rec["macs"] == {
        "flop_counter": conv, "fvcore": conv, "thop": conv, "unit": "MACs", "input_shape": [1, 3, 16, 16],
        "unavailable": {},
    }  # fmt: skip
    assert rec["gmacs_fvcore"] == pytest.approx(conv / 1e9) and rec["gmacs_thop"] == pytest.approx(conv / 1e9)
    assert rec["gflops_flop_counter"] == pytest.approx(2 * conv / 1e9)
    assert rec["parameters"] == 8 * 27 + 8
    assert rec["model_size_mib"] == pytest.approx((8 * 27 + 8) * 4 / 2**20)
    assert rec["activation_memory_mib"] == pytest.approx(2 * 8 * 16 * 16 * 4 / 2**20)
    assert set(rec["skipped_ops"]) == {"fvcore", "thop", "flop_counter"}
    assert rec["skipped_ops"]["flop_counter"] == ["aten.relu"]


@pytest.mark.parametrize("missing", [("fvcore",), ("thop",), ("fvcore", "thop")])
def test_cross_checks_are_optional(monkeypatch, missing):
    """Without the ``counters`` extra the headline is still counted; a missing counter's columns
    are None and the record says why and how to install it."""
    for module in [m for m in sys.modules if m.split(".")[0] in missing]:
        monkeypatch.setitem(sys.modules, module, None)  # None in sys.modules: `import` raises ImportError
    for name in missing:
        monkeypatch.setitem(sys.modules, name, None)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    rec = complexity_record(model, 16)
    conv = 8 * 16 * 16 * 3 * 3 * 3
    assert rec["macs"]["flop_counter"] == conv and rec["gflops_flop_counter"] == pytest.approx(2 * conv / 1e9)
    assert set(rec["macs"]["unavailable"]) == set(missing)
    for name in ("fvcore", "thop"):
        if name in missing:
            assert rec["macs"][name] is None and rec[f"gmacs_{name}"] is None and rec["skipped_ops"][name] is None
            assert rec["macs"]["unavailable"][name] == f"{name} not installed: pip install 'hgbench[counters]'"
        else:
            assert rec["macs"][name] == conv and rec[f"gmacs_{name}"] == pytest.approx(conv / 1e9)
