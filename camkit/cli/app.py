"""The ``camkit`` click group: a CamkitError becomes one ``Error:`` line and exit code 2."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

from typing import Any

import click

from camkit.errors import CamkitError


class UserError(click.ClickException):
    """A CamkitError shown as ``Error: <one line>`` with exit code 2."""

    exit_code = 2


class CamkitGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CamkitError as exc:
            raise UserError(str(exc)) from None


@click.group(cls=CamkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="camkit")
def main() -> None:
    """camkit: train CNNs, explain them with class activation maps, measure and plot the maps."""
