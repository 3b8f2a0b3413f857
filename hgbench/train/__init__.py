"""Training: one variant under one protocol (checkpoints, run records, resume and skip)."""

from hgbench.train.loop import CHECKPOINT, RECORD, completed_record, load_checkpoint, train_variant

__all__ = ["CHECKPOINT", "RECORD", "completed_record", "load_checkpoint", "train_variant"]
