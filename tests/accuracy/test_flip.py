"""Flip test: mirroring is exact in hgbench's crop convention (no one-pixel shift), and the
flip-averaged prediction decodes like the plain one for symmetric and for perfect heatmaps;
``predict`` runs on the model's device."""

import numpy as np
import pytest
import torch
from torch import nn

from hgbench.accuracy.decode import decode_heatmaps, flip_back
from hgbench.accuracy.evaluate import model_device, predict
from hgbench.data.base import PoseAnnotation, PoseDataset
from hgbench.data.keypoints import LSP
from hgbench.data.transforms import apply_affine, crop_matrix, render_heatmaps

PERM = LSP.flip_permutation


def _mirror(out_size: int) -> np.ndarray:
    """The array mirror ``u -> out_size - 1 - u`` as a 3x3 matrix."""
    return np.array([[-1.0, 0.0, out_size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def _h(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("out_size", [256, 64, 16])
def test_a_flipped_crop_is_exactly_the_array_mirror_of_the_plain_crop(out_size):
    rng = np.random.default_rng(0)
    for _ in range(20):
        center, size, rot = rng.uniform(0, 500, 2), rng.uniform(20, 400), rng.uniform(-40, 40)
        plain = crop_matrix(center, size, rot, out_size)
        flipped = crop_matrix(center, size, rot, out_size, flip=True)
        np.testing.assert_allclose(_h(flipped), _mirror(out_size) @ _h(plain), atol=1e-9)


def test_input_to_heatmap_map_commutes_with_the_mirrors():
    # Heatmap pixel of an input pixel, through the image (both crops share centre, size, rotation):
    # u = (x + 0.5) / 4 - 0.5 = (x - 1.5) / 4, and mirroring the 256 px input is mirroring the
    # 64 px heatmap: no shift. (With the x / 4 convention of microsoft/human-pose-estimation.pytorch
    # the mirror lands 0.75 px off, hence its SHIFT_HEATMAP.)
    center, size, rot = np.array([120.0, 80.0]), 150.0, 17.0
    to_in, to_hm = _h(crop_matrix(center, size, rot, 256)), _h(crop_matrix(center, size, rot, 64))
    in_to_hm = to_hm @ np.linalg.inv(to_in)
    np.testing.assert_allclose(in_to_hm[:2], [[0.25, 0, -0.375], [0, 0.25, -0.375]], atol=1e-12)
    np.testing.assert_allclose(in_to_hm @ _mirror(256), _mirror(64) @ in_to_hm, atol=1e-12)
    naive = np.array([[0.25, 0, 0], [0, 0.25, 0], [0, 0, 1.0]])  # u = x / 4
    assert not np.allclose(naive @ _mirror(256), _mirror(64) @ naive)


def test_flip_back_mirrors_each_map_and_swaps_left_and_right():
    hm = torch.rand(2, 14, 8, 8)
    mirrored_person = hm[:, PERM].flip(-1)  # what the network sees for the mirror
    torch.testing.assert_close(flip_back(mirrored_person, PERM), hm, rtol=0, atol=0)
    # right ankle (0) of the mirror is the left ankle (5) of the plain crop
    torch.testing.assert_close(flip_back(hm, PERM)[:, 5], hm[:, 0].flip(-1), rtol=0, atol=0)


class _Blank(PoseDataset):
    """``n`` persons on noise images, LSP layout, fixed joints."""

    keypoints = LSP

    def __init__(self, n=3, seed=0, **kwargs):
        super().__init__(**kwargs)
        rng = np.random.default_rng(seed)
        self._images = [rng.integers(0, 256, (120, 100, 3), dtype=np.uint8) for _ in range(n)]
        self._joints = [rng.uniform(25, 85, (14, 2)).astype(np.float32) for _ in range(n)]

    def __len__(self):
        return len(self._images)

    def annotation(self, index):
        return PoseAnnotation(f"{index}", self._joints[index], np.ones(14, bool), np.array([55.0, 60.0]), 90.0)

    def load_image(self, index):
        return self._images[index]


class _Fixed(nn.Module):
    """Outputs the same heatmaps for any input (one stack: a list of one tensor)."""

    def __init__(self, hm):
        super().__init__()
        self.hm = hm

    def forward(self, x):
        return [self.hm.expand(len(x), -1, -1, -1).clone()]


def _symmetric_heatmaps(size: int, shift: float = 0.0) -> torch.Tensor:
    """Each channel asymmetric (peak off-centre, sub-pixel), the set mirror-symmetric:
    channel perm[j] is channel j mirrored."""
    rng = np.random.default_rng(3)
    pts = np.zeros((14, 2))
    for a, b in LSP.flip_pairs:
        x, y = rng.uniform(2, size - 3), rng.uniform(2, size - 3)
        pts[a], pts[b] = (x, y), (size - 1 - x + shift, y)
    for j in (12, 13):  # neck and head top are their own mirror: peak on the centre line
        pts[j] = ((size - 1) / 2 + shift, rng.uniform(2, size - 3))
    return torch.from_numpy(render_heatmaps(pts, size, 1.3))[None]


def test_symmetric_fixed_heatmaps_decode_identically_with_and_without_flip():
    ds = _Blank(input_size=64, output_size=16)
    hm = _symmetric_heatmaps(16)
    plain = predict(_Fixed(hm), ds, batch_size=2, supervision="final", flip_test=False)
    flipped = predict(_Fixed(hm), ds, batch_size=2, supervision="final", flip_test=True)
    assert flipped.flip_test and not plain.flip_test
    np.testing.assert_array_equal(flipped.pred, plain.pred)

    # the check is sharp: a one-pixel shift of the mirrored-back maps (SHIFT_HEATMAP) moves joints
    coords, _ = decode_heatmaps(hm)
    shifted = flip_back(hm, PERM)
    shifted[..., 1:] = shifted[..., :-1].clone()
    coords_shifted, _ = decode_heatmaps((hm + shifted) / 2)
    assert not torch.equal(coords, coords_shifted)
    # and so is the flip itself: an asymmetric set does change under the flip test
    asym = predict(_Fixed(_symmetric_heatmaps(16, shift=1.4)), ds, batch_size=2, supervision="final", flip_test=True)
    assert not np.array_equal(asym.pred, plain.pred)


class _Oracle(nn.Module):
    """A perfect network: recognises each crop (or its mirror) of ``ds`` and answers with the
    ground-truth heatmaps rendered in that crop's own geometry (the mirror's from
    ``crop_matrix(..., flip=True)`` and the left/right-swapped joints)."""

    def __init__(self, ds):
        super().__init__()
        self.crops, self.plain, self.mirrored = [], [], []
        for i in range(len(ds)):
            ann = ds.annotation(i)
            self.crops.append(ds[i]["image"])
            for flip, store in ((False, self.plain), (True, self.mirrored)):
                joints = ann.joints[PERM] if flip else ann.joints
                m = crop_matrix(ann.center, ann.size_px, 0.0, ds.output_size, flip)
                store.append(torch.from_numpy(render_heatmaps(apply_affine(joints, m), ds.output_size, ds.sigma)))

    def forward(self, x):
        out = []
        for img in x:
            hit = [i for i, c in enumerate(self.crops) if torch.equal(img, c)]
            hit_m = [i for i, c in enumerate(self.crops) if torch.equal(img, c.flip(-1))]
            assert len(hit) + len(hit_m) == 1, "the oracle only knows the dataset's crops and their mirrors"
            out.append(self.plain[hit[0]] if hit else self.mirrored[hit_m[0]])
        return [torch.stack(out)]


@pytest.mark.parametrize("input_size,output_size", [(64, 16), (256, 64)])
def test_oracle_heatmaps_decode_to_ground_truth_with_and_without_flip(input_size, output_size):
    ds = _Blank(n=3, seed=1, input_size=input_size, output_size=output_size)
    oracle = _Oracle(ds)
    # the mirror's answer, mapped back, is the plain answer: no shift needed
    for i in range(len(ds)):
        back = flip_back(oracle(ds[i]["image"].flip(-1)[None])[0], PERM)[0]
        torch.testing.assert_close(back, oracle.plain[i], rtol=0, atol=1e-5)  # float32 rendering
    bound = 0.25 * np.sqrt(2) * ds.annotation(0).size_px / output_size + 1e-6  # quarter heatmap pixel per axis
    results = {}
    for flip in (False, True):
        p = predict(oracle, ds, batch_size=2, supervision="final", flip_test=flip)
        err = np.linalg.norm(p.pred - p.gt, axis=-1)
        assert err.max() <= bound
        results[flip] = p.pred
    np.testing.assert_allclose(results[True], results[False], atol=1e-6)


class _Probe(nn.Module):
    """Fixed heatmaps plus a zero parameter; records the device of every batch it sees."""

    def __init__(self, hm):
        super().__init__()
        self.zero = nn.Parameter(torch.zeros(()))
        self.register_buffer("hm", hm)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.device)
        return [self.hm.expand(len(x), -1, -1, -1) + self.zero]


def test_predict_runs_on_the_models_device():
    hm = _symmetric_heatmaps(16, shift=1.4)
    assert model_device(_Fixed(hm)) == torch.device("cpu")  # neither parameter nor buffer: the CPU
    ds = _Blank(input_size=64, output_size=16)
    model = _Probe(hm)
    p = predict(model, ds, batch_size=2, supervision="final")
    assert model.seen and all(d == torch.device("cpu") for d in model.seen)
    np.testing.assert_array_equal(p.pred, predict(_Fixed(hm), ds, batch_size=2, supervision="final").pred)
    assert isinstance(p.pred, np.ndarray) and isinstance(p.maxvals, np.ndarray)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_predict_on_cuda_matches_the_cpu():
    hm = _symmetric_heatmaps(16, shift=1.4)
    ds = _Blank(input_size=64, output_size=16)
    cpu = predict(_Probe(hm), ds, batch_size=2, supervision="final")
    model = _Probe(hm).cuda()
    gpu = predict(model, ds, batch_size=2, supervision="final")  # batches follow the model: no device argument
    assert model.seen and all(d.type == "cuda" for d in model.seen)
    np.testing.assert_allclose(gpu.pred, cpu.pred, atol=1e-5)
    np.testing.assert_allclose(gpu.maxvals, cpu.maxvals, atol=1e-6)
    assert gpu.loss == pytest.approx(cpu.loss, rel=1e-5)
