"""Cost measurement: percentiles, the timing loop, MAC counters, backends, profile_model."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from hgbench.profile import (
    LatencyStats,
    complexity_record,
    count_macs,
    count_parameters,
    get_backend,
    profile_model,
    time_callable,
)
from hgbench.provenance import collect_provenance


# --- latency statistics -------------------------------------------------------------------


def test_percentiles_linear_interpolation_on_1_to_100():
    stats = LatencyStats([float(v) for v in range(1, 101)])
    assert stats.n == 100
    # linear interpolation at rank (n - 1) * q / 100 of the sorted samples
    assert stats.p50 == pytest.approx(50.5)
    assert stats.p90 == pytest.approx(90.1)
    assert stats.p99 == pytest.approx(99.01)
    assert stats.mean == pytest.approx(50.5)
    assert stats.std == pytest.approx(29.011491975882016)  # sample std (ddof=1)
    assert stats.throughput(batch_size=4) == pytest.approx(4 / 0.0505)
    d = stats.to_dict()
    assert d["p50_ms"] == pytest.approx(50.5) and d["samples_ms"][:3] == [1.0, 2.0, 3.0]


def test_latency_stats_rejects_empty_and_bad_batch():
    with pytest.raises(ValueError):
        LatencyStats([])
    with pytest.raises(ValueError):
        LatencyStats([1.0]).throughput(0)
    assert LatencyStats([2.0]).std == 0.0


# --- timing loop ----------------------------------------------------------------------------


def test_time_callable_measures_a_known_duration():
    stats = time_callable(lambda: time.sleep(0.01), warmup_iters=1, min_iters=5, min_time_s=0.0)
    # sleep never returns early; a loaded CI machine may overshoot, hence the loose upper bound
    assert 9.9 <= stats.p50 <= 30.0


def test_time_callable_honours_min_iters():
    calls = []
    stats = time_callable(lambda: calls.append(1), warmup_iters=2, min_iters=50, min_time_s=0.0)
    assert stats.n == 50
    assert len(calls) == 2 + 50


def test_time_callable_honours_min_time_and_sync():
    calls, syncs = [], []
    start = time.perf_counter()
    stats = time_callable(
        lambda: calls.append(1),
        warmup_iters=0,
        min_iters=1,
        min_time_s=0.2,
        max_iters=10**9,  # the default cap (10 000 calls) would stop a no-op long before 0.2 s
        sync=lambda: syncs.append(1),
    )
    assert time.perf_counter() - start >= 0.2
    assert stats.n == len(calls) == len(syncs) > 1


def test_time_callable_stops_at_max_iters():
    stats = time_callable(lambda: None, warmup_iters=0, min_iters=1, min_time_s=60.0, max_iters=7)
    assert stats.n == 7


def test_time_callable_rejects_bad_arguments():
    with pytest.raises(ValueError):
        time_callable(lambda: None, min_iters=0)
    with pytest.raises(ValueError):
        time_callable(lambda: None, min_iters=5, max_iters=4)


# --- complexity -----------------------------------------------------------------------------


def test_conv_macs_closed_form_both_counters():
    conv = nn.Conv2d(16, 32, 3, padding=1)
    macs = count_macs(conv, (1, 16, 20, 20))
    expected = 32 * 20 * 20 * 16 * 3 * 3  # C_out * H_out * W_out * C_in * k * k (bias not counted)
    assert macs.fvcore_macs == expected
    assert macs.thop_macs == expected
    assert macs.fvcore_skipped == {}
    assert macs.fvcore_gmacs == pytest.approx(expected / 1e9)
    assert not hasattr(conv, "total_ops")  # thop worked on a copy


def test_depthwise_conv_macs_closed_form():
    conv = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
    macs = count_macs(conv, (2, 16, 20, 20))
    expected = 2 * 16 * 20 * 20 * 1 * 3 * 3  # batch * C_out * H_out * W_out * (C_in / groups) * k * k
    assert macs.fvcore_macs == expected
    assert macs.thop_macs == expected


def test_count_macs_reports_skipped_ops_and_restores_training_mode():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return x + self.conv(x)

    model = Residual().train()
    macs = count_macs(model, (1, 4, 8, 8))
    assert macs.fvcore_macs == macs.thop_macs == 4 * 8 * 8 * 4
    assert macs.fvcore_skipped == {"aten::add": 1}
    assert model.training


def test_count_parameters_closed_form():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(10, 5))
    model[2].weight.requires_grad_(False)  # frozen parameters count too
    expected = (8 * 3 * 3 * 3 + 8) + (8 + 8) + (10 * 5 + 5)  # BN running stats are buffers
    assert count_parameters(model) == expected


# --- backends -------------------------------------------------------------------------------


class TwoHeads(nn.Module):
    """Returns a list of two tensors, like a 2-stack hourglass returns per-stack heatmaps."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head1 = nn.Conv2d(8, 4, 1)
        self.head2 = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.body(x)
        return [self.head1(y), self.head2(y) + self.head1(y)]


def test_torchscript_matches_eager_on_list_output():
    torch.manual_seed(0)
    model = TwoHeads()
    x = torch.randn(2, 3, 16, 16)
    eager = get_backend("eager").prepare(model, x)(x)
    scripted = get_backend("torchscript").prepare(model, x)(x)
    assert isinstance(scripted, list) and len(scripted) == 2
    for a, b in zip(eager, scripted):
        assert a.shape == b.shape == (2, 4, 16, 16)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_tensorrt_unavailable_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    reason = get_backend("tensorrt").available()
    assert reason is not None and "tensorrt" in reason.lower()


def test_unknown_backend_names_the_valid_ones():
    with pytest.raises(ValueError, match="eager.*torchscript.*tensorrt"):
        get_backend("onnx")


# --- profile_model --------------------------------------------------------------------------


def _profile(model, **kw):
    args = dict(variant="tiny", num_joints=4, backend="eager", batch_size=2, input_size=16,
                threads=1, warmup_iters=1, min_iters=3, min_time_s=0.0)
    return profile_model(model, **{**args, **kw})


def test_profile_model_ok_record():
    threads_before = torch.get_num_threads()
    model = TwoHeads()
    rec = _profile(model)
    assert rec["status"] == "ok" and rec["error"] is None
    assert rec["threads"] == 1 and torch.get_num_threads() == threads_before
    assert rec["device"] == "cpu"
    assert rec["parameters"] == count_parameters(model)
    assert rec["macs"]["unit"] == "MACs" and rec["macs"]["fvcore"] > 0 and rec["macs"]["thop"] > 0
    assert rec["latency_ms"]["n"] == 3 and len(rec["latency_ms"]["samples_ms"]) == 3
    assert rec["throughput_samples_per_s"] > 0
    assert model.training  # restored


def test_profile_model_uses_precomputed_complexity():
    model = TwoHeads()
    complexity = complexity_record(model, 16)
    complexity["macs"]["fvcore"] = 123  # marker: must be taken as given
    rec = _profile(model, backend="torchscript", complexity=complexity)
    assert rec["status"] == "ok" and rec["macs"]["fvcore"] == 123


def test_profile_model_reports_an_error_instead_of_raising():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            raise RuntimeError("boom\nsecond line")

    rec = _profile(Broken())
    assert rec["status"] == "error"
    assert "boom" in rec["error"] and "\n" not in rec["error"]
    assert rec["latency_ms"] is None


def test_profile_model_unavailable_backend_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    rec = _profile(TwoHeads(), backend="tensorrt")
    assert rec["status"] == "error" and "tensorrt" in rec["error"].lower()


# --- provenance -----------------------------------------------------------------------------


def test_provenance_fields():
    prov = collect_provenance(["hgbench", "profile", "--backend", "eager", "a b"])
    assert prov["command"] == "hgbench profile --backend eager 'a b'"
    assert prov["torch"] == torch.__version__
    assert prov["torch_threads"] == torch.get_num_threads()
    assert prov["cpu_count"] >= 1 and prov["hostname"]
    for key in ("hgbench_version", "git_commit", "git_dirty", "python", "cuda", "cudnn", "platform", "cpu_model"):
        assert key in prov
