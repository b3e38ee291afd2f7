"""Weak-localization metrics for class activation maps.

Boxes come from maps as in :mod:`camkit.metrics.map_boxes` (largest 8-connected component above a
fraction of the maximum, in original image coordinates).

* **ILSVRC CLS-LOC top-k localization error** (Russakovsky et al., IJCV 2015): a guess ``(label, box)``
  is correct when the label matches and the inclusive IoU with any ground-truth box of that label is
  >= 0.5; the top-k error is the fraction of images with no correct guess among the first k.
* **GT-known localization accuracy**: the box from the ground-truth class's map is correct at IoU >= 0.5.
* **MaxBoxAcc** (Choe et al., CVPR 2020, "Evaluating Weakly Supervised Object Localization Methods
  Right"): GT-known box accuracy at the best map threshold. ``version=1`` (default): IoU 0.5, largest
  component. ``version=2`` (MaxBoxAccV2): the best threshold per IoU in {0.3, 0.5, 0.7}, averaged, and
  an image counts when the box of *any* connected component matches. Thresholds are fractions of the
  map maximum (wsolevaluation min-max normalises; the same for maps whose minimum is 0) and results
  are fractions (0..1), not percent.
* **Pointing game** (Zhang et al., ECCV 2016, "Top-down Neural Attention by Excitation Backprop"): a hit
  when the map's maximum (first in raster order on ties) lies within ``tolerance`` pixels (Euclidean
  distance, original image pixels) of a ground-truth box of the class; an all-zero map is a miss.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from camkit.data.boxes import Annotation, Box, ClassMap, SkipList, image_id
from camkit.errors import CamkitError
from camkit.io import atomic_write_text
from camkit.metrics.map_boxes import (
    GRADCAM_THRESHOLD,
    Geometry,
    GeometrySpec,
    as_map,
    component_boxes,
    undo_geometry,
)

BoxLike = Box | Sequence[int]
Guess = tuple[str | int, BoxLike]


def _box(b: BoxLike) -> Box:
    return b if isinstance(b, Box) else Box(*(int(v) for v in b))


def iou_inclusive(a: BoxLike, b: BoxLike) -> float:
    """Intersection over union of 1-based inclusive boxes (``w = min(x2) − max(x1) + 1``, clamped at 0)."""
    a, b = _box(a), _box(b)
    w = max(min(a.xmax, b.xmax) - max(a.xmin, b.xmin) + 1, 0)
    h = max(min(a.ymax, b.ymax) - max(a.ymin, b.ymin) + 1, 0)
    return w * h / (a.area + b.area - w * h)


def _best_iou(boxes: Sequence[Box], gts: Sequence[Box]) -> float:
    """The largest IoU between any of ``boxes`` and any of ``gts`` (vectorised)."""
    if not boxes or not gts:
        return 0.0
    p = np.array([b.as_tuple() for b in boxes], dtype=np.int64)[:, None, :]
    g = np.array([b.as_tuple() for b in gts], dtype=np.int64)[None, :, :]
    w = np.clip(np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0]) + 1, 0, None)
    h = np.clip(np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1]) + 1, 0, None)
    area_p = (p[..., 2] - p[..., 0] + 1) * (p[..., 3] - p[..., 1] + 1)
    area_g = (g[..., 2] - g[..., 0] + 1) * (g[..., 3] - g[..., 1] + 1)
    return float((w * h / (area_p + area_g - w * h)).max())


def _skip_ids(skip: SkipList | Iterable[str] | None, annotations: Mapping[str, Annotation]) -> frozenset[str]:
    if skip is None:
        return frozenset()
    if isinstance(skip, SkipList):
        return skip.resolve(annotations.keys())
    return frozenset(image_id(s) for s in skip)


def _annotation(annotations: Mapping[str, Annotation], key: str) -> Annotation:
    if key not in annotations:
        raise CamkitError(f"no annotation for image {key!r} (annotations are keyed by file stem)")
    return annotations[key]


@dataclass(frozen=True)
class LocalizationResult:
    """Top-k errors (fractions), images counted and skipped, one record per image (rows for a CSV)."""

    errors: dict[int, float]
    n_images: int
    n_skipped: int
    records: list[dict[str, Any]]


def localization_errors(predictions: Mapping[str, Sequence[Guess]], annotations: Mapping[str, Annotation],
                        k: int | Sequence[int] = (1, 5), skip: SkipList | Iterable[str] | None = None, *,
                        iou: float = 0.5, class_map: ClassMap | None = None) -> LocalizationResult:
    """ILSVRC top-k localization error over the images of ``predictions``.

    ``predictions``: image (id or file name) -> guesses ``(label, box)`` in rank order. Labels are
    annotation labels (WNIDs), or model class indices when ``class_map`` is given. ``skip``: a
    :class:`SkipList` (indices refer to the sorted ids of ``annotations``) or image ids; skipped images
    leave the denominator. Annotated images without predictions are not counted.
    """
    ks = sorted({int(k)} if isinstance(k, int) else {int(v) for v in k})
    if not ks or ks[0] < 1:
        raise CamkitError(f"k must be positive integers, got {k!r}")
    skipped, records, n_skipped = _skip_ids(skip, annotations), [], 0
    for name in sorted(predictions):
        key = image_id(name)
        ann = _annotation(annotations, key)
        if key in skipped:
            n_skipped += 1
            continue
        guesses = [(_label(label, class_map), _box(box)) for label, box in predictions[name]]
        ious = [_best_iou([box], ann.boxes(label)) for label, box in guesses]
        first = next((r for r, v in enumerate(ious, 1) if v >= iou), 0)
        record: dict[str, Any] = {"image": key, "labels": " ".join(ann.labels), "guesses": len(guesses),
                                  "top1_label": guesses[0][0] if guesses else "", "top1_iou": ious[0] if ious else 0.0,
                                  "first_correct_rank": first}
        record.update({f"correct_top{kk}": 0 < first <= kk for kk in ks})
        records.append(record)
    if not records:
        raise CamkitError("no images to evaluate: predictions are empty or all skipped")
    errors = {kk: 1.0 - sum(r[f"correct_top{kk}"] for r in records) / len(records) for kk in ks}
    return LocalizationResult(errors, len(records), n_skipped, records)


def _label(label: str | int, class_map: ClassMap | None) -> str:
    if isinstance(label, int | np.integer) and not isinstance(label, bool):
        if class_map is None:
            raise CamkitError(f"guess label {label} is a class index: pass class_map to translate it")
        return class_map.label(int(label))
    return str(label)


@dataclass(frozen=True)
class AccuracyResult:
    """A fraction of correct images, the number of images and one record per image."""

    value: float
    n_images: int
    records: list[dict[str, Any]]


def _map_items(maps: Mapping[str, Any], annotations: Mapping[str, Annotation], geometry: GeometrySpec,
               labels: Mapping[str, str] | None, skip: SkipList | Iterable[str] | None,
               ) -> Iterator[tuple[str, np.ndarray, list[Box]]]:
    """``(image id, map at original size, GT boxes)`` per image, sorted, skipped images left out."""
    skipped = _skip_ids(skip, annotations)
    for name in sorted(maps):
        key = image_id(name)
        ann = _annotation(annotations, key)
        if key in skipped:
            continue
        m = as_map(maps[name])
        yield key, undo_geometry(m, _geometry(geometry, name, key, ann, m.shape)), _gt_boxes(ann, name, key, labels)


def _geometry(spec: GeometrySpec, name: str, key: str, ann: Annotation, shape: tuple[int, ...]) -> Geometry:
    if isinstance(spec, Geometry):
        return spec
    if isinstance(spec, Mapping):
        for k in (name, key):
            if k in spec:
                return spec[k]
        raise CamkitError(f"no geometry for image {key!r}")
    if ann.height is None or ann.width is None:
        if spec is not None:
            raise CamkitError(f"the annotation of {key!r} has no image size: give a Geometry per image")
        return Geometry(shape[0], shape[1], (shape[0], shape[1]))
    if spec is None:
        return Geometry(ann.height, ann.width, (shape[0], shape[1]))
    return spec.geometry(ann.height, ann.width)


def _gt_boxes(ann: Annotation, name: str, key: str, labels: Mapping[str, str] | None) -> list[Box]:
    if labels is None:
        return ann.boxes()
    label = labels.get(name, labels.get(key))
    boxes = [] if label is None else ann.boxes(label)
    if not boxes:
        raise CamkitError(f"image {key!r} has no ground-truth box labelled {label!r}")
    return boxes


def gt_known_accuracy(maps: Mapping[str, Any], annotations: Mapping[str, Annotation], geometry: GeometrySpec = None,
                      *, threshold: float = GRADCAM_THRESHOLD, iou: float = 0.5,
                      labels: Mapping[str, str] | None = None,
                      skip: SkipList | Iterable[str] | None = None) -> AccuracyResult:
    """GT-known localization accuracy: the box of each image's ground-truth-class map vs its GT boxes.

    ``geometry``: per-image :class:`Geometry` mapping, one :class:`Preprocessing` (sizes from the
    annotations), or ``None`` (the map is plainly resized to the annotated size). ``labels``: image ->
    the class whose boxes count; ``None`` uses all boxes of the image (ILSVRC/CUB: one class per image).
    """
    records = []
    for key, m, gts in _map_items(maps, annotations, geometry, labels, skip):
        box = component_boxes(m, threshold, largest_only=True)[0]
        best = _best_iou([box], gts)
        records.append({"image": key, "xmin": box.xmin, "ymin": box.ymin, "xmax": box.xmax, "ymax": box.ymax,
                        "iou": best, "correct": best >= iou})
    return _accuracy(records, "correct")


def _accuracy(records: list[dict[str, Any]], column: str) -> AccuracyResult:
    if not records:
        raise CamkitError("no images to evaluate: maps are empty or all skipped")
    return AccuracyResult(sum(r[column] for r in records) / len(records), len(records), records)


@dataclass(frozen=True)
class MaxBoxAccResult:
    """MaxBoxAcc ``value``; ``accuracy[i, j]``: box accuracy at ``ious[i]`` and ``thresholds[j]``."""

    value: float
    best_thresholds: dict[float, float]
    accuracy: np.ndarray
    thresholds: np.ndarray
    ious: tuple[float, ...]
    n_images: int


def max_box_acc(maps_for_gt_class: Mapping[str, Any], annotations: Mapping[str, Annotation],
                geometry: GeometrySpec = None, *, thresholds: Sequence[float] | np.ndarray | None = None,
                iou: float | Sequence[float] | None = None, version: int = 1, labels: Mapping[str, str] | None = None,
                skip: SkipList | Iterable[str] | None = None) -> MaxBoxAccResult:
    """MaxBoxAcc (Choe et al., CVPR 2020): box accuracy at the best threshold (default ``arange(0, 1, 0.01)``).

    ``version=1``: ``iou`` defaults to 0.5, largest component only. ``version=2``: ``iou`` defaults to
    (0.3, 0.5, 0.7), every component's box is a candidate, ``value`` is the mean over IoUs of the best
    accuracy. Cost: one labelling per threshold and image.
    """
    if version not in (1, 2):
        raise CamkitError(f"MaxBoxAcc version must be 1 or 2, got {version!r}")
    thr = np.arange(0, 1, 0.01) if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    ious = ((0.5,) if version == 1 else (0.3, 0.5, 0.7)) if iou is None else tuple(np.atleast_1d(iou).tolist())
    correct = np.zeros((len(ious), len(thr)))
    n = 0
    for _, m, gts in _map_items(maps_for_gt_class, annotations, geometry, labels, skip):
        best = np.array([_best_iou(component_boxes(m, t, largest_only=version == 1), gts) for t in thr])
        correct += best[None, :] >= np.array(ious)[:, None]
        n += 1
    if n == 0:
        raise CamkitError("no images to evaluate: maps are empty or all skipped")
    acc = correct / n
    best_thr = {d: float(thr[int(np.argmax(acc[i]))]) for i, d in enumerate(ious)}
    return MaxBoxAccResult(float(acc.max(axis=1).mean()), best_thr, acc, thr, ious, n)


def pointing_game(maps: Mapping[str, Any], annotations: Mapping[str, Annotation], geometry: GeometrySpec = None,
                  *, tolerance: float = 15, labels: Mapping[str, str] | None = None,
                  skip: SkipList | Iterable[str] | None = None) -> AccuracyResult:
    """Pointing-game accuracy (Zhang et al., ECCV 2016): hits / images, 15-pixel tolerance by default."""
    records = []
    for key, m, gts in _map_items(maps, annotations, geometry, labels, skip):
        row, col = np.unravel_index(int(np.argmax(m)), m.shape)
        x, y = int(col) + 1, int(row) + 1
        dist = min(math.hypot(max(g.xmin - x, 0, x - g.xmax), max(g.ymin - y, 0, y - g.ymax)) for g in gts)
        hit = bool(m.max() > 0) and dist <= tolerance
        records.append({"image": key, "x": x, "y": y, "distance": dist, "hit": hit})
    return _accuracy(records, "hit")


def submission_lines(file_names: Sequence[str], guesses: Mapping[str, Sequence[Guess]] | Sequence[Sequence[Guess]],
                     class_map: ClassMap) -> list[str]:
    """ILSVRC CLS-LOC submission lines: sorted by file name, ``id xmin ymin xmax ymax`` groups (1 to 5).

    ``guesses``: a mapping keyed by file name (or image id), or a list aligned with ``file_names``.
    Labels are model class indices (int) or annotation labels (str); ``class_map`` gives the submission
    ids (for ImageNet: CLS-LOC ids 1..1000, not the Keras order).
    """
    names = [str(n) for n in file_names]
    if len(set(names)) != len(names):
        raise CamkitError("submission: duplicate file names")
    if not isinstance(guesses, Mapping):
        if len(guesses) != len(names):
            raise CamkitError(f"submission: {len(guesses)} guess lists for {len(names)} file names")
        guesses = dict(zip(names, guesses, strict=True))
    lines = []
    for name in sorted(names):
        per = guesses.get(name, guesses.get(image_id(name)))
        if per is None or not 1 <= len(per) <= 5:
            raise CamkitError(f"submission: {0 if per is None else len(per)} guesses for {name!r}; ILSVRC takes 1 to 5")
        lines.append(" ".join(f"{class_map.submission_id(label)} {' '.join(map(str, _box(box).as_tuple()))}"
                              for label, box in per))
    return lines


def write_submission(path: str | Path, file_names: Sequence[str],
                     guesses: Mapping[str, Sequence[Guess]] | Sequence[Sequence[Guess]], class_map: ClassMap) -> Path:
    """Write :func:`submission_lines` to ``path`` atomically (one line per image)."""
    return atomic_write_text(path, "\n".join(submission_lines(file_names, guesses, class_map)) + "\n")
