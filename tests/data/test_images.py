"""Tests for camkit.data.images with small real PNG/JPEG files."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camkit.data.images import (
    ImageFolder,
    find_classes,
    list_images,
    load_class_folder,
    load_image,
    load_images,
    load_original,
    load_split,
    load_splits,
)
from camkit.errors import CamkitError

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _save(path: Path, image: Image.Image, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt)
    return path


def _jpeg_bytes(size: int = 32) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """train/{cat,dog} with 3 + 2 good images and 3 bad ones; test/{cat,dog} with 1 + 1."""
    train = tmp_path / "train"
    _save(train / "cat" / "a_red.png", Image.new("RGB", (10, 8), RED))
    _save(train / "cat" / "b_grey.png", Image.new("L", (12, 12), 64))
    _save(train / "cat" / "c_rgba.PNG", Image.new("RGBA", (9, 9), (10, 20, 30, 0)))
    _save(train / "dog" / "a_blue.jpg", Image.new("RGB", (16, 16), BLUE), "JPEG")
    _save(train / "dog" / "b_big.JPEG", Image.new("RGB", (40, 20), BLUE), "JPEG")
    (train / "dog" / "c_truncated.jpg").write_bytes(_jpeg_bytes()[:300])
    (train / "dog" / "d_empty.jpg").write_bytes(b"")
    (train / "dog" / "e_text.jpg").write_text("this is not an image\n")
    (train / "dog" / "notes.txt").write_text("ignored")
    (train / "dog" / ".hidden.jpg").write_text("ignored too")
    _save(tmp_path / "test" / "cat" / "t_red.bmp", Image.new("RGB", (5, 5), RED))
    _save(tmp_path / "test" / "dog" / "t_blue.gif", Image.new("RGB", (5, 5), BLUE))
    return tmp_path


def _collect(folder: ImageFolder, **kwargs) -> tuple[np.ndarray, np.ndarray, list[str]]:
    batches = list(folder.dataset(16, batch_size=3, with_paths=True, **kwargs).as_numpy_iterator())
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    names = [Path(p.decode()).name for b in batches for p in b[2]]
    return images, labels, names


def _by_name(images: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    return dict(zip(names, images, strict=True))


def test_skips_and_counts_bad_files(root: Path, capsys: pytest.CaptureFixture) -> None:
    folder = load_split(root, "train")
    out = capsys.readouterr().out
    assert out.startswith(f"skipped 3 unreadable image(s) in {root / 'train'}: ") and out.count("\n") == 1
    assert "dog/d_empty.jpg (empty file)" in out and "dog/c_truncated.jpg (" in out and "dog/e_text.jpg (" in out
    assert folder.class_names == ["cat", "dog"]
    good = ["a_red.png", "b_grey.png", "c_rgba.PNG", "a_blue.jpg", "b_big.JPEG"]
    assert [p.name for p in folder.files] == good
    assert folder.labels == [0, 0, 0, 1, 1]
    assert folder.num_skipped == 3 and len(folder) == 5
    assert [p.name for p, _ in folder.skipped] == ["c_truncated.jpg", "d_empty.jpg", "e_text.jpg"]
    assert all(reason for _, reason in folder.skipped)


def test_dataset_rescale_values_shapes_labels(root: Path) -> None:
    folder = load_split(root, "train")
    images, labels, names = _collect(folder)
    assert images.shape == (5, 16, 16, 3) and images.dtype == np.float32
    assert labels.tolist() == [0, 0, 0, 1, 1] and labels.dtype == np.int32
    assert images.min() >= 0.0 and images.max() <= 1.0
    px = _by_name(images, names)
    np.testing.assert_allclose(px["a_red.png"], np.broadcast_to([1.0, 0.0, 0.0], (16, 16, 3)), atol=1e-6)
    np.testing.assert_allclose(px["b_grey.png"], 64 / 255, atol=1e-6)  # grey -> 3 equal channels
    np.testing.assert_allclose(px["c_rgba.PNG"][0, 0], np.array([10, 20, 30]) / 255, atol=1e-6)  # no alpha
    np.testing.assert_allclose(px["a_blue.jpg"][..., 2], 1.0, atol=0.02)  # JPEG: nearly exact
    np.testing.assert_allclose(px["a_blue.jpg"][..., 0], 0.0, atol=0.02)


def test_dataset_without_paths_and_other_preprocessing(root: Path) -> None:
    folder = load_split(root, "train")
    batch = next(iter(folder.dataset((8, 6), batch_size=8)))
    assert len(batch) == 2 and tuple(batch[0].shape) == (5, 8, 6, 3)
    raw, _, names = _collect(folder, preprocess="none")
    np.testing.assert_allclose(_by_name(raw, names)["a_red.png"][0, 0], [255, 0, 0], atol=1e-4)
    shifted, _, names = _collect(folder, preprocess=lambda x: x / 127.5 - 1.0)
    np.testing.assert_allclose(_by_name(shifted, names)["a_red.png"][0, 0], [1, -1, -1], atol=1e-6)
    grey, _, _ = _collect(folder, channels=1)
    assert grey.shape == (5, 16, 16, 1)


def test_keras_preprocess_input(root: Path) -> None:
    from keras.applications.vgg16 import preprocess_input

    folder = load_split(root, "train")
    images, _, names = _collect(folder, preprocess=preprocess_input)
    # caffe mode: RGB -> BGR, minus the ImageNet means
    np.testing.assert_allclose(_by_name(images, names)["a_red.png"][0, 0], [-103.939, -116.779, 255 - 123.68],
                               atol=1e-3)


def test_shuffle_with_seed_is_deterministic(root: Path) -> None:
    folder = load_split(root, "train")
    _, labels1, names1 = _collect(folder, shuffle=True, seed=3)
    _, _, names2 = _collect(folder, shuffle=True, seed=3)
    assert names1 == names2 and sorted(names1) == sorted(p.name for p in folder.files)
    expected = dict(zip((p.name for p in folder.files), folder.labels, strict=True))
    assert labels1.tolist() == [expected[n] for n in names1]


def test_load_splits_share_classes(root: Path) -> None:
    splits = load_splits(root)
    test = splits["test"]
    assert test.class_names == ["cat", "dog"] and test.labels == [0, 1] and test.skipped == []
    images, _, names = _collect(test)
    np.testing.assert_allclose(_by_name(images, names)["t_blue.gif"][0, 0], [0, 0, 1], atol=1e-6)


def test_mismatched_classes_names_both_folders(root: Path) -> None:
    _save(root / "test" / "bird" / "x.png", Image.new("RGB", (4, 4), RED))
    with pytest.raises(CamkitError) as err:
        load_splits(root)
    assert str(root / "train") in str(err.value) and str(root / "test") in str(err.value)
    assert "only in test: bird" in str(err.value)


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(CamkitError, match="missing train folder"):
        load_split(tmp_path, "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(CamkitError, match="no class subfolders"):
        load_split(tmp_path, "train")
    (tmp_path / "train" / "cat").mkdir()
    with pytest.raises(CamkitError, match="^" + re.escape(f"{tmp_path / 'train' / 'cat'}: holds no images (.bmp .gif")):
        load_split(tmp_path, "train")
    (tmp_path / "train" / "cat" / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(CamkitError, match="could be read"):
        load_split(tmp_path, "train")
    with pytest.raises(CamkitError, match="not found"):
        load_class_folder(tmp_path / "nope")
    (tmp_path / "flat").mkdir()
    with pytest.raises(CamkitError, match="no images"):
        list_images(tmp_path / "flat")


def test_flat_folder_and_autodetect(root: Path, capsys: pytest.CaptureFixture) -> None:
    flat = root / "flat"
    _save(flat / "b.png", Image.new("RGB", (7, 5), RED))
    _save(flat / "a.JPG", Image.new("RGB", (7, 5), BLUE), "JPEG")
    (flat / "broken.png").write_bytes(b"")
    (flat / "readme.md").write_text("x")
    assert [p.name for p in list_images(flat)] == ["a.JPG", "b.png", "broken.png"]
    folder = load_images(flat)
    assert capsys.readouterr().out == f"skipped 1 unreadable image(s) in {flat}: broken.png (empty file)\n"
    assert [p.name for p in folder.files] == ["a.JPG", "b.png"] and folder.labels == [-1, -1]
    assert folder.class_names == [] and folder.num_skipped == 1
    images, labels, _ = _collect(folder)
    assert images.shape == (2, 16, 16, 3) and labels.tolist() == [-1, -1]
    classes = load_images(root / "test")
    assert classes.class_names == ["cat", "dog"]
    single = load_images(flat / "b.png")
    assert single.files == [flat / "b.png"]
    with pytest.raises(CamkitError, match="splits"):
        load_images(root)
    assert find_classes(root / "train") == ["cat", "dog"]


def test_known_class_names_index_labels(root: Path) -> None:
    folder = load_class_folder(root / "test", class_names=["ant", "cat", "dog"])
    assert folder.labels == [1, 2] and folder.class_names == ["ant", "cat", "dog"]
    with pytest.raises(CamkitError, match="dog"):
        load_class_folder(root / "test", class_names=["cat"])


def test_load_original_and_single_image(root: Path) -> None:
    path = root / "train" / "dog" / "b_big.JPEG"
    original = load_original(path)
    assert original.shape == (20, 40, 3) and original.dtype == np.uint8
    grey = load_original(root / "train" / "cat" / "b_grey.png")
    assert grey.shape == (12, 12, 3) and (grey == 64).all()
    single = load_image(root / "train" / "cat" / "a_red.png", (4, 5))
    assert single.shape == (1, 4, 5, 3)
    np.testing.assert_allclose(single[0, 2, 3], [1, 0, 0], atol=1e-6)
    with pytest.raises(CamkitError, match=r"e_text\.jpg"):
        load_original(root / "train" / "dog" / "e_text.jpg")
    with pytest.raises(CamkitError, match="image_size"):
        load_image(path, 0)
    with pytest.raises(CamkitError, match="preprocess"):
        load_image(path, 8, preprocess="torch")
