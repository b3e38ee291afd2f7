"""Issue 12 (reliability) for the map store, whole-folder explain reruns and eval-localization.

Every bad input is one ``Error:`` line naming the culprit, exit 2, earlier results untouched (``refused``); a
changed input is refused naming what changed, or recomputed under ``--overwrite`` to exactly what a fresh folder
gets; a damaged batch is recomputed (explain, eval) or named (eval reading the maps).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import digit_folder, ok, refused

import camkit
from camkit.workflows.records import file_digest
from camkit.workflows.store import MapStore

BOX = """<annotation><filename>{name}.png</filename><size><width>64</width><height>64</height><depth>3</depth></size>
<object><name>{label}</name><bndbox><xmin>{x0}</xmin><ymin>1</ymin><xmax>{x1}</xmax><ymax>8</ymax></bndbox>
</object></annotation>"""


def explain(base: Path, out: Path, *extra) -> list:
    return ["explain", "--model-path", base / "cnn.keras", "--images", base / "images", "--n-images", "all",
            "--batch-size", 2, "--target", "top1,true", "--save-dir", out, "--n-figures", 0, "--no-progress", *extra]


def evaluate(maps: Path, annotations: Path, out: Path, *extra) -> list:
    return ["eval-localization", "--maps", maps, "--annotations", annotations, "--out", out, "--n-figures", 0,
            "--no-progress", *extra]


def outputs(out: Path) -> dict[str, object]:
    """What an evaluation wrote: the summary (without the maps folder's path), the CSV, the submissions."""
    files = [out / "per_image.csv", *sorted((out / "submissions").iterdir())]
    summary = json.loads((out / "summary.json").read_text())
    return {p.name: p.read_text() for p in files} | {"summary": {k: v for k, v in summary.items() if k != "maps"}}


def batches(maps: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((maps / "batches").glob("*.npz"))]


@pytest.fixture(scope="module")
def base(tmp_path_factory, data_root) -> Path:
    """6 digit images (classes 0, 1, 2), an untrained small GAP CNN, their maps (3 batches) and an evaluation;
    ``other``: the same images' XMLs with other boxes."""
    root = tmp_path_factory.mktemp("store")
    digit_folder(data_root, root / "images", ("0", "1", "2"), 2)
    keras.utils.set_random_seed(0)
    camkit.build_model("small-gap-cnn", (64, 64, 3), 3).save(root / "cnn.keras")
    (root / "other").mkdir()
    for path in sorted((root / "images").rglob("*.png")):
        (root / "other" / f"{path.stem}.xml").write_text(BOX.format(name=path.stem, label=path.parent.name, x0=1,
                                                                     x1=8))
    ok(*explain(root, root / "maps"))
    ok(*evaluate(root / "maps", xml_dir(data_root), root / "ev"))
    return root


def xml_dir(data_root: Path) -> Path:
    return Path(data_root) / "cluttered_digits" / "annotations" / "test"


@pytest.fixture()
def copies(base, tmp_path) -> tuple[Path, Path]:
    """Copies of the maps and of the evaluation, to damage or overwrite."""
    shutil.copytree(base / "maps", tmp_path / "maps")
    shutil.copytree(base / "ev", tmp_path / "ev")
    return tmp_path / "maps", tmp_path / "ev"


# ------------------------------------------------------------------ case 1: an evaluation rerun with other inputs

@pytest.mark.parametrize(("extra", "culprit"), [
    (["--annotations", "OTHER"], "the annotations changed (6 of 6 files differ: test_"),
    (["--annotations", "CSV"], "the annotations changed (1 added: test.csv; 500 removed: test_0000.xml"),
    (["--skip", "SKIP"], "the skip list changed (none before)"),
    (["--threshold", "0.3"], "the settings changed (threshold: 0.15 -> 0.3)"),
], ids=["other-xml", "csv-for-xml", "new-skip-list", "threshold"])
def test_an_evaluation_rerun_with_changed_inputs_is_refused(base, data_root, tmp_path, extra, culprit) -> None:
    (tmp_path / "skip.txt").write_text(f"{sorted((base / 'other').iterdir())[0].stem}\n")
    values = {"OTHER": base / "other", "CSV": xml_dir(data_root).parent / "test.csv", "SKIP": tmp_path / "skip.txt"}
    args = evaluate(base / "maps", xml_dir(data_root), base / "ev") + [values.get(a, a) for a in extra]
    line = refused(args, culprit, base / "ev", base / "maps")
    assert line.startswith(f"Error: --out {base / 'ev'}: ") and "since this evaluation was written; use " \
        "--overwrite to recompute, or another --out" in line


def test_an_evaluation_of_other_maps_is_refused(base, data_root, tmp_path) -> None:
    other = tmp_path / "maps"
    ok(*explain(base, other, "--method", "gradcam++"))
    refused(evaluate(other, xml_dir(data_root), base / "ev"), "the maps changed (their settings.method)", base / "ev")


@pytest.mark.parametrize("change", ["annotations", "skip"])
def test_overwrite_recomputes_what_a_fresh_folder_gets(base, data_root, copies, tmp_path, change) -> None:
    _, ev = copies
    first = sorted((base / "other").iterdir())[0].stem
    (tmp_path / "skip.txt").write_text(f"# one image out\n{first}.png\n")
    extra = ["--skip", tmp_path / "skip.txt"] if change == "skip" else []
    annotations = base / "other" if change == "annotations" else xml_dir(data_root)
    before = outputs(ev)
    ok(*evaluate(base / "maps", annotations, ev, "--overwrite", *extra))
    ok(*evaluate(base / "maps", annotations, tmp_path / "fresh", *extra))
    assert outputs(ev) == outputs(tmp_path / "fresh") != before
    summary = json.loads((ev / "summary.json").read_text())["variants"]["gradcam"]
    assert (summary["n_images"], summary["n_skipped"]) == ((5, 1) if change == "skip" else (6, 0))


# ------------------------------------------------------------------ case 2: a skip list that matches nothing

@pytest.mark.parametrize(("text", "shown"), [("banana\n1\n", "2 of 2 ids match no annotated image ('1', 'banana')"),
                                             ("test_0005\nnot_an_image.png\n", "1 of 2 ids match no annotated "
                                                                               "image ('not_an_image')")],
                         ids=["banana-and-1", "one-unknown"])
def test_a_skip_list_with_unknown_ids_is_refused(base, data_root, tmp_path, text, shown) -> None:
    skip = tmp_path / "skip.txt"
    skip.write_text(text)
    line = refused(evaluate(base / "maps", xml_dir(data_root), tmp_path / "out", "--skip", skip), str(skip),
                   base / "maps")
    assert shown in line and not (tmp_path / "out").exists()


def test_a_skip_list_of_every_image_is_refused(base, data_root, tmp_path) -> None:
    skip = tmp_path / "skip.txt"
    skip.write_text("".join(f"{p.stem}\n" for p in (base / "other").iterdir()))
    refused(evaluate(base / "maps", xml_dir(data_root), tmp_path / "out", "--skip", skip), "leaves out every image",
            base / "maps")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ case 3: an image replaced under its name

def test_a_replaced_image_is_refused_by_name_then_overwritten_like_a_fresh_run(base, tmp_path) -> None:
    shutil.copytree(base / "images", tmp_path / "images")
    shutil.copy(base / "cnn.keras", tmp_path / "cnn.keras")
    shutil.copytree(base / "maps", tmp_path / "maps")
    image = sorted((tmp_path / "images" / "1").iterdir())[0]
    keras.utils.save_img(image, np.asarray(keras.utils.load_img(image))[::-1])  # same name and size, other pixels
    refused(explain(tmp_path, tmp_path / "maps"), f"the images changed (1 of 6 files differ: 1/{image.name}) since "
            "these maps were written; use --overwrite", tmp_path / "maps")
    result = ok(*explain(tmp_path, tmp_path / "maps", "--overwrite"))
    assert "3 of 3 batch(es) computed" in result.output
    ok(*explain(tmp_path, tmp_path / "fresh"))
    assert batches(tmp_path / "maps") == batches(tmp_path / "fresh") != batches(base / "maps")


# ------------------------------------------------------------------ case 4: damaged batches

def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {"truncated": lambda s, b: truncate(s.path(b)), "altered": lambda s, b: flip_byte(s.path(b)),
          "deleted": lambda s, b: s.path(b).unlink(), "sha1-deleted": lambda s, b: s.digest_path(b).unlink()}


@pytest.mark.parametrize("damage", DAMAGE)
def test_explain_recomputes_a_damaged_batch_to_the_same_bytes(base, copies, damage) -> None:
    maps, _ = copies
    DAMAGE[damage](MapStore(maps), 1)
    result = ok(*explain(base, maps))
    assert "1 of 3 batch(es) computed, 2 already there" in result.output
    assert batches(maps) == batches(base / "maps") and MapStore(maps).is_done(1)


@pytest.mark.parametrize(("damage", "problem"), [
    ("truncated", "does not match its batch_00001.sha1 (truncated or altered since it was written); rerun "
                  "`camkit explain` into"),
    ("altered", "does not match its batch_00001.sha1"),
    ("sha1-deleted", "has no batch_00001.sha1"),
    ("deleted", "is missing; finish the explain run, or merge its shards"),
], ids=["truncated", "altered", "sha1-deleted", "deleted"])
def test_evaluating_a_damaged_maps_batch_names_it(base, data_root, copies, tmp_path, damage, problem) -> None:
    maps, _ = copies
    DAMAGE[damage](MapStore(maps), 1)
    line = refused(evaluate(maps, xml_dir(data_root), tmp_path / "out"), "batch_00001.npz", maps)
    assert problem in line and not (tmp_path / "out").exists()


def test_an_unreadable_maps_batch_with_a_matching_digest_is_named(base, data_root, copies, tmp_path) -> None:
    maps, _ = copies
    store = MapStore(maps)
    store.path(2).write_bytes(b"PK\x03\x04 not a zip")
    store.digest_path(2).write_text(f"{file_digest(store.path(2))}\n\n")  # as if written so
    line = refused(evaluate(maps, xml_dir(data_root), tmp_path / "out"), "batch_00002.npz: not a readable batch "
                   "file", maps)
    assert "rerun `camkit explain` into" in line


@pytest.mark.parametrize("damage", ["truncated", "sha1-deleted", "deleted"])
def test_a_damaged_evaluation_batch_is_recomputed(base, data_root, copies, damage) -> None:
    maps, ev = copies
    DAMAGE[damage](MapStore(ev / "eval", suffix=".json", subdir=""), 1)
    result = ok(*evaluate(maps, xml_dir(data_root), ev))
    assert "evaluated 1 of 3 batch(es)" in result.output and outputs(ev) == outputs(base / "ev")


# ------------------------------------------------------------------ case 5: nothing recorded before the run can work

def test_a_true_column_without_classes_writes_nothing_and_the_corrected_run_works(base, tmp_path) -> None:
    flat = tmp_path / "images"
    flat.mkdir()
    for path in (base / "images").rglob("*.png"):
        shutil.copy(path, flat / path.name)
    shutil.copy(base / "cnn.keras", tmp_path / "cnn.keras")
    line = refused(explain(tmp_path, tmp_path / "maps"), "--target true: 6 of 6 images are not in a class folder")
    assert not (tmp_path / "maps").exists(), line
    result = ok(*explain(tmp_path, tmp_path / "maps", "--target", "top1"))
    assert "3 of 3 batch(es) computed" in result.output


def test_a_method_that_does_not_apply_leaves_no_run_and_keeps_the_previous(base, copies, tmp_path) -> None:
    maps, _ = copies
    dense = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(4, 3, name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(3)])
    dense.save(tmp_path / "dense.keras")
    args = explain(base, tmp_path / "new", "--method", "cam", "--target", "top1")
    args[args.index("--model-path") + 1] = tmp_path / "dense.keras"
    refused(args, "GlobalAveragePooling")
    assert not (tmp_path / "new").exists()
    args[args.index("--save-dir") + 1] = maps
    refused([*args, "--overwrite"], "GlobalAveragePooling", maps)  # the earlier run is kept


# ------------------------------------------------------------------ case 6: destinations

def locked(tmp_path: Path) -> Path:
    """A folder this process cannot write in (root writes anywhere: then a read-only one of the system)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    return folder if not os.access(folder, os.W_OK) else Path("/proc/sys")


DESTINATIONS = {"a-file": (lambda t: t / "file.txt", "a file is there, not a folder"),
                "under-a-file": (lambda t: t / "file.txt" / "sub", "file.txt is a file, so the folder cannot be made"),
                "name-too-long": (lambda t: t / ("n" * 300) / "x", "has 300 bytes, more than the file system allows"),
                "not-writable": (lambda t: locked(t) / "out", "is not writable")}


@pytest.mark.parametrize("case", DESTINATIONS)
@pytest.mark.parametrize("command", ["explain", "eval-localization"])
def test_a_bad_destination_is_refused_before_computing(base, data_root, tmp_path, command, case) -> None:
    (tmp_path / "file.txt").write_text("not a folder")
    path, problem = DESTINATIONS[case][0](tmp_path), DESTINATIONS[case][1]
    option = "--save-dir" if command == "explain" else "--out"
    args = explain(base, path) if command == "explain" else evaluate(base / "maps", xml_dir(data_root), path)
    line = refused(args, f"{option} {path}: ", tmp_path, base / "maps")
    assert problem in line


# ------------------------------------------------------------------ more: maps, annotations, shards, run records

def small_run(base: Path, out: Path) -> Path:
    ok("explain", "--model-path", base / "cnn.keras", "--images", base / "images", "--n-images", 1, "--save-dir", out,
       "--no-progress")
    return out


def bad_xml(base: Path, tmp: Path, text: str) -> Path:
    shutil.copytree(base / "other", tmp / "xml")
    (tmp / "xml" / sorted((tmp / "xml").iterdir())[0].name).write_text(text)
    return tmp / "xml"


MAPS = {  # --maps: (the folder, what the line says)
    "images-folder": (lambda b, t: b / "images", "no run.json; give the folder of a `camkit explain --n-images all`"),
    "empty-folder": (lambda b, t: (t / "empty").mkdir() or t / "empty", "no run.json"),
    "no-such-folder": (lambda b, t: t / "nothing", "no such folder"),
    "a-small-run": (lambda b, t: small_run(b, t / "small"), "holds the explanation.npz of a small explain run"),
}


@pytest.mark.parametrize("case", MAPS)
def test_maps_that_are_not_a_map_store_are_refused(base, data_root, tmp_path, case) -> None:
    maps = MAPS[case][0](base, tmp_path)
    line = refused(evaluate(maps, xml_dir(data_root), tmp_path / "out"), f"--maps {maps}: ", tmp_path)
    assert MAPS[case][1] in line


RECORDS = {"garbled": ('{"settings": {', "is not a run record camkit wrote (not valid JSON)"),
           "a-list": ("[1, 2]", "is not a run record camkit wrote (no settings and inputs)"),
           "no-batch-size": ('{"settings": {"n_images": 6}, "inputs": {}}', "settings.batch_size must be a positive "
                                                                              "count, not None"),
           "no-method": ('{"settings": {"n_images": 6, "batch_size": 2}, "inputs": {}}', "has no settings.method")}


@pytest.mark.parametrize("case", RECORDS)
def test_an_edited_maps_record_is_refused(base, data_root, copies, tmp_path, case) -> None:
    maps, _ = copies
    (maps / "run.json").write_text(RECORDS[case][0])
    line = refused(evaluate(maps, xml_dir(data_root), tmp_path / "out"), f"--maps {maps}: ", maps)
    assert RECORDS[case][1] in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["garbled", "a-list"])
def test_an_edited_explain_record_is_refused_then_overwritten(base, copies, case) -> None:
    maps, _ = copies
    (maps / "run.json").write_text(RECORDS[case][0])
    refused(explain(base, maps), f"--save-dir {maps}: {maps / 'run.json'} {RECORDS[case][1]}; use --overwrite",
            maps)
    if case == "garbled":
        assert "3 of 3 batch(es) computed" in ok(*explain(base, maps, "--overwrite")).output
        assert batches(maps) == batches(base / "maps")


def test_explain_resumed_with_another_method_is_refused(base) -> None:
    refused(explain(base, base / "maps", "--method", "gradcam++"), 'the settings changed (method: "gradcam" -> '
            '"gradcam++") since these maps were written', base / "maps")


ANNOTATIONS = {
    "broken-xml": ("<annotation><size>", "is not valid XML"),
    "box-outside": (BOX.format(name="x", label="0", x0=60, x1=70), "<bndbox>: xmax 70 lies outside the 64x64 image"),
}


@pytest.mark.parametrize("case", ANNOTATIONS)
def test_bad_annotation_files_are_named(base, tmp_path, case) -> None:
    xml = bad_xml(base, tmp_path, ANNOTATIONS[case][0])
    line = refused(evaluate(base / "maps", xml, tmp_path / "out"), str(sorted(xml.iterdir())[0]), base / "maps")
    assert ANNOTATIONS[case][1] in line and not (tmp_path / "out").exists()


def test_annotations_of_other_images_are_refused(base, data_root, tmp_path) -> None:
    (tmp_path / "xml").mkdir()
    shutil.copy(xml_dir(data_root) / "test_0499.xml", tmp_path / "xml")
    refused(evaluate(base / "maps", tmp_path / "xml", tmp_path / "out"), "--annotations: no annotation for 6 of 6 "
            "images of the maps", base / "maps")
    assert not (tmp_path / "out").exists()


def test_maps_without_a_true_column_are_refused(base, data_root, tmp_path) -> None:
    ok(*explain(base, tmp_path / "maps", "--target", "top1"))
    refused(evaluate(tmp_path / "maps", xml_dir(data_root), tmp_path / "out"), "the maps need columns top1 and true",
            tmp_path / "maps")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("shard", ["3/2", "abc", "1/0"])
@pytest.mark.parametrize("command", ["explain", "eval-localization"])
def test_a_bad_shard_is_refused(base, data_root, tmp_path, command, shard) -> None:
    args = explain(base, tmp_path / "out") if command == "explain" else evaluate(base / "maps", xml_dir(data_root),
                                                                                 tmp_path / "out")
    refused([*args, "--shard", shard], f"--shard: expected i/n with 0 <= i < n (e.g. 0/4), got '{shard}'", base)
    assert not (tmp_path / "out").exists()


def test_maps_computed_from_annotations_with_other_labels_are_refused(base, tmp_path) -> None:
    shutil.copytree(base / "other", tmp_path / "relabelled")
    first = sorted((tmp_path / "relabelled").iterdir())[0]
    label = int(first.read_text().split("<name>")[1][0])
    first.write_text(first.read_text().replace(f"<name>{label}</name>", f"<name>{(label + 1) % 3}</name>"))
    args = ["eval-localization", "--model-path", base / "cnn.keras", "--images", base / "images", "--method",
            "gradcam", "--batch-size", 2, "--root", tmp_path, "--out", tmp_path / "out", "--n-figures", 0,
            "--no-progress", "--annotations"]
    ok(*args, base / "other")
    maps = tmp_path / "plots" / "cnn" / "explain_gradcam"
    refused([*args, tmp_path / "relabelled"], f"{maps}: the images' true classes changed since these maps were "
            "written; use --overwrite to recompute, or another folder", maps, tmp_path / "out")


def test_the_maps_folder_as_output_is_refused(base, data_root) -> None:
    refused(evaluate(base / "maps", xml_dir(data_root), base / "maps"), f"--out {base / 'maps'}: that is the --maps "
            "folder", base / "maps")


def test_a_partial_rerun_removes_the_summary_it_no_longer_matches(base, data_root, copies) -> None:
    maps, ev = copies
    for b in (0, 1):
        MapStore(ev / "eval", suffix=".json", subdir="").path(b).unlink()
    partial = ok(*evaluate(maps, xml_dir(data_root), ev, "--shard", "1/3"))
    assert "not every batch is evaluated yet" in partial.output and not (ev / "summary.json").exists()
    assert "evaluated 1 of 3 batch(es)" in ok(*evaluate(maps, xml_dir(data_root), ev)).output
    assert outputs(ev) == outputs(base / "ev")
