"""Playlist clustering: hand-made groups, recovery of generated themes, determinism, bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from segue.cli import main
from segue.data.ingest import ingest_mpd
from segue.errors import SegueError
from segue.mining.clusters import ClusterSettings, cluster_playlists
from tests.data.helpers import uri, write_slice

GROUPS = {  # title, artists, word in every track name
    "rock": ("Rock Anthems", ["Granite Wolves", "Iron Canyon"], "thunder"),
    "jazz": ("Smooth Jazz", ["Velvet Quartet", "Blue Lantern Trio"], "moonlight"),
}


def _track(i: int, group: str, pos: int) -> dict:
    _, artists, word = GROUPS[group]
    artist = artists[i % 2]
    return {
        "pos": pos,
        "artist_name": artist,
        "track_uri": uri("track", i),
        "artist_uri": uri("artist", hash(artist) % 997),
        "track_name": f"{word.title()} Song {i}",
        "album_uri": uri("album", i),
        "duration_ms": 200_000,
        "album_name": f"Album {i}",
    }


@pytest.fixture(scope="module")
def two_groups(tmp_path_factory):
    """40 playlists: even pids rock (tracks 0-19), odd pids jazz (tracks 20-39); lengths 5..14."""
    rng = np.random.default_rng(0)
    playlists = []
    for pid in range(40):
        group = "rock" if pid % 2 == 0 else "jazz"
        base = 0 if group == "rock" else 20
        ids = (base + rng.choice(20, size=5 + pid % 10, replace=False)).tolist()
        tracks = [_track(t, group, k) for k, t in enumerate(ids)]
        playlists.append(
            {
                "name": GROUPS[group][0],
                "collaborative": "false",
                "pid": pid,
                "modified_at": 1500000000,
                "num_tracks": len(tracks),
                "num_albums": len(tracks),
                "num_followers": 1,
                "num_edits": 1,
                "duration_ms": 200_000 * len(tracks),
                "num_artists": 2,
                "tracks": tracks,
            }
        )
    root = tmp_path_factory.mktemp("groups")
    write_slice(root / "mpd", 0, 39, playlists)
    ingest_mpd(root / "mpd", root / "data", workers=1)
    return root / "data"


SMALL = dict(min_df=2, sample_size=40, plot_sample=40, svd_components=5, top=3)


def test_two_hand_made_groups_are_found_with_their_profiles(two_groups, tmp_path):
    summary = cluster_playlists(two_groups, tmp_path / "c", settings=ClusterSettings(k=2, **SMALL))
    assert summary["k"] == 2 and summary["k_chosen_by"] == "given" and summary["themes"] is None
    table = pq.read_table(tmp_path / "c" / "assignments.parquet").to_pydict()
    assert table["pid"] == list(range(40))
    labels = np.array(table["cluster"])
    assert len(set(labels[::2])) == 1 and len(set(labels[1::2])) == 1 and labels[0] != labels[1]
    with open(tmp_path / "c" / "cluster_profiles.csv", newline="") as handle:
        profiles = {row["cluster"]: row for row in csv.DictReader(handle)}
    rock = profiles[str(labels[0])]
    assert rock["size"] == "20" and float(rock["share"]) == 0.5
    lengths = [5 + pid % 10 for pid in range(0, 40, 2)]
    assert float(rock["length_mean"]) == pytest.approx(np.mean(lengths))
    assert int(rock["length_min"]) == min(lengths) and int(rock["length_max"]) == max(lengths)
    assert set(rock["top_artists"].split("; ")) == {"Granite Wolves", "Iron Canyon"}
    assert rock["top_titles"] == "Rock Anthems"
    assert "thunder" in rock["top_terms"].split("; ") and "moonlight" not in rock["top_terms"]
    jazz = profiles[str(labels[1])]
    assert all(t.startswith("Moonlight Song") for t in jazz["top_tracks"].split("; ")[:3])
    for name in ("clusters.md", "cluster_pca.png", "cluster_tsne.png", "summary.json"):
        assert (tmp_path / "c" / name).stat().st_size > 0
    # The same settings give the same clusters; auto k finds the two groups too.
    again = cluster_playlists(two_groups, tmp_path / "d", settings=ClusterSettings(k=2, **SMALL))
    assert again["clusters"] == summary["clusters"]
    assert pq.read_table(tmp_path / "d" / "assignments.parquet").to_pydict() == table
    auto = cluster_playlists(
        two_groups, tmp_path / "e", settings=ClusterSettings(k_min=2, k_max=6, **SMALL)
    )
    assert (
        auto["k"] == 2
        and len(auto["silhouette"]) == 5
        and (tmp_path / "e" / "silhouette.png").exists()
    )


def test_clusters_recover_the_generators_genres(small_data, tmp_path, capsys):
    assert (
        main(
            [
                "cluster",
                str(small_data),
                "--out",
                str(tmp_path / "c"),
                "--k",
                "30",
                "--plot-sample",
                "300",
                "--sample-size",
                "2000",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "agreement with the generator's themes (AMI)" in out
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    themes = summary["themes"]
    assert themes["n_playlists"] == 4000 and themes["n_genres"] == 30
    # Genres drive the track and title draws: clusters must follow them (chance is 0).
    assert themes["ami_genre"] > 0.5, themes
    from sklearn.metrics import adjusted_mutual_info_score

    labels = pq.read_table(tmp_path / "c" / "assignments.parquet").column("cluster").to_numpy()
    shuffled = np.random.default_rng(0).permutation(labels)
    genres = pq.read_table(summary["themes"]["file"]).column("genre").to_pylist()
    assert adjusted_mutual_info_score(genres, shuffled) < 0.02


def test_bad_settings_get_clear_errors(two_groups, small_data, tmp_path, capsys):
    with pytest.raises(SegueError, match="k = 50 is larger than the sample of 40 playlists"):
        cluster_playlists(two_groups, tmp_path / "x", settings=ClusterSettings(k=50, **SMALL))
    with pytest.raises(
        SegueError, match="k_max = 45 is not smaller than the silhouette sample of 40"
    ):
        cluster_playlists(
            two_groups, tmp_path / "x", settings=ClusterSettings(k_min=2, k_max=45, **SMALL)
        )
    with pytest.raises(SegueError, match="k must be at least 2"):
        cluster_playlists(two_groups, tmp_path / "x", settings=ClusterSettings(k=1, **SMALL))
    with pytest.raises(SegueError, match="no term is in at least min_df = 1000 playlists"):
        cluster_playlists(
            two_groups, tmp_path / "x", settings=ClusterSettings(k=2, **{**SMALL, "min_df": 1000})
        )
    assert not (tmp_path / "x").exists()
    assert main(["cluster", str(two_groups), "--out", str(tmp_path / "x"), "--k", "many"]) == 2
    assert "--k must be 'auto' or a whole number, got 'many'" in capsys.readouterr().err
    from tests.mining.test_rules import empty_dataset

    assert (
        main(["cluster", str(empty_dataset(tmp_path / "empty")), "--out", str(tmp_path / "x")]) == 2
    )
    assert "no playlists" in capsys.readouterr().err
    assert (
        main(
            [
                "cluster",
                str(two_groups),
                "--out",
                str(tmp_path / "x"),
                "--k",
                "2",
                "--themes",
                str(tmp_path / "nope.parquet"),
            ]
        )
        == 2
    )
    assert "nope.parquet: missing" in capsys.readouterr().err and not (tmp_path / "x").exists()
