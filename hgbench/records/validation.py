"""The value rules of records: what a record's numbers may be, checked on every read and write.

The schema (:mod:`hgbench.records.schema`) checks that a record has its fields with their types;
the rules here check that their values can be true: an accuracy is a percentage, a count of
parameters is a positive integer, a latency is a finite positive time. A record that breaks one
(a hand-edited file, a diverged run, a bug) is refused by :func:`hgbench.records.parse_record`
with :class:`hgbench.records.InvalidRecordError`, naming the field and the value, so that every
reader lists it among the skipped with that reason (``hgbench report``) or refuses it
(``hgbench compare``) instead of ranking it.

Pure functions of a record's fields (a typed record or the mapping of its JSON object), each
returning the first problem as one line (``"field 'result.mean' is 250.0: ..."``) or ``None``:

- :func:`record_problem`: dispatch on ``kind`` to :func:`profile_problem`,
  :func:`train_problem` and :func:`eval_problem`;
- :func:`accuracy_problem`: a :class:`hgbench.accuracy.pck.PCKResult` as a dict (an eval
  record's ``result``, a train record's ``final`` and each validation of its ``history``);
- :func:`timing_problem`: the timing statistics of a profile record (also a model rule of
  :class:`hgbench.records.ProfileRecord`, so that a record being measured is always valid);
- :func:`non_finite_tensors`: the weights of a checkpoint (``hgbench evaluate`` refuses NaN
  or infinite weights before scoring them: they would score 0 %, a number, not an error).

What is *not* checked, on purpose: losses and validations of an incomplete training run (the
record of a diverged run must stay readable, so that ``hgbench runs`` can say what happened);
a NaN per-joint accuracy where the joint was never scored (``counts`` 0, the metric's own
"undefined", :class:`hgbench.accuracy.pck.PCKResult`), and NaN ends of a confidence interval
(fewer than two persons); numerics (an fp16 error may be infinite: that is a measurement).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

PERCENT = (0.0, 100.0)
"""The range of an accuracy (PCK, PCKh, OKS AP), in percent."""

TIMING_FIELDS = ("latency_ms", "calibration")
"""Profile record fields holding timing statistics: every ``*_ms`` entry of them (``p50_ms``,
``std_ms``, ``samples_ms``, ``repetition_p50_ms`` ...), like ``throughput_samples_per_s``,
is a finite number >= 0 or a list of them (or null): :func:`timing_problem`."""

ACCURACY_TABLES = (
    "per_joint",
    "groups",
    "per_joint_visible",
    "per_joint_occluded",
    "groups_visible",
    "groups_occluded",
)
"""Fields of an accuracy result holding ``name -> percent`` tables (:func:`accuracy_problem`)."""

_SIZES_MIB = ("model_size_mib", "activation_memory_mib", "peak_memory_mib")
_COMPUTE = ("gmacs_fvcore", "gmacs_thop", "gflops_flop_counter")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def positive_int_problem(name: str, value: Any) -> str | None:
    """``None`` if ``value`` is None or an integer >= 1, else the problem (a count: parameters,
    joints, a batch size, pixels)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return None
    return f"field {name!r} is {_show(value)}; expected an integer >= 1"


def number_problem(name: str, value: Any, *, positive: bool = False, high: float | None = None) -> str | None:
    """``None`` if ``value`` is None or a finite number >= 0 (> 0 with ``positive``, <= ``high``
    when given), else the problem."""
    if value is None:
        return None
    low = "> 0" if positive else ">= 0"
    if not _is_number(value) or not math.isfinite(value) or value < 0 or (positive and value == 0):
        return f"field {name!r} is {_show(value)}; expected a finite number {low}"
    if high is not None and value > high:
        return f"field {name!r} is {_show(value)}; expected at most {high:g}"
    return None


def percent_problem(name: str, value: Any, *, nan_ok: bool = False) -> str | None:
    """``None`` if ``value`` is a percentage in [0, 100] (or NaN, with ``nan_ok``: undefined),
    else the problem."""
    if nan_ok and (value is None or (isinstance(value, float) and math.isnan(value))):
        return None
    if _is_number(value) and math.isfinite(value) and PERCENT[0] <= value <= PERCENT[1]:
        return None
    return f"field {name!r} is {_show(value)}; an accuracy is a finite percentage in [0, 100]"


def accuracy_problem(result: Any, where: str = "result", *, nan_mean_ok: bool = False) -> str | None:
    """The first problem of an accuracy result (:class:`hgbench.accuracy.pck.PCKResult` as a
    dict; ``where`` names it in the message: ``"result"``, ``"final"``, ``"history[3].val"``),
    or ``None``.

    Rules: ``mean`` a finite percentage in [0, 100] (NaN: nothing was scored, no accuracy;
    read only with ``nan_mean_ok``, a training run's validation, where the engine itself meets it:
    :func:`hgbench.train.optim.step_schedule`);
    each entry of the tables of :data:`ACCURACY_TABLES` and ``mean_visible``, ``mean_occluded``
    a percentage or NaN (not scored), and a per-joint NaN only where ``counts`` says the joint
    was never scored; ``mean_ci`` and each interval of ``groups_ci`` two percentages (a NaN end:
    undefined); ``counts``, ``num_persons``, ``num_unnormalised`` integers >= 0; ``threshold``
    finite > 0; ``loss`` (when present) a finite number >= 0 (NaN: the network's outputs were not
    finite).
    """
    if not isinstance(result, Mapping):
        return f"field {where!r} is {_show(result)}; expected an accuracy result (an object with 'mean')"
    if "mean" not in result:
        return f"field '{where}.mean' is missing; re-run the evaluation"
    if problem := percent_problem(f"{where}.mean", result["mean"], nan_ok=nan_mean_ok):
        return problem
    counts = result.get("counts") or {}
    if not isinstance(counts, Mapping):
        return f"field '{where}.counts' is {_show(counts)}; expected joint name -> count"
    for joint, n in counts.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            return f"field '{where}.counts.{joint}' is {_show(n)}; expected an integer >= 0"
    for table in ACCURACY_TABLES:
        values = result.get(table)
        if values is None:
            continue
        if not isinstance(values, Mapping):
            return f"field '{where}.{table}' is {_show(values)}; expected name -> percent"
        for name, value in values.items():
            field = f"{where}.{table}.{name}"
            if problem := percent_problem(field, value, nan_ok=True):
                return problem
            undefined = value is None or math.isnan(value)
            if table == "per_joint" and undefined and counts.get(name, 0) > 0:
                return f"field {field!r} is {value!r} but {counts[name]} instances were scored; re-run the evaluation"
    for name in ("mean_visible", "mean_occluded"):
        if problem := percent_problem(f"{where}.{name}", result.get(name), nan_ok=True):
            return problem
    return _interval_problem(result, where) or _counts_problem(result, where)


def _interval_problem(result: Mapping, where: str) -> str | None:
    intervals = [("mean_ci", result.get("mean_ci"))]
    groups_ci = result.get("groups_ci")
    if isinstance(groups_ci, Mapping):
        intervals += [(f"groups_ci.{g}", ci) for g, ci in groups_ci.items()]
    elif groups_ci is not None:
        return f"field '{where}.groups_ci' is {_show(groups_ci)}; expected group -> [low, high]"
    for name, ci in intervals:
        if ci is None:
            continue
        if not isinstance(ci, (list, tuple)) or len(ci) != 2:
            return f"field '{where}.{name}' is {_show(ci)}; expected [low, high] in percent"
        for end in ci:
            if problem := percent_problem(f"{where}.{name}", end, nan_ok=True):
                return problem
    return None


def _counts_problem(result: Mapping, where: str) -> str | None:
    for name in ("num_persons", "num_unnormalised"):
        value = result.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            return f"field '{where}.{name}' is {_show(value)}; expected an integer >= 0"
    if problem := number_problem(f"{where}.threshold", result.get("threshold"), positive=True):
        return problem
    loss = result.get("loss")
    if loss is not None and not (_is_number(loss) and math.isfinite(loss) and loss >= 0):
        return (
            f"field '{where}.loss' is {_show(loss)}; expected a finite number >= 0 "
            "(a non-finite loss: the network's outputs were not finite, its training diverged)"
        )
    return None


def timing_values(record: Any) -> Iterator[tuple[str, Any]]:
    """``(field, value)`` of every timing statistic of a profile record (:data:`TIMING_FIELDS`),
    list entries one by one (``latency_ms.samples_ms[3]``), then ``throughput_samples_per_s``."""
    for name in TIMING_FIELDS:
        stats = record.get(name)
        if not isinstance(stats, Mapping):
            continue
        for key, value in stats.items():
            if not key.endswith("_ms"):
                continue
            if isinstance(value, list):
                yield from ((f"{name}.{key}[{i}]", v) for i, v in enumerate(value))
            else:
                yield f"{name}.{key}", value
    yield "throughput_samples_per_s", record.get("throughput_samples_per_s")


def timing_problem(record: Any) -> str | None:
    """The first timing statistic of a profile record (:func:`timing_values`) that is not a
    finite number >= 0 (None allowed), or ``None``."""
    for name, value in timing_values(record):
        if value is not None and not (_is_number(value) and math.isfinite(value) and value >= 0):
            return f"field {name!r} is {value!r}; a timing statistic is a finite number >= 0"
    return None


def profile_problem(record: Any) -> str | None:
    """The first problem of a profile record's values, or ``None``.

    Rules: :func:`timing_problem`; ``num_joints``, ``batch_size``, ``input_size``, ``threads``
    and ``parameters`` integers >= 1; model size, activation and peak memory (MiB) and
    ``build_time_s`` finite >= 0; GMACs and GFLOPs finite > 0 (a network computes something);
    ``status`` ``"ok"`` or ``"error"``; a completed setting (``status`` ``"ok"``) has its latency:
    ``latency_ms.p50_ms`` finite > 0 (a setting without one was not measured: it is a failure,
    ``status`` ``"error"`` with its ``error``), and a throughput > 0 where recorded.
    """
    if problem := timing_problem(record):
        return problem
    for name in ("num_joints", "batch_size", "input_size", "threads", "parameters"):
        if problem := positive_int_problem(name, record.get(name)):
            return problem
    for name in (*_SIZES_MIB, "build_time_s"):
        if problem := number_problem(name, record.get(name)):
            return problem
    for name in _COMPUTE:
        if problem := number_problem(name, record.get(name), positive=True):
            return problem
    status = record.get("status")
    if status not in ("ok", "error"):
        return f"field 'status' is {_show(status)}; expected 'ok' or 'error'"
    if status != "ok":
        return None
    latency = record.get("latency_ms")
    p50 = latency.get("p50_ms") if isinstance(latency, Mapping) else None
    if p50 is None or p50 <= 0:
        what = "missing" if p50 is None else repr(p50)
        return (
            f"field 'latency_ms.p50_ms' is {what} in a completed setting (status 'ok'); "
            "a measured setting has a latency > 0"
        )
    return number_problem("throughput_samples_per_s", record.get("throughput_samples_per_s"), positive=True)


def train_problem(record: Any) -> str | None:
    """The first problem of a train record's values, or ``None``.

    Rules: ``num_joints`` and ``parameters`` integers >= 1; ``train_time_s`` and
    ``wall_time_s`` (seconds) finite >= 0; a complete run's ``final`` and the validations of its
    ``history`` are valid accuracies (:func:`accuracy_problem`; a NaN mean, a validation that
    scored nothing, is read: the report shows it as missing) and its training losses are finite
    (a NaN loss: the run diverged, its 0 % is not an accuracy). An incomplete run's history is
    not checked (the record of a diverged run stays readable).
    """
    for name in ("num_joints", "parameters"):
        if problem := positive_int_problem(name, record.get(name)):
            return problem
    for name in ("train_time_s", "wall_time_s"):
        if problem := number_problem(name, record.get(name)):
            return problem
    if not record.get("complete"):
        return None
    final = record.get("final")
    if final is not None and (problem := accuracy_problem(final, "final", nan_mean_ok=True)):
        return problem
    for i, entry in enumerate(record.get("history") or []):
        if not isinstance(entry, Mapping):
            return f"field 'history[{i}]' is {_show(entry)}; expected an object per validation"
        loss = entry.get("train_loss")
        if loss is not None and not (_is_number(loss) and math.isfinite(loss)):
            return (
                f"field 'history[{i}].train_loss' is {_show(loss)} (epoch {entry.get('epoch')}): the run diverged; "
                "its accuracy is not a result: retrain it (hgbench train --force)"
            )
        val = entry.get("val")
        if val is not None and (problem := accuracy_problem(val, f"history[{i}].val", nan_mean_ok=True)):
            return problem
    return None


def eval_problem(record: Any) -> str | None:
    """The first problem of an eval record's values, or ``None``: ``num_joints`` >= 1,
    ``threshold`` in (0, 1], ``result`` a valid accuracy (:func:`accuracy_problem`)."""
    if problem := positive_int_problem("num_joints", record.get("num_joints")):
        return problem
    if problem := number_problem("threshold", record.get("threshold"), positive=True, high=1.0):
        return problem
    return accuracy_problem(record.get("result"), "result")


_RULES = {"profile": profile_problem, "train": train_problem, "eval": eval_problem}


def record_problem(record: Any) -> str | None:
    """The first problem of a record's values by its ``kind`` (:func:`profile_problem`,
    :func:`train_problem`, :func:`eval_problem`), or ``None`` (also for an unknown kind: the
    schema rule refuses those)."""
    rule = _RULES.get(record.get("kind"))
    return rule(record) if rule else None


def non_finite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors of ``state`` (a ``state_dict``: name -> torch tensor)
    holding a NaN or an infinity, in order. Duck-typed (``is_floating_point``, ``isfinite``), so
    that this layer does not import torch."""
    bad = []
    for name, value in state.items():
        is_float = getattr(value, "is_floating_point", None)
        if is_float is not None and is_float() and not bool(value.isfinite().all()):
            bad.append(name)
    return bad


def check_finite_weights(state: Mapping[str, Any], checkpoint: Any) -> None:
    """Refuse a checkpoint whose weights are not all finite (:func:`non_finite_tensors`).

    Raises:
        ValueError: one line naming ``checkpoint``, how many tensors and the first.
    """
    bad = non_finite_tensors(state)
    if bad:
        raise ValueError(
            f"{checkpoint}: {len(bad)} of {len(state)} weight tensors hold NaN or infinite values (first: {bad[0]}): "
            "its training diverged, so any accuracy of it would be meaningless; retrain it (hgbench train --force)"
        )
