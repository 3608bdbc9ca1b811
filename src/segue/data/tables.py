"""Reading and writing a dataset directory's tables as a whole (used by splits and tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from segue import __version__
from segue.data import schema
from segue.errors import InputFileError
from segue.io import write_json


@dataclass
class Tables:
    """The three tables of a dataset directory, as Arrow tables in their schemas."""

    playlists: pa.Table
    tracks: pa.Table
    entries: pa.Table

    @classmethod
    def read(cls, path: Path) -> Tables:
        path = Path(path)
        tables = []
        for name, table_schema in (
            (schema.PLAYLISTS_FILE, schema.PLAYLISTS_SCHEMA),
            (schema.TRACKS_FILE, schema.TRACKS_SCHEMA),
            (schema.PLAYLIST_TRACKS_FILE, schema.PLAYLIST_TRACKS_SCHEMA),
        ):
            if not (path / name).exists():
                raise InputFileError(
                    path / name, "missing; is this a directory written by `segue ingest`?"
                )
            table = pq.read_table(path / name)
            if not table.schema.equals(table_schema):
                raise InputFileError(
                    path / name, "columns differ from segue's schema; re-run `segue ingest`"
                )
            tables.append(table)
        return cls(*tables)

    def keep(self, keep_playlist: np.ndarray) -> Tables:
        """The dataset of the playlists where ``keep_playlist`` (bool [n_playlists], in the
        playlists table's order) is set: their entries, and only the tracks they hold, with track,
        artist and album ids renumbered densely in order of first appearance."""
        playlists, tracks, entries = self.playlists, self.tracks, self.entries
        lengths = playlists.column(schema.NUM_TRACKS).to_numpy().astype(np.int64)
        track_id = entries.column(schema.TRACK_ID).to_numpy()
        owner = np.repeat(np.arange(len(lengths)), lengths)
        keep_entry = np.asarray(keep_playlist, dtype=bool)[owner]
        new_ids, old_ids = first_appearance_codes(track_id[keep_entry])
        kept = tracks.take(pa.array(old_ids))
        artist_codes, _ = first_appearance_codes(kept.column(schema.ARTIST_ID).to_numpy())
        album_codes, _ = first_appearance_codes(kept.column(schema.ALBUM_ID).to_numpy())
        for column, values in (
            (schema.TRACK_ID, np.arange(len(old_ids), dtype=np.int32)),
            (schema.ARTIST_ID, artist_codes),
            (schema.ALBUM_ID, album_codes),
        ):
            kept = kept.set_column(kept.schema.get_field_index(column), column, pa.array(values))
        kept_entries = entries.filter(pa.array(keep_entry)).set_column(
            entries.schema.get_field_index(schema.TRACK_ID), schema.TRACK_ID, pa.array(new_ids)
        )
        return Tables(
            playlists.filter(pa.array(np.asarray(keep_playlist, dtype=bool))),
            kept.cast(schema.TRACKS_SCHEMA),
            kept_entries.cast(schema.PLAYLIST_TRACKS_SCHEMA),
        )

    def write(self, path: Path, *, source: str, extra: dict | None = None) -> None:
        """Write the tables and a manifest into the (temporary) directory ``path``."""
        path.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.playlists, path / schema.PLAYLISTS_FILE, compression="zstd")
        pq.write_table(self.tracks, path / schema.TRACKS_FILE, compression="zstd")
        pq.write_table(
            self.entries,
            path / schema.PLAYLIST_TRACKS_FILE,
            compression="zstd",
            row_group_size=4_000_000,
        )
        artists = self.tracks.column(schema.ARTIST_ID).to_numpy()
        albums = self.tracks.column(schema.ALBUM_ID).to_numpy()
        write_json(
            path / schema.MANIFEST_FILE,
            {
                "schema_version": schema.SCHEMA_VERSION,
                "created_by": f"segue {__version__}",
                "source": source,
                "counts": {
                    "playlists": self.playlists.num_rows,
                    "tracks": self.tracks.num_rows,
                    "entries": self.entries.num_rows,
                    "artists": int(artists.max()) + 1 if len(artists) else 0,
                    "albums": int(albums.max()) + 1 if len(albums) else 0,
                },
                **(extra or {}),
            },
        )


def first_appearance_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes in order of first appearance: ``(codes int32 [n], uniques [k])``.

    >>> first_appearance_codes(np.array([7, 3, 7, 9, 3]))
    (array([0, 1, 0, 2, 1], dtype=int32), array([7, 3, 9]))
    """
    uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return rank[inverse.ravel()], uniq[order]
