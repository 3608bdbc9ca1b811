"""``segue ingest kaggle``: the Kaggle "Spotify Playlists" CSV → segue's playlist tables.

The file (``spotify_dataset.csv``, ~12.9M rows, from the #nowplaying dataset of Pichl, Zangerle
and Specht, ICDM workshops 2015) has the columns ``user_id, artistname, trackname, playlistname``.
Its known quirks, all handled here:

* the header reads ``"user_id", "artistname", "trackname", "playlistname"`` — a space after each
  comma, so naive readers get column names with spaces and quotes;
* every field is quoted and a quote inside a field is escaped with a backslash (``\\"``), not
  doubled as in RFC 4180 — readers that expect doubled quotes break lines there;
* a few hundred lines still have the wrong number of fields: they are **skipped and counted**
  (first ones listed in the manifest), unless ``strict``;
* some rows lack a track or artist name, or a playlist name: a row without a user or a track
  name is skipped and counted; an empty playlist name is a playlist called ``""``;
* a playlist may list a track more than once (kept, as in the MPD).

Playlists are identified by (user_id, playlistname), tracks by (artistname, trackname), artists by
name; ids are dense and in order of first appearance. The output is the same three tables MPD
ingest writes (``playlists``, ``tracks``, ``playlist_tracks`` + ``manifest.json``), so
:class:`~segue.data.dataset.PlaylistData` and every model work on it, plus
``playlist_owners.parquet`` (pid, user_key). The file has no URIs and no albums: tracks and artists
get ``kaggle:track:<id>`` / ``kaggle:artist:<id>`` URIs and each track is its own album.

With ``features`` (an audio-features CSV such as Kaggle's ``tracks_features.csv`` or
``SpotifyFeatures.csv``), tracks are matched by normalised (artist, name) — lower case, spaces
collapsed; a list-valued artists column (``"['A', 'B']"``) matches on its first artist — and the
matched tracks' features are written to ``track_features.parquet`` (track_id + float32 columns);
``duration_ms`` from the features fills the tracks table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from segue.data import schema
from segue.data.listening_exports import DelimitedFile
from segue.data.listening_ingest import KeyIndex
from segue.data.tables import Tables
from segue.errors import InputFileError
from segue.io import atomic_dir
from segue.progress import progress

log = logging.getLogger("segue")

KAGGLE_COLUMNS = ["user_id", "artistname", "trackname", "playlistname"]
AUDIO_FEATURES = (
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "duration_ms",
    "time_signature",
)
_TRACK_NAME_COLUMNS = ("trackname", "track_name", "name")
_ARTIST_COLUMNS = ("artistname", "artist_name", "artists", "artist")


@dataclass
class _Tally:
    warnings: list[str] = field(default_factory=list)
    skipped_rows: int = 0


@dataclass
class KaggleSummary:
    out: Path
    n_playlists: int
    n_tracks: int
    n_artists: int
    n_users: int
    n_entries: int
    skipped_rows: int
    warnings: list[str]
    features_matched: int | None = None

    def as_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def normalise_name(names: pl.Series) -> pl.Series:
    """Lower case, surrounding spaces removed, inner runs of spaces collapsed."""
    return names.fill_null("").str.to_lowercase().str.strip_chars().str.replace_all(r"\s+", " ")


def _check_header(path: Path) -> None:
    try:
        with open(path, "rb") as handle:
            first = handle.readline().decode("utf-8", "replace").strip()
    except OSError as exc:
        raise InputFileError(path, f"unreadable ({exc})") from None
    columns = [c.strip().strip('"').strip().lower() for c in first.split(",")]
    if columns != KAGGLE_COLUMNS:
        raise InputFileError(
            path,
            f"header {first[:100]!r} is not the Kaggle playlist file's "
            f"({', '.join(KAGGLE_COLUMNS)})",
            where="line 1",
        )


def ingest_kaggle(
    csv: Path, out: Path, *, features: Path | None = None, strict: bool = False
) -> KaggleSummary:
    """Read the Kaggle playlist CSV (streaming) and write playlist tables to ``out``."""
    csv = Path(csv)
    if not csv.is_file():
        raise InputFileError(csv, "no such file")
    _check_header(csv)
    tally = _Tally()
    playlists = KeyIndex(name="playlist")
    tracks = KeyIndex(name="track")
    artists = KeyIndex(name="artist")
    playlist_names: list[pl.Series] = []
    playlist_users: list[pl.Series] = []
    track_meta: list[pl.DataFrame] = []
    track_artist: list[np.ndarray] = []
    artist_names: list[str] = []
    pid_parts: list[np.ndarray] = []
    track_parts: list[np.ndarray] = []
    reader = DelimitedFile(
        csv, tally, escape_char="\\", names=KAGGLE_COLUMNS, skip_header=True, skip_bad=not strict
    )
    with progress("read kaggle playlists", csv.stat().st_size, "bytes") as bar:
        for lines, frame, nbytes in reader:
            missing = (frame["user_id"].fill_null("").str.strip_chars() == "") | (
                frame["trackname"].fill_null("").str.strip_chars() == ""
            )
            if missing.any():
                if strict:
                    i = int(missing.arg_max())
                    what = "user_id" if not (frame["user_id"][i] or "").strip() else "trackname"
                    raise InputFileError(csv, f"field {what} is empty", where=f"line {lines[i]}")
                tally.skipped_rows += int(missing.sum())
                for line in lines[missing.to_numpy()][: max(0, 20 - len(tally.warnings))].tolist():
                    tally.warnings.append(
                        f"{csv.name}: line {line}: skipped, no user_id or trackname"
                    )
                frame = frame.filter(~missing)
            if frame.height == 0:
                bar.advance(nbytes)
                continue
            artist = frame["artistname"].fill_null("")
            playlist_name = frame["playlistname"].fill_null("")
            pids, new_p = playlists.add(frame["user_id"] + "\x1f" + playlist_name)
            if len(new_p):
                playlist_names.append(playlist_name.gather(new_p))
                playlist_users.append(frame["user_id"].gather(new_p))
            tids, new_t = tracks.add(artist + "\x1f" + frame["trackname"])
            if len(new_t):
                new_artist = artist.gather(new_t)
                aids, new_a = artists.add(new_artist)
                artist_names += new_artist.gather(new_a).to_list()
                track_artist.append(aids.to_numpy().astype(np.int32))
                track_meta.append(
                    pl.DataFrame(
                        {"track_name": frame["trackname"].gather(new_t), "artist_name": new_artist}
                    )
                )
            pid_parts.append(pids.to_numpy().astype(np.int32))
            track_parts.append(tids.to_numpy().astype(np.int32))
            bar.advance(nbytes)
    if not pid_parts:
        raise InputFileError(csv, "holds no playlist rows")
    pid = np.concatenate(pid_parts)
    track = np.concatenate(track_parts)
    del pid_parts, track_parts
    # Entries by playlist, in file order within each (a playlist's rows need not be contiguous).
    order = np.argsort(pid, kind="stable")
    pid, track = pid[order], track[order]
    del order
    n_playlists, n_tracks = len(playlists), len(tracks)
    lengths = np.bincount(pid, minlength=n_playlists)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    pos = (np.arange(len(pid)) - starts[pid]).astype(np.int32)
    artist_of = np.concatenate(track_artist)
    meta = pl.concat(track_meta)
    durations = pl.Series([None] * n_tracks, dtype=pl.Int64)
    matched = None
    features_table = None
    if features is not None:
        features_table, durations = _join_features(Path(features), meta)
        matched = features_table.num_rows

    entry_artist = (
        artist_of[track].astype(np.int64) * n_playlists + pid
    )  # distinct (artist, playlist)
    n_artists_per = np.bincount(
        (np.unique(entry_artist) % n_playlists).astype(np.int64), minlength=n_playlists
    )
    names = pl.concat(playlist_names)
    playlists_table = pa.table(
        {
            schema.PID: pa.array(np.arange(n_playlists, dtype=np.int32)),
            schema.NAME: names.to_arrow().cast(pa.string()),
            schema.DESCRIPTION: pa.nulls(n_playlists, pa.string()),
            schema.COLLABORATIVE: pa.nulls(n_playlists, pa.bool_()),
            schema.MODIFIED_AT: pa.nulls(n_playlists, pa.int64()),
            schema.NUM_TRACKS: pa.array(lengths.astype(np.int32)),
            schema.NUM_ALBUMS: pa.nulls(n_playlists, pa.int32()),
            schema.NUM_FOLLOWERS: pa.nulls(n_playlists, pa.int32()),
            schema.NUM_EDITS: pa.nulls(n_playlists, pa.int32()),
            schema.DURATION_MS: pa.nulls(n_playlists, pa.int64()),
            schema.NUM_ARTISTS: pa.array(n_artists_per.astype(np.int32)),
        },
        schema=schema.PLAYLISTS_SCHEMA,
    )
    ids = np.arange(n_tracks, dtype=np.int32)
    tracks_table = pa.table(
        {
            schema.TRACK_ID: pa.array(ids),
            schema.TRACK_URI: pa.array([f"kaggle:track:{i}" for i in range(n_tracks)], pa.string()),
            schema.TRACK_NAME: meta["track_name"].to_arrow().cast(pa.string()),
            schema.ARTIST_ID: pa.array(artist_of, pa.int32()),
            schema.ARTIST_URI: pa.array(
                [f"kaggle:artist:{a}" for a in artist_of.tolist()], pa.string()
            ),
            schema.ARTIST_NAME: meta["artist_name"].to_arrow().cast(pa.string()),
            schema.ALBUM_ID: pa.array(ids),
            schema.ALBUM_URI: pa.nulls(n_tracks, pa.string()),
            schema.ALBUM_NAME: pa.nulls(n_tracks, pa.string()),
            schema.DURATION_MS: durations.to_arrow().cast(pa.int64()),
        },
        schema=schema.TRACKS_SCHEMA,
    )
    entries_table = pa.table(
        {schema.PID: pa.array(pid), schema.POS: pa.array(pos), schema.TRACK_ID: pa.array(track)},
        schema=schema.PLAYLIST_TRACKS_SCHEMA,
    )
    owners = pl.concat(playlist_users)
    with atomic_dir(Path(out)) as tmp:
        Tables(playlists_table, tracks_table, entries_table).write(
            tmp,
            source=f"kaggle playlists {csv}",
            extra={
                "format": "kaggle",
                "skipped_rows": tally.skipped_rows,
                "warnings": tally.warnings[:100],
                "users": int(owners.n_unique()),
                "albums_known": False,
                **(
                    {"features": {"file": str(features), "matched_tracks": matched}}
                    if features is not None
                    else {}
                ),
            },
        )
        pq.write_table(
            pa.table(
                {
                    schema.PID: pa.array(np.arange(n_playlists, dtype=np.int32)),
                    schema.USER_KEY: owners.to_arrow().cast(pa.string()),
                },
                schema=schema.PLAYLIST_OWNERS_SCHEMA,
            ),
            tmp / schema.PLAYLIST_OWNERS_FILE,
        )
        if features_table is not None:
            pq.write_table(features_table, tmp / schema.TRACK_FEATURES_FILE)
    return KaggleSummary(
        Path(out),
        n_playlists,
        n_tracks,
        len(artists),
        int(owners.n_unique()),
        len(pid),
        tally.skipped_rows,
        tally.warnings,
        matched,
    )


def _first_artist(artists: pl.Series) -> pl.Series:
    """``"['A', 'B']"`` → ``A``; a plain name stays as it is."""
    listed = artists.str.extract(r"""^\s*\[\s*['"](.*?)['"]\s*(?:,|\])""", 1)
    return listed.fill_null(artists)


def _join_features(path: Path, meta: pl.DataFrame) -> tuple[pa.Table, pl.Series]:
    """Features of the catalog's tracks (by normalised artist and name) and their durations."""
    if not path.is_file():
        raise InputFileError(path, "no such file")
    tally = _Tally()
    parts = []
    name_col = artist_col = None
    feature_cols: list[str] = []
    for lines, frame, _ in DelimitedFile(path, tally, skip_bad=False):
        if name_col is None:
            lower = {c.lower(): c for c in frame.columns}
            name_col = next((lower[c] for c in _TRACK_NAME_COLUMNS if c in lower), None)
            artist_col = next((lower[c] for c in _ARTIST_COLUMNS if c in lower), None)
            if name_col is None or artist_col is None:
                raise InputFileError(
                    path,
                    f"needs a track name column ({', '.join(_TRACK_NAME_COLUMNS)}) and an "
                    f"artist column ({', '.join(_ARTIST_COLUMNS)}); has {', '.join(frame.columns)}",
                )
            feature_cols = [lower[c] for c in AUDIO_FEATURES if c in lower]
            if not feature_cols:
                raise InputFileError(
                    path, f"has none of the audio feature columns {', '.join(AUDIO_FEATURES)}"
                )
        values = {}
        for c in feature_cols:
            parsed = frame[c].str.strip_chars().cast(pl.Float64, strict=False)
            bad = parsed.is_null() & frame[c].is_not_null() & (frame[c].str.strip_chars() != "")
            if bad.any():
                i = int(bad.arg_max())
                raise InputFileError(
                    path, f"field {c}: {frame[c][i]!r} is not a number", where=f"line {lines[i]}"
                )
            values[c.lower()] = parsed
        key = (
            normalise_name(_first_artist(frame[artist_col]))
            + "\x1f"
            + normalise_name(frame[name_col])
        )
        parts.append(pl.DataFrame({"key": key, **values}))
    if not parts:
        raise InputFileError(path, "holds no rows")
    table = pl.concat(parts).unique("key", keep="first", maintain_order=True)
    catalog = pl.DataFrame(
        {
            "track_id": np.arange(meta.height, dtype=np.int32),
            "key": normalise_name(meta["artist_name"])
            + "\x1f"
            + normalise_name(meta["track_name"]),
        }
    )
    joined = catalog.join(table, on="key", how="inner", maintain_order="left").drop("key")
    log.info("audio features: %d of %d tracks matched", joined.height, meta.height)
    columns = [c for c in joined.columns if c != "track_id"]
    out = pa.table(
        {
            "track_id": pa.array(joined["track_id"].to_numpy(), pa.int32()),
            **{c: pa.array(joined[c].to_numpy().astype(np.float32)) for c in columns},
        }
    )
    durations = pl.Series([None] * meta.height, dtype=pl.Int64)
    if "duration_ms" in columns:
        durations = (
            catalog.join(
                joined.select("track_id", "duration_ms"),
                on="track_id",
                how="left",
                maintain_order="left",
            )["duration_ms"]
            .round(0)
            .cast(pl.Int64)
        )
    return out, durations
