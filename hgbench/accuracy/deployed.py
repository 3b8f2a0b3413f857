"""Accuracy of a deployed artifact: the prepared network itself (a traced module, an ONNX Runtime
session, a TensorRT engine, a quantized model) run over a split with the same preprocessing, flip
test, decoding and scoring as ``hgbench evaluate``, beside the eager fp32 checkpoint it was built
from on the same persons.

:func:`evaluate_artifact` does the measuring from a forward callable (how the callable is made is
the profiler's business: :mod:`hgbench.profile.deployed` prepares it through a backend, which this
layer may not import); :class:`Deployment` is what an evaluation of a checkpoint
(:func:`hgbench.train.evaluation.evaluate_checkpoint`) is handed to measure an artifact instead of
the module, so that the training layer never imports the profiler either.

**The reference** is the checkpoint as ``hgbench evaluate`` runs it: eager, fp32, batches of
:data:`REFERENCE_BATCH_SIZE` crops with their mirrors in one call
(:func:`hgbench.accuracy.evaluate.evaluate_pck`'s default), so that the reference is exactly the
plain eval record's result. The **paired difference** (artifact minus reference, percentage points,
:mod:`hgbench.accuracy.paired`) resamples the persons once for both.

**Naming** (:func:`artifact_name`): eager fp32 *is* the checkpoint, so its deployed evaluation is
the plain evaluation (same record file, same record key); every other setting is
``<backend>-<precision>-b<batch>``, a part of the eval record's key and file name, so that the
record of one artifact never replaces that of another or of the checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

import torch
from torch import nn

from hgbench.accuracy.evaluate import Forward, base_dataset, predict, score_dataset
from hgbench.accuracy.paired import PairedDifference, paired_difference
from hgbench.accuracy.pck import PCKResult
from hgbench.data.base import PoseDataset

REFERENCE_BATCH_SIZE = 16
"""Crops per batch of the eager fp32 reference: :func:`hgbench.accuracy.evaluate.evaluate_pck`'s
default, which ``hgbench evaluate`` uses."""


def artifact_name(backend: str, precision: str, batch_size: int, device: str = "cpu") -> str | None:
    """The artifact's part of an eval record's key and file name: None for eager fp32 (the
    checkpoint itself, module docstring), else ``<backend>-<precision>-b<batch_size>``, with
    ``-<device kind>`` after it off the CPU (``onnxruntime-int8-b8-cuda``: the CUDA provider's
    artifact is another program than the CPU's)."""
    if (backend, precision) == ("eager", "fp32"):
        return None
    kind = str(device).split(":")[0]
    return f"{backend}-{precision}-b{batch_size}" + ("" if kind == "cpu" else f"-{kind}")


@dataclass
class DeployedEvaluation:
    """What :func:`evaluate_artifact` measured.

    Attributes:
        result: the artifact's accuracy (``result.padded``: the last batch was padded).
        reference: the eager fp32 checkpoint's on the same persons (module docstring).
        difference: ``result`` minus ``reference``, with paired intervals.
        backend, precision, batch_size: the artifact's setting; ``static_shape``: whether each
            call had exactly ``batch_size`` crops; ``input_size``: crop side, px.
        device: where it ran (``"cpu"``, ``"cuda:0"``).
        build_time_s, notes: from the preparation (export, compile, engine build).
    """

    result: PCKResult
    reference: PCKResult
    difference: PairedDifference
    backend: str
    precision: str
    batch_size: int
    static_shape: bool
    input_size: int
    device: str
    build_time_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def artifact(self) -> str | None:
        """:func:`artifact_name` of this setting."""
        return artifact_name(self.backend, self.precision, self.batch_size, self.device)

    def record_fields(self) -> dict:
        """The eval record's fields for the artifact: ``artifact`` (part of its key), ``backend``,
        ``precision``, ``batch_size``, ``padded`` and ``deployed`` (static shape, input size,
        device, build time, notes, the reference's Mean with its interval, the paired difference)."""
        ref = self.reference
        return {
            "artifact": self.artifact,
            "backend": self.backend,
            "precision": self.precision,
            "batch_size": self.batch_size,
            "padded": self.result.padded,
            "deployed": {
                "static_shape": self.static_shape,
                "input_size": self.input_size,
                "device": self.device,
                "build_time_s": self.build_time_s,
                "notes": list(self.notes),
                "reference": {
                    "backend": "eager",
                    "precision": "fp32",
                    "batch_size": REFERENCE_BATCH_SIZE,
                    "mean": ref.mean,
                    "mean_ci": ref.mean_ci,
                    "groups": ref.groups,
                },
                "difference": asdict(self.difference),
            },
        }


class Deployment(Protocol):
    """An artifact setting that can measure itself on a checkpoint's model
    (:class:`hgbench.profile.deployed.BackendDeployment`)."""

    backend: str
    precision: str
    batch_size: int

    def check(self, device: torch.device) -> None:
        """Raise ``ValueError`` (before any work) when the setting cannot run on ``device``."""

    def evaluate(
        self,
        model: nn.Module,
        dataset: PoseDataset,
        *,
        threshold: float | None,
        supervision: str,
        skips: bool,
        flip_test: bool,
        device: torch.device,
        progress=None,
    ) -> DeployedEvaluation:
        """The artifact of ``model`` measured on ``dataset`` (:func:`evaluate_artifact`)."""


def evaluate_artifact(
    forward: Forward,
    model: nn.Module,
    dataset: PoseDataset,
    *,
    batch_size: int,
    static_shape: bool,
    threshold: float | None = None,
    supervision: str = "intermediate",
    skips: bool = True,
    flip_test: bool = True,
    device: torch.device | str = "cpu",
    progress=None,
) -> tuple[PCKResult, PCKResult, PairedDifference]:
    """The accuracy of an artifact and of its eager fp32 reference on ``dataset``, and their paired
    difference (module docstring).

    Args:
        forward: the artifact (:data:`hgbench.accuracy.evaluate.Forward`), prepared from ``model``
            (with its upper branches already off where ``skips`` is False).
        model: the checkpoint's network, fp32, on ``device``: the reference.
        batch_size, static_shape: crops per batch, and whether ``forward`` takes exactly that many
            (:func:`hgbench.accuracy.evaluate.predict`'s ``static_batch``).
        threshold, supervision, skips, flip_test: as :func:`hgbench.accuracy.evaluate.evaluate_pck`
            (``skips`` applies to the reference; the artifact runs as prepared).
        progress: called with each batch's size, for both passes (twice the persons in all).

    Returns:
        ``(artifact's result, reference's result, artifact minus reference)``.
    """
    common = dict(progress=progress, supervision=supervision, flip_test=flip_test, device=device)
    p_ref = predict(model, dataset, batch_size=REFERENCE_BATCH_SIZE, skips=skips, **common)
    p_art = predict(forward, dataset, batch_size=batch_size, static_batch=static_shape, **common)
    reference = score_dataset(p_ref, dataset, threshold)
    result = score_dataset(p_art, dataset, threshold)
    difference = paired_difference(p_art, p_ref, base_dataset(dataset).keypoints, result.metric, result.threshold)
    return result, reference, difference
