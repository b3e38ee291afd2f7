"""The ``camkit`` click group: every user error becomes one ``Error:`` line and exit code 2.

A CamkitError, a click usage error (bad or missing option) and an operating-system error on a
file (full disk, no permission, a name too long) all end as exactly one line on stderr. SIGTERM
unwinds like Ctrl-C, so temporary files are removed and earlier results stay as they were.
"""

from __future__ import annotations

import errno
import signal
import sys
import threading
from typing import Any

import click

from camkit.cli.quiet import quiet_start_up
from camkit.errors import CamkitError

# OS errors that mean "this file or folder cannot be used", not a bug in camkit.
_FILE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG,
                errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT, errno.ELOOP}


class UserError(click.ClickException):
    """A user error shown as ``Error: <one line>`` with exit code 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever the message held


def os_error_line(exc: OSError) -> str:
    """``PATH: No space left on device`` — the file first, then what the system said."""
    what = exc.strerror or str(exc)
    return f"{exc.filename}: {what}" if exc.filename else what


class CamkitGroup(click.Group):
    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise UserError(exc.format_message()) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except (CamkitError, click.UsageError) as exc:
            message = exc.format_message() if isinstance(exc, click.UsageError) else str(exc)
            raise UserError(message) from None
        except OSError as exc:
            if exc.errno not in _FILE_ERRNOS:
                raise
            raise UserError(os_error_line(exc)) from None


@click.group(cls=CamkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="camkit")
@click.option("--verbose", "-v", is_flag=True, envvar="CAMKIT_VERBOSE",
              help="Show TensorFlow's start-up lines and Python warnings (also CAMKIT_VERBOSE=1).")
def main(verbose: bool) -> None:
    """camkit: train CNNs, explain them with class activation maps, measure and plot the maps."""
    if not verbose:
        quiet_start_up()


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so ``finally`` blocks clean up as on Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def run_cli() -> None:
    """The console entry point: ``main`` with SIGTERM turned into a clean unwind (exit 143)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        main()
    except Terminated:
        click.echo("Aborted (SIGTERM); unfinished files were removed.", err=True)
        sys.exit(128 + signal.SIGTERM)
