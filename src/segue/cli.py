"""The ``segue`` command: one subcommand per stage. Thin: parse, call the library, print.

``main(argv)`` returns the exit status (tests call it directly): 0 success, 1 a check that found
problems (``verify``), 2 bad input or usage — printed as one clear message, never a traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from segue import __version__
from segue.errors import SegueError

app = typer.Typer(
    name="segue", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="segue: continue playlists and predict next tracks — data, models, honest evaluation.",
)
generate_app = typer.Typer(no_args_is_help=True, help="Generate calibrated synthetic data in real formats.")
app.add_typer(generate_app, name="generate")

Workers = Annotated[int | None, typer.Option(help="Worker processes (default: one per core).", min=1)]


def _echo(text: str) -> None:
    typer.echo(text)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        _echo(f"segue {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        _echo(ctx.get_help())
        raise typer.Exit(0)
    logging.getLogger("segue").setLevel(logging.WARNING if quiet else logging.INFO)


@generate_app.command("mpd")
def generate_mpd_cmd(
    playlists: Annotated[int, typer.Option("--playlists", "-n", help="Number of playlists.", min=1)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for the slices.")],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 0,
    challenge_per_category: Annotated[int, typer.Option(
        help="Also write challenge_set.json (+ challenge_truth.json) with this many playlists per category.",
        min=0)] = 0,
    workers: Workers = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it already holds files.")] = False,
) -> None:
    """Write MPD-format slices (1,000 playlists per file) calibrated to the real dataset."""
    from segue.data.synthetic.mpd import generate_mpd

    start = time.perf_counter()
    s = generate_mpd(out, playlists, seed=seed, challenge_per_category=challenge_per_category,
                     workers=workers, overwrite=overwrite)
    _echo(f"wrote {s.n_playlists:,} playlists ({s.n_entries:,} track entries, {s.n_unique_tracks:,} unique tracks) "
          f"in {s.n_slices:,} slices to {s.out}"
          + (f", and a challenge set of {s.n_challenge:,} playlists" if s.n_challenge else "")
          + f" [{time.perf_counter() - start:.1f} s]")


@app.command()
def ingest(
    source: Annotated[Path, typer.Argument(help="Directory with mpd.slice.*.json files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory.")],
    workers: Workers = None,
    skip_bad: Annotated[bool, typer.Option(help="Skip unreadable or inconsistent slices (listed) instead of stopping.")] = False,
) -> None:
    """Load MPD slices into Parquet tables (playlists, tracks, playlist_tracks) and a manifest."""
    from segue.data.ingest import ingest_mpd

    start = time.perf_counter()
    s = ingest_mpd(source, out, workers=workers, skip_bad=skip_bad)
    _echo(f"ingested {s.n_playlists:,} playlists, {s.n_tracks:,} tracks, {s.n_entries:,} entries into {s.out} "
          f"[{time.perf_counter() - start:.1f} s]")
    absent = [k for k, v in s.missing_fields.items() if k != "playlist.description"]
    if absent:
        _echo("fields missing in the source (reduced copy?): "
              + ", ".join(f"{k} ({s.missing_fields[k]:,} records)" for k in sorted(absent)))
    if s.skipped:
        _echo(f"skipped {len(s.skipped)} slice{'s' if len(s.skipped) > 1 else ''}:")
        for line in s.skipped:
            _echo(f"  - {line}")
    if s.warnings:
        _echo(f"{len(s.warnings)} warning{'s' if len(s.warnings) > 1 else ''} (see manifest.json); first ones:")
        for line in s.warnings[:5]:
            _echo(f"  - {line}")


@app.command()
def verify(
    source: Annotated[Path, typer.Argument(help="Directory with mpd.slice.*.json files.")],
    challenge: Annotated[Path | None, typer.Option(help="Challenge set to check (default: look beside the slices).")] = None,
    workers: Workers = None,
) -> None:
    """Check that an MPD directory is complete, parseable and consistent (exit 1 if not)."""
    from segue.data.verify import verify_mpd

    report = verify_mpd(source, challenge=challenge, workers=workers)
    _echo(report.format_text())
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def eda(
    data: Annotated[Path, typer.Argument(help="Dataset directory written by `segue ingest`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for eda.md, eda.json and eda.png.")],
) -> None:
    """Descriptive statistics of a dataset (Markdown, JSON) and the four-panel figure (PNG)."""
    from segue.analysis.eda import run_eda

    start = time.perf_counter()
    stats = run_eda(data, out)
    length = stats.get("playlist_length", {})
    _echo(f"wrote {out}/eda.md, eda.json, eda.png [{time.perf_counter() - start:.1f} s]")
    if length:
        _echo(f"playlists: mean length {length.get('mean', float('nan')):.1f}, median {length.get('median')}, "
              f"mode {length.get('mode')}")


def _configure_logging() -> None:
    logger = logging.getLogger("segue")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    _configure_logging()
    try:
        # Standalone mode: typer prints usage errors itself and exits 2 through SystemExit.
        app(args=argv, prog_name="segue")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SegueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no partial output was kept", file=sys.stderr)
        return 130
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
