"""Training: the engine that fits one variant under one protocol on one device.

``loop`` runs a run from start (or resume) to its record, through its parts: ``setup`` (the
checks, the run folder, data, model, optimiser and scheduler), ``state`` (the training state,
restored from and saved to the checkpoint for exact resume), ``epoch`` (the steps of one epoch,
progress, checkpoints by steps, minutes or signal), ``validation``, ``record`` (the run record's
body), ``signals`` and ``divergence`` (a loss that is not finite ends the run as a failure).
Beside it: the step (``step``: device, precision, compile), the data
pipeline (``sampler``), checkpoints (``checkpoint``), the run lock (``lock``), data parallel
(``distributed``), launchers (``launch``: local, GPUs, Slurm), run states (``status``), progress
display (``progress``), autoencoder pre-training (``pretrain``), evaluation of a checkpoint
(``evaluation``) and the throughput benchmark (``bench``)."""

from hgbench.paths import CHECKPOINT
from hgbench.train.checkpoint import CheckpointError, load_checkpoint
from hgbench.train.device import DeviceError, check_device, default_device, resolve_device
from hgbench.train.loop import (
    RECORD,
    TrainingDiverged,
    TrainingInterrupted,
    completed_record,
    run_folder,
    train_record_body,
    train_variant,
)

__all__ = [
    "CHECKPOINT",
    "CheckpointError",
    "DeviceError",
    "check_device",
    "RECORD",
    "TrainingDiverged",
    "TrainingInterrupted",
    "completed_record",
    "default_device",
    "load_checkpoint",
    "resolve_device",
    "run_folder",
    "train_record_body",
    "train_variant",
]
