"""Atomic writes (camkit/io.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from camkit.io import atomic_path, atomic_write_json, atomic_write_text, replace_dir_atomically, replace_marked_block


def test_atomic_write_replaces_and_follows_umask(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_atomic_path_keeps_suffix(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "best.keras") as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == tmp_path
        tmp.write_text("x")
    assert (tmp_path / "best.keras").read_text() == "x"


def test_replace_dir_keeps_old_folder_on_failure(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    replace_dir_atomically(folder, lambda tmp: (tmp / "x.txt").write_text("old"))

    def fail(tmp: Path) -> None:
        (tmp / "x.txt").write_text("new")
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        replace_dir_atomically(folder, fail)
    assert (folder / "x.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    replace_dir_atomically(folder, lambda tmp: (tmp / "y.txt").write_text("new"))
    assert sorted(p.name for p in folder.iterdir()) == ["y.txt"]


def test_replace_marked_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# t\n<!-- bench -->\nold\n<!-- /bench -->\nafter\n")
    replace_marked_block(readme, "bench", "new table\n")
    assert readme.read_text() == "# t\n<!-- bench -->\nnew table\n<!-- /bench -->\nafter\n"
    replace_marked_block(readme, "bench", "| a |")  # no final newline: the marker still gets its own line
    assert readme.read_text() == "# t\n<!-- bench -->\n| a |\n<!-- /bench -->\nafter\n"
    with pytest.raises(ValueError, match="no <!-- other -->"):
        replace_marked_block(readme, "other", "x")


def test_check_destination_accepts_a_folder_to_make_and_creates_nothing(tmp_path: Path) -> None:
    from camkit.errors import CamkitError
    from camkit.io import check_destination

    check_destination(tmp_path / "a" / "b", "--out")
    check_destination(tmp_path, "--out")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(CamkitError, match=r"^--out .*f/g: .*f is a file, so the folder cannot be made$"):
        check_destination(tmp_path / "f" / "g", "--out")
