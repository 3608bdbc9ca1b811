"""Foundation figures: generate → verify → ingest → EDA → PlaylistData.load, at a given size.

    .venv/bin/python benchmarks/bench_foundation.py --playlists 1000000 --work /tmp/segue-bench

Each stage runs as the real CLI command in a subprocess, measured by ``measure.py`` (wall time,
peak RSS of the whole process tree). Then: JSON throughput per core of segue's slice parser
against plain ``orjson.loads`` of the same files, and the generated data's statistics against
the real MPD's (``segue.data.synthetic.calibration``). Prints a Markdown block for RESULTS.md
and writes it to ``<work>/results.md``.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import machine, measure  # noqa: E402

SEGUE = [sys.executable, "-m", "segue"]


def throughput(mpd: Path, n_files: int = 20) -> dict[str, float]:
    """MB/s on one core: plain ``orjson.loads`` vs segue's ``parse_slice`` (decode + Arrow + checks)."""
    import orjson

    from segue.data.mpd import find_slices, parse_slice

    files = find_slices(mpd)[:n_files]
    size = sum(f.path.stat().st_size for f in files)
    for f in files:  # warm the page cache so both read from memory
        f.path.read_bytes()
    start = time.perf_counter()
    for f in files:
        orjson.loads(f.path.read_bytes())
    orjson_s = time.perf_counter() - start
    start = time.perf_counter()
    for f in files:
        parse_slice(f)
    segue_s = time.perf_counter() - start
    return {
        "orjson_mb_s": size / 1e6 / orjson_s,
        "segue_mb_s": size / 1e6 / segue_s,
        "mb_per_slice": size / 1e6 / len(files),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--playlists", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/segue-bench"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="skip stages whose output exists (reuse generated slices / ingested data)",
    )
    args = parser.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    mpd, data, eda = work / "mpd", work / "data", work / "eda"
    stages = [
        (
            "generate",
            [
                *SEGUE,
                "generate",
                "mpd",
                "--playlists",
                str(args.playlists),
                "--out",
                str(mpd),
                "--seed",
                str(args.seed),
                "--challenge-per-category",
                "1000",
                "--overwrite",
            ],
        ),
        ("verify", [*SEGUE, "verify", str(mpd)]),
        ("ingest", [*SEGUE, "ingest", str(mpd), "--out", str(data)]),
        ("eda", [*SEGUE, "eda", str(data), "--out", str(eda)]),
        (
            "PlaylistData.load",
            [
                sys.executable,
                "-c",
                f"from segue.data.dataset import PlaylistData; d = PlaylistData.load({str(data)!r}); "
                "print(d.matrix.shape, d.matrix.nnz)",
            ],
        ),
    ]
    rows = []
    for name, command in stages:
        if args.reuse and (
            (name == "generate" and mpd.exists()) or (name == "ingest" and data.exists())
        ):
            print(f"reusing {name} output", file=sys.stderr)
            continue
        m = measure(command)
        if m.returncode != 0:
            print(f"stage {name} failed with status {m.returncode}", file=sys.stderr)
            return 1
        rows.append((name, m))
    tp = throughput(mpd)
    from segue.data.synthetic.calibration import compare, format_markdown

    calibration = compare(data)
    size_gb = sum(p.stat().st_size for p in mpd.glob("mpd.slice.*.json")) / 1e9
    data_gb = sum(p.stat().st_size for p in data.iterdir()) / 1e9
    lines = [
        f"### Foundation at {args.playlists:,} playlists",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_foundation.py --playlists {args.playlists} --work {work}`  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Sizes: {size_gb:.1f} GB of JSON slices → {data_gb:.2f} GB of Parquet",
        "",
        "| stage | wall time | peak RSS (process tree) |",
        "|---|---|---|",
        *[f"| {name} | {m.wall_s:.1f} s | {m.peak_rss_gib:.2f} GiB |" for name, m in rows],
        "",
        f"JSON throughput on one core ({tp['mb_per_slice']:.1f} MB slices, page cache warm): "
        f"plain `orjson.loads` {tp['orjson_mb_s']:.0f} MB/s; segue's `parse_slice` (decode + Arrow + checks) "
        f"{tp['segue_mb_s']:.0f} MB/s ({tp['segue_mb_s'] / tp['orjson_mb_s']:.0%} of orjson).",
        "",
        "Generated statistics against the real MPD:",
        "",
        format_markdown(calibration),
        "",
    ]
    text = "\n".join(lines)
    (work / "results.md").write_text(text)
    print(text)
    if not args.keep:
        shutil.rmtree(mpd, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
