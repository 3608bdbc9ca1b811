"""PlaylistData: shapes, contents, and refusal of inconsistent tables."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segue.data import schema
from segue.data.dataset import PlaylistData
from segue.data.ingest import ingest_mpd
from segue.errors import InputFileError
from tests.data.helpers import playlist, two_slices, uri, write_slice


def test_matrix_holds_each_playlists_tracks(tmp_path):
    src = two_slices(tmp_path / "src")
    write_slice(src, 4, 4, [playlist(4, [1, 2, 1, 3, 4, 5])])  # track 1 twice
    ingest_mpd(src, tmp_path / "data", workers=1)
    data = PlaylistData.load(tmp_path / "data")
    assert data.matrix.shape == (5, 13) and data.matrix.dtype == np.float32
    assert data.pids.tolist() == [0, 1, 2, 3, 4]
    assert set(data.matrix.data.tolist()) == {1.0}
    rows = [sorted(data.track_uris[data.matrix[i].indices]) for i in range(5)]
    assert rows[1] == sorted(uri("track", t) for t in [3, 4, 5, 6, 7, 8])
    assert rows[4] == sorted(uri("track", t) for t in [1, 2, 3, 4, 5])  # the repeat counts once
    assert data.track_popularity[data.uri_to_id[uri("track", 1)]] == 4
    assert data.names[2] == "Work Out"
    ids, unknown = data.track_ids([uri("track", 5), "spotify:track:nope", uri("track", 1)])
    assert ids.tolist() == [data.uri_to_id[uri("track", 5)], 0] and unknown == [
        "spotify:track:nope"
    ]
    assert data.track_artist.tolist()[:3] == [0, 1, 2]


def test_generated_data_loads(small_data):
    data = PlaylistData.load(small_data)
    assert data.n_playlists == 4000
    assert data.matrix.nnz == pq.read_metadata(small_data / schema.PLAYLIST_TRACKS_FILE).num_rows
    assert np.all(np.diff(data.matrix.indptr) >= 5)
    assert data.track_artist.shape == data.track_album.shape == (data.n_tracks,)


def test_missing_or_inconsistent_tables_are_named(tmp_path, small_data):
    with pytest.raises(InputFileError, match=r"playlists.parquet: missing"):
        PlaylistData.load(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(small_data, copy)
    entries = pq.read_table(copy / schema.PLAYLIST_TRACKS_FILE)
    pq.write_table(entries.slice(0, entries.num_rows - 1), copy / schema.PLAYLIST_TRACKS_FILE)
    with pytest.raises(InputFileError, match=r"rows but playlists.parquet counts"):
        PlaylistData.load(copy)
    shuffled = entries.take(pa.array(np.r_[1 : entries.num_rows, 0]))
    pq.write_table(shuffled, copy / schema.PLAYLIST_TRACKS_FILE)
    with pytest.raises(InputFileError, match="not in the order"):
        PlaylistData.load(copy)
