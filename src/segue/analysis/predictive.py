"""Track popularity, predicted honestly: from what was known before a cut, for the period after it.

The playlist-continuation design's popularity model reported 99.6% accuracy for "is this track popular?" because one
of its features was the track's playlist count — the target itself. Here the question is one a
label can be hidden from:

* playlists are split by ``modified_at`` at a cut (default: the 75th percentile, so the later
  period holds a quarter of the playlists). Every **feature** is computed from the earlier
  playlists only; the **target** is ``log1p`` of the number of later playlists holding the track.
* the tracks scored are those seen before the cut (a track first seen after it has no history;
  how many such tracks and entries there are is reported);
* tracks are split at random (seeded) into a training part and a test part; every figure is on
  the test tracks;
* the models — a random forest (scikit-learn) and gradient-boosted trees (LightGBM) — are
  compared with two baselines: the mean (R² = 0 by construction) and the naive "popularity
  persists" forecast ``log1p(count_before · n_after / n_before)``;
* feature importances are permutation importances on test tracks (the drop in R² when one
  feature's column is shuffled), not the trees' split counts, which favour many-valued features.

``modified_at`` is the time of a playlist's *last* edit, the only time the MPD has: a playlist
last edited after the cut may have gained some of its tracks before it. The split is therefore
"playlists active later", not "tracks added later"; it never lets a feature see a later playlist.

The guard against leaks is a test, not a promise: shuffling which tracks the later playlists
hold (:func:`popularity_frame` with ``shuffle_later``) leaves every feature unchanged and must drop
every model to the mean baseline; a deliberately leaky variant (history = all playlists) does
not drop, which shows the test can fail (``tests/analysis/test_predictive.py``).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from segue.data import schema
from segue.data.dataset import PlaylistData
from segue.errors import InputFileError, SegueError
from segue.io import atomic_dir, atomic_file, write_json
from segue.progress import rss_gib

log = logging.getLogger("segue")

DAY = 86_400
FEATURES = (
    "count_before",
    "count_last_30d",
    "count_last_90d",
    "days_since_first_seen",
    "days_since_last_seen",
    "mean_position",
    "mean_log_followers",
    "mean_playlist_length",
    "artist_count_before",
    "artist_tracks_before",
    "artist_count_last_30d",
    "album_count_before",
    "share_of_artist",
    "duration_min",
)
FEATURE_HELP = {
    "count_before": "earlier playlists holding the track",
    "count_last_30d": "of those, last edited in the 30 days before the cut",
    "count_last_90d": "… in the 90 days before the cut",
    "days_since_first_seen": "days from the earliest such playlist's last edit to the cut",
    "days_since_last_seen": "days from the latest such playlist's last edit to the cut",
    "mean_position": "mean relative position in those playlists (0 first, 1 last)",
    "mean_log_followers": "mean log(1 + followers) of those playlists",
    "mean_playlist_length": "mean length of those playlists",
    "artist_count_before": "earlier playlist entries of the track's artist (all its tracks)",
    "artist_tracks_before": "the artist's tracks seen before the cut",
    "artist_count_last_30d": "the artist's entries in the last 30 days before the cut",
    "album_count_before": "earlier playlist entries of the track's album",
    "share_of_artist": "count_before / artist_count_before",
    "duration_min": "track length in minutes",
}


@dataclass(frozen=True)
class PopularitySettings:
    """``cut``: unix seconds (``None``: the ``cut_quantile`` of ``modified_at``). ``test_share``:
    share of tracks held out for scoring. ``max_train_tracks``: training tracks the random forest
    sees (a seeded sample; LightGBM sees all). ``n_estimators``: trees of each model.
    ``importance_rows`` / ``importance_repeats``: test tracks and shuffles of the permutation
    importances. ``seed``: every random choice."""

    cut: int | None = None
    cut_quantile: float = 0.75
    test_share: float = 0.2
    max_train_tracks: int = 100_000
    n_estimators: int = 100
    importance_rows: int = 20_000
    importance_repeats: int = 5
    seed: int = 0

    def check(self) -> None:
        if not 0 < self.cut_quantile < 1:
            raise SegueError(f"cut_quantile must be in (0, 1), got {self.cut_quantile}")
        if not 0 < self.test_share < 1:
            raise SegueError(f"test_share must be in (0, 1), got {self.test_share}")
        for name in ("max_train_tracks", "n_estimators", "importance_rows", "importance_repeats"):
            if getattr(self, name) < 1:
                raise SegueError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class PopularityFrame:
    """Tracks with a history, their features and target.

    ``track_ids`` int32 [t]; ``features`` float32 [t, len(FEATURES)]; ``target`` float64 [t]
    (log1p of later playlists); ``count_after`` int64 [t]; ``n_before``/``n_after``: playlists
    in each period; ``new_tracks``/``new_entries``: later tracks with no history and their
    distinct-playlist entries (not scored).
    """

    track_ids: np.ndarray
    features: np.ndarray
    target: np.ndarray
    count_after: np.ndarray
    n_before: int
    n_after: int
    new_tracks: int
    new_entries: int

    @property
    def naive(self) -> np.ndarray:
        """The persistence forecast: log1p(count_before · n_after / n_before)."""
        return np.log1p(self.features[:, 0].astype(np.float64) * self.n_after / self.n_before)


def _column(table: pa.Table, name: str, path: Path, *, dtype=np.int64) -> np.ndarray:
    column = table.column(name)
    if column.null_count:
        first = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        pid = table.column(schema.PID)[first].as_py()
        raise InputFileError(
            path,
            f"{column.null_count:,} playlists have no {name} (first: pid {pid}); "
            f"the popularity model needs every playlist's {name}",
            where=f"field {name!r}",
        )
    return column.to_numpy().astype(dtype)


def load_inputs(data_dir: Path) -> dict:
    """What :func:`popularity_frame` needs from an ingested dataset (arrays; see there)."""
    data_dir = Path(data_dir)
    data = PlaylistData.load(data_dir)
    path = data_dir / schema.PLAYLISTS_FILE
    playlists = pq.read_table(path, columns=[schema.PID, schema.MODIFIED_AT, schema.NUM_FOLLOWERS])
    modified = _column(playlists, schema.MODIFIED_AT, path)
    followers = playlists.column(schema.NUM_FOLLOWERS).fill_null(0).to_numpy().astype(np.float64)
    tracks = pq.read_table(
        data_dir / schema.TRACKS_FILE, columns=[schema.ALBUM_ID, schema.DURATION_MS]
    )
    duration = tracks.column(schema.DURATION_MS).fill_null(0).to_numpy().astype(np.float64)
    entries = pq.read_table(
        data_dir / schema.PLAYLIST_TRACKS_FILE, columns=[schema.POS, schema.TRACK_ID]
    )
    raw_lengths = (
        pq.read_table(path, columns=[schema.NUM_TRACKS]).column(0).to_numpy().astype(np.int64)
    )
    return {
        "matrix": data.matrix,
        "modified_at": modified,
        "followers": followers,
        "track_artist": data.track_artist,
        "track_album": data.track_album,
        "duration_ms": duration,
        "positions": _relative_positions(data.matrix, entries, raw_lengths),
    }


def _relative_positions(
    matrix: sp.csr_matrix, entries: pa.Table, raw_lengths: np.ndarray
) -> sp.csr_matrix:
    """CSR with ``matrix``'s structure holding each (playlist, track)'s position / (length − 1)
    (0 in a one-track playlist; the mean position where a track repeats inside a playlist).

    ``entries`` (pos, track_id) are in playlist order, ``raw_lengths`` int [n_playlists] rows each
    (duplicates included), so the CSR is built directly: no sort of the 66M rows.
    """
    track = entries.column(schema.TRACK_ID).to_numpy()
    pos = entries.column(schema.POS).to_numpy().astype(np.float64)
    indptr = np.concatenate(([0], np.cumsum(raw_lengths)))
    span = np.maximum(raw_lengths - 1, 1).astype(np.float64)
    # Each matrix gets its own copy of the indices: sum_duplicates sorts them in place.
    rel = sp.csr_matrix(
        (pos / np.repeat(span, raw_lengths), track.copy(), indptr.copy()), shape=matrix.shape
    )
    rel.sum_duplicates()
    repeats = sp.csr_matrix((np.ones(len(track)), track.copy(), indptr.copy()), shape=matrix.shape)
    repeats.sum_duplicates()
    rel.data /= repeats.data
    if not np.array_equal(rel.indptr, matrix.indptr):  # same playlists, same distinct tracks
        raise SegueError(
            "playlist_tracks.parquet and playlists.parquet disagree on playlist lengths"
        )
    return rel


def popularity_frame(
    inputs: dict,
    cut: int,
    *,
    shuffle_later: bool = False,
    leak_all_history: bool = False,
    seed: int = 0,
) -> PopularityFrame:
    """Features from playlists last edited before ``cut``, target from those at or after it.

    ``shuffle_later``: permute the track ids of the later playlists (a seeded permutation of all
    track ids) — the later period's labels shuffled, the earlier period untouched. Used by the
    leak test. ``leak_all_history``: compute the features from *all* playlists (a deliberate leak,
    only for showing that the test catches one).
    """
    matrix: sp.csr_matrix = inputs["matrix"]
    modified = inputs["modified_at"]
    n_tracks = matrix.shape[1]
    before_rows = np.flatnonzero(modified < cut)
    after_rows = np.flatnonzero(modified >= cut)
    if len(before_rows) == 0 or len(after_rows) == 0:
        raise SegueError(
            f"the cut {_date(cut)} leaves no playlists {'before' if len(before_rows) == 0 else 'after'} it "
            f"(modified_at spans {_date(int(modified.min()))} … {_date(int(modified.max()))})"
        )
    after = matrix[after_rows]
    later_ids = after.indices
    if shuffle_later:
        later_ids = np.random.default_rng(seed).permutation(n_tracks)[later_ids]
    count_after_all = np.bincount(later_ids, minlength=n_tracks)
    history_rows = np.arange(matrix.shape[0]) if leak_all_history else before_rows
    if leak_all_history and shuffle_later:
        # The leak sees the (shuffled) later period too, as a leaky pipeline would.
        history = sp.vstack(
            [
                matrix[before_rows],
                sp.csr_matrix((after.data, later_ids, after.indptr), shape=after.shape),
            ]
        )
        times = np.concatenate((modified[before_rows], modified[after_rows]))
        history_rows = np.concatenate((before_rows, after_rows))
    else:
        history = matrix[history_rows]
        times = modified[history_rows]
    history = history.tocsr()
    counts = np.bincount(history.indices, minlength=n_tracks).astype(np.float64)
    keep = np.flatnonzero(counts > 0)
    entry_rows = np.repeat(np.arange(history.shape[0]), np.diff(history.indptr))
    age = (cut - times[entry_rows]).astype(
        np.float64
    ) / DAY  # days before the cut (≥ 0 without leak)

    def per_track(weights: np.ndarray) -> np.ndarray:
        return np.bincount(history.indices, weights=weights, minlength=n_tracks)

    recent30 = per_track((age <= 30) & (age >= 0))
    recent90 = per_track((age <= 90) & (age >= 0))
    # First / last seen: max over each track's entries of the age, and of −age, via sorted groups.
    order = np.lexsort((age, history.indices))
    sorted_tracks = history.indices[order]
    starts = np.flatnonzero(np.r_[True, sorted_tracks[1:] != sorted_tracks[:-1]])
    tracks_with = sorted_tracks[starts]
    first_seen = np.zeros(n_tracks)
    last_seen = np.zeros(n_tracks)
    last_seen[tracks_with] = age[order][starts]  # smallest age
    ends = np.r_[starts[1:], len(order)] - 1
    first_seen[tracks_with] = age[order][ends]  # largest age
    positions = inputs["positions"][history_rows].tocsr()
    mean_position = per_track(positions.data) / np.maximum(counts, 1)
    followers = np.log1p(inputs["followers"][history_rows])[entry_rows]
    lengths = np.diff(history.indptr).astype(np.float64)[entry_rows]
    artist, album = inputs["track_artist"].astype(np.int64), inputs["track_album"].astype(np.int64)
    artist_count = np.bincount(artist, weights=counts)[artist]
    artist_tracks = np.bincount(artist, weights=(counts > 0).astype(np.float64))[artist]
    artist_recent = np.bincount(artist, weights=recent30)[artist]
    album_count = np.bincount(album, weights=counts)[album]
    columns = {
        "count_before": counts,
        "count_last_30d": recent30,
        "count_last_90d": recent90,
        "days_since_first_seen": first_seen,
        "days_since_last_seen": last_seen,
        "mean_position": mean_position,
        "mean_log_followers": per_track(followers) / np.maximum(counts, 1),
        "mean_playlist_length": per_track(lengths) / np.maximum(counts, 1),
        "artist_count_before": artist_count,
        "artist_tracks_before": artist_tracks,
        "artist_count_last_30d": artist_recent,
        "album_count_before": album_count,
        "share_of_artist": counts / np.maximum(artist_count, 1),
        "duration_min": inputs["duration_ms"] / 60_000,
    }
    features = np.column_stack([columns[name][keep] for name in FEATURES]).astype(np.float32)
    new = count_after_all > 0
    new[keep] = False
    return PopularityFrame(
        keep.astype(np.int32),
        features,
        np.log1p(count_after_all[keep]).astype(np.float64),
        count_after_all[keep].astype(np.int64),
        len(before_rows),
        len(after_rows),
        int(new.sum()),
        int(count_after_all[new].sum()),
    )


def _date(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def scores(
    y: np.ndarray, predicted: np.ndarray, count_after: np.ndarray, top_share: float = 0.01
) -> dict:
    """R² and MAE on the log target, Spearman's ρ, and precision of the predicted top 1%.

    >>> s = scores(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0, 3.0]), np.array([0, 1, 6, 19]), 0.25)
    >>> s["r2"], s["mae"], round(s["spearman"], 6), s["top_precision"]
    (1.0, 0.0, 1.0, 1.0)
    """
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_absolute_error, r2_score

    k = max(1, round(top_share * len(y)))
    predicted_top = np.lexsort((np.arange(len(y)), -predicted))[:k]
    threshold = np.sort(count_after)[::-1][k - 1]  # ties at the boundary all count
    rho = spearmanr(y, predicted).statistic if np.ptp(predicted) > 0 else 0.0
    return {
        "r2": float(r2_score(y, predicted)),
        "mae": float(mean_absolute_error(y, predicted)),
        "spearman": float(rho),
        "top_precision": float(np.mean(count_after[predicted_top] >= threshold)),
    }


def fit_and_score(
    frame: PopularityFrame, settings: PopularitySettings, *, importances: bool = True
) -> dict:
    """Train the forest and LightGBM on the training tracks; score them and the baselines on the
    test tracks. Returns ``{"scores": {name: {...}}, "importances": {...}, "split": {...},
    "predictions": {name: float64 [test]}, "test": int [test] (row indices into ``frame``)}``."""
    import lightgbm
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    rng = np.random.default_rng(settings.seed)
    t = len(frame.track_ids)
    if t < 50:
        raise SegueError(
            f"only {t} tracks appear before the cut: too few to train and test a model"
        )
    order = rng.permutation(t)
    n_test = max(10, round(settings.test_share * t))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    x, y = frame.features, frame.target
    forest_rows = np.sort(
        rng.choice(train, size=min(len(train), settings.max_train_tracks), replace=False)
    )
    start = time.perf_counter()
    forest = RandomForestRegressor(
        n_estimators=settings.n_estimators,
        min_samples_leaf=10,
        max_features=0.5,
        n_jobs=-1,
        random_state=settings.seed,
    )
    forest.fit(x[forest_rows], y[forest_rows])
    log.info(
        "random forest on %s tracks in %.1f s (RSS %.2f GiB)",
        f"{len(forest_rows):,}",
        time.perf_counter() - start,
        rss_gib(),
    )
    start = time.perf_counter()
    boosted = lightgbm.LGBMRegressor(
        n_estimators=settings.n_estimators * 2,
        learning_rate=0.05,
        num_leaves=63,
        min_child_samples=20,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=settings.seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=2,
        verbose=-1,
    )
    boosted.fit(x[train], y[train])
    log.info(
        "LightGBM on %s tracks in %.1f s (RSS %.2f GiB)",
        f"{len(train):,}",
        time.perf_counter() - start,
        rss_gib(),
    )
    predictions = {
        "mean (baseline)": np.full(len(test), y[train].mean()),
        "naive: popularity persists (baseline)": frame.naive[test],
        "random forest": forest.predict(x[test]),
        "LightGBM": boosted.predict(x[test]),
    }
    result = {name: scores(y[test], p, frame.count_after[test]) for name, p in predictions.items()}
    importance = {}
    if importances:
        rows = (
            test
            if len(test) <= settings.importance_rows
            else np.sort(rng.choice(test, size=settings.importance_rows, replace=False))
        )
        for name, model in (("random forest", forest), ("LightGBM", boosted)):
            r = permutation_importance(
                model,
                x[rows],
                y[rows],
                n_repeats=settings.importance_repeats,
                random_state=settings.seed,
                scoring="r2",
            )
            importance[name] = {
                f: {"mean": float(m), "std": float(s)}
                for f, m, s in zip(FEATURES, r.importances_mean, r.importances_std, strict=True)
            }
    return {
        "scores": result,
        "importances": importance,
        "predictions": predictions,
        "test": test,
        "split": {
            "train_tracks": len(train),
            "test_tracks": len(test),
            "forest_tracks": len(forest_rows),
        },
    }


def popularity_model(
    data_dir: Path, out_dir: Path, *, settings: PopularitySettings | None = None
) -> dict:
    """Run the whole analysis on an ingested dataset and write ``popularity.md``, ``popularity.json``,
    ``importances.csv``, ``test_predictions.parquet`` and two figures (all or nothing)."""
    settings = settings or PopularitySettings()
    settings.check()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    start = time.perf_counter()
    inputs = load_inputs(data_dir)
    modified = inputs["modified_at"]
    if len(modified) == 0:
        raise SegueError(f"{data_dir}: the dataset has no playlists")
    cut = (
        settings.cut
        if settings.cut is not None
        else int(np.quantile(modified, settings.cut_quantile))
    )
    frame = popularity_frame(inputs, cut, seed=settings.seed)
    log.info(
        "popularity model: %s tracks with a history; %s earlier and %s later playlists (cut %s)",
        f"{len(frame.track_ids):,}",
        f"{frame.n_before:,}",
        f"{frame.n_after:,}",
        _date(cut),
    )
    fitted = fit_and_score(frame, settings)
    summary = {
        "data": str(data_dir),
        "settings": asdict(settings),
        "cut": cut,
        "cut_date": _date(cut),
        "n_before": frame.n_before,
        "n_after": frame.n_after,
        "tracks_with_history": len(frame.track_ids),
        "new_tracks_after_cut": frame.new_tracks,
        "new_track_entries_after_cut": frame.new_entries,
        "features": {f: FEATURE_HELP[f] for f in FEATURES},
        **fitted["split"],
        "scores": fitted["scores"],
        "importances": fitted["importances"],
    }
    uris = pq.read_table(data_dir / schema.TRACKS_FILE, columns=[schema.TRACK_URI]).column(0)
    test = fitted["test"]
    with atomic_dir(out_dir) as tmp:
        columns = {
            "track_id": pa.array(frame.track_ids[test]),
            "track_uri": uris.take(pa.array(frame.track_ids[test])).combine_chunks(),
            "count_before": pa.array(frame.features[test, 0].astype(np.int64)),
            "count_after": pa.array(frame.count_after[test]),
        }
        columns |= {
            f"predicted_{_slug(name)}": pa.array(np.expm1(p))
            for name, p in fitted["predictions"].items()
        }
        pq.write_table(pa.table(columns), tmp / "test_predictions.parquet", compression="zstd")
        _write_importances(tmp / "importances.csv", fitted["importances"])
        _plot(tmp, frame, fitted)
        (tmp / "popularity.md").write_text(_markdown(summary), encoding="utf-8")
        summary["seconds"] = round(time.perf_counter() - start, 2)
        write_json(tmp / "popularity.json", summary)
    return summary


def _slug(name: str) -> str:
    return name.split(" (")[0].split(":")[0].lower().replace(" ", "_")


def _write_importances(path: Path, importances: dict) -> None:
    lines = ["model,feature,r2_drop_mean,r2_drop_std"]
    for model, by_feature in importances.items():
        lines += [f"{model},{f},{v['mean']!r},{v['std']!r}" for f, v in by_feature.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _markdown(s: dict) -> str:
    lines = [
        "# Track popularity: earlier playlists → later popularity",
        "",
        f"Cut at **{s['cut_date']}** (playlists by `modified_at`): {s['n_before']:,} earlier playlists give every "
        f"feature; {s['n_after']:,} later playlists give the target, log(1 + later playlists holding the track). "
        f"{s['tracks_with_history']:,} tracks appear before the cut and are scored "
        f"({s['train_tracks']:,} to train — the random forest on a sample of {s['forest_tracks']:,} — and "
        f"{s['test_tracks']:,} held-out test tracks for every figure below). {s['new_tracks_after_cut']:,} tracks "
        f"appear only after the cut ({s['new_track_entries_after_cut']:,} later entries): no history, not scored.",
        "",
        "| model (test tracks) | R² (log target) | MAE (log) | Spearman ρ | precision of the predicted top 1% |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, v in s["scores"].items():
        lines.append(
            f"| {name} | {v['r2']:.4f} | {v['mae']:.4f} | {v['spearman']:.4f} | {v['top_precision']:.3f} |"
        )
    lines += [
        "",
        "The mean predicts the training tracks' mean for every track (R² = 0 by construction); the naive "
        "forecast assumes a track keeps its earlier share: log(1 + count_before × later playlists / earlier "
        "playlists). A model is worth having where it beats the naive forecast. Precision of the predicted top 1%: "
        "share of the 1% of test tracks with the highest forecasts whose later count reaches the 1%-th largest "
        "later count (tracks tied at that count all qualify).",
        "",
        "## Permutation importances (drop in test R² when the feature is shuffled)",
        "",
        "| feature | meaning | " + " | ".join(s["importances"]) + " |",
        "|---|---|" + "---:|" * len(s["importances"]),
    ]
    first = next(iter(s["importances"].values()), {})
    ranked = sorted(first, key=lambda f: -first[f]["mean"])
    for f in ranked:
        cells = [
            f"{s['importances'][m][f]['mean']:.4f} ± {s['importances'][m][f]['std']:.4f}"
            for m in s["importances"]
        ]
        lines.append(f"| `{f}` | {s['features'][f]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Why this can be trusted: no feature reads a playlist edited after the cut, and the test suite "
        "checks it — with the later playlists' tracks shuffled, every model falls to the mean baseline "
        "(R² ≈ 0), while a pipeline that lets features see the later playlists does not. `modified_at` is a "
        'playlist\'s last edit, so "later playlists" are playlists active after the cut.',
        "",
        "Figures: `predicted_vs_actual.png`, `importances.png`; per-track test predictions: "
        "`test_predictions.parquet`.",
        "",
    ]
    return "\n".join(lines)


def _figure(width: float, height: float):
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _plot(out: Path, frame: PopularityFrame, fitted: dict) -> None:
    y = frame.target[fitted["test"]]
    fig = _figure(12, 4.5)
    axes = fig.subplots(1, 3, sharex=True, sharey=True)
    for ax, name in zip(
        axes, ("naive: popularity persists (baseline)", "random forest", "LightGBM"), strict=True
    ):
        ax.hexbin(y, fitted["predictions"][name], gridsize=40, bins="log", mincnt=1, cmap="viridis")
        top = max(float(y.max()), 1.0)
        ax.plot([0, top], [0, top], color="0.5", ls=":")
        r2 = fitted["scores"][name]["r2"]
        ax.set_title(f"{name.split(':')[0]} (R² {r2:.3f})", fontsize=10)
        ax.set_xlabel("actual log(1 + later playlists)")
    axes[0].set_ylabel("predicted")
    with atomic_file(out / "predicted_vs_actual.png", "wb") as handle:
        fig.savefig(handle, format="png")
    if not fitted["importances"]:
        return
    fig = _figure(9, 5)
    ax = fig.subplots()
    models = list(fitted["importances"])
    first = fitted["importances"][models[0]]
    ranked = sorted(first, key=lambda f: first[f]["mean"])
    pos = np.arange(len(ranked))
    for j, model in enumerate(models):
        values = [fitted["importances"][model][f]["mean"] for f in ranked]
        errors = [fitted["importances"][model][f]["std"] for f in ranked]
        ax.barh(pos + (j - 0.5) * 0.4, values, height=0.4, xerr=errors, label=model)
    ax.set_yticks(pos, ranked, fontsize=8)
    ax.set_xlabel("drop in test R² when shuffled")
    ax.set_title("Permutation importances")
    ax.legend()
    with atomic_file(out / "importances.png", "wb") as handle:
        fig.savefig(handle, format="png")
