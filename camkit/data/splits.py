"""One view of a training dataset, time series or image folders, for training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from camkit.config import DataConfig, culprit
from camkit.data.images import ImageFolder, find_classes, load_split, load_splits
from camkit.data.timeseries import TimeSeriesDataset, load_timeseries, resolve_dataset_dir
from camkit.errors import CamkitError

PREPROCESSORS = {"vgg16": keras.applications.vgg16.preprocess_input}


@dataclass
class Splits:
    """Train/test data with what a model builder needs (input shape, number of classes)."""

    name: str
    input_shape: tuple[int, ...]
    labels: list[str]
    y_train: np.ndarray
    y_test: np.ndarray
    source: TimeSeriesDataset | dict[str, ImageFolder]
    config: DataConfig

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def train_data(self, batch_size: int, seed: int) -> Any:
        """``(x, y)`` arrays (Keras shuffles them) or a shuffled, batched ``tf.data.Dataset``."""
        if isinstance(self.source, TimeSeriesDataset):
            return self.source.x_train, self.source.y_train
        return self._images("train", batch_size, shuffle=True, seed=seed)

    def test_inputs(self, batch_size: int) -> Any:
        """Test inputs in file/index order, without labels, ready for ``model.predict``."""
        if isinstance(self.source, TimeSeriesDataset):
            return self.source.x_test
        return self._images("test", batch_size, shuffle=False, seed=0).map(lambda x, y: x)

    def _images(self, split: str, batch_size: int, shuffle: bool, seed: int) -> tf.data.Dataset:
        preprocess = PREPROCESSORS.get(self.config.preprocess, self.config.preprocess)
        return self.source[split].dataset(tuple(self.config.image_size), batch_size=batch_size,  # type: ignore[index]
                                          preprocess=preprocess, shuffle=shuffle, seed=seed)


def load_data(config: DataConfig) -> Splits:
    """Load the dataset a config names (``kind`` timeseries or images); it must have at least two classes."""
    if config.kind == "timeseries":
        ds = load_timeseries(config.dataset, config.root, znorm=config.znorm)
        splits = Splits(ds.name, ds.input_shape, ds.labels, ds.y_train, ds.y_test, ds, config)
        where = resolve_dataset_dir(config.dataset, config.root)
    else:
        where = resolve_dataset_dir(config.dataset, config.root)
        folders = load_splits(where) if config.classes is None else _listed_splits(where, config.classes)
        h, w = config.image_size
        splits = Splits(where.name, (h, w, 3), list(folders["train"].class_names),
                        np.asarray(folders["train"].labels, dtype=np.int64),
                        np.asarray(folders["test"].labels, dtype=np.int64), folders, config)
    if splits.n_classes < 2:
        raise CamkitError(f"{where}: has one class only ({', '.join(splits.labels)}); a classifier needs at least two")
    return splits


def class_list(classes: str) -> list[str]:
    """``animal_synsets`` (the 398 WNIDs of the high-resolution CAM experiments) or a file: first word of each line."""
    if classes == "animal_synsets":
        from camkit.data.labels import animal_wnids

        return animal_wnids()
    where, path = culprit(classes, "data.classes"), Path(classes)
    if not path.is_file():
        raise CamkitError(f"{where}: {classes} is neither animal_synsets nor a file")
    try:
        names = [line.split()[0] for line in path.read_bytes().decode("utf-8-sig").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise CamkitError(f"{where}: {classes} is not UTF-8 text (byte {exc.start})") from None
    twice = sorted({n for n in names if names.count(n) > 1})
    if not names or twice:
        what = f"lists {twice[0]!r} twice" if twice else "is empty"
        raise CamkitError(f"{where}: {classes} {what}; it must list distinct class names, one a line")
    return names


def _listed_splits(root: Path, classes: str) -> dict[str, ImageFolder]:
    """Train and test folders whose class folders are exactly the listed classes; labels follow the list."""
    names = class_list(classes)
    for split in ("train", "test"):
        missing = sorted(set(names) - set(find_classes(root / split))) if (root / split).is_dir() else names
        if missing:
            raise CamkitError(f"{culprit(classes, 'data.classes')}: {root / split} lacks {len(missing)} of the "
                              f"{len(names)} classes of {classes} (e.g. {', '.join(missing[:3])})")
    return {split: load_split(root, split, class_names=names) for split in ("train", "test")}
