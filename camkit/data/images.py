"""Image class folders (``root/train/<class>/*``, ``root/test/<class>/*``) read through ``tf.data``.

Every file is decoded once up front (in parallel, with the same TensorFlow decoder as the pipeline), so
unreadable images are skipped, counted and reported (one line on stdout) instead of crashing a run half-way.
Image files a class-folder tree would leave out (beside the class folders) and class folders without a
readable image are errors, not silently dropped.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from camkit.errors import CamkitError
from camkit.io import descriptor_2_silenced

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".jxl"})
SPLIT_NAMES = frozenset({"train", "test", "val", "valid", "validation"})
Preprocess = str | Callable[[tf.Tensor], tf.Tensor]


@dataclass
class ImageFolder:
    """Readable images of a folder with their labels (``-1`` when the folder has no classes)."""

    root: Path
    files: list[Path]
    labels: list[int]
    class_names: list[str]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_skipped(self) -> int:
        """Number of unreadable files left out."""
        return len(self.skipped)

    def dataset(self, image_size: int | Sequence[int], *, batch_size: int = 32,
                preprocess: Preprocess = "rescale", channels: int = 3, shuffle: bool = False,
                seed: int | None = None, with_paths: bool = False,
                drop_remainder: bool = False) -> tf.data.Dataset:
        """Batched, prefetched dataset of ``(image, label)`` (plus the file path when ``with_paths``).

        Images are float32 ``(H, W, channels)``, resized bilinearly to ``image_size``, then rescaled to
        [0, 1] (``"rescale"``), left in 0..255 (``"none"``) or passed batch-wise through a callable such as
        ``keras.applications.vgg16.preprocess_input``. Labels are int32.
        """
        size = _image_size(image_size)
        _check_preprocess(preprocess)
        if batch_size < 1:
            raise CamkitError(f"batch_size must be at least 1, got {batch_size}")
        paths = [str(p) for p in self.files]
        labels = tf.constant(self.labels, tf.int32)
        ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), labels))
        if shuffle and paths:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        rescale = preprocess == "rescale"

        def load(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            image = _decode_resize(path, size, channels)
            return (image / 255.0 if rescale else image), label, path

        # ignore_errors() is only a safety net for files that changed after the up-front check.
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        if callable(preprocess):
            fn = preprocess
            ds = ds.map(lambda x, y, p: (fn(x), y, p), num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
        if not with_paths:
            ds = ds.map(lambda x, y, p: (x, y))
        return ds.prefetch(tf.data.AUTOTUNE)


def _image_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` from an int or a pair; CamkitError when not positive."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    valid = all(isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0 for s in size)
    if len(size) != 2 or not valid:
        raise CamkitError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return int(size[0]), int(size[1])


def _check_preprocess(preprocess: Preprocess) -> None:
    if not callable(preprocess) and preprocess not in ("rescale", "none"):
        raise CamkitError(f"preprocess must be 'rescale', 'none' or a callable, got {preprocess!r}")


def _decode(path: tf.Tensor, channels: int = 3) -> tf.Tensor:
    """uint8 ``(H, W, channels)``: grey is repeated to RGB, alpha dropped, first frame of a GIF."""
    if channels not in (1, 3):
        raise CamkitError(f"channels must be 1 or 3, got {channels!r}")
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    if channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    image.set_shape([None, None, channels])
    return image


def _decode_resize(path: tf.Tensor, size: tuple[int, int], channels: int) -> tf.Tensor:
    """float32 image in 0..255, bilinearly resized to ``size``."""
    return tf.image.resize(tf.cast(_decode(path, channels), tf.float32), size, method="bilinear")


def _tf_reason(error: Exception) -> str:
    """The readable part of a TensorFlow error message, on one line."""
    text = getattr(error, "message", None) or str(error)
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:\w+\](\s*name:.*)?", "", text)
    return " ".join(text.split()) or type(error).__name__


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()


def _hidden(path: Path, base: Path) -> bool:
    """True when ``path`` lies in a hidden folder (``.git``, ``.ipynb_checkpoints``) below ``base``."""
    return any(part.startswith(".") for part in path.relative_to(base).parts)


def _decodable(files: Sequence[Path], candidates: list[int]) -> set[int]:
    """The indices among ``candidates`` whose files TensorFlow decodes to a non-empty image (in parallel)."""
    if not candidates:
        return set()
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(candidates, tf.int64), tf.constant([str(files[i]) for i in candidates])))
    ds = ds.map(lambda i, p: (i, tf.shape(_decode(p))), num_parallel_calls=tf.data.AUTOTUNE)
    return {int(i) for i, shape in ds.ignore_errors().as_numpy_iterator() if min(shape[:2]) > 0}


def _find_readable(files: Sequence[Path]) -> tuple[list[int], list[tuple[Path, str]]]:
    """Indices of files TensorFlow decodes, and ``(path, reason)`` for the others (in order)."""
    reasons: dict[int, str] = {}
    candidates: list[int] = []
    for i, path in enumerate(files):
        try:
            size = path.stat().st_size
        except OSError as e:
            reasons[i] = e.strerror or type(e).__name__
            continue
        if size == 0:
            reasons[i] = "empty file"
        else:
            candidates.append(i)
    with descriptor_2_silenced():  # libjpeg writes its own lines about a corrupt file; the skip line says it
        decoded = _decodable(files, candidates)
        for i in candidates:
            if i not in decoded:  # few: decode again eagerly to learn why
                try:
                    _decode(tf.constant(str(files[i])))
                    reasons[i] = "could not be decoded"
                except (tf.errors.OpError, ValueError) as e:
                    reasons[i] = _tf_reason(e)
    good = [i for i in range(len(files)) if i not in reasons]
    return good, [(files[i], reasons[i]) for i in sorted(reasons)]


def _report_skipped(folder: Path, skipped: Sequence[tuple[Path, str]], limit: int = 5) -> None:
    """One line on stdout: ``skipped N unreadable image(s) in DIR: a.jpg (reason), ...``."""
    if not skipped:
        return
    parts = []
    for path, reason in skipped[:limit]:
        try:
            name = path.relative_to(folder).as_posix()
        except ValueError:
            name = str(path)
        parts.append(f"{name} ({reason})")
    more = f", and {len(skipped) - limit} more" if len(skipped) > limit else ""
    sys.stdout.write(f"skipped {len(skipped)} unreadable image(s) in {folder}: {', '.join(parts)}{more}\n")


def _require_dir(folder: str | Path, what: str = "image folder") -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise CamkitError(f"{what} not found: {folder}")
    if not folder.is_dir():
        raise CamkitError(f"{what} is not a directory: {folder}")
    return folder


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (not recursive), sorted; CamkitError when there are none."""
    folder = _require_dir(folder)
    files = sorted(p for p in folder.iterdir() if _is_image(p))
    if not files:
        exts = " ".join(sorted(IMAGE_EXTENSIONS))
        raise CamkitError(f"no images ({exts}) found in {folder}")
    return files


def find_classes(folder: str | Path) -> list[str]:
    """Sorted names of the class subfolders of ``folder`` (hidden folders ignored)."""
    folder = _require_dir(folder)
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_class_folder(folder: str | Path, *, class_names: Sequence[str] | None = None) -> ImageFolder:
    """Read a folder of class subfolders; labels are indices into the sorted subfolder names.

    With ``class_names`` (e.g. a trained model's classes) labels index that list instead, and every
    subfolder must be one of them. Images are searched recursively inside each class folder; image
    files beside the class folders and class folders without a readable image are errors.
    """
    folder = _require_dir(folder)
    found = find_classes(folder)
    if not found:
        raise CamkitError(f"no class subfolders in {folder} (expected {folder}/<class>/<images>)")
    names = list(class_names) if class_names is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise CamkitError(f"class folder(s) in {folder} not among the {len(names)} known classes: "
                          f"{', '.join(unknown)}")
    stray = sorted(p.name for p in folder.iterdir() if _is_image(p))
    if stray:
        more = f" (and {len(stray) - 1} more image(s) there)" if stray[1:] else ""
        raise CamkitError(f"{folder / stray[0]}: an image beside the class folders ({', '.join(found[:5])}), in none "
                          f"of them; move it into one{more}")
    per_class = {name: sorted(p for p in (folder / name).rglob("*") if _is_image(p) and not _hidden(p, folder / name))
                 for name in found}
    empty = [name for name in found if not per_class[name]]
    if empty:
        _refuse_empty(folder / empty[0], [], {}, empty[1:])
    files = [path for name in found for path in per_class[name]]
    labels = [names.index(name) for name in found for _ in per_class[name]]
    good, skipped = _find_readable(files)
    readable = {labels[i] for i in good}
    unreadable = [name for name in found if names.index(name) not in readable]
    if unreadable:
        _refuse_empty(folder / unreadable[0], per_class[unreadable[0]], dict(skipped), unreadable[1:])
    _report_skipped(folder, skipped)
    return ImageFolder(folder, [files[i] for i in good], [labels[i] for i in good], names, skipped)


def _refuse_empty(class_dir: Path, files: list[Path], reasons: dict[Path, str], others: list[str]) -> None:
    """CamkitError for a class folder without a readable image (and how many others are like it)."""
    if files:
        what = f"none of its {len(files)} image(s) could be read (e.g. {files[0].name}: {reasons[files[0]]})"
    else:
        what = f"holds no images ({' '.join(sorted(IMAGE_EXTENSIONS))})"
    more = f"; nor do {len(others)} more class folder(s): {', '.join(others[:5])}" if others else ""
    raise CamkitError(f"{class_dir}: {what}{more}")


def load_flat_folder(folder: str | Path) -> ImageFolder:
    """Read a flat folder of images without classes (labels are all ``-1``)."""
    folder = _require_dir(folder)
    files = list_images(folder)
    good, skipped = _find_readable(files)
    if not good:
        raise CamkitError(f"none of the {len(files)} image(s) in {folder} could be read "
                          f"(e.g. {skipped[0][0].name}: {skipped[0][1]})")
    _report_skipped(folder, skipped)
    return ImageFolder(folder, [files[i] for i in good], [-1] * len(good), [], skipped)


def load_split(root: str | Path, split: str, *, class_names: Sequence[str] | None = None) -> ImageFolder:
    """Read ``root/<split>/<class>/*``; CamkitError when the split folder is missing."""
    root = _require_dir(root, "dataset folder")
    folder = root / split
    if not folder.is_dir():
        hint = " (it holds x_train.npy: a time-series dataset? --kind timeseries)" if (
            root / "x_train.npy").is_file() else ""
        raise CamkitError(f"missing {split} folder: {folder} (expected {folder}/<class>/<images>){hint}")
    return load_class_folder(folder, class_names=class_names)


def load_splits(root: str | Path, splits: Sequence[str] = ("train", "test")) -> dict[str, ImageFolder]:
    """Read several splits of ``root``; they must share the same class list."""
    result = {split: load_split(root, split) for split in splits}
    first, *rest = splits
    for split in rest:
        a, b = result[first], result[split]
        if a.class_names != b.class_names:
            only_a = sorted(set(a.class_names) - set(b.class_names))
            only_b = sorted(set(b.class_names) - set(a.class_names))
            raise CamkitError(f"class folders differ between {a.root} and {b.root}: "
                              f"only in {first}: {', '.join(only_a) or '-'}; "
                              f"only in {split}: {', '.join(only_b) or '-'}")
    return result


def load_images(path: str | Path, *, class_names: Sequence[str] | None = None) -> ImageFolder:
    """Images to explain: one file, a flat folder of images, or a folder of class subfolders."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise CamkitError(f"not an image file ({' '.join(sorted(IMAGE_EXTENSIONS))}): {path}")
        good, skipped = _find_readable([path])
        if not good:
            raise CamkitError(f"cannot read image {path}: {skipped[0][1]}")
        return ImageFolder(path.parent, [path], [-1], [], [])
    folder = _require_dir(path)
    if any(_is_image(p) for p in folder.iterdir()):
        nested = [c for c in find_classes(folder) if any(_is_image(p) for p in (folder / c).rglob("*"))]
        if nested:
            raise CamkitError(f"{folder}: holds images and also folders of images ({', '.join(nested[:3])}); "
                              "pass a folder of images or a folder of class folders, not both")
        return load_flat_folder(folder)
    splits = [s for s in find_classes(folder) if s.lower() in SPLIT_NAMES and find_classes(folder / s)
              and not any(_is_image(p) for p in (folder / s).iterdir())]
    if splits:
        raise CamkitError(f"{folder} holds dataset splits ({', '.join(splits)}), not classes: "
                          f"pass one split folder, e.g. {folder / splits[0]}")
    return load_class_folder(folder, class_names=class_names)


def load_original(path: str | Path, channels: int = 3) -> np.ndarray:
    """The image at its original size as a uint8 ``(H, W, channels)`` array (for plotting overlays)."""
    path = Path(path)
    if not path.is_file():
        raise CamkitError(f"image file not found: {path}")
    try:
        return _decode(tf.constant(str(path)), channels).numpy()
    except tf.errors.OpError as e:
        raise CamkitError(f"cannot read image {path}: {_tf_reason(e)}") from None


def load_image(path: str | Path, image_size: int | Sequence[int], *, preprocess: Preprocess = "rescale",
               channels: int = 3) -> np.ndarray:
    """One image prepared like :meth:`ImageFolder.dataset` does, as float32 ``(1, H, W, channels)``."""
    size = _image_size(image_size)
    _check_preprocess(preprocess)
    image = tf.image.resize(tf.cast(load_original(path, channels), tf.float32), size, method="bilinear")[None]
    if preprocess == "rescale":
        image = image / 255.0
    elif callable(preprocess):
        image = preprocess(image)
    return np.asarray(image, dtype=np.float32)
