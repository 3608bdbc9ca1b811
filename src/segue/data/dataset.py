"""``PlaylistData``: the in-memory view every model trains on.

Built once from an ingested directory: ``playlist_tracks`` is already ordered by playlist (in the
order of ``playlists``) and position, so the CSR's ``indptr`` is the cumulative track counts and
its ``indices`` are the ``track_id`` column as is — no sort, no Python loop; at 1M playlists
(66M entries) loading takes seconds and ~1 GB.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import orjson
import pyarrow.parquet as pq
import scipy.sparse as sp

from segue.data import schema
from segue.errors import InputFileError, SegueError


@dataclass
class PlaylistData:
    """Playlists × tracks with catalogs.

    Attributes:
        matrix: ``csr_matrix`` [n_playlists, n_tracks], float32, 1.0 where a playlist holds a
            track (a track repeated inside a playlist still counts once); column indices sorted.
        pids: int32 [n_playlists], the pid of each row.
        names: list of n_playlists titles (``""`` when a copy has no titles).
        track_artist: int32 [n_tracks], artist id of each track.
        track_album: int32 [n_tracks], album id of each track.
        path: the directory it was loaded from (``None`` if built in memory).
    """

    matrix: sp.csr_matrix
    pids: np.ndarray
    names: list[str]
    track_artist: np.ndarray
    track_album: np.ndarray
    path: Path | None = None

    @property
    def n_playlists(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_tracks(self) -> int:
        return self.matrix.shape[1]

    @cached_property
    def track_popularity(self) -> np.ndarray:
        """int64 [n_tracks]: number of playlists holding each track."""
        return np.bincount(self.matrix.indices, minlength=self.n_tracks).astype(np.int64)

    @cached_property
    def _tracks_table(self):
        if self.path is None:
            raise SegueError(
                "this PlaylistData was built in memory and has no track catalog on disk"
            )
        return pq.read_table(
            self.path / schema.TRACKS_FILE,
            columns=[schema.TRACK_URI, schema.TRACK_NAME, schema.ARTIST_NAME],
        )

    @cached_property
    def track_uris(self) -> np.ndarray:
        """object [n_tracks]: URI of each track id (loaded on first use)."""
        return self._tracks_table.column(schema.TRACK_URI).to_numpy(zero_copy_only=False)

    @cached_property
    def uri_to_id(self) -> dict[str, int]:
        """URI → track id (built on first use; ~2.3M entries at full scale)."""
        return {uri: i for i, uri in enumerate(self.track_uris)}

    def track_ids(self, uris: list[str]) -> tuple[np.ndarray, list[str]]:
        """Ids of known URIs (int32, order kept) and the URIs not in the catalog."""
        lookup = self.uri_to_id
        ids = [lookup.get(u, -1) for u in uris]
        unknown = [u for u, i in zip(uris, ids, strict=True) if i < 0]
        return np.array([i for i in ids if i >= 0], dtype=np.int32), unknown

    @classmethod
    def load(cls, path: Path) -> PlaylistData:
        """Load an ingested directory. Raises :class:`InputFileError` naming a missing/bad table."""
        path = Path(path)
        for name in (*schema.TABLE_FILES, schema.MANIFEST_FILE):
            if not (path / name).exists():
                raise InputFileError(
                    path / name, "missing; is this a directory written by `segue ingest`?"
                )
        manifest = orjson.loads((path / schema.MANIFEST_FILE).read_bytes())
        if manifest.get("schema_version") != schema.SCHEMA_VERSION:
            raise InputFileError(
                path / schema.MANIFEST_FILE,
                f"schema version {manifest.get('schema_version')} is not {schema.SCHEMA_VERSION}; re-run `segue ingest`",
            )
        playlists = pq.read_table(
            path / schema.PLAYLISTS_FILE, columns=[schema.PID, schema.NUM_TRACKS, schema.NAME]
        )
        tracks = pq.read_table(
            path / schema.TRACKS_FILE, columns=[schema.TRACK_ID, schema.ARTIST_ID, schema.ALBUM_ID]
        )
        entries = pq.read_table(
            path / schema.PLAYLIST_TRACKS_FILE, columns=[schema.PID, schema.TRACK_ID]
        )
        pids = playlists.column(schema.PID).to_numpy()
        lengths = playlists.column(schema.NUM_TRACKS).to_numpy().astype(np.int64)
        indptr = np.concatenate(([0], np.cumsum(lengths)))
        indices = (
            entries.column(schema.TRACK_ID).to_numpy().copy()
        )  # Arrow memory is read-only; scipy sorts in place
        n_tracks = tracks.num_rows
        if indptr[-1] != len(indices):
            raise InputFileError(
                path / schema.PLAYLIST_TRACKS_FILE,
                f"has {len(indices):,} rows but playlists.parquet counts {indptr[-1]:,} tracks",
            )
        # The CSR relies on entries being in playlist order; check it rather than trust it.
        entry_pids = entries.column(schema.PID).to_numpy()
        if len(entry_pids) and not np.array_equal(np.repeat(pids, lengths), entry_pids):
            raise InputFileError(
                path / schema.PLAYLIST_TRACKS_FILE, "rows are not in the order of playlists.parquet"
            )
        if len(indices) and (indices.min() < 0 or indices.max() >= n_tracks):
            raise InputFileError(
                path / schema.PLAYLIST_TRACKS_FILE, "track_id outside the tracks table"
            )
        matrix = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(pids), n_tracks)
        )
        matrix.sum_duplicates()  # sorts indices and merges repeats
        matrix.data[:] = 1.0
        names = playlists.column(schema.NAME).fill_null("").to_pylist()
        track_ids = tracks.column(schema.TRACK_ID).to_numpy()
        if not np.array_equal(track_ids, np.arange(n_tracks)):
            raise InputFileError(path / schema.TRACKS_FILE, "track_id is not 0..n-1 in order")
        return cls(
            matrix,
            pids,
            names,
            tracks.column(schema.ARTIST_ID).to_numpy(),
            tracks.column(schema.ALBUM_ID).to_numpy(),
            path,
        )
