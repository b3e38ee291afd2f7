"""An experiment's folders (``results/ models/ plots/``) and its manifest."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from camkit.io import atomic_write_json

VERSIONED_PACKAGES = ("camkit", "tensorflow", "keras", "numpy", "scikit-learn", "scipy", "sktime", "pandas")


@dataclass(frozen=True)
class RunDirs:
    """The three folders of one experiment: ``results/<exp>``, ``models/<exp>``, ``plots/<exp>``."""

    exp: str
    root: Path = Path(".")

    @property
    def results(self) -> Path:
        return self.root / "results" / self.exp

    @property
    def models(self) -> Path:
        return self.root / "models" / self.exp

    @property
    def plots(self) -> Path:
        return self.root / "plots" / self.exp

    @property
    def best_model(self) -> Path:
        return self.models / "best.keras"

    def ensure(self) -> RunDirs:
        for folder in (self.results, self.models, self.plots):
            folder.mkdir(parents=True, exist_ok=True)
        return self


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
