"""Shared fixtures: where the real data of ../shared/data is (skip with a reason where absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HGBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def lspet_root() -> Path:
    root = SHARED_DATA / "lspet"
    if not (root / "joints.mat").is_file():
        pytest.skip(f"real LSPET data not found at {root} (set HGBENCH_SHARED_DATA to the shared data folder)")
    return root
