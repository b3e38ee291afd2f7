"""Tests for camkit.data.boxes: VOC/ILSVRC XML, box CSVs, class maps and skip lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from camkit.data.boxes import (
    Annotation,
    Box,
    ClassMap,
    image_id,
    load_annotations,
    read_boxes_csv,
    read_skip_list,
    read_voc_xml,
)
from camkit.errors import CamkitError

# ILSVRC2012 val image 1 (a sea snake), as the devkit ships it.
VAL_XML = """<annotation>
\t<folder>val</folder>
\t<filename>ILSVRC2012_val_00000001</filename>
\t<source>
\t\t<database>ILSVRC_2012</database>
\t</source>
\t<size>
\t\t<width>500</width>
\t\t<height>375</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>n01751748</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>111</xmin>
\t\t\t<ymin>108</ymin>
\t\t\t<xmax>441</xmax>
\t\t\t<ymax>343</ymax>
\t\t</bndbox>
\t</object>
</annotation>
"""


def _obj(name: str, box: tuple[object, ...]) -> str:
    tags = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True))
    return f"<object><name>{name}</name><bndbox>{tags}</bndbox></object>"


def _xml(objects: str, size: str = "<size><width>500</width><height>375</height></size>") -> str:
    return f"<annotation><filename>img</filename>{size}{objects}</annotation>"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_ilsvrc_val_xml(tmp_path: Path) -> None:
    ann = read_voc_xml(_write(tmp_path, "ILSVRC2012_val_00000001.xml", VAL_XML))
    assert ann == Annotation("ILSVRC2012_val_00000001", 500, 375, (("n01751748", Box(111, 108, 441, 343)),))
    assert ann.labels == ("n01751748",)
    box = ann.boxes()[0]
    assert (box.width, box.height, box.area) == (331, 236, 331 * 236)


def test_multiple_objects_and_integral_floats(tmp_path: Path) -> None:
    text = _xml(_obj("n1", (1, 1, 10, 10)) + _obj("n2", ("5.0", 5, 500, 375)) + _obj("n1", (20, 20, 30, 30)))
    ann = read_voc_xml(_write(tmp_path, "a.xml", text))
    assert ann.labels == ("n1", "n2")
    assert ann.boxes("n1") == [Box(1, 1, 10, 10), Box(20, 20, 30, 30)]
    assert ann.boxes("n2") == [Box(5, 5, 500, 375)]
    assert len(ann.boxes()) == 3


@pytest.mark.parametrize(("text", "field"), [
    (_xml(_obj("n1", (1, 1, 2, 2)), size=""), "<size>"),
    (_xml(_obj("n1", (1, 1, 2, 2)), size="<size><width>500</width></size>"), "<size><height>"),
    (_xml(_obj("n1", (1, 1, 2, 2)), size="<size><width>abc</width><height>3</height></size>"), "<size><width>"),
    (_xml(_obj("n1", (1, "12.5", 2, 20))), "<bndbox><ymin>"),
    (_xml(_obj("n1", (30, 1, 20, 2))), "xmin 30 > xmax 20"),
    (_xml(_obj("n1", (1, 1, 501, 2))), "xmax 501"),
    (_xml(_obj("n1", (0, 1, 5, 2))), "xmin 0"),
    (_xml("<object><name>n1</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax></bndbox></object>"),
     "<bndbox><ymax>"),
    (_xml("<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>"),
     "<name>"),
    (_xml("<object><name>n1</name></object>"), "<bndbox>"),
    (_xml(""), "<object>"),
    ("this is not xml", "not valid XML"),
    ("<foo/>", "<annotation>"),
])
def test_malformed_xml_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = _write(tmp_path, "bad.xml", text)
    with pytest.raises(CamkitError) as err:
        read_voc_xml(path)
    assert str(path) in str(err.value)
    assert field in str(err.value)


def test_clip_clamps_boxes_to_the_image(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.xml", _xml(_obj("n1", (0, 3, 501, 376))))
    assert read_voc_xml(path, clip=True).boxes() == [Box(1, 3, 500, 375)]


def test_load_annotations_folder_keys_by_stem(tmp_path: Path) -> None:
    folder = tmp_path / "val"
    folder.mkdir()
    _write(folder, "ILSVRC2012_val_00000001.xml", VAL_XML)
    _write(folder, "ILSVRC2012_val_00000002.xml", _xml(_obj("n1", (1, 1, 2, 2))))
    _write(folder, "notes.txt", "ignored")
    anns = load_annotations(folder)
    assert list(anns) == ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"]
    assert anns["ILSVRC2012_val_00000002"].filename == "img"
    (tmp_path / "empty").mkdir()
    with pytest.raises(CamkitError, match=r"no \.xml files"):
        load_annotations(tmp_path / "empty")
    with pytest.raises(CamkitError, match=r"expected a folder of \.xml files"):
        load_annotations(folder / "notes.txt")


def test_read_boxes_csv(tmp_path: Path) -> None:
    path = _write(tmp_path, "boxes.csv", "image,label,xmin,ymin,xmax,ymax,width,height\n"
                                         "a.jpg,cat,1,2,3,4,10,10\n"
                                         "\n"
                                         "a.jpg,dog,5,5,10,10,10,10\n"
                                         "sub/b.png,cat,1,1,7,7,,\n")
    anns = load_annotations(path)
    assert set(anns) == {"a", "b"}
    assert anns["a"] == Annotation("a.jpg", 10, 10, (("cat", Box(1, 2, 3, 4)), ("dog", Box(5, 5, 10, 10))))
    assert anns["b"] == Annotation("sub/b.png", None, None, (("cat", Box(1, 1, 7, 7)),))
    assert read_boxes_csv(_write(tmp_path, "min.csv", "label,image,ymin,xmin,ymax,xmax\nc,x,1,2,3,4\n")) == {
        "x": Annotation("x", None, None, (("c", Box(2, 1, 4, 3)),))}


@pytest.mark.parametrize(("text", "message"), [
    ("image,label,xmin,ymin,xmax\n", "line 1: missing column(s) ymax"),
    ("", "line 1: missing column(s) image"),
    ("image,label,xmin,ymin,xmax,ymax\n", "has no rows"),
    ("image,label,xmin,ymin,xmax,ymax\na,c,1,1,2,2\na,c,1,x,2,2\n", "line 3: ymin must be an integer"),
    ("image,label,xmin,ymin,xmax,ymax\na,c,5,1,2,2\n", "line 2: xmin 5 > xmax 2"),
    ("image,label,xmin,ymin,xmax,ymax\na,c,1,1,2\n", "line 2: 5 fields"),
    ("image,label,xmin,ymin,xmax,ymax\na,,1,1,2,2\n", "line 2: empty label"),
    ("image,label,xmin,ymin,xmax,ymax,width,height\na,c,1,1,20,2,10,10\n", "line 2: xmax 20"),
    ("image,label,xmin,ymin,xmax,ymax,width,height\na,c,1,1,2,2,10,10\na,c,1,1,2,2,10,12\n", "line 3: size"),
    ("image,label,xmin,ymin,xmax,ymax\nx/a.jpg,c,1,1,2,2\ny/a.jpg,c,1,1,2,2\n", "line 3: images"),
])
def test_csv_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, "boxes.csv", text)
    with pytest.raises(CamkitError) as err:
        read_boxes_csv(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_imagenet_class_map_round_trip() -> None:
    cm = ClassMap.imagenet()
    assert len(cm) == 1000
    assert cm.label(0) == "n01440764"  # tench: Keras index 0 ...
    assert cm.submission_id(0) == 449  # ... is CLS-LOC id 449 in map_clsloc.txt
    assert cm.submission_id("n01440764") == 449
    assert cm.index("n01440764") == 0
    assert cm.index_of_id(449) == 0
    assert cm.submission_id(1) == 450  # goldfish
    assert cm.label(cm.index_of_id(1)) == "n02119789"  # CLS-LOC id 1 is the kit fox, Keras index 278
    assert cm.index("n02119789") == 278
    assert sorted(cm.ids) == list(range(1, 1001))
    for bad in (lambda: cm.label(1000), lambda: cm.index("n0"), lambda: cm.index_of_id(0)):
        with pytest.raises(CamkitError):
            bad()


def test_class_map_from_files(tmp_path: Path) -> None:
    synsets = _write(tmp_path, "synsets.txt", "n02119789 kit fox, Vulpes macrotis\nn01440764 tench, Tinca tinca\n")
    clsloc = _write(tmp_path, "clsloc.txt", "n01440764 7 tench\nn02119789 3 kit_fox\n")
    cm = ClassMap.from_files(synsets, clsloc)
    assert cm.labels == ("n02119789", "n01440764") and cm.ids == (3, 7)
    assert ClassMap.from_files(synsets).ids == (1, 449)  # the shipped map_clsloc.txt
    with pytest.raises(CamkitError, match="no id for 1 WNID"):
        ClassMap.from_files(synsets, _write(tmp_path, "short.txt", "n01440764 7 tench\n"))
    with pytest.raises(CamkitError, match="line 2"):
        ClassMap.from_files(synsets, _write(tmp_path, "bad.txt", "n01440764 7 tench\nn02119789 x\n"))


def test_class_map_from_names_uses_sorted_ids() -> None:
    cm = ClassMap.from_names(["dog", "cat", "bird"])  # model order as trained
    assert cm.ids == (3, 2, 1)  # submission ids are 1..K in sorted name order
    assert cm.submission_id(0) == 3 and cm.submission_id("bird") == 1 and cm.index_of_id(2) == 1
    with pytest.raises(CamkitError, match="duplicate labels"):
        ClassMap.from_names(["a", "a"])


def test_skip_list_indices_and_ids(tmp_path: Path) -> None:
    ids = [f"ILSVRC2012_val_{i:08d}" for i in (3, 1, 2, 4)]
    skip = read_skip_list(_write(tmp_path, "blacklist.txt", "1\n\n3  # comment\n"))
    assert skip.indices == {1, 3} and skip.resolve(ids) == {"ILSVRC2012_val_00000001", "ILSVRC2012_val_00000003"}
    named = read_skip_list(_write(tmp_path, "names.txt", "# bad images\nILSVRC2012_val_00000002.JPEG\n"))
    assert named.resolve(ids) == {"ILSVRC2012_val_00000002"}
    unknown = read_skip_list(_write(tmp_path, "unknown.txt", "ILSVRC2012_val_00000002.JPEG\nfoo\nbar\n"))
    with pytest.raises(CamkitError, match=r"unknown.txt: 2 of 3 ids match no annotated image \('bar', 'foo'\)"):
        unknown.resolve(ids)
    numeric = read_skip_list(_write(tmp_path, "numeric.txt", "000123\n"), kind="ids")
    assert numeric.ids == {"000123"} and not numeric.indices
    with pytest.raises(CamkitError, match="index 9 but there are only 4 images"):
        read_skip_list(_write(tmp_path, "big.txt", "9\n")).resolve(ids)
    with pytest.raises(CamkitError, match="line 2: expected a 1-based image index"):
        read_skip_list(_write(tmp_path, "mixed.txt", "1\nfoo\n"), kind="indices")
    with pytest.raises(CamkitError, match="line 1"):
        read_skip_list(_write(tmp_path, "zero.txt", "0\n"))


def test_image_id_and_box_validation() -> None:
    assert image_id("val/ILSVRC2012_val_00000001.JPEG") == "ILSVRC2012_val_00000001"
    assert image_id("ILSVRC2012_val_00000001") == "ILSVRC2012_val_00000001"
    with pytest.raises(ValueError, match="empty box"):
        Box(5, 1, 4, 1)
