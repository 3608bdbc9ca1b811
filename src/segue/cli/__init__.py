"""The ``segue`` command: one subcommand per stage. Thin: parse, call the library, print.

``main(argv)`` returns the exit status (tests call it directly): 0 success, 1 a check that found
problems (``verify``), 2 bad input or usage — printed as one clear message, never a traceback.

The commands live in modules by what they work on (``data``, ``models``, ``analysis``, ``serve``,
``runs``, ``graph``), each registering on the one app of :mod:`.common`.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Annotated

import typer

from segue import __version__
from segue.cli.common import app, echo
from segue.errors import SegueError


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        echo(f"segue {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        echo(ctx.get_help())
        raise typer.Exit(0)
    logging.getLogger("segue").setLevel(logging.WARNING if quiet else logging.INFO)


# The commands: importing a module registers its commands on ``app``, in the order ``segue --help``
# lists them (heavy libraries load inside the commands, so this stays fast).
for _module in ("data", "graph", "models", "analysis", "serve", "runs"):
    importlib.import_module(f"segue.cli.{_module}")


def _not_a_bar_line(record: logging.LogRecord) -> bool:
    """The terminal handler's filter: drop progress lines a rich bar already shows."""
    return not getattr(record, "segue_bar", False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a caller that swaps it, as pytest's
    capture does between tests, never leaves the handler writing to a closed stream)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property wins
        pass


def _configure_logging() -> None:
    logger = logging.getLogger("segue")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        # Progress lines a rich bar already shows on the terminal (they still reach log files).
        handler.addFilter(_not_a_bar_line)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


GLOBAL_FLAGS = ("-q", "--quiet")


def _globals_first(argv: list[str]) -> list[str]:
    """``-q``/``--quiet`` may come anywhere (``segue train … -q``): moved before the
    subcommand, where the root command reads it. Nothing after ``--`` is touched.

    >>> _globals_first(["train", "popular", "d", "-q", "--", "-q"])
    ['-q', 'train', 'popular', 'd', '--', '-q']
    """
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:end] if a in GLOBAL_FLAGS]
    rest = [a for a in argv[:end] if a not in GLOBAL_FLAGS]
    return [*flags[:1], *rest, *argv[end:]]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    _configure_logging()
    argv = _globals_first(list(sys.argv[1:] if argv is None else argv))
    try:
        # Standalone mode: typer prints usage errors itself and exits 2 through SystemExit.
        app(args=argv, prog_name="segue")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SegueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine said no: a full disk, a read-only directory, …
        print(f"error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no partial output was kept", file=sys.stderr)
        return 130
    return 0


def _os_error(exc: OSError) -> str:
    """One line for an error the operating system raised: the file, then why.

    >>> _os_error(OSError(28, "No space left on device", "/data/out"))
    '/data/out: No space left on device (ENOSPC)'
    """
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    reason = f"{exc.strerror or exc}" + (f" ({name})" if name else "")
    where = exc.filename if exc.filename is not None else None
    return f"{where}: {reason}" if where is not None else reason


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
