"""Validation during training: the accuracy of the bare model on the run's validation set at
the end of an epoch (every ``val_every`` epochs and after the last).

In a data-parallel run rank 0 alone validates, and its result is broadcast to the others (they
wait for it), so every rank records it and the plateau schedule steps on every rank with it.
"""

from __future__ import annotations

from typing import Any

from hgbench.accuracy.evaluate import evaluate_pck
from hgbench.train.distributed import broadcast_from_main
from hgbench.train.progress import ProgressFn
from hgbench.train.setup import RunSetup


def due(setup: RunSetup, epoch: int) -> bool:
    """Whether epoch ``epoch`` (0-based) ends with a validation: every ``val_every`` epochs and
    after the last."""
    p = setup.target.settings
    return (epoch + 1) % p.val_every == 0 or epoch + 1 == p.epochs


def validate(setup: RunSetup, epoch: int, emit: ProgressFn, group: Any) -> dict:
    """Validate the bare model after epoch ``epoch`` (0-based) with the dataset's metric at its
    standard threshold (:func:`hgbench.accuracy.evaluate.evaluate_pck`, batches of the
    protocol's batch size, at least 8; flip test as the protocol says), emit a ``"validate"``
    event, and return the result as a dict (:meth:`hgbench.accuracy.pck.PCKResult.to_dict`)
    on every rank."""
    target, p = setup.target, setup.target.settings
    spec = target.spec
    val = None
    if target.writer:  # rank 0 validates the bare model; the others wait for its result
        result = evaluate_pck(
            setup.model,
            setup.val_set,
            threshold=None,
            batch_size=max(p.batch_size, 8),
            supervision=spec.supervision,
            skips=spec.eval_skips,
            flip_test=p.flip_test,
        )
        val = result.to_dict()
        emit(
            "validate",
            {
                "variant": spec.name,
                "epoch": epoch + 1,
                "epochs": p.epochs,
                "metric": result.metric,
                "threshold": result.threshold,
                "mean": result.mean,
                "loss": result.loss,
            },
        )
    return broadcast_from_main(val, group)
