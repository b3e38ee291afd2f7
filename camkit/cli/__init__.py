"""The ``camkit`` command: each subcommand parses its options, builds a typed plan and calls one workflow."""

from camkit.cli import data, experiments, explain, faithfulness, localization  # noqa: F401  (they register the commands)
from camkit.cli.app import main, run_cli

__all__ = ["main", "run_cli"]
