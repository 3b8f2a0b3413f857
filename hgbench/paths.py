"""Where the registry's YAML files live.

In a source checkout (``pip install -e .``) they are the repository's ``variants/`` folder;
a wheel carries a copy as ``hgbench/_builtin_variants``. ``HGBENCH_VARIANTS_DIR`` overrides
both (a user's own registry).
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def variants_dir() -> Path:
    """Folder holding ``*.yaml`` variants and ``protocols/*.yaml``.

    Raises:
        FileNotFoundError: none of the candidate folders exists.
    """
    env = os.environ.get("HGBENCH_VARIANTS_DIR")
    candidates = [Path(env)] if env else [_PACKAGE.parent / "variants", _PACKAGE / "_builtin_variants"]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(f"no variants folder found (looked in {', '.join(map(str, candidates))}); set HGBENCH_VARIANTS_DIR")


def protocols_dir() -> Path:
    """Folder holding the protocol YAML files (``<variants>/protocols``)."""
    return variants_dir() / "protocols"
