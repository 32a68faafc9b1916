"""fastdl._io.atomic_write: all or nothing, with the permissions of a plain open()."""

from __future__ import annotations

import os

import pytest

from fastdl._io import atomic_write


def test_atomic_write_replaces_the_file_with_normal_permissions(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert atomic_write(target, lambda fh: fh.write(b"new")) == target
    assert target.read_text() == "new"
    assert (os.stat(target).st_mode & 0o777) == (os.stat(plain).st_mode & 0o777)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "plain"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    def broken(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
