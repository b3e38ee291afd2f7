"""Tests for camkit.config: YAML configs, defaults, dotted overrides and their validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from camkit.config import ExperimentConfig, load_config
from camkit.errors import CamkitError


def _yaml(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_gunpoint_config(repo_root: Path) -> None:
    config = load_config(repo_root / "configs" / "gunpoint_fcn.yaml")
    assert config.name == "gunpoint_fcn"
    assert config.steps == ["train", "evaluate"]
    d, m, t = config.data, config.model, config.train
    assert (d.dataset, d.kind, d.root, d.znorm) == ("GunPoint", "timeseries", "data", False)
    assert (m.name, m.options) == ("fcn", {})
    assert (t.epochs, t.batch_size, t.learning_rate, t.seed, t.monitor) == (300, None, 0.001, 0, "loss")
    assert (t.reduce_lr_factor, t.reduce_lr_patience, t.min_lr) == (0.5, 50, 0.0001)
    assert (t.strategy, t.validation_split, t.weights) == ("default", 0.0, None)  # not in the file: defaults
    assert d.image_size == [224, 224] and d.preprocess == "rescale"
    assert isinstance(t.learning_rate, float) and isinstance(t.epochs, int)


def test_defaults_without_a_file() -> None:
    config = load_config()
    assert config == ExperimentConfig()
    assert config.name == "experiment" and config.steps == ["train", "evaluate"]
    assert (config.data.dataset, config.data.kind, config.data.root) == ("GunPoint", "timeseries", "data")
    assert (config.train.epochs, config.train.batch_size, config.train.learning_rate) == (500, None, 1e-3)
    assert config.to_dict()["train"]["reduce_lr_patience"] == 50
    assert config.to_dict()["data"]["image_size"] == [224, 224]


def test_name_defaults_to_file_stem(tmp_path: Path) -> None:
    assert load_config(_yaml(tmp_path, "train:\n  epochs: 3\n", "my_run.yaml")).name == "my_run"
    assert load_config(_yaml(tmp_path, "{}\n", "empty.yaml")).name == "empty"  # an empty mapping is all defaults
    assert load_config(_yaml(tmp_path, "name: other\n", "my_run.yaml")).name == "other"


def test_dotted_overrides_replace_file_values(repo_root: Path) -> None:
    config = load_config(repo_root / "configs" / "gunpoint_fcn.yaml", {
        "name": "gp_short", "train.epochs": 5, "train.learning_rate": 0.01, "data.dataset": "ItalyPowerDemand",
        "data.image_size": [64, 64], "train.strategy": "mirrored", "steps": ["train"]})
    assert config.name == "gp_short" and config.steps == ["train"]
    assert (config.train.epochs, config.train.learning_rate, config.train.strategy) == (5, 0.01, "mirrored")
    assert config.data.dataset == "ItalyPowerDemand" and config.data.image_size == [64, 64]
    assert config.train.min_lr == 0.0001 and config.train.seed == 0  # untouched keys keep the file's values


def test_overrides_without_a_file_or_section() -> None:
    config = load_config(None, {"train.epochs": 7, "data.dataset": "ItalyPowerDemand", "model.name": "resnet",
                                "name": "ipd"})
    assert (config.name, config.train.epochs, config.data.dataset, config.model.name) == (
        "ipd", 7, "ItalyPowerDemand", "resnet")


def test_overrides_into_an_empty_section(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "model:\ntrain:\n  epochs: 4\n")
    assert load_config(path).model.name == "fcn"  # `model:` with nothing under it is all defaults
    config = load_config(path, {"model.name": "resnet", "train.seed": 3})
    assert (config.model.name, config.train.seed, config.train.epochs) == ("resnet", 3, 4)


def test_none_overrides_are_ignored(repo_root: Path) -> None:
    config = load_config(repo_root / "configs" / "gunpoint_fcn.yaml",
                         {"train.epochs": None, "data.dataset": None, "name": None, "train.weights": None})
    assert (config.train.epochs, config.data.dataset, config.name, config.train.weights) == (
        300, "GunPoint", "gunpoint_fcn", None)


def test_override_through_a_non_mapping_is_an_error(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "data: 5\n")
    with pytest.raises(CamkitError, match=r"exp.yaml: data: must be a mapping \(to set data.dataset\), got 5"):
        load_config(path, {"data.dataset": "X"})
    with pytest.raises(CamkitError, match=r"exp.yaml: data: must be a mapping, got 5"):
        load_config(path)


def test_exponent_floats_that_yaml_reads_as_strings(tmp_path: Path) -> None:
    # PyYAML (YAML 1.1) loads 1e-3 and 5e-5 as strings; they must still count as numbers
    config = load_config(_yaml(tmp_path, "train:\n  learning_rate: 1e-3\n  min_lr: 5E-5\n"))
    assert config.train.learning_rate == 0.001 and config.train.min_lr == 5e-5
    with pytest.raises(CamkitError, match=r"train.learning_rate: expected a number, got 'fast'"):
        load_config(_yaml(tmp_path, "train:\n  learning_rate: fast\n"))
    with pytest.raises(CamkitError, match=r"train.epochs: expected an integer, got '1e3'"):
        load_config(_yaml(tmp_path, "train:\n  epochs: 1e3\n"))


@pytest.mark.parametrize(("text", "key"), [
    ("epochs: 3\n", "epochs"),
    ("train:\n  epoch: 3\n", "train.epoch"),
    ("data:\n  datset: GunPoint\n", "data.datset"),
    ("model:\n  name: fcn\n  depth: 3\n", "model.depth"),
    ("train:\n  1: 2\n", "train.1"),
])
def test_unknown_keys_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = _yaml(tmp_path, text)
    with pytest.raises(CamkitError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {key}: unknown key")
    assert "; known: " in str(info.value)


def test_unknown_override_key() -> None:
    with pytest.raises(CamkitError, match=r"^config: train.epochz: unknown key \(did you mean train.epochs\?\); "
                                          r"known: batch_size, epochs"):
        load_config(None, {"train.epochz": 3})


@pytest.mark.parametrize(("text", "message"), [
    ("train:\n  epochs: many\n", "train.epochs: expected an integer, got 'many'"),
    ("train:\n  epochs: '300'\n", "train.epochs: expected an integer, got '300'"),
    ("train:\n  epochs: true\n", "train.epochs: expected an integer, got True"),
    ("train:\n  epochs: 3.5\n", "train.epochs: expected an integer, got 3.5"),
    ("train:\n  batch_size: false\n", "train.batch_size: expected an integer, got False"),
    ("train:\n  learning_rate: true\n", "train.learning_rate: expected a number, got True"),
    ("data:\n  znorm: 1\n", "data.znorm: expected true or false, got 1"),
    ("data:\n  znorm: 'yes'\n", "data.znorm: expected true or false, got 'yes'"),
    ("data:\n  image_size: 224\n", "data.image_size: expected a list, got 224"),
    ("data:\n  image_size: [224, big]\n", "data.image_size: expected an integer, got 'big'"),
    ("steps: train\n", "steps: expected a list, got 'train'"),
    ("model:\n  options: [1, 2]\n", "model.options: expected a mapping, got [1, 2]"),
    ("model:\n  name: [fcn]\n", "model.name: expected a string, got ['fcn']"),
    ("train: 5\n", "train: must be a mapping, got 5"),
    ("train: []\n", "train: must be a mapping, got []"),
    ("train:\n  learning_rate: .nan\n", "train.learning_rate: expected a finite number, got nan"),
])
def test_wrong_types_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = _yaml(tmp_path, text)
    with pytest.raises(CamkitError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {message}"


def test_wrong_type_in_override() -> None:
    with pytest.raises(CamkitError, match=r"^--epochs: expected an integer, got 'ten'$"):
        load_config(None, {"train.epochs": "ten"})


def test_numbers_as_strings_and_ints_as_floats(tmp_path: Path) -> None:
    config = load_config(_yaml(tmp_path, "data:\n  dataset: 2024\ntrain:\n  learning_rate: 1\n  weights: w.keras\n"))
    assert config.data.dataset == "2024"  # a number where a string is wanted is read as text
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)
    assert config.train.weights == "w.keras"


@pytest.mark.parametrize(("text", "message"), [
    ("data:\n  kind: audio\n", "data.kind: must be one of timeseries, images, got 'audio'"),
    ("train:\n  strategy: tpu\n", "train.strategy: must be one of default, mirrored, got 'tpu'"),
    ("train:\n  epochs: -1\n", "train.epochs: must be at least 0"),
    ("train:\n  batch_size: 0\n", "train.batch_size: must be >= 1, got 0"),
    ("train:\n  learning_rate: 0\n", "train.learning_rate: must be positive, got 0.0"),
    ("train:\n  validation_split: 1.0\n", "train.validation_split: must be in [0, 1), got 1.0"),
    ("train:\n  seed: -1\n", "train.seed: must be in 0..2**32-1 (NumPy's seeds), got -1"),
    ("train:\n  reduce_lr_factor: 1.5\n", "train.reduce_lr_factor: must be in (0, 1), got 1.5"),
    ("data:\n  image_size: [224]\n", "data.image_size: must be two positive integers, got [224]"),
    ("data:\n  image_size: [224, 0]\n", "data.image_size: must be two positive integers, got [224, 0]"),
    ("data:\n  preprocess: vgg\n", "data.preprocess: must be one of rescale, none, vgg16, got 'vgg' (did you mean "
                                   "vgg16?)"),
    ("name: ../elsewhere\n", "name: must be a plain folder name (no / or \\, not starting with .), got '../elsewhere'"),
    ("steps: []\n", "steps: lists no step, so there is nothing to run"),
])
def test_invalid_values(tmp_path: Path, text: str, message: str) -> None:
    path = _yaml(tmp_path, text)
    with pytest.raises(CamkitError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {message}")


def test_bad_strategy_as_override() -> None:
    with pytest.raises(CamkitError, match=r"^--strategy: must be one of default, mirrored, got 'x'$"):
        load_config(None, {"train.strategy": "x"})


def test_epochs_zero_and_valid_edge_values(tmp_path: Path) -> None:
    config = load_config(_yaml(tmp_path, "train:\n  epochs: 0\n  batch_size: 1\n  validation_split: 0.99\n"))
    assert (config.train.epochs, config.train.batch_size, config.train.validation_split) == (0, 1, 0.99)


@pytest.mark.parametrize(("text", "message"), [
    ("train: [epochs: 3\n", "line 2, column 1: expected ',' or ']', but got '<stream end>' "
                            "(while parsing a flow sequence on line 1)"),
    ("a: b: c\n", "line 1, column 5: mapping values are not allowed here"),
    ("data:\n  dataset: x\n dataset: y\n", "line 3, column 2: expected <block end>, but found '<block mapping start>' "
                                         "(while parsing a block mapping on line 1)"),
    ("train: {epochs: 1}\ntrain: {epochs: 2}\n", "line 2, column 1: the key 'train' is given twice"),
    ("x: !!python/object/apply:os.system [echo hi]\n", "line 1, column 4: the tag !!python/object/apply:os.system "
                                                       "would build a Python object; a config holds plain values only"),
])
def test_invalid_yaml(tmp_path: Path, text: str, message: str) -> None:
    path = _yaml(tmp_path, text)
    with pytest.raises(CamkitError) as info:
        load_config(path)
    assert str(info.value) == f"{path} {message}"


@pytest.mark.parametrize(("text", "kind"), [("- train\n- evaluate\n", "a list"), ("just a string\n", "a string"),
                                          ("42\n", "a number")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = _yaml(tmp_path, text)
    with pytest.raises(CamkitError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: the config must be a mapping of sections, got {kind}"


@pytest.mark.parametrize("text", ["", "# only a comment\n\n", "---\n"])
def test_empty_config_is_refused(tmp_path: Path, text: str) -> None:
    path = _yaml(tmp_path, text)
    with pytest.raises(CamkitError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: the config is empty"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(CamkitError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: config file not found"
    with pytest.raises(CamkitError, match="is a folder, not a config file"):
        load_config(tmp_path)


def test_steps_are_checked_against_the_names_given(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "steps: [train, deploy]\n")
    with pytest.raises(CamkitError) as info:
        load_config(path, known_steps=("train", "evaluate"))
    assert str(info.value) == f"{path}: steps: unknown step 'deploy'; known: train, evaluate"
    assert load_config(path).steps == ["train", "deploy"]  # without the names (camkit run checks them)


def test_half_section_overrides_train_for_stage_one(tmp_path: Path) -> None:
    text = "model: {name: densenet-full}\ntrain: {epochs: 4, batch_size: 16, learning_rate: 1.0}\n"
    config = load_config(_yaml(tmp_path, text + "half: {epochs: 8, learning_rate: 0.5}\n"))
    half = config.half.apply(config.train)
    assert (half.epochs, half.learning_rate, half.batch_size) == (8, 0.5, 16)
    assert (config.train.epochs, config.train.learning_rate) == (4, 1.0)  # stage 2 keeps its own
    assert config.to_dict()["half"]["epochs"] == 8 and config.to_dict()["half"]["seed"] is None
    assert load_config(_yaml(tmp_path, text + "half: {}\n")).half.apply(config.train) == \
        dataclasses.replace(config.train, weights=None, half_weights=None)
    assert load_config(_yaml(tmp_path, text)).half is None
    assert load_config(_yaml(tmp_path, text + "half:\n")).half is None


@pytest.mark.parametrize(("text", "message"), [
    ("half: {epochs: 1}\n", "half: is for model densenet-full, not 'fcn'"),
    ("model: {name: densenet-full}\nhalf: {epochs: -1}\n", "half.epochs: must be at least 0"),
    ("model: {name: densenet-full}\nhalf: {optimizer: sgd}\n", "half.optimizer: must be one of adam, adadelta"),
    ("model: {name: densenet-full}\nhalf: {weights: a.keras}\n", "half.weights: unknown key"),
    ("model: {name: densenet-full}\nhalf: 3\n", "half: must be a mapping, got 3"),
])
def test_bad_half_sections(tmp_path: Path, text: str, message: str) -> None:
    path = _yaml(tmp_path, text)
    with pytest.raises(CamkitError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {message}")


def test_one_config_hires_matches_the_two_stage_configs(repo_root: Path) -> None:
    one, half, full = (load_config(repo_root / "configs" / f"hires_digits{s}.yaml") for s in ("", "_half", "_full"))
    assert one.half.apply(one.train) == dataclasses.replace(half.train, half_weights=None)
    assert one.train == dataclasses.replace(full.train, half_weights=None)
    assert one.data == half.data == full.data
