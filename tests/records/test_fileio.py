"""hgbench.fileio: atomic writes (the old file or the complete new one, never a partial one, no
temporary file left) and UTC time stamps, the bottom layer the records store and the dataset
downloader share."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat

import pytest

from hgbench import fileio, records


def test_json_text_and_bytes_are_written_whole_with_the_usual_mode(tmp_path):
    path = tmp_path / "new" / "folder" / "a.json"  # missing folders are created
    fileio.atomic_write_json(path, {"b": 1, "a": [1, 2]})
    assert path.read_text() == json.dumps({"b": 1, "a": [1, 2]}, indent=1) + "\n"
    fileio.atomic_write_json(path, {"b": 1, "a": 2}, sort_keys=True, indent=None)
    assert path.read_text() == '{"a": 2, "b": 1}\n'
    fileio.atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_bytes() == "héllo".encode()
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    fileio.atomic_write_bytes(path, b"old")
    with pytest.raises(TypeError):
        fileio.atomic_write_json(path, {"x": object()})  # not serialisable: nothing is written

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        fileio.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_folder_in_the_way_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError, match="d"):
        fileio.atomic_write_bytes(tmp_path / "d", b"x")
    assert list((tmp_path / "d").iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_utc_now_is_iso_8601_in_utc_to_the_second():
    stamp = dt.datetime.fromisoformat(fileio.utc_now())
    assert stamp.utcoffset() == dt.timedelta(0) and stamp.microsecond == 0
    assert abs((dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()) < 5


def test_records_re_exports_the_same_functions():
    assert records.atomic_write_bytes is fileio.atomic_write_bytes
    assert records.utc_now is fileio.utc_now
