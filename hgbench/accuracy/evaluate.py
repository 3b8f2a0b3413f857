"""The metric layer: run a model over a dataset, decode its heatmaps and score them with the
dataset's metric.

:func:`predict` runs the model (on its own device) with the flip test and decodes each
prediction to original-image pixels (:mod:`hgbench.accuracy.decode`); :func:`score_predictions`
scores the decoded :class:`Predictions` with the pure metric functions; :func:`evaluate_pck`
does both and adds what only the dataset knows (OKS AP on COCO, the skipped images).

**A model or a deployed artifact.** Both take an ``nn.Module`` or a *forward callable*: a batch
``(N, 3, S, S)`` fp32 on ``device`` -> what the network returns (the list of per-stack heatmaps,
or one tensor ``(N, J, H, W)``), e.g. a TorchScript module, an ONNX Runtime session or a
TensorRT engine behind :mod:`hgbench.profile.backends` (:mod:`hgbench.profile.deployed` wraps
them). Preprocessing (the dataset's crops), flip test, decoding and scoring are the same code for
both. A *static-shape* artifact (``static_batch=True``: prepared for exactly ``batch_size`` crops)
gets every call with exactly ``batch_size`` crops: the plain and the mirrored crops of the flip
test are two calls, and the last batch is padded with zero crops whose outputs are dropped before
decoding (``Predictions.padded``, ``PCKResult.padded`` say so). Otherwise, as for a module, one
call takes the batch with its mirror (``2 x batch_size`` crops) and the last batch is short.

**Metric** by the dataset's ``metric`` (:class:`hgbench.data.base.PoseDataset`), each with
the dataset's normaliser (:meth:`~hgbench.data.base.PoseDataset.normalizer`): ``"pck"``
(PCK@0.2, torso normaliser, :mod:`hgbench.accuracy.pck`), ``"pck_heatmap"`` (seed 003:
normaliser one tenth of the heatmap side in image pixels, threshold 0.5;
:mod:`hgbench.accuracy.coco`), ``"pckh"`` (MPII, head normaliser, threshold 0.5, the MPII
toolkit's table; :mod:`hgbench.accuracy.pckh`). Each also gets the occlusion split where the
dataset has a visibility flag.

**Intervals** (``mean_ci``, ``groups_ci``; :mod:`hgbench.accuracy.interval`, a bootstrap over
persons): for ``"pck"`` and ``"pck_heatmap"`` of the pooled groups and Mean; for ``"pckh"`` of
the MPII toolkit's columns as they are computed (:func:`pckh_official_columns`). OKS AP/AR
(``extra["oks"]``), ``Mean@0.1`` and the occlusion split have none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from hgbench.accuracy.coco import PCK_HEATMAP_CONVENTION, dataset_oks_ap, pck_heatmap_correct
from hgbench.accuracy.decode import decode_heatmaps, flip_back, heatmap_to_image
from hgbench.accuracy.interval import bootstrap_ci
from hgbench.accuracy.pck import PCKResult, occlusion_split, pck_correct, summarize_pck
from hgbench.accuracy.pckh import GROUPS as PCKH_GROUPS
from hgbench.accuracy.pckh import TOTAL_JOINTS, compute_pckh, normalized_distances
from hgbench.data.base import DatasetError, PoseDataset
from hgbench.data.keypoints import MPII, KeypointSet
from hgbench.models.loss import final_heatmaps

METRICS = ("pck", "pckh", "pck_heatmap")
# Each metric's standard threshold (fraction of the normaliser): PCK@0.2 on LSP (Johnson &
# Everingham's PCK as used by the LSP tables), PCKh@0.5 (MPII, Andriluka et al. 2014), and
# seed 003's r = 0.5 (Sec. 5.1).
DEFAULT_THRESHOLDS = {"pck": 0.2, "pckh": 0.5, "pck_heatmap": 0.5}


@dataclass
class Predictions:
    """Decoded predictions of a model on a dataset (NumPy, on the CPU).

    Attributes:
        pred, gt: ``(N, J, 2)`` image pixels.
        annotated: ``(N, J)`` bool.
        normalizer: ``(N,)`` image pixels, from the dataset's normaliser hook.
        loss: mean heatmap MSE of the plain (unmirrored) prediction.
        visible: ``(N, J)`` bool, annotated and not occluded (``annotated`` where there is
            no flag); ``has_visibility``: ``(N,)`` bool, whether a person has the flag.
        maxvals: ``(N, J)`` heatmap maxima (of the averaged heatmaps with the flip test).
        flip_test: whether the flip test was applied.
        padded: whether the last batch was padded to a static-shape artifact's batch size (the
            padding's outputs dropped before decoding; module docstring).
    """

    pred: np.ndarray
    gt: np.ndarray
    annotated: np.ndarray
    normalizer: np.ndarray
    loss: float = float("nan")
    extra: dict = field(default_factory=dict)
    visible: np.ndarray | None = None
    has_visibility: np.ndarray | None = None
    maxvals: np.ndarray | None = None
    flip_test: bool = False
    padded: bool = False


Forward = Callable[[torch.Tensor], "list[torch.Tensor] | torch.Tensor"]
"""A deployed artifact's forward: fp32 ``(N, 3, S, S)`` on its device -> the per-stack heatmaps
(a list of ``(N, J, H, W)``) or one ``(N, J, H, W)`` tensor (module docstring)."""


def base_dataset(dataset):
    """The :class:`PoseDataset` under ``torch.utils.data.Subset`` wrappers (or ``dataset``
    itself)."""
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    return dataset


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter, else of its first buffer, else the CPU."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def predict(
    model: nn.Module | Forward,
    dataset: PoseDataset,
    batch_size: int = 16,
    num_workers: int = 0,
    progress=None,
    supervision: str = "intermediate",
    skips: bool = True,
    flip_test: bool = True,
    device: torch.device | str | None = None,
    static_batch: bool = False,
) -> Predictions:
    """Run ``model`` (eval mode, restored afterwards) on every item of ``dataset`` and
    decode its prediction (:func:`hgbench.models.loss.final_heatmaps` for the variant's
    ``supervision``) to image pixels.

    Args:
        model: the network, already on its device, or a deployed artifact's forward callable
            (:data:`Forward`; module docstring), whose outputs are read as fp32.
        dataset: items as :class:`hgbench.data.base.PoseDataset` returns them (``image``
            ``(3, S, S)``, ``heatmaps`` ``(J, H, W)``, ``target_weight`` ``(J,)``,
            ``heatmap_to_image`` ``(2, 3)``, ``joints`` ``(J, 2)``, ``annotated``,
            ``normalizer``), possibly in ``Subset`` wrappers.
        batch_size, num_workers: of the ``DataLoader`` (pinned memory on CUDA).
        progress: called with each batch's size.
        skips: False runs the model with the hourglasses' upper branches switched off (a
            variant's ``eval_skips``; switched back on afterwards). A forward callable is run as
            it was prepared (switch them off before preparing it), so it needs True.
        flip_test: each batch is run together with its horizontal mirror (one forward pass
            on ``2B`` crops) and the two predictions are averaged
            (:func:`hgbench.accuracy.decode.flip_back`); it needs the dataset's
            ``keypoints.flip_permutation``, and a dataset without ``keypoints`` (not a
            :class:`PoseDataset`) is run without it (``Predictions.flip_test`` says which).
        device: where the batches go (``non_blocking`` copies); default :func:`model_device`
            for a module, the CPU for a callable. The heatmaps are decoded there and the results
            brought back to the CPU.
        static_batch: ``model`` is a static-shape artifact prepared for ``batch_size`` crops:
            every call gets exactly that many (module docstring).

    Returns:
        :class:`Predictions`; its loss is that of the plain prediction, as pose-hg-train's
        validation loss.

    Raises:
        ValueError: a forward callable with ``skips`` False, or a batch size below 1.
    """
    is_module = isinstance(model, nn.Module)
    if not is_module and not skips:
        raise ValueError(
            "predict: a forward callable runs as it was prepared; switch the hourglasses' upper branches off "
            "(model.set_skips_enabled(False)) before preparing it, and pass skips=True"
        )
    if batch_size < 1:
        raise ValueError(f"predict: batch_size must be at least 1, got {batch_size}")
    keypoints = getattr(base_dataset(dataset), "keypoints", None)
    flip_test = bool(flip_test and keypoints is not None)
    if device is None:
        device = model_device(model) if is_module else torch.device("cpu")
    device = torch.device(device)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda"
    )
    parts = _PredictionParts()
    call = _Caller(model, supervision, batch_size if static_batch else None)
    with _evaluation_mode(model, skips) if is_module else nullcontext():
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True)
            out, heatmaps = _forward(call, images, keypoints.flip_permutation if flip_test else None)
            parts.add(batch, heatmaps, _batch_loss(out, batch, device))
            if progress is not None:
                progress(len(images))
    return parts.predictions(flip_test, padded=call.padded)


@contextmanager
def _evaluation_mode(model: nn.Module, skips: bool) -> Iterator[None]:
    """``model`` in eval mode (and with its hourglasses' upper branches off when ``skips`` is
    False) inside the block; its training mode and skips are restored on the way out."""
    was_training = model.training
    model.eval()
    if not skips:
        model.set_skips_enabled(False)
    try:
        yield
    finally:
        model.train(was_training)
        if not skips:
            model.set_skips_enabled(True)


class _Caller:
    """Internal: runs a module or a forward callable on a batch of crops and returns the heatmaps
    to decode, ``(n, J, H, W)`` (:func:`hgbench.models.loss.final_heatmaps` of a list output for
    the variant's ``supervision``; a tensor output is the heatmaps). A module's output is used as
    it is (what :func:`predict` always did); a callable's is read as fp32. With ``static_batch``
    every call gets exactly that many crops (zero crops pad a short batch, their outputs are
    dropped, :attr:`padded` says it happened) and the outputs are copied (a static-shape
    artifact may return buffers that its next call overwrites)."""

    def __init__(self, model: nn.Module | Forward, supervision: str, static_batch: int | None) -> None:
        self.model, self.supervision, self.static_batch = model, supervision, static_batch
        self.is_module = isinstance(model, nn.Module)
        self.padded = False

    @property
    def one_call_per_flip_pair(self) -> bool:
        """Whether the crops and their mirrors go in one call (``2B`` crops): not for a static batch."""
        return self.static_batch is None

    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        n, b = len(crops), self.static_batch
        if b is not None and n < b:
            crops = torch.cat([crops, crops.new_zeros((b - n, *crops.shape[1:]))])
            self.padded = True
        elif b is not None and n > b:  # the loader's batch is the artifact's: this is a bug, not an input
            raise RuntimeError(f"predict: {n} crops for an artifact prepared for {b}")
        out = self.model(crops)
        heatmaps = out if isinstance(out, torch.Tensor) else final_heatmaps(out, self.supervision)
        if self.is_module:
            return heatmaps
        return heatmaps[:n].to(torch.float32, copy=b is not None)


def _forward(
    call: _Caller, images: torch.Tensor, flip_permutation: list[int] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the plain prediction, the heatmaps to decode) of ``images`` ``(B, 3, S, S)``, each
    ``(B, J, H, W)`` (:class:`_Caller`). With ``flip_permutation`` (the flip test) the batch runs
    with its mirror, in one forward pass on ``2B`` crops (or, for a static-shape artifact, in two
    calls of ``B``), and the heatmaps to decode are the mean of the plain and the flipped-back
    mirrored prediction; without it both are the plain prediction."""
    if flip_permutation is None:
        out = call(images)
        return out, out
    b = len(images)
    if call.one_call_per_flip_pair:
        both = call(torch.cat([images, images.flip(-1)]))
        out, mirrored = both[:b], both[b:]
    else:
        out, mirrored = call(images), call(images.flip(-1))
    return out, (out + flip_back(mirrored, flip_permutation)) / 2


def _batch_loss(out: torch.Tensor, batch: dict, device: torch.device) -> float:
    """The heatmap MSE of the plain prediction ``out`` ``(B, J, H, W)`` against the batch's
    ``heatmaps``, weighted by its ``target_weight`` ``(B, J)``, summed over the batch (the mean
    times ``B``; :meth:`_PredictionParts.predictions` divides by the number of samples)."""
    target = batch["heatmaps"].to(device, non_blocking=True)
    w = batch["target_weight"].to(device, non_blocking=True)[:, :, None, None]
    return float((((out.float() - target) ** 2) * w).mean()) * len(out)


@dataclass
class _PredictionParts:
    """Internal: the decoded batches of :func:`predict` (NumPy, on the CPU), joined at the end
    into :class:`Predictions`."""

    preds: list = field(default_factory=list)
    gts: list = field(default_factory=list)
    annotated: list = field(default_factory=list)
    norms: list = field(default_factory=list)
    visible: list = field(default_factory=list)
    has_visibility: list = field(default_factory=list)
    maxvals: list = field(default_factory=list)
    loss_sum: float = 0.0
    n: int = 0

    def add(self, batch: dict, heatmaps: torch.Tensor, loss_sum: float) -> None:
        """Decode ``heatmaps`` ``(B, J, H, W)`` to image pixels (the batch's
        ``heatmap_to_image``) and keep them with the batch's ground truth; ``loss_sum``: the
        batch's summed loss (:func:`_batch_loss`). A batch without ``visible`` counts every
        annotated joint as visible; one without ``has_visibility`` has no flag."""
        b = len(heatmaps)
        self.loss_sum += loss_sum
        self.n += b
        coords, maxvals = decode_heatmaps(heatmaps)
        self.preds.append(heatmap_to_image(coords.cpu(), batch["heatmap_to_image"]).numpy())
        self.maxvals.append(maxvals.cpu().numpy())
        self.gts.append(batch["joints"].numpy())
        self.annotated.append(batch["annotated"].numpy())
        self.visible.append(batch["visible"].numpy() if "visible" in batch else batch["annotated"].numpy())
        self.has_visibility.append(
            batch["has_visibility"].numpy() if "has_visibility" in batch else np.zeros(b, dtype=bool)
        )
        self.norms.append(batch["normalizer"].numpy())

    def predictions(self, flip_test: bool, padded: bool = False) -> Predictions:
        """The batches as one :class:`Predictions`; its loss is the mean over the samples.

        Raises:
            ValueError: no batch was added (an empty dataset: nothing to concatenate).
        """
        return Predictions(
            np.concatenate(self.preds),
            np.concatenate(self.gts),
            np.concatenate(self.annotated),
            np.concatenate(self.norms),
            self.loss_sum / max(self.n, 1),
            visible=np.concatenate(self.visible).astype(bool),
            has_visibility=np.concatenate(self.has_visibility).astype(bool),
            maxvals=np.concatenate(self.maxvals),
            flip_test=flip_test,
            padded=padded,
        )


def score_predictions(
    p: Predictions, keypoints: KeypointSet, metric: str = "pck", threshold: float | None = None
) -> PCKResult:
    """Score decoded predictions with ``metric`` (module docstring) at ``threshold``
    (None: the metric's standard, :data:`DEFAULT_THRESHOLDS`), with the occlusion split
    over the persons that have a visibility flag.

    Raises:
        ValueError: unknown ``metric``.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[metric]
    correct = metric_correct(p, metric, threshold)
    num_unnormalised = int((~np.isfinite(p.normalizer)).sum())
    result = summarize_pck(correct, keypoints, threshold, num_unnormalised, intervals=metric != "pckh")
    if metric == "pck_heatmap":
        result.convention = PCK_HEATMAP_CONVENTION
    elif metric == "pckh":
        # The MPII toolkit's PCKh ("official": Head = mean of upper neck and head top, Mean
        # pooled without pelvis and thorax), with the dataset's head normaliser. Its distance
        # test (<=) is pck_correct's, so the occlusion split below agrees with it.
        h = compute_pckh(p.pred, p.gt, p.annotated, p.normalizer, convention="official", threshold=threshold)
        result.per_joint, result.groups, result.mean, result.counts = h.per_joint, h.groups, h.mean, h.counts
        result.convention = h.definition
        result.extra = {"mean_at_0.1": h.mean_at_01, "thresholds": h.thresholds, "curve": h.curve}
        result.groups_ci, result.mean_ci = pckh_intervals(p.pred, p.gt, p.annotated, p.normalizer, threshold)
    result.metric = metric
    if p.has_visibility is not None and p.has_visibility.any():
        rows = p.has_visibility
        occlusion_split(result, correct[rows], p.visible[rows], keypoints)
    return result


def metric_correct(p: Predictions, metric: str, threshold: float) -> np.ndarray:
    """``(N, J)`` correctness of ``p`` under ``metric`` at ``threshold`` (1 correct, 0 wrong, NaN
    not scored): :func:`hgbench.accuracy.coco.pck_heatmap_correct` for ``"pck_heatmap"`` (seed
    003, Algorithm 1: a strict distance test), else :func:`hgbench.accuracy.pck.pck_correct`
    (``distance <= threshold x normaliser``, the MPII toolkit's test for ``"pckh"`` too)."""
    if metric == "pck_heatmap":
        return pck_heatmap_correct(p.pred, p.gt, p.annotated, p.normalizer, threshold)
    return pck_correct(p.pred, p.gt, p.annotated, p.normalizer, threshold)


def pckh_official_columns(hits: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """The MPII toolkit's PCKh columns from per-joint totals, as :func:`compute_pckh` with
    ``convention="official"`` computes them (``genTablePCK.m``; :mod:`hgbench.accuracy.pckh`):
    each group the mean of its two joints' PCKh (Head: upper neck and head top), Mean pooled
    over the 14 joints without pelvis and thorax.

    Args:
        hits, scored: ``(16, ...)`` correct and scored instances per MPII joint (trailing axes:
            bootstrap resamples), the statistic of :func:`hgbench.accuracy.interval.bootstrap_ci`.

    Returns:
        ``(8, ...)`` percent: :data:`hgbench.accuracy.pckh.GROUPS` in order, then Mean.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        per_joint = 100.0 * hits / scored
        total = list(TOTAL_JOINTS)
        mean = 100.0 * hits[total].sum(axis=0) / scored[total].sum(axis=0)
    cols = [0.5 * (per_joint[MPII.groups[g][0]] + per_joint[MPII.groups[g][1]]) for g in PCKH_GROUPS]
    return np.stack([*cols, mean])


def pckh_intervals(
    pred: np.ndarray, gt: np.ndarray, annotated: np.ndarray, head_size: np.ndarray, threshold: float
) -> tuple[dict[str, tuple[float, float]], tuple[float, float]]:
    """95 % intervals of the official PCKh columns (:func:`pckh_official_columns`): a bootstrap
    over persons of the correctness :func:`compute_pckh` scores (``distance <= threshold`` head
    sizes, :func:`hgbench.accuracy.pckh.normalized_distances`); shapes as :func:`compute_pckh`.

    Returns:
        ``(groups_ci, mean_ci)``: Head .. Ankle -> ``(low, high)`` percent, and the Mean's.
    """
    d = normalized_distances(pred, gt, annotated, head_size)
    with np.errstate(invalid="ignore"):
        correct = np.where(np.isnan(d), np.nan, (d <= threshold).astype(np.float64))
    low, high = bootstrap_ci(correct, pckh_official_columns)
    cis = [(float(lo), float(hi)) for lo, hi in zip(low, high, strict=True)]
    return dict(zip(PCKH_GROUPS, cis[:-1], strict=True)), cis[-1]


def evaluate_pck(
    model: nn.Module | Forward,
    dataset: PoseDataset,
    threshold: float | None = None,
    batch_size: int = 16,
    progress=None,
    supervision: str = "intermediate",
    skips: bool = True,
    flip_test: bool = True,
    device: torch.device | str | None = None,
    static_batch: bool = False,
) -> PCKResult:
    """Accuracy of ``model`` (a module or a deployed artifact's forward callable) on ``dataset``
    with the dataset's metric (``dataset.metric``, default ``"pck"``) and normaliser, at
    ``threshold`` (None: the metric's standard, 0.2 for PCK, 0.5 for PCKh and seed 003's PCK);
    ``skips``, ``flip_test``, ``device`` and ``static_batch`` as :func:`predict`
    (``result.padded`` says whether the last batch was padded). The result counts the samples the dataset skipped as unreadable
    (``num_skipped``); on a whole COCO split it also holds OKS AP/AR on the ground-truth
    boxes (``extra["oks"]``, :func:`hgbench.accuracy.coco.dataset_oks_ap`).

    Raises:
        DatasetError: no person of ``dataset`` has a normaliser (every cell would be NaN).
    """
    p = predict(
        model,
        dataset,
        batch_size=batch_size,
        progress=progress,
        supervision=supervision,
        skips=skips,
        flip_test=flip_test,
        device=device,
        static_batch=static_batch,
    )
    return score_dataset(p, dataset, threshold)


def check_normalised(p: Predictions, base) -> None:
    """Refuse predictions none of whose persons has a normaliser.

    Raises:
        DatasetError: every normaliser is NaN (every accuracy cell would be NaN).
    """
    metric = getattr(base, "metric", "pck")
    if len(p.normalizer) and not np.isfinite(p.normalizer).any():
        where = getattr(getattr(base, "annotations", None), "path", None) or getattr(base, "name", type(base).__name__)
        raise DatasetError(
            f"{where}: none of the {len(p.normalizer)} persons has a {metric} normaliser (the dataset's normalizer hook gave "
            "NaN for all), so every accuracy cell would be NaN; for MPII the annotation file needs head sizes "
            "(valid.h5 'normalize', or gt_file with 'headboxes_src'), for PCK each person needs a shoulder and the opposite hip"
        )


def score_dataset(p: Predictions, dataset: PoseDataset, threshold: float | None = None) -> PCKResult:
    """:func:`score_predictions` of ``p`` (the predictions of some model on ``dataset``) with the
    dataset's keypoints and metric, and what only the dataset knows: the loss, flip test and
    padding of ``p``, OKS AP/AR on a whole COCO split, the samples skipped as unreadable.

    Raises:
        DatasetError: no person of ``dataset`` has a normaliser (:func:`check_normalised`).
    """
    base = base_dataset(dataset)
    check_normalised(p, base)
    metric = getattr(base, "metric", "pck")
    result = score_predictions(p, base.keypoints, metric, threshold)
    result.loss = p.loss
    result.flip_test = p.flip_test
    result.padded = p.padded
    if hasattr(dataset, "coco") and hasattr(dataset, "persons"):  # COCO, whole split: OKS AP/AR on GT boxes too
        result.extra = {**(result.extra or {}), "oks": dataset_oks_ap(dataset, p.pred, p.maxvals)}
    skipped = [tuple(item) for item in getattr(base, "skipped", [])]
    result.num_skipped = len(skipped)
    result.skipped = list(dict.fromkeys(skipped))  # each bad file once, in order
    return result
