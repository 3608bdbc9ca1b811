"""Splits: nothing held out reaches training, held-out playlists are exactly seeds + truth."""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segue.data import schema
from segue.data.challenge import category_of, read_challenge, read_truth
from segue.data.dataset import PlaylistData
from segue.data.tables import Tables
from segue.errors import SegueError
from segue.evaluation.split import split_dataset


def make_tables(rng: np.random.Generator, n_playlists: int, n_tracks: int, n_long: int) -> Tables:
    """A random dataset: ``n_long`` playlists of 150–200 tracks, the rest 10–60, a few untitled."""
    lengths = np.where(
        np.arange(n_playlists) < n_long,
        rng.integers(150, 201, n_playlists),
        rng.integers(10, 61, n_playlists),
    )
    rng.shuffle(lengths)
    track_ids = np.concatenate(
        [rng.choice(n_tracks, size=length, replace=False) for length in lengths]
    )
    pids = np.arange(n_playlists, dtype=np.int32) * 3 + 5  # not 0..n-1 on purpose
    names = [f"title {i % 7}" if i % 11 or lengths[i] >= 150 else "" for i in range(n_playlists)]
    playlists = pa.table(
        {
            schema.PID: pids,
            schema.NAME: names,
            schema.DESCRIPTION: [None] * n_playlists,
            schema.COLLABORATIVE: [False] * n_playlists,
            schema.MODIFIED_AT: np.full(n_playlists, 1_500_000_000),
            schema.NUM_TRACKS: lengths.astype(np.int32),
            schema.NUM_ALBUMS: lengths.astype(np.int32),
            schema.NUM_FOLLOWERS: np.ones(n_playlists, np.int32),
            schema.NUM_EDITS: np.ones(n_playlists, np.int32),
            schema.DURATION_MS: lengths * 200_000,
            schema.NUM_ARTISTS: lengths.astype(np.int32),
        }
    ).cast(schema.PLAYLISTS_SCHEMA)
    tracks = pa.table(
        {
            schema.TRACK_ID: np.arange(n_tracks, dtype=np.int32),
            schema.TRACK_URI: [f"spotify:track:{i:022d}" for i in range(n_tracks)],
            schema.TRACK_NAME: [f"Song {i}" for i in range(n_tracks)],
            schema.ARTIST_ID: (np.arange(n_tracks) % 17).astype(np.int32),
            schema.ARTIST_URI: [f"spotify:artist:{i % 17:022d}" for i in range(n_tracks)],
            schema.ARTIST_NAME: [f"Artist {i % 17}" for i in range(n_tracks)],
            schema.ALBUM_ID: (np.arange(n_tracks) % 40).astype(np.int32),
            schema.ALBUM_URI: [f"spotify:album:{i % 40:022d}" for i in range(n_tracks)],
            schema.ALBUM_NAME: [f"Album {i % 40}" for i in range(n_tracks)],
            schema.DURATION_MS: np.full(n_tracks, 200_000),
        }
    ).cast(schema.TRACKS_SCHEMA)
    entries = pa.table(
        {
            schema.PID: np.repeat(pids, lengths),
            schema.POS: np.concatenate([np.arange(k) for k in lengths]).astype(np.int32),
            schema.TRACK_ID: track_ids.astype(np.int32),
        }
    ).cast(schema.PLAYLIST_TRACKS_SCHEMA)
    return Tables(playlists, tracks, entries)


def original_playlists(tables: Tables) -> dict[int, list[str]]:
    uris = tables.tracks.column(schema.TRACK_URI).to_pylist()
    out: dict[int, list[str]] = {}
    for pid, tid in zip(
        tables.entries.column(schema.PID).to_pylist(),
        tables.entries.column(schema.TRACK_ID).to_pylist(),
        strict=True,
    ):
        out.setdefault(pid, []).append(uris[tid])
    return out


def check_no_leak(split, data_tables: Tables, k: int, k_val: int) -> None:
    original = original_playlists(data_tables)
    train = Tables.read(split / "train")
    val_train = Tables.read(split / "validation" / "train")
    train_playlists = original_playlists(train)
    val_train_playlists = original_playlists(val_train)
    parts = {}
    for part, count, train_of_part in (
        ("test", k, train_playlists),
        ("validation", k_val, val_train_playlists),
    ):
        entries = read_challenge(split / part / "challenge_set.json")
        truth = read_truth(split / part / "challenge_truth.json")
        assert len(entries) == 10 * count
        assert sorted(category_of(e) for e in entries) == sorted(list(range(1, 11)) * count)
        for e in entries:
            pid = e["pid"]
            assert pid not in train_of_part  # no held-out playlist in its training part
            seeds = {t["pos"]: t["track_uri"] for t in e["tracks"]}
            holdout = truth[pid]["holdout_tracks"]
            positions = [p for p in range(e["num_tracks"]) if p not in seeds]
            rebuilt = [seeds.get(p) for p in range(e["num_tracks"])]
            for p, uri in zip(positions, holdout, strict=True):
                rebuilt[p] = uri
            assert rebuilt == original[pid]  # seeds + truth = the whole playlist
            assert len(holdout) == e["num_holdouts"] >= 1
        parts[part] = {e["pid"] for e in entries}
    assert not parts["test"] & parts["validation"]
    assert not parts["test"] & set(val_train_playlists)  # test never reaches tuning
    for pid, tracks in train_playlists.items():
        assert tracks == original[pid]  # kept playlists are intact
    for tables in (train, val_train):  # catalogs list only training tracks
        used = np.unique(tables.entries.column(schema.TRACK_ID).to_numpy())
        assert np.array_equal(used, np.arange(tables.tracks.num_rows))
        assert np.array_equal(
            np.unique(tables.tracks.column(schema.ARTIST_ID).to_numpy()),
            np.arange(len(np.unique(tables.tracks.column(schema.ARTIST_ID).to_numpy()))),
        )
    assert set(val_train_playlists) | parts["validation"] == set(train_playlists)
    assert set(train_playlists) | parts["test"] == set(original)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**16), k=st.integers(1, 3), k_val=st.integers(1, 2))
def test_no_split_leaks(tmp_path_factory, seed, k, k_val):
    rng = np.random.default_rng(seed)
    tables = make_tables(
        rng, n_playlists=24 * (k + k_val) + 10, n_tracks=600, n_long=5 * (k + k_val) + 4
    )
    base = tmp_path_factory.mktemp("split")
    tables.write(base / "data", source="test")
    split_dataset(
        base / "data", base / "split", per_category=k, validation_per_category=k_val, seed=seed
    )
    check_no_leak(base / "split", tables, k, k_val)


def test_same_seed_same_split_and_generated_data(small_data, tmp_path):
    a = split_dataset(
        small_data, tmp_path / "a", per_category=20, validation_per_category=10, seed=4
    )
    split_dataset(small_data, tmp_path / "b", per_category=20, validation_per_category=10, seed=4)
    split_dataset(small_data, tmp_path / "c", per_category=20, validation_per_category=10, seed=5)
    for rel in (
        "test/challenge_set.json",
        "test/challenge_truth.json",
        "validation/challenge_truth.json",
    ):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert (tmp_path / "a/test/challenge_truth.json").read_bytes() != (
        tmp_path / "c/test/challenge_truth.json"
    ).read_bytes()
    assert pq.read_table(tmp_path / "a/train/playlist_tracks.parquet").equals(
        pq.read_table(tmp_path / "b/train/playlist_tracks.parquet")
    )
    assert a["counts"] == {
        "train_playlists": 3800,
        "test_playlists": 200,
        "validation_train_playlists": 3700,
        "validation_playlists": 100,
    }
    check_no_leak(tmp_path / "a", Tables.read(small_data), 20, 10)
    PlaylistData.load(tmp_path / "a" / "train")  # a training part is a dataset like any other
    info = orjson.loads((tmp_path / "a" / "split.json").read_bytes())
    assert info["seed"] == 4 and len(info["train_manifest_sha256"]) == 2


def test_too_few_long_playlists_is_a_clear_error(tmp_path):
    tables = make_tables(np.random.default_rng(0), n_playlists=40, n_tracks=400, n_long=1)
    tables.write(tmp_path / "data", source="test")
    with pytest.raises(
        SegueError, match=r"category (9|10) .* at least 150 tracks.*lower --per-category"
    ):
        split_dataset(tmp_path / "data", tmp_path / "split", per_category=1)
    assert not (tmp_path / "split").exists()
