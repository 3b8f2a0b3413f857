"""COCO keypoint accuracy: OKS AP/AR through pycocotools, and seed 003's heatmap PCK.

**OKS AP/AR** (predictions on the ground-truth person boxes). Each person's prediction
becomes one result ``{"image_id", "category_id": 1, "keypoints": [x1, y1, s1, ...],
"score"}`` (51 numbers: image pixels and the heatmap maximum of each joint) as the common
top-down code writes them (microsoft/human-pose-estimation.pytorch ``lib/dataset/coco.py``,
commit 15bbef2, ``evaluate`` and ``_coco_keypoint_results_one_category_kernel``). The
person score is rescored there as the mean of the joints' heatmap maxima above
``IN_VIS_THRE`` (0.2 in every ``experiments/coco/*.yaml`` of that repository; 0 where no
joint passes it) times the box score (1 for a ground-truth box: ``JointsDataset`` gives a
record without a detector score the score 1). The common code then runs OKS-NMS over the
persons of an image; with one ground-truth box per person there is nothing to suppress, so
hgbench leaves it out. ``pycocotools.cocoeval.COCOeval(iouType="keypoints")`` scores the
results: ``evaluate()``, ``accumulate()``, ``summarize()``, whose ten ``stats`` are named
:data:`OKS_STAT_NAMES` (order of ``COCOeval.summarize``'s ``_summarizeKps``: AP at OKS
0.50:0.05:0.95, AP at 0.5, AP at 0.75, AP medium, AP large, and the same five for AR; up to
20 detections per image).

OKS (pycocotools ``cocoeval.py`` ``COCOeval.computeOks``): for a person with annotated
joints (``v > 0``), ``OKS = mean_i exp(-d_i^2 / (2 s^2 k_i^2))`` over its annotated joints,
with ``d_i`` the pixel distance of joint ``i``, ``s^2`` the annotation's ``area`` and
``k_i = 2 sigma_i``, ``sigma_i`` the per-keypoint constants ``Params.kpt_oks_sigmas``
(read from pycocotools, :func:`coco_sigmas`). :func:`keypoint_oks` is that closed form.

**Seed 003's PCK** (Andersen, bachelor thesis, 2021: seed ``003_c160231480bcc829.txt``):
Algorithm 1 (Sec. 2.3.2) counts a joint correct when the distance between the argmax of its
ground-truth heatmap and the argmax of its predicted heatmap, divided by ``c``, is
``< r`` (strict, line 8); Sec. 5.1 sets ``c`` to one tenth of the heatmap side (``64 / 10 =
6.4``) and ``r = 0.5``; Sec. 5.2 scores "all annotated keypoints (that is, both for v = 1
and v = 2)" (its Table 3 scores only ``v = 2``: pass the ``visible`` mask for that). So a
joint is correct within 3.2 heatmap pixels at 64 x 64; the result is pooled over every
scored joint instance (Algorithm 1, line 10).

hgbench scores it in image pixels through the dataset's normaliser hook: one heatmap pixel
of a crop of side ``size_px`` is ``size_px / output_size`` image pixels, so the normaliser
``c = output_size / 10`` heatmap pixels is ``size_px / 10`` image pixels
(:func:`hgbench.data.coco.heatmap_normalizer_px`). The crop is a similarity transform (one
scale for x and y, rotation, mirror), so a distance compared with ``r * c`` gives the same answer in either
space for the same two points. Two things differ from the seed's own code and are exact in
:func:`pck_from_heatmaps`: the seed compares integer argmax positions of the two heatmaps,
hgbench the exact ground truth with the quarter-pixel decoded prediction. Strict ``<`` and
``<=`` agree on the seed's integer grid and on hgbench's quarter-pixel grid in heatmap space
at 64 x 64: a squared distance there is a multiple of 1/16 and 3.2^2 = 10.24 is not one.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence

import numpy as np
import torch

from hgbench.data.coco import PCK_HEATMAP_FRACTION, PERSON_CATEGORY_ID

OKS_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
IN_VIS_THRE = 0.2  # human-pose-estimation.pytorch experiments/coco/*.yaml TEST.IN_VIS_THRE
PCK_HEATMAP_THRESHOLD = 0.5  # seed 003 Sec. 5.1: r = 0.5
PCK_HEATMAP_CONVENTION = (
    "PCK as seed 003 (Andersen 2021, Sec. 5.1, Algorithm 1): correct when distance < 0.5 x (heatmap side / 10) "
    "(3.2 heatmap px at 64x64), mapped to image pixels per crop (size_px / 10); joints with v = 1 or v = 2; "
    "pooled over all scored joints"
)


def coco_sigmas() -> np.ndarray:
    """``(17,)`` the per-keypoint OKS constants ``sigma_i`` that pycocotools uses
    (``pycocotools.cocoeval.Params(iouType="keypoints").kpt_oks_sigmas``)."""
    from pycocotools.cocoeval import Params

    return np.asarray(Params(iouType="keypoints").kpt_oks_sigmas, dtype=np.float64)


def keypoint_oks(pred: np.ndarray, gt: np.ndarray, area: float, sigmas: np.ndarray | None = None) -> float:
    """Object keypoint similarity of one prediction with one annotated person, the closed
    form of pycocotools ``COCOeval.computeOks`` (case with annotated joints):
    ``mean over v > 0 of exp(-d^2 / (2 s^2 k^2))``, ``s^2 = area``, ``k = 2 sigma``.

    Args:
        pred: ``(J, 2)`` predicted (x, y), image pixels.
        gt: ``(J, 3)`` annotated (x, y, v).
        area: the annotation's ``area``, px^2.
        sigmas: ``(J,)``; default :func:`coco_sigmas`.

    Returns:
        OKS in [0, 1]; NaN when no joint has ``v > 0`` (pycocotools then measures the
        distance to the box instead, a case that predictions on ground-truth boxes of
        persons with keypoints never meet).
    """
    sigmas = coco_sigmas() if sigmas is None else np.asarray(sigmas, np.float64)
    gt = np.asarray(gt, np.float64)
    d2 = ((np.asarray(pred, np.float64) - gt[:, :2]) ** 2).sum(-1)
    labelled = gt[:, 2] > 0
    if not labelled.any():
        return float("nan")
    e = d2 / (2.0 * sigmas**2 * 4.0) / (area + np.spacing(1))
    return float(np.exp(-e[labelled]).mean())


def person_scores(
    maxvals: np.ndarray, box_scores: np.ndarray | None = None, threshold: float = IN_VIS_THRE
) -> np.ndarray:
    """Result scores as the common code rescales them (``evaluate`` of
    human-pose-estimation.pytorch ``lib/dataset/coco.py``): the mean of each person's joint
    heatmap maxima that exceed ``threshold`` (0 where none does) times its box score.

    Args:
        maxvals: ``(N, J)`` heatmap maxima (:func:`hgbench.accuracy.decode.decode_heatmaps`).
        box_scores: ``(N,)``; default 1 (ground-truth boxes).
        threshold: ``TEST.IN_VIS_THRE``, 0.2.

    Returns:
        ``(N,)`` float64.
    """
    m = np.asarray(maxvals, np.float64)
    above = m > threshold
    count = above.sum(axis=1)
    kpt = np.where(count > 0, (m * above).sum(axis=1) / np.maximum(count, 1), 0.0)
    box = np.ones(len(m)) if box_scores is None else np.asarray(box_scores, np.float64)
    return kpt * box


def coco_results(
    image_ids: Sequence[int],
    coords: np.ndarray,
    maxvals: np.ndarray | None = None,
    box_scores: np.ndarray | None = None,
    threshold: float = IN_VIS_THRE,
) -> list[dict]:
    """The results list pycocotools' ``loadRes`` reads, one entry per person.

    Args:
        image_ids: ``N`` COCO image ids.
        coords: ``(N, 17, 2)`` predicted (x, y) in original-image pixels.
        maxvals: ``(N, 17)`` heatmap maxima, written as each keypoint's score and rescored
            into the person score (:func:`person_scores`); default 1 for every joint.
        box_scores: ``(N,)`` box scores; default 1 (ground-truth boxes).
        threshold: ``IN_VIS_THRE`` of the rescoring.

    Returns:
        ``[{"image_id": int, "category_id": 1, "keypoints": [x, y, score] * 17, "score": float}]``.

    Raises:
        ValueError: mismatched lengths or a ``coords`` that is not ``(N, J, 2)``.
    """
    coords = np.asarray(coords, np.float64)
    if coords.ndim != 3 or coords.shape[2] != 2 or coords.shape[0] != len(image_ids):
        raise ValueError(f"coords: expected ({len(image_ids)}, J, 2) pixel coordinates, got shape {coords.shape}")
    maxvals = np.ones(coords.shape[:2]) if maxvals is None else np.asarray(maxvals, np.float64)
    if maxvals.shape != coords.shape[:2]:
        raise ValueError(f"maxvals: expected shape {coords.shape[:2]}, got {maxvals.shape}")
    scores = person_scores(maxvals, box_scores, threshold)
    flat = np.concatenate([coords, maxvals[:, :, None]], axis=2).reshape(len(coords), -1)
    return [
        {"image_id": int(i), "category_id": PERSON_CATEGORY_ID, "keypoints": [float(v) for v in kp], "score": float(s)}
        for i, kp, s in zip(image_ids, flat, scores, strict=True)
    ]


def run_cocoeval(coco_gt, results: list[dict], image_ids: Sequence[int] | None = None):
    """Score ``results`` against ``coco_gt`` with ``COCOeval(iouType="keypoints")``.

    Args:
        coco_gt: the ground truth, a ``pycocotools.coco.COCO``.
        results: as :func:`coco_results` (copied: ``loadRes`` adds fields in place).
        image_ids: restrict the evaluation to these images (``params.imgIds``); default
            every image of ``coco_gt``, as the common code does.

    Returns:
        The ``COCOeval`` after ``evaluate()``, ``accumulate()`` and ``summarize()``
        (``.stats``: :data:`OKS_STAT_NAMES`; ``.ious[(image_id, 1)]``: the OKS matrix,
        detections by descending score x ground truths). pycocotools' prints are kept off
        stdout.

    Raises:
        ValueError: no results, or a result whose image is not in ``coco_gt``.
    """
    from pycocotools.cocoeval import COCOeval

    if not results:
        raise ValueError("no predictions to score: the results list is empty")
    unknown = {r["image_id"] for r in results} - set(coco_gt.getImgIds())
    if unknown:
        raise ValueError(f"results name image ids that are not in the ground truth: {sorted(unknown)[:5]}")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        ev.params.useSegm = None  # as the common code's _do_python_keypoint_eval
        if image_ids is not None:
            ev.params.imgIds = sorted(int(i) for i in image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def oks_ap(coco_gt, results: list[dict], image_ids: Sequence[int] | None = None) -> dict[str, float]:
    """OKS AP/AR of ``results`` (see the module docstring): :data:`OKS_STAT_NAMES` ->
    value in [0, 1], or -1 where pycocotools has no ground truth for it (e.g. no medium
    person). Arguments and errors as :func:`run_cocoeval`."""
    ev = run_cocoeval(coco_gt, results, image_ids)
    return {name: float(v) for name, v in zip(OKS_STAT_NAMES, ev.stats, strict=True)}


def dataset_oks_ap(dataset, coords: np.ndarray, maxvals: np.ndarray | None = None) -> dict[str, float]:
    """OKS AP/AR of predictions on the ground-truth boxes of a
    :class:`hgbench.data.coco.COCODataset`.

    Args:
        dataset: the dataset (``coco`` ground truth and ``persons``).
        coords: ``(len(dataset), 17, 2)`` predictions in original-image pixels, in item
            order (:attr:`hgbench.accuracy.evaluate.Predictions.pred`).
        maxvals: ``(len(dataset), 17)`` heatmap maxima; default 1.

    Only the images the dataset holds are scored (``params.imgIds``), so images left out as
    unreadable (``bad_samples="skip"``) do not count as missed persons.
    """
    image_ids = [p.image_id for p in dataset.persons]
    results = coco_results(image_ids, coords, maxvals)
    return oks_ap(dataset.coco, results, image_ids=sorted(set(image_ids)))


def pck_heatmap_correct(
    pred: np.ndarray,
    gt: np.ndarray,
    annotated: np.ndarray,
    normalizer: np.ndarray,
    threshold: float = PCK_HEATMAP_THRESHOLD,
) -> np.ndarray:
    """Per-joint correctness of seed 003's PCK on coordinates (Algorithm 1, lines 6-9):
    correct when ``distance / normalizer < threshold`` (strict).

    Args:
        pred, gt: ``(N, J, 2)``, both image pixels (normaliser from
            :func:`hgbench.data.coco.heatmap_normalizer_px`) or both heatmap pixels (normaliser
            ``output_size / 10``).
        annotated: ``(N, J)`` bool, the joints scored: ``v > 0`` (seed Sec. 5.2), or
            ``v == 2`` for its Table 3.
        normalizer: ``(N,)`` in the unit of ``pred``.
        threshold: ``r``, 0.5.

    Returns:
        ``(N, J)`` float: 1 correct, 0 wrong, NaN not scored (not in ``annotated``, or a
        non-finite normaliser); pool with :func:`hgbench.accuracy.pck.summarize_pck`.
    """
    dist = np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)
    norm = np.broadcast_to(np.asarray(normalizer, np.float64)[:, None], dist.shape)
    correct = (dist < threshold * norm).astype(np.float64)
    correct[~np.asarray(annotated, bool) | ~np.isfinite(norm)] = np.nan
    return correct


def pck_from_heatmaps(
    pred_heatmaps: torch.Tensor,
    gt_heatmaps: torch.Tensor,
    annotated: torch.Tensor | np.ndarray,
    fraction: float = PCK_HEATMAP_FRACTION,
    threshold: float = PCK_HEATMAP_THRESHOLD,
) -> np.ndarray:
    """Seed 003's Algorithm 1 literally: integer argmax of each ground-truth and predicted
    heatmap, distance in heatmap pixels divided by ``c = fraction * heatmap side``, correct
    when ``< threshold``.

    Args:
        pred_heatmaps, gt_heatmaps: ``(N, J, H, W)``, ``H == W``.
        annotated: ``(N, J)`` bool, the heatmaps scored ("each annotated ground truth
            heatmap", line 3).

    Returns:
        ``(N, J)`` float: 1, 0, or NaN (not scored); the mean of the finite entries is the
        ratio ``n / N`` of line 10.

    Raises:
        ValueError: shapes differ, or the heatmaps are not square.
    """
    if pred_heatmaps.shape != gt_heatmaps.shape:
        raise ValueError(f"heatmap shapes differ: {tuple(pred_heatmaps.shape)} vs {tuple(gt_heatmaps.shape)}")
    n, j, h, w = gt_heatmaps.shape
    if h != w:
        raise ValueError(f"seed 003's normaliser needs square heatmaps, got {h}x{w}")

    def argmax_xy(hm: torch.Tensor) -> np.ndarray:
        idx = hm.detach().reshape(n, j, -1).float().argmax(dim=-1)
        return torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1).numpy().astype(np.float64)

    annotated = np.asarray(annotated.numpy() if isinstance(annotated, torch.Tensor) else annotated, bool)
    return pck_heatmap_correct(
        argmax_xy(pred_heatmaps), argmax_xy(gt_heatmaps), annotated, np.full(n, fraction * h), threshold
    )
