"""``camkit make-benchmark NAME``: the benchmarks camkit builds itself (one module each) and what they share.

A benchmark module (registered in ``BENCHMARKS`` by its import path) has ``OPTIONS`` (the keyword options its
``build`` takes besides ``seed`` and ``progress``, name -> default), ``build(out, *, seed, progress, **options)``
(writes the folder atomically, returns its ``benchmark.json``) and ``describe(info, out)`` (the line the command
prints).
"""

from __future__ import annotations

from importlib import import_module, metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from camkit.errors import CamkitError

BENCHMARKS = {"cluttered-digits": "camkit.data.cluttered_digits", "planted-patterns": "camkit.data.planted"}


def benchmark_module(name: str) -> ModuleType:
    """The module that builds benchmark ``name``; a CamkitError listing the names otherwise."""
    if name not in BENCHMARKS:
        raise CamkitError(f"make-benchmark: unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    return import_module(BENCHMARKS[name])


def make_benchmark(name: str, out: Path | str, *, seed: int = 0, progress: bool = True, **options: Any) -> dict:
    """Build benchmark ``name`` into ``out`` (replaced atomically) with its ``options``; returns its benchmark.json."""
    module = benchmark_module(name)
    if seed < 0:
        raise CamkitError(f"--seed must be at least 0, got {seed}")
    unknown = [key for key in options if key not in module.OPTIONS]
    if unknown:
        taken = ", ".join(f"--{key.replace('_', '-')}" for key in module.OPTIONS)
        raise CamkitError(f"--{unknown[0].replace('_', '-')}: {name} takes no such option (it takes {taken})")
    return module.build(Path(out), seed=seed, progress=progress, **options)


def describe(name: str, info: dict, out: Path) -> str:
    """The line ``camkit make-benchmark`` prints for the benchmark ``info`` it wrote to ``out``."""
    return benchmark_module(name).describe(info, Path(out))


def check_out(out: Path) -> None:
    """Refuse to replace anything but an earlier benchmark folder (``--out data`` must not wipe data/)."""
    if out.exists() and not out.is_dir():
        raise CamkitError(f"--out: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "benchmark.json").is_file():
        raise CamkitError(f"--out: {out} is a non-empty folder that holds no benchmark (no benchmark.json); "
                          "choose a new or an empty folder, e.g. data/cluttered_digits")


def package_versions(*names: str) -> dict[str, str]:
    """The installed versions of ``names`` (recorded in benchmark.json: other versions may give other bytes)."""
    return {name: metadata.version(name) for name in names}


def command_out(out: Path) -> str:
    """``out`` as the regeneration command shows it: relative paths as they are, absolute ones as ``DIR``."""
    return out.as_posix() if not out.is_absolute() else "DIR"
