"""Provenance of the packages a run really loaded: the ONNX Runtime distribution whose files
``import onnxruntime`` loads when the CPU and the GPU package share its module folder, and
the package of TensorRT's libraries (issue 28, defects 3 and 9)."""

from __future__ import annotations

import base64
import hashlib
import sys

import pytest

from hgbench.records import provenance


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _dist_info(site, name: str, version: str, files: dict[str, bytes]) -> None:
    """A wheel's ``<name>-<version>.dist-info`` in ``site`` whose RECORD lists ``files`` with
    their hashes (the files themselves are written by the caller)."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    rows = [f"{path},{_hash(data)},{len(data)}" for path, data in files.items()]
    (info / "RECORD").write_text("\n".join([*rows, f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]) + "\n")


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    """A site folder first on ``sys.path`` (caches of the functions cleared before and after)."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    provenance.loaded_distribution.cache_clear()
    provenance.tensorrt_libs.cache_clear()
    yield site
    provenance.loaded_distribution.cache_clear()
    provenance.tensorrt_libs.cache_clear()


@pytest.mark.parametrize("installed_last", ["hgbfakeort", "hgbfakeort-gpu"])
def test_the_onnxruntime_package_reported_is_the_one_whose_files_are_loaded(fake_site, installed_last):
    """Both distributions list the module's files; the one installed last wrote them."""
    cpu = {"hgbfakeort/__init__.py": b"__version__ = '1.32.0'\n", "hgbfakeort/capi/state.so": b"cpu kernels"}
    gpu = {"hgbfakeort/__init__.py": b"__version__ = '1.27.0'\n", "hgbfakeort/capi/state.so": b"cuda kernels",
           "hgbfakeort/capi/providers_cuda.so": b"cuda provider"}  # fmt: skip
    _dist_info(fake_site, "hgbfakeort", "1.32.0", cpu)
    _dist_info(fake_site, "hgbfakeort-gpu", "1.27.0", gpu)
    on_disk = {**gpu, **cpu} if installed_last == "hgbfakeort" else {**cpu, **gpu}
    for path, data in on_disk.items():
        (fake_site / path).parent.mkdir(parents=True, exist_ok=True)
        (fake_site / path).write_bytes(data)
    expected = ("hgbfakeort", "1.32.0") if installed_last == "hgbfakeort" else ("hgbfakeort-gpu", "1.27.0")
    assert provenance.loaded_distribution("hgbfakeort") == expected
    assert "hgbfakeort" not in sys.modules  # found without importing it


def test_a_module_of_one_distribution_and_a_missing_module(fake_site):
    files = {"hgbfakeone/__init__.py": b"x = 1\n"}
    _dist_info(fake_site, "hgbfakeone", "0.3", files)
    (fake_site / "hgbfakeone").mkdir()
    (fake_site / "hgbfakeone" / "__init__.py").write_bytes(files["hgbfakeone/__init__.py"])
    assert provenance.loaded_distribution("hgbfakeone") == ("hgbfakeone", "0.3")
    assert provenance.loaded_distribution("hgb_no_such_module") is None


def test_tensorrt_libs_names_the_package_and_its_cuda_major(fake_site):
    assert provenance.tensorrt_libs() is None  # this machine has none
    provenance.tensorrt_libs.cache_clear()
    _dist_info(fake_site, "tensorrt-cu13-libs", "11.0.0.114", {})
    assert provenance.tensorrt_libs() == "tensorrt-cu13-libs==11.0.0.114"


def test_collect_provenance_has_the_loaded_onnxruntime_and_the_tensorrt_libraries(monkeypatch):
    monkeypatch.setattr(provenance, "loaded_distribution", lambda module: ("onnxruntime-gpu", "1.27.0"))
    monkeypatch.setattr(provenance, "tensorrt_libs", lambda: "tensorrt-cu13-libs==11.0.0.114")
    prov = provenance.collect_provenance(command=["hgbench", "profile"])
    assert (prov["onnxruntime"], prov["onnxruntime_package"]) == ("1.27.0", "onnxruntime-gpu")
    assert prov["tensorrt_libs"] == "tensorrt-cu13-libs==11.0.0.114"
