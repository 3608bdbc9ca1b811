"""The real MPD's published statistics, and a comparison of any ingested dataset against them.

Reference values come from the MPD's ``stats.txt`` as summarised in
``shared/reference/recsys2018.md``. Counts of unique things depend on the number of playlists,
so they are compared only at 1M playlists; shares and histogram shapes are compared at any size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from segue.analysis.eda import normalize_name_mpd  # the MPD's own title normalisation
from segue.data import schema

FULL_SIZE = 1_000_000

# figure -> (reference value, scales with size?)
REFERENCE: dict[str, tuple[float, bool]] = {
    "average playlist length": (66.346428, False),
    "unique tracks": (2_262_292, True),
    "unique albums": (734_684, True),
    "unique artists": (295_860, True),
    "unique normalized titles": (17_381, True),
    "top track's share of playlists": (46_574 / FULL_SIZE, False),
    "20th track's share of playlists": (30_485 / FULL_SIZE, False),
    "top artist's share of entries": (847_160 / 66_346_428, False),
    "20th artist's share of entries": (185_520 / 66_346_428, False),
    "share of playlists with 20 tracks": (15_057 / FULL_SIZE, False),
    "share of playlists with 12 tracks": (12_016 / FULL_SIZE, False),
    "share with 1 follower": (754_219 / FULL_SIZE, False),
    "share with 2 followers": (149_600 / FULL_SIZE, False),
    "share with 5 followers": (9_813 / FULL_SIZE, False),
    "share with 2 edits": (92_252 / FULL_SIZE, False),
    "share with 5 edits": (61_978 / FULL_SIZE, False),
    "share with 10 edits": (32_810 / FULL_SIZE, False),
    "share with a description": (18_760 / FULL_SIZE, False),
}
TOLERANCE = 0.15
__all__ = [
    "REFERENCE",
    "Comparison",
    "compare",
    "dataset_figures",
    "format_markdown",
    "generation_report",
    "normalize_name_mpd",
]


@dataclass(frozen=True)
class Comparison:
    figure: str
    value: float
    reference: float | None  # None when the figure depends on size and size is not 1M

    @property
    def ratio(self) -> float | None:
        return None if self.reference in (None, 0) else self.value / self.reference

    @property
    def within_tolerance(self) -> bool | None:
        return None if self.ratio is None else abs(self.ratio - 1) <= TOLERANCE


def dataset_figures(data: Path) -> dict[str, float]:
    """The figures of ``REFERENCE`` measured on an ingested dataset directory."""
    data = Path(data)
    playlists = pq.read_table(
        data / schema.PLAYLISTS_FILE,
        columns=[
            schema.NAME,
            schema.NUM_TRACKS,
            schema.NUM_FOLLOWERS,
            schema.NUM_EDITS,
            schema.DESCRIPTION,
        ],
    )
    tracks = pq.read_table(data / schema.TRACKS_FILE, columns=[schema.ARTIST_ID, schema.ALBUM_ID])
    entries = pq.read_table(
        data / schema.PLAYLIST_TRACKS_FILE, columns=[schema.PID, schema.TRACK_ID]
    )
    n = playlists.num_rows
    lengths = playlists.column(schema.NUM_TRACKS).to_numpy()
    track_id = entries.column(schema.TRACK_ID).to_numpy()
    pid = entries.column(schema.PID).to_numpy().astype(np.int64)
    # playlists holding each track: count distinct (pid, track) pairs
    pairs = np.unique(pid * tracks.num_rows + track_id)
    per_track = np.sort(np.bincount(pairs % tracks.num_rows, minlength=tracks.num_rows))[::-1]
    artist = tracks.column(schema.ARTIST_ID).to_numpy()
    per_artist = np.sort(np.bincount(artist[track_id]))[::-1]
    names = playlists.column(schema.NAME).fill_null("").to_pylist()
    length_hist = np.bincount(lengths, minlength=251)
    followers = playlists.column(schema.NUM_FOLLOWERS).fill_null(0).to_numpy()
    edits = playlists.column(schema.NUM_EDITS).fill_null(0).to_numpy()
    return {
        "average playlist length": float(lengths.mean()),
        "unique tracks": float(tracks.num_rows),
        "unique albums": float(len(np.unique(tracks.column(schema.ALBUM_ID).to_numpy()))),
        "unique artists": float(len(np.unique(artist))),
        "unique normalized titles": float(len({normalize_name_mpd(t) for t in names})),
        "top track's share of playlists": per_track[0] / n,
        "20th track's share of playlists": per_track[min(19, len(per_track) - 1)] / n,
        "top artist's share of entries": per_artist[0] / len(track_id),
        "20th artist's share of entries": per_artist[min(19, len(per_artist) - 1)] / len(track_id),
        "share of playlists with 20 tracks": length_hist[20] / n,
        "share of playlists with 12 tracks": length_hist[12] / n,
        "share with 1 follower": float(np.mean(followers == 1)),
        "share with 2 followers": float(np.mean(followers == 2)),
        "share with 5 followers": float(np.mean(followers == 5)),
        "share with 2 edits": float(np.mean(edits == 2)),
        "share with 5 edits": float(np.mean(edits == 5)),
        "share with 10 edits": float(np.mean(edits == 10)),
        "share with a description": playlists.column(schema.DESCRIPTION).drop_null().__len__() / n,
    }


def compare(data: Path) -> list[Comparison]:
    """Each reference figure against ``data``'s; size-dependent ones only at 1M playlists."""
    figures = dataset_figures(data)
    n = pq.read_metadata(Path(data) / schema.PLAYLISTS_FILE).num_rows
    out = []
    for name, (reference, scales) in REFERENCE.items():
        out.append(
            Comparison(name, figures[name], None if scales and n != FULL_SIZE else reference)
        )
    return out


def format_markdown(rows: list[Comparison]) -> str:
    lines = ["| figure | generated | real MPD | ratio | within ±15% |", "|---|---|---|---|---|"]
    for r in rows:
        fmt = (lambda v: f"{v:,.0f}") if r.value >= 100 else (lambda v: f"{v:.4f}")
        ref = "—" if r.reference is None else fmt(r.reference)
        ratio = "—" if r.ratio is None else f"{r.ratio:.3f}"
        ok = "—" if r.within_tolerance is None else ("yes" if r.within_tolerance else "**no**")
        lines.append(f"| {r.figure} | {fmt(r.value)} | {ref} | {ratio} | {ok} |")
    return "\n".join(lines)


REPORT_FILE = "generation_report.md"
REPORT_JSON = "generation_report.json"
STRUCTURE_SAMPLE = 20_000  # playlists the structure figures are measured on (equal sizes compare)


def generation_report(
    slices: Path, *, compare_with: Path | None = None, workers: int | None = None
) -> dict:
    """``segue generate mpd --report``: the generated slices in ``slices`` measured against the
    MPD's published figures and on structure (:mod:`segue.analysis.structure`), beside a real
    collection when ``compare_with`` is given (MPD slices or a ``segue ingest`` directory).
    Writes :data:`REPORT_FILE` and :data:`REPORT_JSON` into ``slices`` (each whole or not at
    all); returns the JSON document."""
    import tempfile

    from segue.analysis.structure import structure_stats
    from segue.data.ingest import ingest_mpd
    from segue.io import write_json, write_text

    slices = Path(slices)
    with tempfile.TemporaryDirectory(prefix="segue-report-") as tmp:
        data = Path(tmp) / "generated"
        ingest_mpd(slices, data, workers=workers)
        rows = compare(data)
        doc = {
            "published": [
                {"figure": r.figure, "generated": r.value, "reference": r.reference} for r in rows
            ],
            "structure": {},
        }
        size = STRUCTURE_SAMPLE
        if compare_with is not None:
            real = Path(compare_with)
            if not (real / schema.MANIFEST_FILE).exists():
                ingest_mpd(real, Path(tmp) / "real", workers=workers)
                real = Path(tmp) / "real"
            size = min(size, pq.read_metadata(real / schema.PLAYLISTS_FILE).num_rows)
            doc["structure"]["real"] = structure_stats(real, sample=size)
        doc["structure"]["generated"] = structure_stats(data, sample=size)
        doc["structure_sample"] = size
    lines = [
        "# Generated playlists against the real MPD",
        "",
        "## Published figures (the MPD's stats.txt)",
        "",
        format_markdown(rows),
        "",
        "## Structure (how tracks go together; `segue.analysis.structure`)",
        "",
        f"Measured on at most {doc['structure_sample']:,} playlists of each collection, drawn at "
        "random: co-occurrence figures depend on the number of playlists.",
        "",
    ]
    real = doc["structure"].get("real")
    if real is None:
        lines += ["| figure | generated |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in doc["structure"]["generated"].items()]
    else:
        lines += [
            f"| figure | generated | real ({Path(compare_with).name}) | generated / real |",
            "|---|---|---|---|",
        ]
        for key, value in doc["structure"]["generated"].items():
            ratio = value / real[key] if real[key] else float("nan")
            lines.append(f"| {key} | {value:.4g} | {real[key]:.4g} | {ratio:.2f} |")
        lines += [
            "",
            "A real collection of another size or population (the dev set keeps playlists with "
            "≥ 10 followers) differs for that reason too; `benchmarks/calibrate.py` generates that "
            "population at the real set's size and compares model behaviour as well.",
        ]
    write_text(slices / REPORT_FILE, "\n".join(lines) + "\n")
    write_json(slices / REPORT_JSON, doc)
    return doc
