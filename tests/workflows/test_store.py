"""The map store: run records with input digests, batch files checked against their digests, the shard loop."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from camkit.errors import CamkitError
from camkit.workflows.store import MapStore, Shard, file_digest, files_digest, run_batches

SETTINGS = {"method": "m", "batch_size": 2, "n_images": 5, "columns": ("top1", "true")}
INPUTS = {"model": "sha1:aa", "images": "sha1:bb"}


def batch(b: int) -> dict[str, np.ndarray]:
    lo, hi = 2 * b, min(2 * b + 2, 5)
    return {"indices": np.arange(lo, hi), "maps": np.full((hi - lo, 3), b, np.float16),
            "columns": np.array(["top1", "true"])}


def compute_all(calls: list[int]):
    def compute(todo: list[int]):
        for b in todo:
            calls.append(b)
            yield b, batch(b)
    return compute


def test_file_digests_are_sha1_of_the_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"abc")
    b.write_bytes(b"abd")
    assert file_digest(a) == "sha1:" + hashlib.sha1(b"abc").hexdigest()
    before = files_digest([a, b], tmp_path)
    b.write_bytes(b"abe")  # same size and name, other content
    assert files_digest([a, b], tmp_path) != before
    assert files_digest([b, a], tmp_path) != files_digest([a, b], tmp_path)  # order is part of the list


def test_open_records_settings_and_inputs_and_refuses_changes(tmp_path: Path) -> None:
    store = MapStore(tmp_path / "run")
    store.open(SETTINGS, INPUTS)
    record = json.loads(store.run_path.read_text())
    assert record == {"settings": {**SETTINGS, "columns": ["top1", "true"]}, "inputs": INPUTS}
    store.open(SETTINGS, INPUTS)  # the same run: resumes
    with pytest.raises(CamkitError, match=r"other settings \(method\)"):
        store.open({**SETTINGS, "method": "other"}, INPUTS)
    with pytest.raises(CamkitError, match=r"changed inputs \(images\); .*--overwrite"):
        store.open(SETTINGS, {**INPUTS, "images": "sha1:cc"})


def test_overwrite_removes_the_old_run(tmp_path: Path) -> None:
    store = MapStore(tmp_path)
    store.open(SETTINGS, INPUTS)
    store.write(0, batch(0))
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "image_00000.png").write_bytes(b"x")
    store.open(SETTINGS, {**INPUTS, "model": "sha1:dd"}, overwrite=True, clear=["figures"])
    assert not store.path(0).exists() and not (tmp_path / "figures").exists()
    assert store.run()["inputs"]["model"] == "sha1:dd"


def test_batches_are_checked_against_their_recorded_digest(tmp_path: Path) -> None:
    store = MapStore(tmp_path)
    store.write(1, batch(1), depends="sha1:maps1")
    assert store.is_done(1, "sha1:maps1") and not store.is_done(1, "sha1:other") and not store.is_done(0)
    np.testing.assert_array_equal(store.read(1)["maps"], batch(1)["maps"])
    data = store.path(1).read_bytes()
    store.path(1).write_bytes(data[: len(data) // 2])  # truncated
    assert not store.is_done(1, "sha1:maps1")
    with pytest.raises(CamkitError, match="does not match the digest"):
        store.read(1)
    store.write(1, batch(1))
    store.digest_path(1).unlink()  # copied without its digest
    assert not store.is_done(1)


def test_json_batches(tmp_path: Path) -> None:
    store = MapStore(tmp_path, suffix=".json", subdir="eval")
    store.write(3, {"rows": [1, 2]})
    assert store.path(3) == tmp_path / "eval" / "batch_00003.json"
    assert store.read(3) == {"rows": [1, 2]} and store.is_done(3)


def test_shards_resume_and_recompute_altered_batches(tmp_path: Path) -> None:
    assert Shard.parse("1/3").batches(7) == [1, 4]
    for bad in ("3/3", "a/2", "1"):
        with pytest.raises(CamkitError, match="--shard"):
            Shard.parse(bad)
    whole, parts = MapStore(tmp_path / "whole"), [MapStore(tmp_path / f"s{i}") for i in range(2)]
    calls: list[int] = []
    assert run_batches(whole, 3, Shard(), compute_all(calls)).computed == [0, 1, 2]
    for i, part in enumerate(parts):
        assert run_batches(part, 3, Shard(i, 2), compute_all([])).batches == [[0, 2], [1]][i]
    merged = MapStore(tmp_path / "merged")
    merged.open(SETTINGS, INPUTS)
    for part in parts:  # copy every shard's batches/ into one folder
        for f in (part.folder / "batches").iterdir():
            (merged.folder / "batches").mkdir(exist_ok=True)
            (merged.folder / "batches" / f.name).write_bytes(f.read_bytes())
    whole.open(SETTINGS, INPUTS)
    for b in range(3):
        assert merged.path(b).read_bytes() == whole.path(b).read_bytes()
    np.testing.assert_array_equal(merged.read_all()["indices"], np.arange(5))
    calls.clear()
    whole.path(1).unlink()
    whole.path(2).write_bytes(b"not a batch")
    assert run_batches(whole, 3, Shard(), compute_all(calls)).computed == [1, 2] == calls
    assert run_batches(whole, 3, Shard(), compute_all(calls)).computed == []


def test_read_all_names_missing_batches(tmp_path: Path) -> None:
    store = MapStore(tmp_path)
    store.open(SETTINGS, INPUTS)
    store.write(0, batch(0))
    store.write(1, batch(1))
    with pytest.raises(CamkitError, match=r"batches \[2\] are missing"):
        store.read_all()
