"""Bounding-box annotations for weak localization, class maps and skip lists.

Box convention (ILSVRC CLS-LOC and PASCAL VOC): integer pixel coordinates, **1-based and inclusive**, so
the box ``(1, 1, W, H)`` is the whole ``W × H`` image and a box is ``xmax - xmin + 1`` pixels wide.

Sources of annotations:

* PASCAL-VOC XML, one file per image, as in the ILSVRC val set (``<filename>``, ``<size>`` with
  ``<width>``/``<height>``, one or more ``<object>`` with ``<name>`` and ``<bndbox>``);
* a CSV with the header ``image,label,xmin,ymin,xmax,ymax`` (optional ``width,height``), one row per box.

Annotations are keyed by **image id** = the file stem (``ILSVRC2012_val_00000001.JPEG`` ->
``ILSVRC2012_val_00000001``); a folder of XMLs is keyed by the XML file stems.

:class:`ClassMap` links the model's class index, the annotation label (the XML ``<name>``: an ImageNet
WNID, or a class name for other benchmarks) and the submission id (ILSVRC CLS-LOC id 1..1000 from
``map_clsloc.txt``, which is **not** the Keras class order: Keras index 0 ``n01440764`` tench is id 449).
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from camkit.data.labels import clsloc_ids, imagenet_wnids, read_synsets
from camkit.errors import CamkitError

_CLSLOC_LINE = re.compile(r"^(\S+)\s+(\d+)(?:\s+\S.*)?$")
_INDEX = re.compile(r"^\d+$")
CSV_COLUMNS = ("image", "label", "xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class Box:
    """A box in 1-based inclusive pixel coordinates."""

    xmin: int
    ymin: int
    xmax: int
    ymax: int

    def __post_init__(self) -> None:
        if self.xmin > self.xmax or self.ymin > self.ymax:
            raise ValueError(f"empty box {self.as_tuple()}: needs xmin <= xmax and ymin <= ymax")

    @property
    def width(self) -> int:
        return self.xmax - self.xmin + 1

    @property
    def height(self) -> int:
        return self.ymax - self.ymin + 1

    @property
    def area(self) -> int:
        return self.width * self.height

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.xmin, self.ymin, self.xmax, self.ymax)


@dataclass(frozen=True)
class Annotation:
    """One image's ground truth: size (``None`` when a CSV gives none) and ``(label, Box)`` objects."""

    filename: str
    width: int | None
    height: int | None
    objects: tuple[tuple[str, Box], ...]

    @property
    def labels(self) -> tuple[str, ...]:
        """The distinct labels, in order of first appearance."""
        return tuple(dict.fromkeys(label for label, _ in self.objects))

    def boxes(self, label: str | None = None) -> list[Box]:
        """The boxes of ``label`` (all boxes when ``None``)."""
        return [box for name, box in self.objects if label is None or name == label]


def image_id(name: str | Path) -> str:
    """The id an image is matched by: its file stem (``'val/x.JPEG'`` -> ``'x'``)."""
    return PurePosixPath(str(name).replace("\\", "/")).stem


def _coord(text: str | None, where: str, tag: str) -> int:
    """An integer field (``'12'``; an integral ``'12.0'`` is accepted)."""
    if text is None or not text.strip():
        raise CamkitError(f"{where}: missing {tag}")
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        raise CamkitError(f"{where}: {tag} must be an integer, got {text!r}") from None
    if not value.is_integer():
        raise CamkitError(f"{where}: {tag} must be an integer, got {text!r}")
    return int(value)


def _check_box(values: Sequence[int], size: tuple[int | None, int | None], where: str, clip: bool) -> Box:
    xmin, ymin, xmax, ymax = values
    if xmin > xmax:
        raise CamkitError(f"{where}: xmin {xmin} > xmax {xmax}")
    if ymin > ymax:
        raise CamkitError(f"{where}: ymin {ymin} > ymax {ymax}")
    width, height = size
    limits = (("xmin", xmin, 1, width), ("ymin", ymin, 1, height), ("xmax", xmax, 1, width), ("ymax", ymax, 1, height))
    for tag, value, low, high in [] if clip else limits:
        if value < low:
            raise CamkitError(f"{where}: {tag} {value} lies outside the image (coordinates are 1-based)")
        if high is not None and value > high:
            raise CamkitError(f"{where}: {tag} {value} lies outside the {width}x{height} image "
                              f"(clip=True clamps boxes to the image)")
    if clip:
        xmin, ymin = max(xmin, 1), max(ymin, 1)
        xmax, ymax = min(xmax, width or xmax), min(ymax, height or ymax)
        if xmin > xmax or ymin > ymax:
            raise CamkitError(f"{where}: box {tuple(values)} lies entirely outside the {width}x{height} image")
    return Box(xmin, ymin, xmax, ymax)


def read_voc_xml(path: str | Path, *, clip: bool = False) -> Annotation:
    """One PASCAL-VOC / ILSVRC XML annotation. ``clip=True`` clamps boxes that leave the image.

    Raises :class:`CamkitError` naming the file and the field for a missing or malformed ``<size>``,
    non-integer coordinates, ``xmin > xmax``, boxes outside the image, no ``<object>``, or non-XML text.
    """
    path = Path(path)
    if not path.is_file():
        raise CamkitError(f"annotation file not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise CamkitError(f"annotation {path} is not valid XML: {e}") from None
    except OSError as e:
        raise CamkitError(f"cannot read annotation {path}: {e.strerror}") from None
    if root.tag != "annotation":
        raise CamkitError(f"annotation {path}: root element is <{root.tag}>, expected <annotation>")
    filename = (root.findtext("filename") or "").strip() or path.stem
    size = root.find("size")
    if size is None:
        raise CamkitError(f"annotation {path}: missing <size>")
    width = _coord(size.findtext("width"), f"annotation {path}", "<size><width>")
    height = _coord(size.findtext("height"), f"annotation {path}", "<size><height>")
    if width < 1 or height < 1:
        raise CamkitError(f"annotation {path}: <size> must be positive, got {width}x{height}")
    objects = []
    for n, obj in enumerate(root.findall("object"), 1):
        where = f"annotation {path}, object {n}"
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise CamkitError(f"{where}: missing <name>")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise CamkitError(f"{where}: missing <bndbox>")
        values = [_coord(bndbox.findtext(tag), where, f"<bndbox><{tag}>") for tag in ("xmin", "ymin", "xmax", "ymax")]
        objects.append((name, _check_box(values, (width, height), f"{where} <bndbox>", clip)))
    if not objects:
        raise CamkitError(f"annotation {path}: no <object> elements")
    return Annotation(filename, width, height, tuple(objects))


def read_boxes_csv(path: str | Path, *, clip: bool = False) -> dict[str, Annotation]:
    """Annotations from a CSV with columns ``image,label,xmin,ymin,xmax,ymax`` (+ optional ``width,height``).

    One row per box; rows of one image are merged. Keys are image ids (file stems of ``image``). Errors
    name the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise CamkitError(f"box file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise CamkitError(f"cannot read box file {path}: {e}") from None
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise CamkitError(f"box file {path}, line 1: missing column(s) {', '.join(missing)} "
                          f"(expected header {','.join(CSV_COLUMNS)}[,width,height])")
    col = {name: header.index(name) for name in (*CSV_COLUMNS, "width", "height") if name in header}
    rows: dict[str, tuple[str, int | None, int | None, list[tuple[str, Box]]]] = {}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        where = f"box file {path}, line {reader.line_num}"
        if len(row) != len(header):
            raise CamkitError(f"{where}: {len(row)} fields, the header has {len(header)}")
        cell = {name: row[i].strip() for name, i in col.items()}
        for name in ("image", "label"):
            if not cell[name]:
                raise CamkitError(f"{where}: empty {name}")
        size = tuple(_coord(cell[k], where, k) if cell.get(k) else None for k in ("width", "height"))
        if any(v is not None and v < 1 for v in size):
            raise CamkitError(f"{where}: width and height must be positive, got {size}")
        box = _check_box([_coord(cell[k], where, k) for k in CSV_COLUMNS[2:]], size, where, clip)
        key = image_id(cell["image"])
        name, width, height, objects = rows.setdefault(key, (cell["image"], *size, []))
        if name != cell["image"]:
            raise CamkitError(f"{where}: images {name!r} and {cell['image']!r} have the same id {key!r}")
        if (width, height) != size:
            raise CamkitError(f"{where}: size {size} of {name!r} differs from an earlier row's {(width, height)}")
        objects.append((cell["label"], box))
    if not rows:
        raise CamkitError(f"box file {path} has no rows")
    return {key: Annotation(name, w, h, tuple(objs)) for key, (name, w, h, objs) in rows.items()}


def load_annotations(path: str | Path, *, clip: bool = False) -> dict[str, Annotation]:
    """Annotations keyed by image id from a folder of XMLs (keyed by XML file stem), one XML, or a CSV."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".xml" and not p.name.startswith("."))
        if not files:
            raise CamkitError(f"annotation folder {path} holds no .xml files")
        return {p.stem: read_voc_xml(p, clip=clip) for p in files}
    if not path.exists():
        raise CamkitError(f"annotations not found: {path}")
    if path.suffix.lower() == ".csv":
        return read_boxes_csv(path, clip=clip)
    if path.suffix.lower() == ".xml":
        return {path.stem: read_voc_xml(path, clip=clip)}
    raise CamkitError(f"annotations {path}: expected a folder of .xml files, an .xml or a .csv file")


@dataclass(frozen=True)
class ClassMap:
    """Model class index <-> annotation label (WNID or class name) <-> submission id.

    ``labels[i]`` and ``ids[i]`` belong to model class ``i``. Build it with :meth:`imagenet` (Keras
    order, ILSVRC CLS-LOC ids), :meth:`from_files` or :meth:`from_names`.
    """

    labels: tuple[str, ...]
    ids: tuple[int, ...]
    source: str = "class map"
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _by_id: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.ids):
            raise CamkitError(f"{self.source}: {len(self.labels)} labels but {len(self.ids)} ids")
        index = {label: i for i, label in enumerate(self.labels)}
        by_id = {sid: i for i, sid in enumerate(self.ids)}
        if len(index) != len(self.labels):
            raise CamkitError(f"{self.source}: duplicate labels")
        if len(by_id) != len(self.ids):
            raise CamkitError(f"{self.source}: duplicate submission ids")
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_by_id", by_id)

    def __len__(self) -> int:
        return len(self.labels)

    def label(self, index: int) -> str:
        """The annotation label of model class ``index``."""
        if not 0 <= index < len(self.labels):
            raise CamkitError(f"{self.source}: class index {index} outside 0..{len(self.labels) - 1}")
        return self.labels[index]

    def index(self, label: str) -> int:
        """The model class index of an annotation label."""
        if label not in self._index:
            raise CamkitError(f"{self.source}: unknown label {label!r}")
        return self._index[label]

    def submission_id(self, key: int | str) -> int:
        """The submission id of a model class index (int) or an annotation label (str)."""
        return self.ids[self.index(key) if isinstance(key, str) else self._checked(key)]

    def index_of_id(self, submission_id: int) -> int:
        """The model class index of a submission id."""
        if submission_id not in self._by_id:
            raise CamkitError(f"{self.source}: unknown submission id {submission_id}")
        return self._by_id[submission_id]

    def _checked(self, index: int) -> int:
        self.label(index)
        return int(index)

    @classmethod
    def imagenet(cls) -> ClassMap:
        """The 1000 ImageNet classes in Keras order with their ILSVRC CLS-LOC ids (shipped tables)."""
        ids = clsloc_ids()
        wnids = imagenet_wnids()
        return cls(tuple(wnids), tuple(ids[w] for w in wnids), "ImageNet class map")

    @classmethod
    def from_files(cls, synsets: str | Path, clsloc: str | Path | None = None) -> ClassMap:
        """WNIDs in model order from a synset file; ids from a ``map_clsloc.txt`` (default: the shipped one).

        The ``clsloc`` file has lines ``WNID ID [name]``; every model WNID must appear in it.
        """
        wnids = [wnid for wnid, _ in read_synsets(synsets)]
        ids = clsloc_ids() if clsloc is None else _read_clsloc(Path(clsloc))
        where = f"class map file {clsloc if clsloc is not None else 'map_clsloc.txt (shipped)'}"
        missing = [w for w in wnids if w not in ids]
        if missing:
            raise CamkitError(f"{where}: no id for {len(missing)} WNID(s) of {synsets}, e.g. {missing[0]}")
        return cls(tuple(wnids), tuple(ids[w] for w in wnids), f"class map {synsets}")

    @classmethod
    def from_names(cls, class_names: Sequence[str]) -> ClassMap:
        """For benchmarks whose XML ``<name>`` is the class name (e.g. the class folder names).

        The model's class ``i`` is ``class_names[i]``; submission ids are 1..K in **sorted** name order.
        """
        names = [str(n) for n in class_names]
        rank = {name: i for i, name in enumerate(sorted(set(names)), 1)}
        return cls(tuple(names), tuple(rank[n] for n in names), "class map from names")


def _read_clsloc(path: Path) -> dict[str, int]:
    if not path.is_file():
        raise CamkitError(f"class map file not found: {path}")
    ids: dict[str, int] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        m = _CLSLOC_LINE.match(line.strip())
        if m is None:
            raise CamkitError(f"class map file {path}, line {n}: expected 'WNID ID [name]', got {line[:60]!r}")
        if m.group(1) in ids:
            raise CamkitError(f"class map file {path}, line {n}: {m.group(1)} appears twice")
        ids[m.group(1)] = int(m.group(2))
    if not ids:
        raise CamkitError(f"class map file {path} is empty")
    return ids


@dataclass(frozen=True)
class SkipList:
    """Images to leave out of an evaluation: 1-based indices and/or image ids.

    Index ``i`` means the ``i``-th image id in sorted order of the whole annotated set (for ILSVRC val,
    index 36 is ``ILSVRC2012_val_00000036``, as in the official ``ILSVRC2014_clsloc_validation_blacklist.txt``).
    """

    indices: frozenset[int] = frozenset()
    ids: frozenset[str] = frozenset()
    source: str = "skip list"

    def resolve(self, image_ids: Iterable[str]) -> frozenset[str]:
        """The skipped image ids, given all image ids of the annotated set; an entry that matches none is an error."""
        ordered = sorted(image_ids)
        too_big = [i for i in self.indices if i > len(ordered)]
        if too_big:
            raise CamkitError(f"{self.source}: index {max(too_big)} but there are only {len(ordered)} images")
        unmatched = sorted(self.ids - set(ordered))
        if unmatched:
            shown = ", ".join(repr(i) for i in unmatched[:5]) + (", ..." if len(unmatched) > 5 else "")
            example = f"; ids are file stems, e.g. {ordered[0]!r}" if ordered else ""
            raise CamkitError(f"{self.source}: {len(unmatched)} of {len(self.ids)} ids match no annotated image "
                              f"({shown}){example}")
        return frozenset(ordered[i - 1] for i in self.indices) | self.ids


def read_skip_list(path: str | Path, kind: Literal["auto", "indices", "ids"] = "auto") -> SkipList:
    """Read a skip list (blacklist): one entry a line, blank lines and ``#`` comments ignored.

    ``kind="auto"``: when every entry is a plain integer the file holds 1-based image indices (the
    official ILSVRC blacklist format), else image ids or file names (compared by file stem). Pass
    ``kind="ids"`` for datasets whose image ids are numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise CamkitError(f"skip list not found: {path}")
    entries = [(n, line.split("#", 1)[0].strip()) for n, line in enumerate(path.read_text().splitlines(), 1)]
    entries = [(n, e) for n, e in entries if e]
    if kind not in ("auto", "indices", "ids"):
        raise CamkitError(f"skip list {path}: kind must be auto, indices or ids, got {kind!r}")
    if kind == "auto":
        kind = "indices" if entries and all(_INDEX.match(e) for _, e in entries) else "ids"
    if kind == "ids":
        return SkipList(ids=frozenset(image_id(e) for _, e in entries), source=f"skip list {path}")
    indices = set()
    for n, entry in entries:
        if not _INDEX.match(entry) or int(entry) < 1:
            raise CamkitError(f"skip list {path}, line {n}: expected a 1-based image index, got {entry!r}")
        indices.add(int(entry))
    return SkipList(indices=frozenset(indices), source=f"skip list {path}")
