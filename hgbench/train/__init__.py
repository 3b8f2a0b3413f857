"""Training: the engine that fits one variant under one protocol on one device (loop),
its step (device, precision, compile), data pipeline (sampler), checkpoints with exact
resume, progress display and throughput benchmark (bench)."""

from hgbench.paths import CHECKPOINT
from hgbench.train.checkpoint import CheckpointError, load_checkpoint
from hgbench.train.device import DeviceError, check_device, default_device, resolve_device
from hgbench.train.loop import (
    RECORD,
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
    "TrainingInterrupted",
    "completed_record",
    "default_device",
    "load_checkpoint",
    "resolve_device",
    "run_folder",
    "train_record_body",
    "train_variant",
]
