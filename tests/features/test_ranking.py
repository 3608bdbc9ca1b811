"""The ranker's candidate pool and features, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from segue.features.ranking import (
    Cooccurrence,
    candidate_features,
    feature_names,
    lookup,
    pool,
    row_ranks,
)
from segue.models.base import Queries


def _lists(rows: list[dict[int, float]], n_tracks: int = 8) -> sp.csr_matrix:
    r = [i for i, row in enumerate(rows) for _ in row]
    c = [t for row in rows for t in row]
    v = [s for row in rows for s in row.values()]
    return sp.csr_matrix((np.array(v, dtype=np.float32), (r, c)), shape=(len(rows), n_tracks))


def test_pool_is_the_union_ordered_by_the_blend_and_cut():
    a = _lists([{3: 1.0, 4: 0.5}, {}])
    b = _lists([{4: 1.0, 5: 0.9}, {6: 1.0}])
    indptr, ids, blend = pool([a, b], n_candidates=2)
    # Row 0: 4 → 1.5, 3 → 1.0, 5 → 0.9 (cut); row 1: 6 only.
    assert indptr.tolist() == [0, 2, 3]
    assert ids.tolist() == [4, 3, 6]
    np.testing.assert_allclose(blend, [1.5, 1.0, 1.0])


def test_features_of_a_hand_made_query():
    # Eight tracks; artists: tracks 0, 1, 3 by artist 0, the rest by artist 1; albums: 0, 3 on album 0.
    artist = np.array([0, 0, 1, 0, 1, 1, 1, 1], dtype=np.int32)
    album = np.array([0, 1, 2, 0, 3, 4, 5, 6], dtype=np.int32)
    popularity = np.array([10, 4, 1, 8, 2, 1, 1, 1], dtype=np.int64)
    # Co-occurrence counts: seed 0 with track 3 (6 playlists) and 4 (2); seed 1 with track 3 (2).
    tracks = sp.csr_matrix(
        (np.array([6.0, 2.0, 2.0], np.float32), (np.array([0, 0, 1]), np.array([3, 4, 3]))),
        shape=(8, 8),
    )
    # Artists 0 and 1 share 3 playlists; artist 0 is in 5 playlists, artist 1 in 4.
    artists = sp.csr_matrix(np.array([[0.0, 3.0], [3.0, 0.0]], np.float32))
    cooc = Cooccurrence(tracks, artists, np.array([5, 4]))
    queries = Queries.from_lists([[0, 1]], ["x"])
    a = _lists([{3: 1.0, 4: 0.5}])  # component a lists 3 then 4
    b = _lists([{4: 1.0, 2: 0.25}])  # component b lists 4 then 2
    out = candidate_features(
        [a, b], queries, np.array([5]), popularity, artist, album, cooc, n_candidates=10, depth=20
    )
    names = feature_names(["a", "b"])
    assert out.indptr.tolist() == [0, 3]
    assert out.track_ids.tolist() == [4, 3, 2]  # blends 1.5, 1.0, 0.25
    f = {name: out.features[:, i].tolist() for i, name in enumerate(names)}
    assert f["a:score"] == [0.5, 1.0, 0.0] and f["a:rank"] == [2, 1, 21]
    assert f["b:score"] == [1.0, 0.0, 0.25] and f["b:rank"] == [1, 21, 2]
    assert f["lists"] == [2, 1, 1] and f["blend_rank"] == [1, 2, 3]
    np.testing.assert_allclose(f["blend"], [1.5, 1.0, 0.25])
    np.testing.assert_allclose(f["log_popularity"], np.log1p([2, 8, 1]), rtol=1e-6)
    # Seeds 0 and 1 are both by artist 0; track 3 is by artist 0 and on seed 0's album.
    assert f["artist_share"] == [0.0, 1.0, 0.0] and f["album_share"] == [0.0, 0.5, 0.0]
    # Track 3: confidences 6/10 (seed 0) and 2/4 (seed 1); track 4: 2/10 from seed 0 only.
    np.testing.assert_allclose(f["cooc_max"], [0.2, 0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(f["cooc_mean"], [0.1, 0.55, 0.0], rtol=1e-6)
    assert f["cooc_share"] == [0.5, 1.0, 0.0]
    np.testing.assert_allclose(f["cooc_log_count"], np.log1p([2, 6, 0]), rtol=1e-6)
    # The seeds' only artist (0) meets artist 1 in 3 of its 5 playlists; track 3 is by artist 0 itself.
    np.testing.assert_allclose(f["artist_cooc_max"], [0.6, 0.0, 0.6], rtol=1e-6)
    np.testing.assert_allclose(f["artist_cooc_mean"], [0.6, 0.0, 0.6], rtol=1e-6)
    assert f["artist_cooc_share"] == [1.0, 0.0, 1.0]
    assert f["seed_count"] == [2, 2, 2] and f["has_title"] == [1, 1, 1] and f["group"] == [5, 5, 5]


def test_features_of_a_batch_equal_those_of_each_query_alone():
    rng = np.random.default_rng(0)
    n = 40
    lists = [
        sp.random(6, n, density=0.3, random_state=s, format="csr", dtype=np.float32) for s in (1, 2)
    ]
    queries = Queries.from_lists(
        [rng.choice(n, k, replace=False).tolist() for k in (0, 1, 3, 5, 2, 4)],
        ["a", "", "b", "", "c", ""],
    )
    popularity = rng.integers(1, 20, n)
    artist, album = (np.arange(n) % 7).astype(np.int32), (np.arange(n) % 11).astype(np.int32)
    cooc = Cooccurrence(
        sp.random(n, n, density=0.2, random_state=3, format="csr", dtype=np.float32),
        sp.random(7, 7, density=0.5, random_state=4, format="csr", dtype=np.float32),
        rng.integers(1, 9, 7),
    )
    groups = np.arange(6)
    whole = candidate_features(lists, queries, groups, popularity, artist, album, cooc, 8, 30)
    for r in range(6):
        one = candidate_features(
            [m[r] for m in lists],
            queries.slice(r, r + 1),
            groups[r : r + 1],
            popularity,
            artist,
            album,
            cooc,
            8,
            30,
        )
        lo, hi = whole.indptr[r], whole.indptr[r + 1]
        np.testing.assert_array_equal(one.track_ids, whole.track_ids[lo:hi])
        np.testing.assert_array_equal(one.features, whole.features[lo:hi])


def test_cooccurrence_of_tracks_and_artists_from_a_matrix():
    # Three playlists over four tracks; tracks 0, 1 by artist 0, tracks 2, 3 by artist 1.
    matrix = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 1, 1]], dtype=np.float32))
    cooc = Cooccurrence.build(matrix, np.array([0, 0, 1, 1], dtype=np.int32), k=5)
    assert cooc.tracks.toarray().tolist() == [
        [0, 1, 1, 0],
        [1, 0, 0, 0],
        [1, 0, 0, 1],
        [0, 0, 1, 0],
    ]
    # Artist 0 is in playlists 0 and 1, artist 1 in 1 and 2: they share playlist 1.
    assert cooc.artists.toarray().tolist() == [[0, 1], [1, 0]]
    assert cooc.artist_popularity.tolist() == [2, 2]


def test_lookup_and_row_ranks():
    m = sp.csr_matrix(np.array([[0.0, 0.3, 0.9, 0.3], [0.5, 0.0, 0.0, 0.0]]))
    assert lookup(m, np.array([0, 0, 1, 1]), np.array([2, 0, 0, 3])).tolist() == [
        0.9,
        0.0,
        0.5,
        0.0,
    ]
    assert row_ranks(m).toarray().tolist() == [[0, 2, 1, 3], [1, 0, 0, 0]]
    assert lookup(sp.csr_matrix((2, 3)), np.array([0, 1]), np.array([1, 2])).tolist() == [0.0, 0.0]
