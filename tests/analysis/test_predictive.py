"""The track-popularity model: features by hand, the leak test (and its positive control), errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from segue.analysis.predictive import (
    DAY,
    FEATURES,
    PopularitySettings,
    _relative_positions,
    fit_and_score,
    load_inputs,
    popularity_frame,
)
from segue.cli import main
from segue.data.ingest import ingest_mpd
from segue.errors import InputFileError, SegueError
from tests.data.helpers import playlist, write_slice

CUT = 1_000 * DAY


def hand_inputs() -> dict:
    """Five playlists over 5 tracks (artists: 0,1 → A; 2,3 → B; 4 → C); cut at day 1000.

    p0 day 900 [0, 1, 2]   p1 day 980 [0, 3]   p2 day 995 [0, 0, 1] (0 repeated)
    p3 day 1000 [0, 4]     p4 day 1200 [1, 4, 2]
    """
    raw = [[0, 1, 2], [0, 3], [0, 0, 1], [0, 4], [1, 4, 2]]
    lengths = np.array([len(r) for r in raw])
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    raw_matrix = sp.csr_matrix(
        (np.ones(indptr[-1], np.float32), np.concatenate(raw), indptr), shape=(5, 5)
    )
    matrix = raw_matrix.copy()
    matrix.sum_duplicates()
    matrix.data[:] = 1
    entries = pa.table(
        {
            "pos": pa.array(np.concatenate([np.arange(n) for n in lengths]), pa.int32()),
            "track_id": pa.array(np.concatenate(raw), pa.int32()),
        }
    )
    return {
        "matrix": matrix,
        "modified_at": np.array([900, 980, 995, 1000, 1200]) * DAY,
        "followers": np.array([1.0, 3.0, 0.0, 7.0, 1.0]),
        "track_artist": np.array([0, 0, 1, 1, 2]),
        "track_album": np.array([0, 1, 1, 2, 3]),
        "duration_ms": np.array([60_000.0, 120_000, 180_000, 0, 30_000]),
        "positions": _relative_positions(matrix, entries, lengths),
    }


def test_features_and_target_by_hand():
    frame = popularity_frame(hand_inputs(), CUT)
    # Tracks 0-3 appear before the cut (p0-p2); 4 only later (p3 is at the cut: later).
    assert frame.track_ids.tolist() == [0, 1, 2, 3] and frame.n_before == 3 and frame.n_after == 2
    f = {name: frame.features[:, i].tolist() for i, name in enumerate(FEATURES)}
    assert f["count_before"] == [3, 2, 1, 1]
    assert f["count_last_30d"] == [2, 1, 0, 1] and f["count_last_90d"] == [2, 1, 0, 1]
    assert f["days_since_first_seen"] == [100, 100, 100, 20] and f["days_since_last_seen"] == [
        5,
        5,
        100,
        20,
    ]
    # Track 0 at relative positions 0/2 (p0), 0/1 (p1) and mean(0, 1)/2 (p2, repeated).
    assert f["mean_position"] == pytest.approx([(0 + 0 + 0.25) / 3, (0.5 + 1.0) / 2, 1.0, 1.0])
    assert f["mean_log_followers"][0] == pytest.approx((np.log(2) + np.log(4) + 0) / 3)
    assert f["mean_playlist_length"][0] == pytest.approx(
        (3 + 2 + 2) / 3
    )  # distinct tracks per playlist
    assert f["artist_count_before"] == [5, 5, 2, 2] and f["artist_tracks_before"] == [2, 2, 2, 2]
    assert f["album_count_before"] == [3, 3, 3, 1]
    assert f["share_of_artist"] == pytest.approx([0.6, 0.4, 0.5, 0.5])
    assert f["duration_min"] == pytest.approx([1, 2, 3, 0])
    # Later: p3 [0, 4], p4 [1, 4, 2] → counts 1, 1, 1, 0 for the scored tracks; track 4 is new.
    assert frame.count_after.tolist() == [1, 1, 1, 0]
    assert frame.target == pytest.approx(np.log1p([1, 1, 1, 0]))
    assert frame.new_tracks == 1 and frame.new_entries == 2
    assert frame.naive == pytest.approx(np.log1p(np.array([3, 2, 1, 1]) * 2 / 3))


def test_shuffling_the_later_period_drops_every_model_to_the_baseline(small_data):
    inputs = load_inputs(small_data)
    cut = int(np.quantile(inputs["modified_at"], 0.75))
    settings = PopularitySettings(n_estimators=10, max_train_tracks=5_000, seed=1)
    honest = fit_and_score(popularity_frame(inputs, cut), settings, importances=False)["scores"]
    for model in ("random forest", "LightGBM"):
        assert honest[model]["r2"] > 0.25 and honest[model]["spearman"] > 0.3, honest
    shuffled_frame = popularity_frame(inputs, cut, shuffle_later=True, seed=5)
    # Features read the earlier period only, so shuffling the later one leaves them untouched.
    np.testing.assert_array_equal(shuffled_frame.features, popularity_frame(inputs, cut).features)
    shuffled = fit_and_score(shuffled_frame, settings, importances=False)["scores"]
    for model in ("random forest", "LightGBM"):
        assert shuffled[model]["r2"] < 0.03 and abs(shuffled[model]["spearman"]) < 0.03, shuffled
    # Positive control: a pipeline whose features also read the later playlists keeps "predicting"
    # the shuffled labels — the leak the source design had — so the check above can fail.
    leaky = fit_and_score(
        popularity_frame(inputs, cut, shuffle_later=True, leak_all_history=True, seed=5),
        settings,
        importances=False,
    )["scores"]
    assert leaky["LightGBM"]["r2"] > 0.5, leaky


def test_cli_writes_the_report(small_data, tmp_path, capsys):
    out = tmp_path / "pop"
    assert (
        main(
            [
                "popularity-model",
                str(small_data),
                "--out",
                str(out),
                "--n-estimators",
                "5",
                "--max-train-tracks",
                "2000",
            ]
        )
        == 0
    )
    assert "LightGBM" in capsys.readouterr().out
    summary = json.loads((out / "popularity.json").read_text())
    assert set(summary["scores"]) == {
        "mean (baseline)",
        "naive: popularity persists (baseline)",
        "random forest",
        "LightGBM",
    }
    assert set(summary["importances"]["LightGBM"]) == set(FEATURES)
    for name in (
        "popularity.md",
        "importances.csv",
        "predicted_vs_actual.png",
        "importances.png",
        "test_predictions.parquet",
    ):
        assert (out / name).stat().st_size > 0
    assert "Permutation importances" in (out / "popularity.md").read_text()


def test_bad_input(small_data, tmp_path, capsys):
    inputs = load_inputs(small_data)
    with pytest.raises(SegueError, match="leaves no playlists after it"):
        popularity_frame(inputs, int(inputs["modified_at"].max()) + 1)
    assert (
        main(
            [
                "popularity-model",
                str(small_data),
                "--out",
                str(tmp_path / "x"),
                "--cut",
                "1999-01-01",
            ]
        )
        == 2
    )
    assert "leaves no playlists before it" in capsys.readouterr().err
    assert (
        main(
            [
                "popularity-model",
                str(small_data),
                "--out",
                str(tmp_path / "x"),
                "--cut",
                "yesterday",
            ]
        )
        == 2
    )
    assert "--cut must be a date YYYY-MM-DD" in capsys.readouterr().err
    assert (
        main(
            [
                "popularity-model",
                str(small_data),
                "--out",
                str(tmp_path / "x"),
                "--test-share",
                "1.5",
            ]
        )
        == 2
    )
    assert "test_share must be in (0, 1)" in capsys.readouterr().err
    # A reduced copy without modified_at: the file and the field are named.
    write_slice(
        tmp_path / "reduced",
        0,
        3,
        [playlist(p, [p, p + 1, p + 2, 7, 8], reduced=True) for p in range(4)],
    )
    ingest_mpd(tmp_path / "reduced", tmp_path / "data", workers=1)
    with pytest.raises(
        InputFileError,
        match=r"playlists.parquet: field 'modified_at': 4 playlists have no modified_at",
    ):
        load_inputs(tmp_path / "data")
    assert not (tmp_path / "x").exists()
