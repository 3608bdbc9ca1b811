"""The structure figures (``segue.analysis.structure``) against values worked out by hand on tiny
collections: pair counts, companions, artist runs, titles, and a planted world's contrast."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from segue.analysis.structure import (
    StructureSettings,
    _pair_sample,
    artist_runs,
    companion_share,
    structure_stats,
    title_stats,
)
from segue.data.dataset import PlaylistData
from segue.data.ingest import ingest_mpd
from tests.data.helpers import playlist, write_slice


def _matrix(rows: list[list[int]], n_tracks: int) -> sp.csr_matrix:
    indptr = np.cumsum([0, *map(len, rows)])
    indices = np.concatenate([sorted(r) for r in rows]).astype(np.int32)
    return sp.csr_matrix(
        (np.ones(len(indices), np.float32), indices, indptr), shape=(len(rows), n_tracks)
    )


def test_pair_sample_draws_distinct_tracks_of_one_playlist_in_proportion_to_its_pairs():
    m = _matrix([[0, 1], [2, 3, 4, 5]], 6)  # 2 and 12 ordered pairs
    owner, a, b = _pair_sample(m, 20_000, np.random.default_rng(0))
    assert (a != b).all()
    assert all(set(x) <= {0, 1} for x in zip(a[owner == 0], b[owner == 0], strict=True))
    assert all(set(x) <= {2, 3, 4, 5} for x in zip(a[owner == 1], b[owner == 1], strict=True))
    assert abs((owner == 0).mean() - 2 / 14) < 0.01


def test_companion_share_is_one_for_repeated_playlists_and_zero_for_disjoint_ones():
    same = _matrix([[0, 1, 2, 3]] * 10, 4)
    assert companion_share(same, 3, 100, np.random.default_rng(0)) == 1.0
    # Every playlist its own tracks: nothing of one half is a companion in the other.
    disjoint = _matrix([[4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3] for i in range(10)], 40)
    assert companion_share(disjoint, 3, 100, np.random.default_rng(0)) == 0.0
    # k = 1: in [0, 1, 2] repeated with extra [0, 1] copies, 0's top companion is 1 and 1's is 0,
    # so 2 is named by nobody: 2 of 3 tracks.
    skewed = _matrix([[0, 1, 2]] * 10 + [[0, 1]] * 10, 3)
    share = companion_share(skewed, 1, 100, np.random.default_rng(0))
    scored = np.sort(np.random.default_rng(0).permutation(20)[10:])
    three = (scored < 10).sum()
    assert share == pytest.approx((2 * three + 2 * (10 - three)) / (3 * three + 2 * (10 - three)))


def test_artist_runs_and_titles_by_hand(tmp_path):
    # Artist of track i is i % 3: [0, 3, 6, 1] → artists 0 0 0 1 (2 of 3 adjacent pairs alike);
    # [1, 2, 4] → 1 2 1 (none): 2 of 5 in all. Distinct artists per track: 2/4 and 2/3.
    write_slice(
        tmp_path / "mpd",
        0,
        1,
        [playlist(0, [0, 3, 6, 1], name="Chill 🌊"), playlist(1, [1, 2, 4], name="chill")],
    )
    ingest_mpd(tmp_path / "mpd", tmp_path / "data")
    runs = artist_runs(PlaylistData.load(tmp_path / "data"))
    assert runs["same-artist adjacent share"] == pytest.approx(2 / 5)
    assert runs["distinct artists per track"] == pytest.approx((2 / 4 + 2 / 3) / 2)
    assert (
        runs["distinct artists per track, 5–19 tracks"]
        != runs["distinct artists per track, 5–19 tracks"]
    )  # none: nan
    titles = title_stats(["Chill 🌊", "chill", "Work Out"])
    assert titles["distinct normalised titles per playlist"] == pytest.approx(
        3 / 3
    )  # "chill 🌊" ≠ "chill"
    assert titles["titles with an emoji"] == pytest.approx(1 / 3)
    assert titles["titles with an upper-case letter"] == pytest.approx(2 / 3)


def test_structure_stats_tell_a_co_listened_world_from_a_random_one(tmp_path):
    """Two collections of the same size, lengths and catalogue: 6-track playlists drawn from 5
    fixed communities of 12 tracks, or uniformly from all 60 tracks (the test helper's URIs repeat
    after 62 tracks). The communities' pairs repeat, their companions are guessable and their
    rules exist; the random one's do not."""
    rng = np.random.default_rng(0)
    for name, community in (("planted", True), ("random", False)):
        rows = []
        for p in range(400):
            pool = np.arange(12) + 12 * (p % 5) if community else np.arange(60)
            rows.append(
                playlist(p, rng.choice(pool, size=6, replace=False).tolist(), name=f"mix {p % 5}")
            )
        write_slice(tmp_path / name / "mpd", 0, 399, rows)
        ingest_mpd(tmp_path / name / "mpd", tmp_path / name / "data")
    settings = StructureSettings(
        pairs=20_000, companions=10, rule_support=0.02, rule_confidence=0.3
    )
    planted = structure_stats(tmp_path / "planted" / "data", settings)
    uniform = structure_stats(tmp_path / "random" / "data", settings)
    assert planted["playlists"] == uniform["playlists"] == 400 and planted["mean length"] == 6
    # A pair of a playlist is held by it and by each other playlist that can hold it with the
    # chance that a random 6 of n hold both, (6·5)/(n(n − 1)): 79 others of its community of 12,
    # or 399 others among 60 tracks.
    assert planted["playlists per in-playlist pair (mean)"] == pytest.approx(
        1 + 79 * 30 / 132, rel=0.05
    )
    assert uniform["playlists per in-playlist pair (mean)"] == pytest.approx(
        1 + 399 * 30 / 3540, rel=0.05
    )
    # In a community of 12, a track's top 10 of 11 companions hold nearly everything; among 60
    # tracks they are chance: each of the 5 others names t with chance 10/59.
    assert planted["companion share (top 10)"] > 0.9
    assert uniform["companion share (top 10)"] == pytest.approx(1 - (49 / 59) ** 5, abs=0.1)
    # Nearly every ordered pair of a community is a rule (660 of them: 1,650 per 1,000 playlists,
    # each held by ~19 playlists, confidence ~0.47, lift ~4.7); among 60 random tracks hardly any.
    assert 1_500 < planted["pair rules per 1,000 playlists"] <= 1_650
    assert uniform["pair rules per 1,000 playlists"] < 10
    assert planted["distinct normalised titles per playlist"] == pytest.approx(5 / 400)


def test_a_sample_is_measured_as_the_same_playlists_written_alone(small_data, tmp_path):
    from segue.data.tables import Tables

    settings = StructureSettings(pairs=5_000, companion_playlists=100)
    n = PlaylistData.load(small_data).n_playlists
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(settings.seed).choice(n, size=300, replace=False)] = True
    Tables.read(small_data).keep(chosen).write(tmp_path / "part", source="test")
    sampled = structure_stats(small_data, settings, sample=300)
    assert sampled["playlists"] == 300
    assert sampled == pytest.approx(structure_stats(tmp_path / "part", settings))
    assert (
        structure_stats(small_data, settings, sample=n + 1)["playlists"] == n
    )  # smaller: all of it
