"""An experiment's folders (``results/ models/ plots/``), its manifest, and the staging of a run in progress.

A training writes each experiment it trains into hidden sibling folders (``results/.<exp>.partial-<pid>``, the
same under ``models/`` and ``plots/``) and moves them into place only once every stage has finished
(:func:`staged_runs`); a failed or interrupted run (an error, Ctrl-C, SIGTERM, a full disk) removes them and
leaves the earlier run of the experiment as it was. Moving into place swaps each folder whole: ``models/<exp>``
holds only the new run's files; in ``results/<exp>`` and ``plots/<exp>`` the files training and evaluation
write (:data:`RUN_FILES`) are the new run's (or gone), and the rest (explain and localization runs, which record
the model they were made with) is kept.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from camkit.errors import CamkitError
from camkit.io import atomic_write_json, check_destination, replace_dir_atomically

VERSIONED_PACKAGES = ("camkit", "tensorflow", "keras", "numpy", "scikit-learn", "scipy", "sktime", "pandas")
KINDS = ("results", "models", "plots")
# What a training (and its evaluation) writes at the top of results/<exp> and plots/<exp>: a new run replaces them
# (stale ones it did not write are dropped); everything under models/<exp> is the run's.
RUN_FILES = {"results": {"manifest.json", "train_log.csv", "train_log.csv.partial", "train_metrics.json",
                         "metrics.json", "cluster_metrics.json"},
             "plots": {"confusion_matrix.png"}}
STAGING_SUFFIX = ".partial-"


@dataclass(frozen=True)
class RunDirs:
    """The three folders of one experiment: ``results/<exp>``, ``models/<exp>``, ``plots/<exp>``; with ``staging``
    (a run in progress) the hidden folders ``.<exp><staging>`` beside them."""

    exp: str
    root: Path = Path(".")
    staging: str | None = None

    def folder(self, kind: str) -> Path:
        return Path(self.root) / kind / (self.exp if self.staging is None else f".{self.exp}{self.staging}")

    @property
    def results(self) -> Path:
        return self.folder("results")

    @property
    def models(self) -> Path:
        return self.folder("models")

    @property
    def plots(self) -> Path:
        return self.folder("plots")

    @property
    def best_model(self) -> Path:
        return self.models / "best.keras"

    @property
    def final(self) -> RunDirs:
        """The experiment's own folders (where a staged run goes once it has finished)."""
        return dataclasses.replace(self, staging=None)

    def ensure(self) -> RunDirs:
        for kind in KINDS:
            self.folder(kind).mkdir(parents=True, exist_ok=True)
        return self


class Staging:
    """The experiments one training writes, each in hidden folders until :meth:`commit` moves them all into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.suffix = f"{STAGING_SUFFIX}{os.getpid()}"
        self.runs: list[RunDirs] = []

    def dirs(self, exp: str) -> RunDirs:
        """Fresh, empty staging folders for ``exp``."""
        staged = RunDirs(exp, self.root, self.suffix)
        self.runs.append(staged)
        for kind in KINDS:
            shutil.rmtree(staged.folder(kind), ignore_errors=True)
            for left in staged.folder(kind).parent.glob(f".{exp}{STAGING_SUFFIX}*"):
                if not _process_alive(left.name.rpartition(STAGING_SUFFIX)[2]):  # a killed run's (SIGKILL)
                    shutil.rmtree(left, ignore_errors=True)
        return staged.ensure()

    def current(self, path: Path | str) -> Path:
        """Where a file of an experiment is now: in this run's staging folders if this run wrote it."""
        path = Path(os.path.abspath(path))
        for staged in self.runs:
            for kind in KINDS:
                final = Path(os.path.abspath(staged.final.folder(kind)))
                if path.is_relative_to(final) and (staged.folder(kind) / path.relative_to(final)).exists():
                    return staged.folder(kind) / path.relative_to(final)
        return path

    def commit(self) -> None:
        """Complete every staged folder with the earlier entries it keeps (hard links; nothing is published if
        this fails), then swap each in place of the experiment's own, each whole (renames only)."""
        pairs = [(staged.folder(kind), staged.final.folder(kind), RUN_FILES.get(kind))
                 for staged in self.runs for kind in KINDS]
        for staged, final, replaced in pairs:
            _link_kept(staged, final, replaced)
        for staged, final, _ in pairs:
            replace_dir_atomically(final, lambda tmp, staged=staged: _move_entries(staged, tmp))

    def discard(self) -> None:
        for staged in self.runs:
            for kind in KINDS:
                shutil.rmtree(staged.folder(kind), ignore_errors=True)


def _process_alive(pid: str) -> bool:
    """Whether process ``pid`` (a staging folder's suffix) still runs on this machine."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@contextmanager
def staged_runs(root: Path) -> Iterator[Staging]:
    """A :class:`Staging` whose runs are moved into place when the block ends, and removed whatever happens
    otherwise (exceptions, KeyboardInterrupt and SIGTERM's unwinding included)."""
    staging = Staging(root)
    try:
        yield staging
        staging.commit()
    finally:
        staging.discard()


def _link_kept(staged: Path, final: Path, replaced: set[str] | None) -> None:
    """Hard-link into ``staged`` the entries of ``final`` not named in ``replaced`` (None: none are kept) that the
    new run did not write; the earlier files stay untouched until the swap."""
    if replaced is None or not final.is_dir():
        return
    for entry in sorted(final.iterdir()):
        if entry.name in replaced or (staged / entry.name).exists():
            continue
        _link_tree(entry, staged / entry.name)


def _move_entries(source: Path, dest: Path) -> None:
    for entry in source.iterdir():
        os.replace(entry, dest / entry.name)


def _link_tree(source: Path, dest: Path) -> None:
    """``source`` (a file, a link or a folder tree) hard-linked at ``dest``; errors are the system's own."""
    if source.is_dir() and not source.is_symlink():
        dest.mkdir()
        for entry in source.iterdir():
            _link_tree(entry, dest / entry.name)
    else:
        _link_or_copy(source, dest)


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest, follow_symlinks=False)
    except OSError:  # a file system without hard links
        shutil.copy2(source, dest, follow_symlinks=False)


def check_run_dirs(names: list[str], root: Path) -> None:
    """CamkitError naming ``--name`` or ``--root`` when the experiments' folders (and their staging folders)
    cannot be made: a name too long for the file system, a root or experiment folder that is a file."""
    root = Path(root)
    for kind in KINDS:
        check_destination(root / kind, "--root")
        for name in names:
            check_destination(root / kind / name, "--name")
            check_destination(root / kind / f".{name}{STAGING_SUFFIX}{os.getpid()}", "--name")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a run's numbers."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_manifest(dirs: RunDirs, config: dict, **extra: Any) -> Path:
    """Write ``results/<exp>/manifest.json``: resolved config, seed, versions, devices, time."""
    import tensorflow as tf

    manifest = {
        "experiment": dirs.exp,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "seed": config.get("train", {}).get("seed"),
        "versions": package_versions(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
        **extra,
    }
    return atomic_write_json(dirs.results / "manifest.json", manifest)


def read_manifest(dirs: RunDirs) -> dict[str, Any]:
    """An experiment's manifest (``{}`` when it has none); a CamkitError naming the file if it is garbled."""
    path = dirs.results / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CamkitError(f"{path}: not a camkit manifest (not valid JSON: {exc}); train the experiment again") \
            from None
    sections = manifest.get("config") if isinstance(manifest, dict) else None
    if not isinstance(sections, dict) or not all(isinstance(sections.get(k, {}), dict) for k in ("data", "train")):
        raise CamkitError(f"{path}: not a camkit manifest (no config mapping with data and train sections); "
                          "train the experiment again")
    return manifest


def known_experiments(root: Path) -> list[str]:
    """The experiments under ``root`` that have a trained model (``models/<exp>/best.keras``)."""
    models = Path(root) / "models"
    if not models.is_dir():
        return []
    return sorted(p.parent.name for p in models.glob("*/best.keras") if not p.parent.name.startswith("."))


def find_experiment(name: str, root: Path, option: str = "--experiment") -> RunDirs:
    """The folders of a trained experiment; a CamkitError naming ``option`` and the known ones if it has no model."""
    dirs = RunDirs(name, Path(root))
    if not dirs.best_model.is_file():
        known = ", ".join(known_experiments(root)) or "none"
        raise CamkitError(f"{option}: no experiment named {name!r} under {root} "
                          f"({Path('models') / name / 'best.keras'} missing); known: {known}")
    return dirs


def experiment_data(name: str, root: Path) -> dict[str, Any]:
    """The ``data`` section an experiment was trained with (``{}`` if it has no manifest)."""
    return dict(read_manifest(find_experiment(name, root)).get("config", {}).get("data") or {})
