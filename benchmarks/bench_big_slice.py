"""One slice file far larger than the MPD's (a merged copy): ingest and verify, memory and time.

    .venv/bin/python benchmarks/bench_big_slice.py --playlists 80000 --work /tmp/segue-big

Generates ``--playlists`` playlists, merges every slice into one pretty-printed file
(``mpd.slice.0-N.json``, ~2.1 GB at 80,000), then runs ``segue ingest`` and ``segue verify`` on
it as subprocesses measured by ``measure.py`` (peak RSS of the whole process tree). Files above
``segue.data.mpd.STREAM_ABOVE_BYTES`` stream in parts, so the peak should not grow with the
file; run the same script on an older checkout to compare.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import machine, measure  # noqa: E402

SEGUE = [sys.executable, "-m", "segue"]


def merged_slice(work: Path, n: int) -> Path:
    """Generate ``n`` playlists and write them as one slice file; returns its directory."""
    gen, big = work / "generated", work / "big"
    if not gen.exists():
        measure([*SEGUE, "generate", "mpd", "--playlists", str(n), "--out", str(gen)])
    big.mkdir(parents=True, exist_ok=True)
    out = big / f"mpd.slice.0-{n - 1}.json"
    if not out.exists():
        from segue.data.mpd import find_slices

        playlists = []
        for f in find_slices(gen):
            playlists += orjson.loads(f.path.read_bytes())["playlists"]
        out.write_bytes(
            orjson.dumps({"info": {}, "playlists": playlists}, option=orjson.OPT_INDENT_2)
        )
    return big


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--playlists", type=int, default=80_000)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    big = merged_slice(args.work, args.playlists)
    size = next(big.iterdir()).stat().st_size
    shutil.rmtree(args.work / "data", ignore_errors=True)
    ingest = measure([*SEGUE, "ingest", str(big), "--out", str(args.work / "data")])
    verify = measure([*SEGUE, "verify", str(big)])
    print(f"\nmachine: {machine()}")
    print(f"one file of {args.playlists:,} playlists, {size / 1e9:.2f} GB")
    for name, m in (("ingest", ingest), ("verify", verify)):
        print(
            f"segue {name}: {m.wall_s:.1f} s, peak tree RSS {m.peak_rss_gib:.2f} GiB, rc {m.returncode}"
        )


if __name__ == "__main__":
    main()
