"""Tests for camkit.data.labels: label-file formats and the shipped ImageNet tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from camkit.data.labels import (
    animal_wnids,
    clsloc_ids,
    imagenet_labels,
    imagenet_synsets,
    imagenet_wnids,
    parse_labels,
    read_labels,
    read_synsets,
)
from camkit.errors import CamkitError


def _write(tmp_path: Path, text: str, name: str = "labels.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_dict_format_multiline(tmp_path: Path) -> None:
    text = ("{0: 'tench, Tinca tinca',\n"
            " 1: \"jack-o'-lantern\",\n"
            "\n"
            " 2: 'it\\'s, escaped',\n"
            " 3: 'person'}\n")
    path = _write(tmp_path, text)
    assert read_labels(path) == ["tench, Tinca tinca", "jack-o'-lantern", "it's, escaped", "person"]
    assert read_labels(path, short=True) == ["tench", "jack-o'-lantern", "it's", "person"]


def test_dict_keys_out_of_order_and_list(tmp_path: Path) -> None:
    assert read_labels(_write(tmp_path, "{1: 'dog', 0: 'cat'}")) == ["cat", "dog"]
    assert read_labels(_write(tmp_path, "['cat', 'dog']")) == ["cat", "dog"]


def test_one_name_per_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "\ufeffcat\n\n  dog  \nhot dog, hotdog\nkit_fox\ncrane (bird)\n")
    assert read_labels(path) == ["cat", "dog", "hot dog, hotdog", "kit_fox", "crane (bird)"]


def test_synset_format(tmp_path: Path) -> None:
    path = _write(tmp_path, "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n\n")
    assert read_labels(path) == ["tench", "goldfish"]
    assert read_synsets(path) == [("n01440764", "tench"), ("n01443537", "goldfish")]
    assert read_synsets(path, full=True)[0] == ("n01440764", "tench, Tinca tinca")
    bad = _write(tmp_path, "n01440764 tench\nnot a synset line\n", "bad.txt")
    with pytest.raises(CamkitError, match=r"bad\.txt, line 2"):
        read_labels(bad)


@pytest.mark.parametrize("payload", [
    "__import__('os').system('touch {marker}')",
    "{{0: __import__('os').system('touch {marker}')}}",
    "{{0: 'cat', 1: open('{marker}', 'w')}}",
    "eval(\"__import__('os').system('touch {marker}')\")",
])
def test_malicious_file_is_not_executed(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "pwned"
    path = _write(tmp_path, payload.format(marker=marker) + "\n")
    with pytest.raises(CamkitError, match=r"labels\.txt"):
        read_labels(path)
    assert not marker.exists()


@pytest.mark.parametrize(("text", "problem"), [
    ("{0: 'cat', 2: 'dog'}", "without gaps"),
    ("{1: 'cat', 2: 'dog'}", "without gaps"),
    ("{0: 'cat', 0: 'dog'}", "duplicate"),
    ("{'a': 'cat'}", "integers"),
    ("{0: 'cat', 1: 5}", "class 1"),
    ("{0: 'cat',\n 1: 'dog'", "line"),
    ("{}", "empty"),
    ("   \n\n", "empty"),
])
def test_bad_files(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(CamkitError, match=problem) as err:
        read_labels(path)
    assert str(path) in str(err.value)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(CamkitError, match="not found"):
        read_labels(tmp_path / "nope.txt")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(CamkitError, match="UTF-8"):
        read_labels(binary)
    with pytest.raises(CamkitError, match="<string>"):
        parse_labels("")


def test_imagenet_tables() -> None:
    labels = imagenet_labels()
    assert len(labels) == 1000 and labels[0] == "tench" and labels[1] == "goldfish"
    assert labels[2] == "great white shark" and labels[999] == "toilet tissue"
    wnids = imagenet_wnids()
    assert len(set(wnids)) == 1000 and wnids[0] == "n01440764"
    assert imagenet_synsets()[0] == ("n01440764", "tench, Tinca tinca")
    ids = clsloc_ids()
    assert ids["n02119789"] == 1 and len(ids) == 1000
    assert set(ids) == set(wnids) and sorted(ids.values()) == list(range(1, 1001))
    animals = animal_wnids()
    assert len(animals) == 398 and len(set(animals)) == 398 and set(animals) <= set(wnids)
    labels.append("mutated")  # callers get copies; the cache stays intact
    assert len(imagenet_labels()) == 1000
