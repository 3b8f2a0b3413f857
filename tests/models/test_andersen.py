"""Andersen's variants (seed 003_c160231480bcc829.txt): andersen-hg, andersen-hg-ae, andersen-hg-noskip."""

from __future__ import annotations

import math

import pytest
import torch

from hgbench.config import OptimizerConfig, PretrainConfig, get_variant, load_protocol
from hgbench.models import Hourglass, create_model
from hgbench.models.autoencoder import BottleneckAutoencoder
from hgbench.train.pretrain import autoencoders, bottleneck_features, pretrain_autoencoder, reconstruction_loss

NAMES = ["andersen-hg", "andersen-hg-ae", "andersen-hg-noskip"]


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [64, 256])
def test_output_shapes(name, size):
    torch.manual_seed(0)
    model = create_model(get_variant(name), 17, input_size=size).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size))
    assert len(out) == 1 and out[0].shape == (1, 17, size // 4, size // 4)


def test_autoencoder_parameter_count():
    c, s, d = 256, 4, 50
    enc = (9 * c * 192 + 192) + (9 * 192 * 128 + 128) + (9 * 128 * 64 + 64)
    lin = (64 * s * s * d + d) + (d * 64 * s * s + 64 * s * s)
    dec = (9 * 64 * 128 + 128) + (9 * 128 * 192 + 192) + (9 * 192 * c + c)
    assert _count(BottleneckAutoencoder(c, s, d)) == enc + lin + dec == 1_578_994
    # the autoencoder is the only difference between andersen-hg-ae and andersen-hg
    diff = _count(create_model(get_variant("andersen-hg-ae"), 17, input_size=256)) - _count(
        create_model(get_variant("andersen-hg"), 17)
    )
    assert diff == enc + lin + dec


def test_autoencoder_rejects_other_sizes():
    model = create_model(get_variant("andersen-hg-ae"), 17, input_size=64).eval()
    with pytest.raises(ValueError, match="bottleneck"):
        model(torch.randn(1, 3, 128, 128))


def test_glorot_normal_init():
    torch.manual_seed(0)
    model = create_model(get_variant("andersen-hg"), 17)
    conv = model.hourglasses[0].up1[0].conv_branch[5]  # 3x3 conv 128 -> 128
    w = conv.weight
    fan_in = fan_out = 128 * 9
    assert w.shape == (128, 128, 3, 3)
    assert float(w.detach().std()) == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.03)
    stem = model.stem[0].weight  # 7x7 conv 3 -> 256 (the wide stem)
    assert stem.shape == (256, 3, 7, 7)
    assert float(stem.detach().std()) == pytest.approx(math.sqrt(2 / (3 * 49 + 256 * 49)), rel=0.05)
    ae = autoencoders(create_model(get_variant("andersen-hg-ae"), 17, input_size=256))[0]
    lw = ae.encoder_linear[0].weight
    assert float(lw.detach().std()) == pytest.approx(math.sqrt(2 / (1024 + 50)), rel=0.03)


def test_skips_disabled_drops_upper_branches():
    torch.manual_seed(0)
    hg = Hourglass(3, 8, bottom_modules=3).eval()
    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        hg.set_skips_enabled(False)
        off = hg(x)
        hg.set_skips_enabled(True)
        on = hg(x)
        # perturb every level's upper branch
        for m in hg.modules():
            if isinstance(m, Hourglass):
                for p in m.up1.parameters():
                    p.add_(torch.randn_like(p))
        on2 = hg(x)
        hg.set_skips_enabled(False)
        off2 = hg(x)
    assert not torch.allclose(on, on2)
    assert torch.equal(off, off2)
    assert all(not m.skips_enabled for m in hg.modules() if isinstance(m, Hourglass))


def test_noskip_variant_evaluates_without_skips():
    from hgbench.accuracy.evaluate import predict

    spec = get_variant("andersen-hg-noskip")
    assert spec.eval_skips is False and get_variant("andersen-hg").eval_skips is True
    model = create_model(spec, 17)
    seen = []
    model.hourglasses[0].register_forward_hook(lambda m, a, o: seen.append(m.skips_enabled))

    class _DS(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"image": torch.randn(3, 64, 64), "heatmaps": torch.zeros(17, 16, 16), "target_weight": torch.ones(17),
                    "heatmap_to_image": torch.eye(2, 3), "joints": torch.zeros(17, 2), "annotated": torch.ones(17, dtype=torch.bool),
                    "normalizer": torch.tensor(1.0)}  # fmt: skip

    predict(model, _DS(), batch_size=2, skips=spec.eval_skips)
    assert seen == [False] and model.hourglasses[0].skips_enabled  # switched back on for training


def test_pretrain_reduces_loss_and_touches_only_the_autoencoder():
    torch.manual_seed(0)
    model = create_model(get_variant("andersen-hg-ae"), 17, input_size=64)
    images = torch.randn(8, 3, 64, 64)
    train_set = [{"image": img} for img in images]
    ae_ids = {id(p) for ae in autoencoders(model) for p in ae.parameters()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ae_keys = {k for k, p in model.named_parameters() if id(p) in ae_ids}
    feats = bottleneck_features(model, images)
    assert feats[0].shape == (8, 256, 1, 1)
    with torch.no_grad():
        loss0 = float(reconstruction_loss(autoencoders(model), feats))
    cfg = PretrainConfig(
        optimizer=OptimizerConfig(name="sgd", lr=5e-3, momentum=0.9),
        epochs=2,
        steps_per_epoch=5,
        batch_size=8,
        lr_step_epochs=1,
    )
    info = pretrain_autoencoder(model, train_set, cfg, load_protocol("smoke"))
    with torch.no_grad():
        loss1 = float(reconstruction_loss(autoencoders(model), bottleneck_features(model, images)))
    assert info["steps"] == 10 and info["lr_final"] == pytest.approx(5e-3 * 0.25)
    assert loss1 < loss0
    after = model.state_dict()
    for k, v in before.items():
        if k in ae_keys:
            continue
        assert torch.equal(v, after[k]), k
    assert any(not torch.equal(before[k], after[k]) for k in ae_keys)


def test_ae_export_matches_eager():
    torch.manual_seed(0)
    model = create_model(get_variant("andersen-hg-ae"), 17, input_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)[0]
        traced = torch.jit.trace(model, (x,), strict=False)
        out_t = traced(x)[0]
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        out_e = exported.module()(x)[0]
    assert torch.allclose(out_t, ref, atol=1e-4)
    assert torch.allclose(out_e, ref, atol=1e-4)
