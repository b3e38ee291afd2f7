"""Shared helpers for the CLI tests: run ``camkit`` through click's test runner."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from camkit.cli import main


def invoke(*args: str | Path) -> Result:
    """Run ``camkit ARGS``; exceptions other than click's exit are re-raised with their traceback."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def ok(*args: str | Path) -> Result:
    """``invoke`` that must exit 0."""
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def gunpoint(root: Path, data_root: Path) -> list[str | Path]:
    """``camkit`` options for the shipped GunPoint under ``data_root``, outputs under ``root``."""
    return ["--dataset", "GunPoint", "--data-root", data_root, "--root", root]


def digit_folder(data_root: Path, dest: Path, digits: tuple[str, ...], count: int, split: str = "test") -> Path:
    """The first ``count`` shipped cluttered-digit images of each class in ``digits``, copied into class folders."""
    import shutil

    for digit in digits:
        (dest / digit).mkdir(parents=True, exist_ok=True)
        for path in sorted((Path(data_root) / "cluttered_digits" / split / digit).iterdir())[:count]:
            shutil.copy(path, dest / digit / path.name)
    return dest


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file under ``roots`` (hidden ones included) -> the SHA-1 of its bytes."""
    import hashlib

    files: dict[str, str] = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.is_file():
                files[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest()
    return files


def refused(args: list, culprit: str, *keep: Path) -> str:
    """Run ``camkit ARGS`` and check the bad-input contract; return the error line.

    Exit code 2; stderr is exactly one line, it starts with ``Error:`` and contains ``culprit``
    (the file, option or key at fault); no file under ``keep`` was changed, added or removed.
    """
    before = snapshot(*keep)
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    lines = result.stderr.splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert culprit in lines[0], (culprit, lines[0])
    assert snapshot(*keep) == before, "files under the kept folders changed"
    return lines[0]


def tiny_fcn(length: int, n_classes: int, seed: int = 0, channels: int = 1):
    """A tiny FCN for ``(length, channels)`` series: two Conv1D(8) + ReLU blocks, GAP, a softmax Dense; seeded
    weights."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((length, channels), name="series")
    x = keras.layers.Conv1D(8, 5, padding="same", activation="relu", name="block1_conv")(inputs)
    x = keras.layers.Conv1D(8, 3, padding="same", activation="relu", name="block2_conv")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(n_classes, activation="softmax", name="predictions")(x))


def gunpoint_experiment(root: Path, data_root: Path) -> Path:
    """Make ``root`` hold experiment ``gunpoint_fcn`` (configs/gunpoint_fcn.yaml) whose best model is a tiny FCN
    trained for 2 epochs on GunPoint; that model's file."""
    from camkit.data.timeseries import load_timeseries

    ds = load_timeseries("GunPoint", data_root)
    model = tiny_fcn(ds.x_train.shape[1], ds.n_classes)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(ds.x_train, ds.y_train, epochs=2, batch_size=10, verbose=0)
    path = Path(root) / "models" / "gunpoint_fcn" / "best.keras"
    path.parent.mkdir(parents=True)
    model.save(path)
    return path
