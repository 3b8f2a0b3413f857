"""Shared fixtures: where the real data of ../shared/data is (skip with a reason where absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HGBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """Keep the tests' measured device ceilings (hgbench.profile.roofline) out of ~/.cache."""
    old = os.environ.get("HGBENCH_CACHE_DIR")
    os.environ["HGBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("hgbench-cache"))
    yield
    if old is None:
        os.environ.pop("HGBENCH_CACHE_DIR", None)
    else:
        os.environ["HGBENCH_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def lspet_root() -> Path:
    root = SHARED_DATA / "lspet"
    if not (root / "joints.mat").is_file():
        pytest.skip(f"real LSPET data not found at {root} (set HGBENCH_SHARED_DATA to the shared data folder)")
    return root
