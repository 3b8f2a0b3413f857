"""Identity of what a record describes: content hashes and the one record key.

A record key is the tuple of fields that says *what was measured* (not when, not the result):
two records with the same key describe the same thing, the newer one replacing the older in
every reader (de-duplication), and the key's file stem names the record on disk. It is the only
definition of a record's identity in hgbench: the report, ``hgbench compare``, the latency
gate and ``train-all`` all use it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

HASH_CHARS = 12
"""Hex digits of a content hash kept in keys and folder names (48 bits: a collision between two
protocols of one name has probability ~1e-14)."""

PROTOCOL_IDENTITY_EXCLUDED = (
    "description",
    "pipeline_check",
    "num_workers",
    "checkpoint_every_steps",
    "checkpoint_every_min",
)
"""Protocol fields that do not change what a run computes (prose and the ``pipeline_check``
label, hgbench.config.protocol; loader processes, whose count does not change the samples, and
checkpoint cadence, hgbench.train), left out of its hash: a run folder made before such a field
existed keeps its name."""
SPEC_IDENTITY_EXCLUDED = ("description", "notes", "source")
"""Variant fields that do not change the network or its training, left out of its hash."""


def content_hash(content: Any, exclude: tuple[str, ...] = ()) -> str:
    """First :data:`HASH_CHARS` hex digits of the SHA-256 of ``content`` as canonical JSON
    (keys sorted, tuples as lists), top-level keys in ``exclude`` left out.

    ``content`` is a mapping or a dataclass instance (converted with ``dataclasses.asdict``).
    """
    if dataclasses.is_dataclass(content) and not isinstance(content, type):
        content = dataclasses.asdict(content)
    if isinstance(content, dict):
        content = {k: v for k, v in content.items() if k not in exclude}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def protocol_hash(protocol: Any) -> str:
    """Content hash of a protocol (a ``Protocol`` or its ``asdict``), without its prose."""
    return content_hash(protocol, PROTOCOL_IDENTITY_EXCLUDED)


def architecture_hash(spec: Any) -> str:
    """Content hash of a variant's network: its ``architecture`` (a ``VariantSpec`` or its
    ``asdict``), all that :func:`hgbench.models.create_model` builds from. Variants that differ
    only in how they are trained (hg8 and hg8-adam-b16; hg2, hg2-final and hg2-sum) share it:
    with the same heatmap count they are one network, counted and timed once by a profile sweep
    (:mod:`hgbench.profile.sweep`)."""
    architecture = spec["architecture"] if isinstance(spec, dict) else spec.architecture
    return content_hash(architecture)


def spec_hash(spec: Any) -> str:
    """Content hash of a variant spec (a ``VariantSpec`` or its ``asdict``): architecture,
    supervision, overrides, pretraining; not its prose or source."""
    return content_hash(spec, SPEC_IDENTITY_EXCLUDED)
