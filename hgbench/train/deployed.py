"""Deployed accuracy of a profile sweep's settings (``hgbench profile --evaluate``): each profiled
setting whose network has a trained checkpoint under the results folder is evaluated through the
artifact of that setting (:func:`hgbench.train.evaluation.evaluate_checkpoint` with a
:class:`~hgbench.accuracy.deployed.Deployment`), and the eval record is written beside the
checkpoint, where the report finds it.

The deployment is made by the caller (``make_deployment(record)``, in practice
:class:`hgbench.profile.deployed.BackendDeployment`): the training layer may not import the profiler.

Which checkpoint: the complete training run (:func:`hgbench.records.scan` of ``results``) of the
same network (:data:`hgbench.records.identity.NETWORK`: variant, spec hash, joints) trained at the
profiled input size. A setting without one is left out and said so; a setting that failed to
profile is not evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hgbench.accuracy.deployed import Deployment
from hgbench.paths import CHECKPOINT
from hgbench.records import ProfileRecord, TrainRecord, scan
from hgbench.train.evaluation import Evaluation, evaluate_checkpoint


@dataclass
class DeployedRun:
    """What :func:`evaluate_profiled` did: one ``(profile record, evaluation)`` per evaluated
    setting, the settings left out with their reason (no checkpoint, failed profile, a layout or
    TF32 setting the deployment does not reproduce) and those whose evaluation raised (``failed``,
    with the one-line error)."""

    evaluations: list[tuple[ProfileRecord, Evaluation]] = field(default_factory=list)
    left_out: list[tuple[ProfileRecord, str]] = field(default_factory=list)
    failed: list[tuple[ProfileRecord, str]] = field(default_factory=list)


def trained_checkpoints(results: Path) -> dict[tuple[str, str, int, int], tuple[Path, str | None]]:
    """``{(variant, spec hash, joints, input size px): (checkpoint, data folder it was trained on)}``
    of the complete training runs under ``results`` whose checkpoint file exists (the newest run
    where several match)."""
    found: dict[tuple[str, str, int, int], tuple[str, Path, str | None]] = {}
    if not Path(results).is_dir():
        return {}
    for rec in scan(results, kinds=["train"]).records:
        if not isinstance(rec, TrainRecord) or not rec.complete or rec.path is None:
            continue
        checkpoint = Path(rec.path).parent / CHECKPOINT
        size = (rec.protocol_settings or {}).get("input_size")
        if not checkpoint.is_file() or not isinstance(size, int):
            continue
        key = (rec.variant, rec.spec_hash, rec.num_joints, size)
        if key not in found or rec.created > found[key][0]:
            found[key] = (rec.created, checkpoint, rec.get("data_root"))
    return {key: (path, root) for key, (_, path, root) in found.items()}


def evaluate_profiled(
    records: Sequence[ProfileRecord],
    results: Path,
    make_deployment: Callable[[ProfileRecord], Deployment],
    *,
    dataset: str | None = None,
    data_root: str | Path | None = None,
    device: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> DeployedRun:
    """Evaluate every ``"ok"`` record of ``records`` through its artifact on the validation split
    of the checkpoint's dataset, read from the folder it was trained on (``dataset``/``data_root``:
    another one, as ``hgbench evaluate``),
    writing one eval record per setting beside the checkpoint (module docstring).

    ``progress(label, done, total)`` reports persons scored per setting.

    Raises:
        Nothing per setting: an evaluation that raises is in :attr:`DeployedRun.failed` with its
        one-line reason, and the others go on.
    """
    checkpoints = trained_checkpoints(results)
    run = DeployedRun()
    for record in records:
        if record.status != "ok":
            run.left_out.append((record, f"profiling failed: {record.get('error', '')}"))
            continue
        if record.tf32 or record.channels_last or record.compile_mode not in (None, "default"):
            run.left_out.append((record, "deployed accuracy is measured for NCHW, TF32 off, compile mode default"))
            continue
        trained = checkpoints.get((record.variant, record.spec_hash, record.num_joints, record.input_size))
        if trained is None:
            run.left_out.append(
                (record, f"no complete training run of {record.variant} at {record.input_size} px in {results}")
            )
            continue
        checkpoint, trained_root = trained
        root = data_root if data_root is not None or dataset is not None else trained_root
        label = f"accuracy {record.variant} {record.backend} {record.precision} batch {record.batch_size}"
        try:
            evaluation = evaluate_checkpoint(
                checkpoint, dataset, root, device=device, deployment=make_deployment(record),
                progress=None if progress is None else (lambda done, total, label=label: progress(label, done, total)),
            )  # fmt: skip
        except Exception as e:  # noqa: BLE001 - one failing setting must not stop the others
            run.failed.append((record, f"{type(e).__name__}: {' '.join(str(e).split())}"))
            continue
        run.evaluations.append((record, evaluation))
    return run


__all__ = ["DeployedRun", "evaluate_profiled", "trained_checkpoints"]
