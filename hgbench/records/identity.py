"""A record's identity: which network, which training, which artifact and which machine it
describes, assembled in one place and compared in one place.

DESIGN.md: "A row of a report is one identity: the network (variant and spec hash), the
training (protocol content, dataset and the data read), the artifact (backend, precision,
batch, input size, device kind) and the machine. Two records join only when every shared part
of their identity agrees."

Every writer builds the identity fields of its body with :func:`identity` (train records,
checkpoints, eval records, profile records, the latency gate's records), and every reader that
joins two records asks :func:`join_key` for the fields both hold (the report joins accuracy to
cost on :data:`NETWORK`, an eval record to its training run on :data:`NETWORK` and
:data:`TRAINING`). The data read (:data:`DATA`) is part of a training's and an evaluation's
identity: a complete run is not reused for other data
(:func:`hgbench.train.setup.check_same_data`), and an evaluation on other data is another eval
record. A record's :class:`hgbench.records.RecordKey` (what a newer record of the same
measurement replaces) is built from the same parts (:data:`hgbench.records.KEY_FIELDS`).

``spec`` and ``protocol`` may be the typed config (:class:`hgbench.config.VariantSpec`,
:class:`hgbench.config.Protocol`: any dataclass with a ``name``) or their ``asdict`` (what a
checkpoint or a record stores): this module does not import :mod:`hgbench.config` (records and
config are sibling layers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from hgbench.records.key import protocol_hash, spec_hash

NETWORK = ("variant", "spec_hash", "num_joints")
"""The network: the variant's name, the content hash of its spec (:func:`hgbench.records.spec_hash`)
and the number of joints of its output heatmaps. Two records of the same name but another spec
hash describe two networks (the variant's YAML was edited in between) and never join."""
TRAINING = ("dataset", "protocol", "protocol_hash")
"""The training: dataset name, protocol name and the content hash of the protocol as loaded
(:func:`hgbench.records.protocol_hash`)."""
DATA = ("data_fingerprint",)
"""The data read: the fingerprint of the split(s) a training or an evaluation read
(:mod:`hgbench.data.fingerprint`: the annotation files' content and the images' names and
sizes, or the synthetic generator's parameters). Records also carry ``data_folder`` (the folder,
absolute; None for synthetic) and ``data_images`` (images per split) to say which, but only the
fingerprint decides: the same data copied to another folder is the same data. A record written
before the field has None there (the data it read is unknown)."""
ARTIFACT = ("backend", "precision", "tf32", "channels_last", "compile_mode", "batch_size", "input_size", "device")
"""What was timed: the backend, its numeric format, the layout, ``torch.compile`` mode, batch size,
input side in px and the device kind (``cpu``, ``cuda``)."""


def _as_dict(config: Any) -> dict[str, Any]:
    """A config dataclass or mapping as a plain dict."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"expected a config dataclass or a mapping, got {type(config).__name__}")


def network_identity(spec: Any, num_joints: int) -> dict[str, Any]:
    """``variant``, ``spec`` (the variant's spec as a dict, so that a reader never asks the live
    registry), ``spec_hash`` and ``num_joints`` of the network built from ``spec``."""
    spec_dict = _as_dict(spec)
    return {
        "variant": spec_dict["name"],
        "spec": spec_dict,
        "spec_hash": spec_hash(spec_dict),
        "num_joints": int(num_joints),
    }


def training_identity(protocol: Any, dataset: str, *, protocol_hash_: str | None = None) -> dict[str, Any]:
    """``dataset``, ``protocol`` (its name) and ``protocol_hash`` of a training under
    ``protocol`` (the protocol as loaded, before a variant's overrides) on ``dataset``.

    ``protocol_hash_`` is the hash a checkpoint stored when it is at hand (a checkpoint keeps the
    protocol as run, with the variant's overrides, whose hash may differ from the loaded one's)."""
    protocol_dict = _as_dict(protocol)
    return {
        "dataset": dataset,
        "protocol": protocol_dict["name"],
        "protocol_hash": protocol_hash_ or protocol_hash(protocol_dict),
    }


def data_identity(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data_folder``, ``data_fingerprint`` and ``data_images`` of the data read, from
    :meth:`hgbench.data.fingerprint.DataFingerprint.fields` (a mapping: records do not import
    the data layer)."""
    return {
        "data_folder": data.get("data_folder"),
        "data_fingerprint": data["data_fingerprint"],
        "data_images": dict(data.get("data_images") or {}),
    }


def artifact_identity(
    *,
    backend: str,
    precision: str,
    batch_size: int,
    input_size: int,
    device: str,
    tf32: bool = False,
    channels_last: bool = False,
    compile_mode: str | None = None,
) -> dict[str, Any]:
    """The :data:`ARTIFACT` fields of a profiled setting (``device`` is the kind: ``cpu``/``cuda``)."""
    return {
        "backend": backend, "precision": precision, "tf32": bool(tf32), "channels_last": bool(channels_last),
        "compile_mode": compile_mode, "batch_size": int(batch_size), "input_size": int(input_size), "device": device,
    }  # fmt: skip


def identity(
    *,
    spec: Any,
    num_joints: int,
    protocol: Any = None,
    dataset: str | None = None,
    protocol_hash_: str | None = None,
    artifact: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The identity fields of a record body, the one place they are assembled: the network
    (:func:`network_identity`), the training when ``protocol`` and ``dataset`` are given
    (:func:`training_identity`), the artifact when ``artifact`` is given (from
    :func:`artifact_identity`), the data read when ``data`` is given (:func:`data_identity`).
    A writer adds its measurements to this dict.

    Raises:
        ValueError: ``protocol`` without ``dataset`` or the reverse.
    """
    if (protocol is None) != (dataset is None):
        raise ValueError("identity: a training needs both its protocol and its dataset")
    out = network_identity(spec, num_joints)
    if protocol is not None:
        out |= training_identity(protocol, dataset, protocol_hash_=protocol_hash_)
    if artifact is not None:
        out |= {f: artifact[f] for f in ARTIFACT}
    if data is not None:
        out |= data_identity(data)
    return out


def join_key(record: Mapping[str, Any] | Any, parts: tuple[str, ...]) -> tuple:
    """The values of the identity fields ``parts`` (e.g. :data:`NETWORK`) of ``record`` (a record
    or a mapping with those fields): two records join when their join keys on the parts both
    hold are equal. A missing field reads as None, which joins only with another None.
    """
    get = record.get if hasattr(record, "get") else (lambda f: getattr(record, f, None))
    return tuple(get(f) for f in parts)
