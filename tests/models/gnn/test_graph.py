"""Graph building: node ids land in the right ranges, edge attributes are there, nothing opt-in by default."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from segue.data import schema
from segue.data.dataset import PlaylistData
from segue.data.sessions import listening_from_plays
from segue.errors import InputFileError, SegueError
from segue.models.gnn.graph import (
    LISTEN_ATTRIBUTES,
    ListeningGraph,
    PlaylistGraph,
    load_graph,
    save_graph,
)


def tiny_listening(durations: bool = True):
    """3 users, 6 tracks by 3 artists, 2 genres (rock: artists 0, 1; jazz: artist 2).

    User 0 plays tracks 0, 1 (twice), 2; user 1 plays 3 and 4; user 2 plays 5.
    """
    user = np.array([0, 0, 0, 0, 1, 1, 2])
    track = np.array([0, 1, 1, 2, 3, 4, 5])
    timestamp = np.arange(7) * 60_000
    ms = np.array([100_000, 50_000, 200_000, 200_000, 10_000, 200_000, 200_000])
    duration = np.full(6, 200_000) if durations else None
    track_artist = np.array([0, 0, 1, 1, 2, 2])
    artist_genres = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32))
    track_genres = sp.csr_matrix(artist_genres.toarray()[track_artist])
    return listening_from_plays(
        user,
        track,
        timestamp,
        ms if durations else None,
        duration,
        n_users=3,
        n_tracks=6,
        user_type=np.array(["casual", "regular", "power"], dtype=object),
        track_artist=track_artist,
        track_genres=track_genres,
        artist_genres=artist_genres,
        genre_names=["rock", "jazz"],
    )


def test_homogeneous_graph_offsets_put_every_relation_on_its_own_types():
    graph = ListeningGraph.from_listening(tiny_listening())
    homo = graph.homogeneous()
    assert homo.node_types == ["user", "track", "artist", "genre"]
    assert homo.offsets == {"user": 0, "track": 3, "artist": 9, "genre": 12} and homo.n_nodes == 14
    dst = np.repeat(np.arange(homo.n_nodes), np.diff(homo.indptr))
    for kind, (src_type, _, dst_type) in enumerate(homo.relations):
        mine = homo.edge_type == kind
        assert mine.any()
        assert np.all(homo.node_type_of(homo.source[mine]) == homo.node_types.index(src_type))
        assert np.all(homo.node_type_of(dst[mine]) == homo.node_types.index(dst_type))
        assert np.all(homo.edge_attr[mine, kind] == 1)
    # User 0's in-neighbours are exactly its tracks 0, 1, 2 (offset by the 3 users) — the
    # defect of the public code was track messages landing on user rows.
    assert sorted(homo.source[homo.indptr[0] : homo.indptr[1]].tolist()) == [3, 4, 5]
    # and track 1 (node 4) hears from user 0 and from artist 0 (node 9) and genre rock (node 12)
    assert sorted(homo.source[homo.indptr[4] : homo.indptr[5]].tolist()) == [0, 9, 12]


def test_listen_attributes_are_carried_and_missing_durations_are_flagged():
    graph = ListeningGraph.from_listening(tiny_listening())
    assert graph.listen_attr.shape == (graph.listens.nnz, len(LISTEN_ATTRIBUTES))
    # user 0, track 1: two plays of 50k and 200k ms of 200k → completion 0.625; most plays → count 1.0
    row = graph.listens.indptr[0] + 1
    edge_weight, count, completion, known = graph.listen_attr[row]
    assert completion == pytest.approx(0.625) and count == pytest.approx(1.0) and known == 1
    assert edge_weight == pytest.approx(0.7 * 0.625 + 0.3 * 1.0)
    homo = graph.homogeneous()
    listens = homo.edge_type == homo.relations.index(("user", "listens", "track"))
    n_rel = len(homo.relations)
    assert np.allclose(np.sort(homo.edge_attr[listens, n_rel]), np.sort(graph.listen_attr[:, 0]))
    unknown = ListeningGraph.from_listening(tiny_listening(durations=False))
    assert np.all(unknown.listen_attr[:, 3] == 0) and np.all(unknown.listen_attr[:, 2] == 0)
    assert np.all(np.isfinite(unknown.listen_attr))


def test_user_genre_edges_are_opt_in():
    data = tiny_listening()
    plain = ListeningGraph.from_listening(data)
    assert plain.user_genres is None
    assert not any(rel == "prefers" for _, rel, _ in plain.homogeneous().relations)
    assert ("user", "prefers", "genre") not in plain.to_hetero_data().edge_types
    derived = ListeningGraph.from_listening(data, user_genres="listening")
    # Shares by edge weight: user 1 barely played rock track 3 (weight 0.7·0.05 + 0.3 = 0.335)
    # and finished jazz track 4 (weight 1.0).
    assert np.allclose(derived.user_genres.toarray(), [[1, 0], [0.335 / 1.335, 1 / 1.335], [0, 1]])
    assert ("user", "prefers", "genre") in derived.to_hetero_data().edge_types
    with pytest.raises(SegueError, match="stated"):
        ListeningGraph.from_listening(
            data, user_genres="stated"
        )  # not loaded: refused, not guessed
    with pytest.raises(SegueError, match="user_genres must be"):
        ListeningGraph.from_listening(data, user_genres="latent")


def test_hetero_data_of_the_listening_graph():
    hetero = ListeningGraph.from_listening(tiny_listening()).to_hetero_data()
    assert (
        hetero["user"].num_nodes == 3
        and hetero["track"].num_nodes == 6
        and hetero["genre"].num_nodes == 2
    )
    listens = hetero["user", "listens", "track"]
    assert listens.edge_index.shape == (2, 6) and listens.edge_attr.shape == (6, 4)
    assert (
        hetero["track", "rev_listens", "user"].edge_index.flip(0).tolist()
        == listens.edge_index.tolist()
    )
    assert hetero["track", "by", "artist"].edge_index[1].tolist() == [0, 0, 1, 1, 2, 2]


def test_playlist_graph_and_its_hetero_data(tmp_path):
    matrix = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 1]], dtype=np.float32))
    data = PlaylistData(
        matrix,
        np.array([10, 11], np.int32),
        ["a", "b"],
        np.array([0, 0, 1, 1], np.int32),
        np.array([0, 1, 2, 2], np.int32),
    )
    graph = PlaylistGraph.from_playlist_data(data)
    assert graph.track_degree.tolist() == [1, 2, 1, 1] and graph.playlist_degree.tolist() == [2, 3]
    hetero = graph.to_hetero_data()
    assert hetero["playlist", "contains", "track"].edge_index.tolist() == [
        [0, 0, 1, 1, 1],
        [0, 1, 1, 2, 3],
    ]
    assert hetero["track", "on", "album"].edge_index[1].tolist() == [0, 1, 2, 2]
    assert "genre" not in hetero.node_types
    # Audio features: standardised, with a has-features column; a file with a bad id is refused.
    data.path = tmp_path
    pq.write_table(
        pa.table({"track_id": pa.array([0, 2], pa.int32()), "energy": [0.2, 0.8]}),
        tmp_path / schema.TRACK_FEATURES_FILE,
    )
    with_audio = PlaylistGraph.from_playlist_data(data)
    assert with_audio.audio_names == ["energy", "has_features"]
    assert np.allclose(with_audio.audio, [[-1, 1], [0, 0], [1, 1], [0, 0]])
    pq.write_table(
        pa.table({"track_id": pa.array([9], pa.int32()), "energy": [0.2]}),
        tmp_path / schema.TRACK_FEATURES_FILE,
    )
    with pytest.raises(InputFileError, match="track_id outside"):
        PlaylistGraph.from_playlist_data(data)


def test_graphs_save_and_load_without_pickle(tmp_path):
    listening = ListeningGraph.from_listening(tiny_listening(), user_genres="listening")
    save_graph(listening, tmp_path / "g")
    loaded = load_graph(tmp_path / "g")
    assert (loaded.listens != listening.listens).nnz == 0
    assert np.array_equal(loaded.listen_attr, listening.listen_attr)
    assert (
        loaded.user_type.tolist() == ["casual", "regular", "power"]
        and loaded.user_genre_source == "listening"
    )
    with pytest.raises(InputFileError, match="not a graph directory"):
        load_graph(tmp_path / "nothing")
