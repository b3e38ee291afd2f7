"""The map store: run records with input digests, batch files checked against their digests, the shard loop."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from camkit.errors import CamkitError
from camkit.workflows.records import Digests, file_digest, files_digest
from camkit.workflows.store import MapStore, Shard, run_batches

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


def record(store: MapStore, settings=SETTINGS, inputs=INPUTS, **kw) -> None:
    store.prepare(settings, Digests(inputs), **kw).begin()


def opened(store: MapStore):
    return store.prepare(SETTINGS, Digests(INPUTS))


def test_runs_are_recorded_and_a_changed_run_refused_naming_what_changed(tmp_path: Path) -> None:
    store = MapStore(tmp_path / "run", option="--save-dir")
    record(store)
    assert json.loads(store.run_path.read_text()) == {"settings": {**SETTINGS, "columns": ["top1", "true"]},
                                                      "inputs": INPUTS}
    assert store.prepare(SETTINGS, Digests(INPUTS)).resume  # the same run: resumes
    with pytest.raises(CamkitError, match=r'^--save-dir .*run: the settings changed \(method: "m" -> "other"\) '
                                          r"since these maps were written; use --overwrite to recompute, or "
                                          r"another --save-dir$"):
        store.prepare({**SETTINGS, "method": "other"}, Digests(INPUTS))
    with pytest.raises(CamkitError, match=r"the images changed since"):
        store.prepare(SETTINGS, Digests({**INPUTS, "images": "sha1:cc"}))


def test_changed_files_are_named(tmp_path: Path) -> None:
    store = MapStore(tmp_path / "run")
    files = {"images": {"a.png": "sha1:1", "b.png": "sha1:2"}}
    store.prepare(SETTINGS, Digests(INPUTS, files)).begin()
    now = {"images": {"a.png": "sha1:1", "b.png": "sha1:3", "c.png": "sha1:4"}}
    with pytest.raises(CamkitError, match=r"the images changed \(1 of 3 files differ: b.png; 1 added: c.png\)"):
        store.prepare({**SETTINGS, "n_images": 3}, Digests({**INPUTS, "images": "sha1:new"}, now))


def test_overwrite_removes_the_old_run_only_when_the_new_one_begins(tmp_path: Path) -> None:
    store = MapStore(tmp_path)
    record(store)
    store.write(0, batch(0))
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "image_00000.png").write_bytes(b"x")
    opening = store.prepare(SETTINGS, Digests({**INPUTS, "model": "sha1:dd"}), overwrite=True,
                            clear=[tmp_path / "figures"])
    assert not opening.resume and store.path(0).exists()  # nothing removed yet: a failure now keeps the old run
    opening.begin()
    assert not store.path(0).exists() and not (tmp_path / "figures").exists()
    assert store.run()["inputs"]["model"] == "sha1:dd"


def test_a_garbled_run_record_is_refused_or_overwritten(tmp_path: Path) -> None:
    store = MapStore(tmp_path)
    for text, why in [('{"settings": ', "not valid JSON"), ("[1, 2]", "no settings and inputs")]:
        store.run_path.write_text(text)
        with pytest.raises(CamkitError, match=rf"run.json is not a run record camkit wrote \({why}\)"):
            store.prepare(SETTINGS, Digests(INPUTS))
    record(store, overwrite=True)
    assert store.run()["settings"]["method"] == "m"


def test_batches_are_checked_against_their_recorded_digest(tmp_path: Path) -> None:
    store = MapStore(tmp_path)
    store.write(1, batch(1), depends="sha1:maps1")
    assert store.is_done(1, "sha1:maps1") and not store.is_done(1, "sha1:other") and not store.is_done(0)
    np.testing.assert_array_equal(store.read(1)["maps"], batch(1)["maps"])
    data = store.path(1).read_bytes()
    store.path(1).write_bytes(data[: len(data) // 2])  # truncated
    assert not store.is_done(1, "sha1:maps1")
    with pytest.raises(CamkitError, match=r"batch_00001.npz does not match its batch_00001.sha1 \(truncated"):
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
    assert run_batches(opened(whole), 3, Shard(), compute_all(calls)).computed == [0, 1, 2]
    for i, part in enumerate(parts):
        assert run_batches(opened(part), 3, Shard(i, 2), compute_all([])).batches == [[0, 2], [1]][i]
    merged = MapStore(tmp_path / "merged")
    record(merged)
    for part in parts:  # copy every shard's batches/ into one folder
        for f in (part.folder / "batches").iterdir():
            (merged.folder / "batches").mkdir(exist_ok=True)
            (merged.folder / "batches" / f.name).write_bytes(f.read_bytes())
    assert whole.run() == merged.run()
    for b in range(3):
        assert merged.path(b).read_bytes() == whole.path(b).read_bytes()
    np.testing.assert_array_equal(merged.read_all()["indices"], np.arange(5))
    calls.clear()
    whole.path(1).unlink()
    whole.path(2).write_bytes(b"not a batch")
    assert run_batches(opened(whole), 3, Shard(), compute_all(calls)).computed == [1, 2] == calls
    assert run_batches(opened(whole), 3, Shard(), compute_all(calls)).computed == []
    whole.digest_path(0).unlink()  # a batch without its digest is not trusted
    assert run_batches(opened(whole), 3, Shard(), compute_all(calls)).computed == [0]


def test_a_run_that_fails_before_its_first_batch_records_nothing(tmp_path: Path) -> None:
    store = MapStore(tmp_path / "run")

    def failing(todo: list[int]):
        raise CamkitError("the method does not apply")
        yield

    with pytest.raises(CamkitError, match="does not apply"):
        run_batches(opened(store), 3, Shard(), failing)
    assert not store.folder.exists()


def test_read_all_names_missing_batches(tmp_path: Path) -> None:
    store = MapStore(tmp_path)
    record(store)
    store.write(0, batch(0))
    store.write(1, batch(1))
    with pytest.raises(CamkitError, match=r"batches \[2\] are missing"):
        store.read_all()
