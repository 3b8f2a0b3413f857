"""Numerical check against eager fp32 (hgbench.profile.numerics): closed-form errors and
argmax moves, the tolerance rule, and deliberately wrong backends being flagged."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from hgbench.profile.backends import Backend, Prepared, RunSettings, get_backend
from hgbench.profile.numerics import RTOL, compare_outputs, tolerance_for
from tests.conftest import tiny_hourglass

pytestmark = pytest.mark.usefixtures("one_thread")


class WrongBackend(Backend):
    """Test-only: eager, then a deliberate corruption of every stack's heatmaps."""

    name = "wrong"

    def __init__(self, corrupt):
        self.corrupt = corrupt

    def prepare(self, model: nn.Module, example_input: Tensor, settings: RunSettings) -> Prepared:
        eager = get_backend("eager").prepare(model, example_input, settings)
        return Prepared(
            fn=lambda x: [self.corrupt(h) for h in eager.fn(x)],
            prepare_input=eager.prepare_input,
            build_time_s=0.0,
            notes=[],
        )


def check(backend: Backend, settings: RunSettings | None = None):
    settings = settings or RunSettings()
    model, x = tiny_hourglass(), torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        reference = model(x)
    prepared = backend.prepare(model, x, settings)
    with torch.inference_mode():
        out = prepared.fn(prepared.prepare_input(x))
    return compare_outputs(reference, out, tolerance_for(settings.precision, settings.tf32))


# --- closed forms -----------------------------------------------------------------------------


def peaked(n=2, j=4, h=8, w=8) -> Tensor:
    """Heatmaps that are 0 except a 1 at pixel (y=j, x=j) of joint j."""
    maps = torch.zeros(n, j, h, w)
    for k in range(j):
        maps[:, k, k, k] = 1.0
    return maps


def test_identical_outputs_have_no_error():
    ref = [torch.randn(2, 4, 8, 8), peaked()]
    result = compare_outputs(ref, [r.clone() for r in ref])
    assert result["max_abs_error"] == 0.0 and result["argmax_moved_fraction"] == 0.0 and result["ok"]


def test_error_and_moved_fraction_in_closed_form():
    ref = peaked()  # 2 samples x 4 joints
    cand = ref.clone()
    cand[0, 1, 7, 7] = 1.5  # sample 0, joint 1: the peak moves, error 1.5 there
    cand[1, 2, 2, 2] = 0.75  # sample 1, joint 2: the peak stays (0.75 is still the max), error 0.25
    result = compare_outputs([ref], [cand])
    assert result["max_abs_error"] == pytest.approx(1.5)
    assert result["argmax_moved_fraction"] == pytest.approx(1 / 8)
    assert not result["ok"]


def test_only_the_final_stack_is_compared():
    ref = [torch.zeros(1, 2, 4, 4), peaked(1, 2, 4, 4)]
    cand = [torch.full((1, 2, 4, 4), 9.0), ref[1].clone()]  # an intermediate stack far off
    assert compare_outputs(ref, cand)["max_abs_error"] == 0.0


def test_bound_is_rtol_times_the_reference_scale_but_at_least_rtol():
    small = peaked() * 0.25  # max |ref| 0.25: bound rtol * 1
    big = peaked() * 40.0  # max |ref| 40: bound rtol * 40
    assert compare_outputs(small, small)["tolerance"]["max_abs_error"] == pytest.approx(RTOL["fp32"])
    assert compare_outputs(big, big)["tolerance"]["max_abs_error"] == pytest.approx(40 * RTOL["fp32"])
    # just inside and just outside the fp16 bound of the big maps
    bound = 40 * RTOL["fp16"]
    assert compare_outputs(big, big + 0.99 * bound, tolerance_for("fp16"))["ok"]
    assert not compare_outputs(big, big + 1.01 * bound, tolerance_for("fp16"))["ok"]


def test_tolerances_by_precision():
    assert tolerance_for("fp32").rtol < tolerance_for("fp16").rtol < tolerance_for("bf16").rtol
    assert tolerance_for("fp32", tf32=True).precision == "tf32"
    assert tolerance_for("fp16", tf32=True).precision == "fp16"
    assert tolerance_for("bf16").rtol < tolerance_for("int8").rtol == tolerance_for("fp8").rtol
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        tolerance_for("int4")


def test_nonfinite_candidate_is_never_ok():
    ref = peaked()
    cand = ref.clone()
    cand[0, 0, 0, 0] = float("nan")
    result = compare_outputs(ref, cand)
    assert result["max_abs_error"] == float("inf") and not result["ok"]


def test_structure_mismatch_raises():
    with pytest.raises(ValueError, match="1 stacks of heatmaps, eager returned 2"):
        compare_outputs([peaked(), peaked()], [peaked()])
    with pytest.raises(ValueError, match=r"\(2, 4, 4, 4\) from the backend"):
        compare_outputs(peaked(), peaked(2, 4, 4, 4))


def test_within_the_bound_a_peak_only_moves_to_a_near_tie():
    """The docstring's argument: max error <= e implies ref[a] - ref[b] <= 2e for moved peaks."""
    gen = torch.Generator().manual_seed(1)
    ref = torch.rand(64, 16, 8, 8, generator=gen)
    e = 0.01
    cand = ref + (torch.rand(ref.shape, generator=gen) * 2 - 1) * e
    flat_ref = ref.flatten(2)
    a, b = flat_ref.argmax(-1), cand.flatten(2).argmax(-1)
    gap = flat_ref.gather(-1, a[..., None]) - flat_ref.gather(-1, b[..., None])
    assert (a != b).any()  # near-ties do move
    assert float(gap.max()) <= 2 * e


# --- backends: correct ones pass, wrong ones are flagged --------------------------------------------


def test_eager_fp32_passes():
    result = check(get_backend("eager"))
    assert result["ok"] and result["max_abs_error"] == 0.0


def test_backend_shifting_heatmaps_by_one_pixel_is_flagged():
    result = check(WrongBackend(lambda h: torch.roll(h, shifts=1, dims=-1)))
    assert not result["ok"]
    assert result["argmax_moved_fraction"] > 0.9
    assert result["max_abs_error"] > 10 * result["tolerance"]["max_abs_error"]


def test_backend_adding_noise_is_flagged():
    result = check(WrongBackend(lambda h: h + 0.05 * torch.randn(h.shape, generator=torch.Generator().manual_seed(0))))
    assert not result["ok"]


def test_noise_below_the_fp32_bound_passes():
    result = check(WrongBackend(lambda h: h + 1e-5))
    assert result["ok"] and result["max_abs_error"] == pytest.approx(1e-5, rel=0.05)


def test_bf16_passes_its_own_bound_but_not_fp32s():
    """A correct bf16 run is ok against the bf16 tolerance and fails the fp32 one: the
    precision-dependent tolerance is what lets a correct low-precision backend pass."""
    model, x = tiny_hourglass(), torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        reference = model(x)
    prepared = get_backend("eager").prepare(model, x, RunSettings(precision="bf16"))
    with torch.inference_mode():
        out = prepared.fn(prepared.prepare_input(x))
    assert compare_outputs(reference, out, tolerance_for("bf16"))["ok"]
    assert not compare_outputs(reference, out, tolerance_for("fp32"))["ok"]
