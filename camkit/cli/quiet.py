"""Keep TensorFlow's and Python's start-up chatter off the terminal unless the user asks for it.

TensorFlow's C++ side writes absl and CUDA lines (``All log messages before absl::InitializeLog()``,
``Could not find cuda drivers``, ``failed call to cuInit``) straight to file descriptor 2 while it is
imported and while it looks for devices; no logging setting reaches all of them. Unless
``--verbose`` or ``CAMKIT_VERBOSE=1`` asks for them, that descriptor points at ``/dev/null`` for
exactly those two moments, and Python warnings and TensorFlow's Python loggers are kept to errors.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import warnings
from types import ModuleType

from camkit.io import descriptor_2_silenced


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader, and its device discovery, with descriptor 2 silenced."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with descriptor_2_silenced():
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # CUDA's cuInit lines come from this first look
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` through the normal finders and wraps its loader (once)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_start_up() -> None:
    """Silence what TensorFlow prints when it starts and Python's warnings (idempotent)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.simplefilter("ignore")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
