"""Deployed accuracy: a checkpoint's network prepared by a backend (:mod:`hgbench.profile.backends`)
and the prepared artifact itself run over a split (:func:`hgbench.accuracy.deployed.evaluate_artifact`:
same preprocessing, flip test, decoding and scoring as ``hgbench evaluate``, beside the eager fp32
reference on the same persons, with the paired difference).

:class:`BackendDeployment` is one setting (backend, precision, batch size, cache folder), checked
when it is made (an unknown backend or precision, or a combination the backend refuses, raises
``ValueError`` before any work) and on the device (:meth:`BackendDeployment.check`). The artifact
is prepared for ``(batch_size, 3, S, S)`` crops (``S``: the dataset's input side) from the model as
it is: a static-shape backend (:attr:`hgbench.profile.backends.Backend.static_shape`) gets every
call with exactly ``batch_size`` crops (the last batch padded, the record says so), the others
(eager, TorchScript) get a batch and its mirror in one call, as ``hgbench evaluate``. The
artifact runs inside its :attr:`~hgbench.profile.backends.Prepared.context`, entered once around
the pass.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from hgbench.accuracy.deployed import REFERENCE_BATCH_SIZE, DeployedEvaluation, evaluate_artifact
from hgbench.accuracy.evaluate import base_dataset
from hgbench.data.base import PoseDataset
from hgbench.paths import check_writable_folder
from hgbench.profile.backends import Prepared, RunSettings, get_backend
from hgbench.profile.calibration_data import CalibrationSet, CalibrationSpec, calibration_set
from hgbench.profile.roofline import default_cache_dir


@dataclass(frozen=True)
class BackendDeployment:
    """One deployed setting (:class:`hgbench.accuracy.deployed.Deployment`).

    Attributes:
        backend: a name of :data:`hgbench.profile.backends.BACKENDS`.
        precision: a precision of that backend (:data:`hgbench.profile.backends.PRECISIONS`).
        batch_size: crops per call of the artifact (at least 1).
        cache_dir: where backends that build files (ONNX, TensorRT) keep and reuse them; None:
            a temporary folder.
        calibration: how a quantized precision's calibration set is drawn (default
            :class:`~hgbench.profile.calibration_data.CalibrationSpec`: 256 crops of the training
            split of the evaluated dataset, seed 0, MinMax); ignored by the other precisions.

    Raises:
        ValueError: an unknown backend or precision, a batch size below 1, or a setting the
            backend refuses (:meth:`hgbench.profile.backends.Backend.unsupported`, e.g. bf16 on
            ONNX Runtime), each naming the option.
    """

    backend: str
    precision: str = "fp32"
    batch_size: int = 16
    cache_dir: Path | None = None
    calibration: CalibrationSpec = field(default_factory=CalibrationSpec)

    def __post_init__(self) -> None:
        backend = get_backend(self.backend)  # ValueError naming the known ones
        try:
            settings = self.settings()
        except ValueError as e:
            raise ValueError(f"--precision: {e}") from None
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"--batch-size: expected a whole number of at least 1, got {self.batch_size!r}")
        reason = backend.unsupported(settings)
        if reason is not None:
            raise ValueError(f"--backend {self.backend} --precision {self.precision}: {reason}")

    def settings(self, calibration: CalibrationSet | None = None) -> RunSettings:
        """The backend's :class:`~hgbench.profile.backends.RunSettings` (IEEE fp32 on CUDA: no TF32),
        with ``calibration`` for a quantized precision."""
        return RunSettings(precision=self.precision, cache_dir=self.cache_dir, calibration=calibration)

    def check(self, device: torch.device) -> None:
        """Raise ``ValueError`` when the backend cannot run this setting on ``device`` (what to
        install, which device it needs)."""
        backend = get_backend(self.backend)
        reason = backend.available(torch.device(device)) or backend.unsupported_on(
            self.settings(), torch.device(device)
        )
        if reason is not None:
            raise ValueError(f"--backend {self.backend} --precision {self.precision} on {device}: {reason}")

    def calibration_set(self, dataset: PoseDataset) -> CalibrationSet:
        """The calibration set of a quantized precision: :attr:`calibration` drawn from its split of
        the evaluated dataset (same dataset, data folder, input and heatmap sizes, no augmentation).

        Raises:
            ValueError: that split is empty or smaller than the count (naming the option).
        """
        base = base_dataset(dataset)
        return calibration_set(base.name, getattr(base, "root", None), self.calibration, input_size=base.input_size,
                               output_size=base.output_size, sigma=base.sigma)  # fmt: skip

    def evaluate(
        self,
        model: nn.Module,
        dataset: PoseDataset,
        *,
        threshold: float | None = None,
        supervision: str = "intermediate",
        skips: bool = True,
        flip_test: bool = True,
        device: torch.device | str = "cpu",
        progress=None,
    ) -> DeployedEvaluation:
        """Prepare ``model`` (fp32, on ``device``; not modified) with this setting and measure the
        artifact on ``dataset`` (module docstring). ``skips`` False prepares a copy with the
        hourglasses' upper branches off (a variant's ``eval_skips``).

        Raises:
            ValueError: the backend is not available on ``device`` (:meth:`check`).
            Whatever the backend's preparation raises for this model.
        """
        device = torch.device(device)
        self.check(device)
        size = int(base_dataset(dataset).input_size)
        source = model
        if not skips:
            source = copy.deepcopy(model)
            source.set_skips_enabled(False)
        backend = get_backend(self.backend)
        example = torch.zeros(self.batch_size, 3, size, size, device=device)
        calibration = self.calibration_set(dataset) if self.settings().quantized else None
        prepared = backend.prepare(source, example, self.settings(calibration))
        forward = _forward(prepared)
        try:
            with prepared.context():
                result, reference, difference = evaluate_artifact(
                    forward, model, dataset, batch_size=self.batch_size, static_shape=backend.static_shape,
                    threshold=threshold, supervision=supervision, skips=skips, flip_test=flip_test, device=device,
                    progress=progress,
                )  # fmt: skip
            build_time_s, notes = prepared.build_time_s, list(prepared.notes)
        finally:
            del prepared, forward  # nothing of the artifact may outlive release()
            backend.release()
        return DeployedEvaluation(
            result, reference, difference, self.backend, self.precision, self.batch_size, backend.static_shape,
            size, str(device), build_time_s, notes,
        )  # fmt: skip


def _forward(prepared: Prepared):
    """The artifact as :data:`hgbench.accuracy.evaluate.Forward`: fp32 crops -> its outputs."""
    fn, prepare_input = prepared.fn, prepared.prepare_input

    def forward(x: torch.Tensor):
        return fn(prepare_input(x))

    return forward


def deployment_for(record, plan) -> BackendDeployment:
    """The deployment of a profiled setting (:class:`hgbench.records.ProfileRecord` ``record``
    of :class:`hgbench.profile.plan.ProfilePlan` ``plan``): its backend, precision and batch size,
    the plan's artefact cache and, for a quantized precision, the plan's calibration spec (drawn
    again from the checkpoint's dataset, whose weights it calibrates)."""
    spec = plan.calibration.spec if plan.calibration is not None else CalibrationSpec()
    return BackendDeployment(record.backend, record.precision, record.batch_size, plan.cache_dir / "artefacts", spec)


def deployment_from_options(
    backend: str | None, precision: str | None, batch_size: int | None, cache_dir: Path | None
) -> BackendDeployment | None:
    """The deployment ``hgbench evaluate --backend/--precision/--batch-size`` asks for: None when
    none of the three is given (the checkpoint itself), else a :class:`BackendDeployment` (default
    backend eager, precision fp32, batch :data:`hgbench.accuracy.deployed.REFERENCE_BATCH_SIZE`)
    whose built files go to ``<cache_dir>/artefacts`` (default cache: as ``hgbench profile``,
    :func:`hgbench.profile.roofline.default_cache_dir`).

    Raises:
        ValueError: a setting :class:`BackendDeployment` refuses, or ``cache_dir`` not a
            writable folder (:func:`hgbench.paths.check_writable_folder`).
    """
    if backend is None and precision is None and batch_size is None:
        return None
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    deployment = BackendDeployment(
        backend or "eager",
        precision or "fp32",
        REFERENCE_BATCH_SIZE if batch_size is None else batch_size,
        cache / "artefacts",
    )
    if cache_dir is not None:
        check_writable_folder(cache, "--cache-dir")
    return deployment
