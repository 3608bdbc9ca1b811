"""Listening data: the split by time and the evaluation harness (Recall/NDCG@10, next-track HitRate@10).

Split (:func:`split_listening`), per user, by time:

* A user's distinct tracks are ordered by their **first play**; the first 70% are training, the
  next 15% validation, the last 15% test (each held-out part at least one track). Users with
  fewer than ``min_user_tracks`` distinct tracks stay in training only (no held-out part).
* The **training part** is every play *before* the user's first play of a validation track (the
  cut), re-aggregated into edges: nothing after the cut — no validation or test track, and no
  later replay of a training track — is in any training matrix, edge or session. Users and the
  track catalog (ids, artists, genres, durations) are kept whole: metadata is not interaction.
* **Truth**: validation = the user's validation tracks, test = the test tracks. Neither was ever
  played by that user before the cut, so it is never in that user's training edges.
* **Next-track task** of a part: for plays in the part's period (from the part's cut to the next
  one) that are not the first of their session and whose track is not already in the session's
  earlier plays (a Recommender never returns a seed), the query is the session's earlier plays
  (the prefix, at most ``max_prefix`` of the latest, in order) and the answer is the track played.
  At most ``max_next_track`` of them are drawn (seeded) so the task stays bounded at scale.
* A source without times (counts only) has no sessions: its tracks are ordered by a seeded
  shuffle and the next-track task is empty.

Evaluation (:func:`evaluate_listening`): rankings are int track-id matrices [users, n] (and
[queries, n] for next-track), like the playlist harness. Before scoring, the harness removes
from each user's row every track of that user's training part (and, for the test part, of the
validation part): they are known listens, so a model is neither rewarded nor punished for them
and "all items ranked, training items excluded" holds whatever the model did. Then at ``k``:
Recall, NDCG, HitRate, catalog coverage, genre diversity (distinct genres in a list) and genre
coverage (share of all genres in any list); next-track HitRate and MRR. Each overall and by user
type (casual / regular / power, when known). A figure that does not apply to the data — the genre
columns when it has no genres, a group without rows — is NaN (``null`` in JSON) and printed as
"–", never as a 0 that reads like a measured failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from segue.arrays import ranges
from segue.data import schema
from segue.data.sessions import EventLog, ListeningData, Listens
from segue.errors import InputFileError, SegueError
from segue.evaluation import metrics as ranking_metrics
from segue.io import atomic_dir, write_json, write_text
from segue.models.base import Queries

PARTS = ("validation", "test")
TRUTH_FILE = "truth.parquet"
NEXT_TRACK_FILE = "next_track.parquet"
SPLIT_FILE = "split.json"
QUERY = "query"
PREFIX = "prefix"
TARGET = "target"

USER_METRICS = ("recall", "ndcg", "hit_rate", "coverage", "genre_diversity", "genre_coverage")
NEXT_TRACK_METRICS = ("hit_rate", "mrr")
NOT_APPLICABLE = "–"


def cell(value, digits: int = 4) -> str:
    """A table cell: the number to ``digits`` places, or "–" for a figure that does not apply
    (``None`` or NaN).

    >>> [cell(0.5), cell(float("nan")), cell(None), cell(1.25, 1)]
    ['0.5000', '–', '–', '1.2']
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return NOT_APPLICABLE
    return f"{value:.{digits}f}"


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


@dataclass
class NextTrackTask:
    """Session prefixes and the track that followed: ``queries`` (seeds in play order; ``pids``
    are the query numbers), ``target`` int32 [m], ``user`` int32 [m], ``user_type`` object [m]."""

    queries: Queries
    target: np.ndarray
    user: np.ndarray
    user_type: np.ndarray

    def __len__(self) -> int:
        return len(self.target)


@dataclass
class ListeningTask:
    """One held-out part (``validation`` or ``test``) of a listening split.

    ``users`` int32 [q]: users with held-out tracks, ascending; ``user_type`` object [q];
    ``truth``: q sorted int64 arrays of held-out track ids (never in the user's training edges);
    ``exclude`` csr [q, n_tracks]: what the harness removes from each row before scoring (the
    user's training tracks, plus the validation tracks for the test part); ``seeds``: each
    user's training tracks in order of first play, as :class:`Queries` (how the playlist models
    are asked); ``next_track``: the next-track task; ``item_popularity`` int64 [n_tracks]:
    training listeners per track; ``track_genres`` csr [n_tracks, n_genres].
    """

    part: str
    users: np.ndarray
    user_type: np.ndarray
    truth: list[np.ndarray]
    exclude: sp.csr_matrix
    seeds: Queries
    next_track: NextTrackTask
    n_tracks: int
    item_popularity: np.ndarray
    track_genres: sp.csr_matrix

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class ListeningSplit:
    """``train`` (only training edges and plays), and the ``validation`` and ``test`` tasks."""

    train: ListeningData
    validation: ListeningTask
    test: ListeningTask
    info: dict = field(default_factory=dict)

    def part(self, name: str) -> ListeningTask:
        if name not in PARTS:
            raise SegueError(f"part must be one of {', '.join(PARTS)}, got {name!r}")
        return getattr(self, name)


# --------------------------------------------------------------------------------------------
# The split
# --------------------------------------------------------------------------------------------


def split_listening(
    data: ListeningData,
    *,
    validation_share: float = 0.15,
    test_share: float = 0.15,
    min_user_tracks: int = 5,
    max_next_track: int = 20_000,
    max_prefix: int = 50,
    seed: int = 0,
) -> ListeningSplit:
    """Split per user by time (see the module docstring). Vectorised: no loop over users or plays."""
    if not (0 <= validation_share < 1 and 0 < test_share < 1 and validation_share + test_share < 1):
        raise SegueError(
            f"shares must be in [0, 1) and leave room for training: validation "
            f"{validation_share}, test {test_share}"
        )
    if min_user_tracks < (3 if validation_share > 0 else 2):
        raise SegueError(f"min_user_tracks must leave one track per part, got {min_user_tracks}")
    rng = np.random.default_rng(seed)
    edges = data.edges()
    timed = (
        len(data.events) > 0 and len(edges.first_event) > 0 and bool(np.all(edges.first_event >= 0))
    )
    # Order each user's distinct tracks by first play (or a seeded shuffle for counts-only data).
    order_key = edges.first_event if timed else rng.permutation(len(edges.user)).astype(np.int64)
    order = np.lexsort((order_key, edges.user))
    user = edges.user[order]
    starts = np.searchsorted(user, np.arange(data.n_users + 1))
    n_tracks_of = np.diff(starts)
    rank = np.arange(len(user)) - starts[user]
    eligible = n_tracks_of >= min_user_tracks
    n_test = np.where(eligible, np.maximum(1, np.floor(test_share * n_tracks_of + 0.5)), 0).astype(
        np.int64
    )
    n_val = np.where(
        eligible & (validation_share > 0),
        np.maximum(1, np.floor(validation_share * n_tracks_of + 0.5)),
        0,
    ).astype(np.int64)
    n_train = n_tracks_of - n_val - n_test
    part_of = np.where(
        rank < n_train[user], 0, np.where(rank < (n_train + n_val)[user], 1, 2)
    ).astype(np.int8)
    track = edges.track[order]

    if timed:
        events = data.events
        first = edges.first_event[order]
        n_events = len(events)
        # Cut of each user: row of the first play of its first validation (test) track.
        cut_val = np.full(data.n_users, n_events, dtype=np.int64)
        cut_test = np.full(data.n_users, n_events, dtype=np.int64)
        has = np.flatnonzero(eligible)
        cut_val[has] = first[starts[has] + n_train[has]]
        cut_test[has] = first[starts[has] + n_train[has] + n_val[has]]
        row = np.arange(n_events, dtype=np.int64)
        train = data.with_events(events.take(row < cut_val[events.user]))
    else:
        keep = np.sort(order[part_of == 0])
        train = ListeningData.from_listens(
            Listens(
                edges.user[keep],
                edges.track[keep],
                edges.play_count[keep],
                edges.avg_completion[keep],
                edges.first_event[keep],
            ),
            n_users=data.n_users,
            n_tracks=data.n_tracks,
            user_type=data.user_type,
            track_artist=data.track_artist,
            track_genres=data.track_genres,
            artist_genres=data.artist_genres,
            genre_names=data.genre_names,
            track_duration=data.track_duration,
            user_genre_preferences=data.user_genre_preferences,
        )
    train.path = None

    tasks = {}
    for p, name in ((1, "validation"), (2, "test")):
        if timed:
            start = cut_val if p == 1 else cut_test
            stop = cut_test if p == 1 else np.full(data.n_users, len(data.events), dtype=np.int64)
            next_track = _next_track_task(
                data.events,
                start,
                stop,
                data.user_type,
                data.n_tracks,
                max_next_track,
                max_prefix,
                rng,
            )
        else:
            next_track = _empty_next_track()
        held = part_of == p
        excluded = (part_of == 0) | ((part_of == 1) & (p == 2))
        tasks[name] = _task(
            name,
            user[held],
            track[held],
            user[excluded],
            track[excluded],
            train,
            data.user_type,
            next_track,
        )
    info = {
        "validation_share": validation_share,
        "test_share": test_share,
        "min_user_tracks": min_user_tracks,
        "max_next_track": max_next_track,
        "max_prefix": max_prefix,
        "seed": seed,
        "timed": timed,
        "counts": {
            "users": data.n_users,
            "held_out_users": int(eligible.sum()),
            "train_edges": train.n_edges,
            "train_events": len(train.events),
            "validation_edges": int((part_of == 1).sum()),
            "test_edges": int((part_of == 2).sum()),
            "validation_next_track": len(tasks["validation"].next_track),
            "test_next_track": len(tasks["test"].next_track),
        },
    }
    return ListeningSplit(train, tasks["validation"], tasks["test"], info)


def _task(
    name: str,
    held_user: np.ndarray,
    held_track: np.ndarray,
    excl_user: np.ndarray,
    excl_track: np.ndarray,
    train: ListeningData,
    user_type: np.ndarray,
    next_track: NextTrackTask,
) -> ListeningTask:
    """A task from held-out (user, track) pairs and the pairs to exclude."""
    users = np.unique(held_user).astype(np.int32)
    row_of = np.full(train.n_users, -1, dtype=np.int64)
    row_of[users] = np.arange(len(users))
    truth_csr = _rows_csr(row_of[held_user], held_track, len(users), train.n_tracks)
    truth = np.split(truth_csr.indices.astype(np.int64), truth_csr.indptr[1:-1])
    keep = row_of[excl_user] >= 0
    exclude = _rows_csr(row_of[excl_user[keep]], excl_track[keep], len(users), train.n_tracks)
    return ListeningTask(
        name,
        users,
        np.asarray(user_type, dtype=object)[users],
        truth,
        exclude,
        training_seeds(train, users),
        next_track,
        train.n_tracks,
        train.track_listeners,
        train.track_genres,
    )


def _rows_csr(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_rows, n_cols))
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return matrix


def training_seeds(train: ListeningData, users: np.ndarray) -> Queries:
    """Each of ``users``' training tracks, in order of first play (by track id without times), as
    Queries whose ``pids`` are the user ids: how a playlist model is asked about a user."""
    edges = train.edges()
    order = np.lexsort((edges.first_event, edges.user))
    user, track = edges.user[order], edges.track[order]
    starts = np.searchsorted(user, users)
    lengths = np.searchsorted(user, users, side="right") - starts
    seeds = track[ranges(starts, lengths)].astype(np.int32)
    return Queries(
        np.r_[0, np.cumsum(lengths)].astype(np.int64),
        seeds,
        [""] * len(users),
        users.astype(np.int64),
    )


def _next_track_task(
    events: EventLog,
    start: np.ndarray,
    stop: np.ndarray,
    user_type: np.ndarray,
    n_tracks: int,
    max_queries: int,
    max_prefix: int,
    rng: np.random.Generator,
) -> NextTrackTask:
    """Prefix → next play for plays in [start[user], stop[user]) (rows of ``events``)."""
    n = len(events)
    row = np.arange(n, dtype=np.int64)
    indptr = events.session_indptr()
    session_start = indptr[events.session]
    # First play of its track within the session (a repeat of a prefix track cannot be asked for).
    key = events.session * np.int64(n_tracks) + events.track
    order = np.argsort(key, kind="stable")
    first_sorted = np.r_[True, key[order][1:] != key[order][:-1]]
    first_in_session = np.empty(n, dtype=bool)
    first_in_session[order] = first_sorted
    candidate = (
        (row >= start[events.user])
        & (row < stop[events.user])
        & (row > session_start)
        & first_in_session
    )
    picked = np.flatnonzero(candidate)
    if len(picked) > max_queries:
        picked = np.sort(rng.choice(picked, size=max_queries, replace=False))
    lo = np.maximum(session_start[picked], picked - max_prefix)
    lengths = picked - lo
    seeds = events.track[ranges(lo, lengths)].astype(np.int32)
    queries = Queries(
        np.r_[0, np.cumsum(lengths)].astype(np.int64),
        seeds,
        [""] * len(picked),
        np.arange(len(picked), dtype=np.int64),
    )
    users = events.user[picked].astype(np.int32)
    return NextTrackTask(
        queries,
        events.track[picked].astype(np.int32),
        users,
        np.asarray(user_type, dtype=object)[users],
    )


def _empty_next_track() -> NextTrackTask:
    return NextTrackTask(
        Queries.from_lists([]),
        np.zeros(0, np.int32),
        np.zeros(0, np.int32),
        np.zeros(0, dtype=object),
    )


# --------------------------------------------------------------------------------------------
# Persistence of a split
# --------------------------------------------------------------------------------------------


def write_listening_split(
    split: ListeningSplit, out: Path, *, catalog_from: Path | None = None
) -> None:
    """``out/train`` (a listening directory), ``out/{validation,test}/truth.parquet`` and
    ``next_track.parquet``, and ``out/split.json``; written whole or not at all."""
    with atomic_dir(Path(out)) as tmp:
        split.train.write(
            tmp / "train",
            source=f"training part of {catalog_from or 'data built in memory'}",
            catalog_from=catalog_from,
            extra={"split": split.info},
        )
        for name in PARTS:
            task = split.part(name)
            (tmp / name).mkdir()
            lengths = np.array([len(t) for t in task.truth], dtype=np.int64)
            truth = np.concatenate(task.truth) if task.truth else np.zeros(0, np.int64)
            pq.write_table(
                pa.table(
                    {
                        schema.USER_ID: pa.array(np.repeat(task.users, lengths), pa.int32()),
                        schema.TRACK_ID: pa.array(truth, pa.int32()),
                    }
                ),
                tmp / name / TRUTH_FILE,
            )
            nt = task.next_track
            prefixes = pa.ListArray.from_arrays(
                pa.array(nt.queries.indptr.astype(np.int32)),
                pa.array(nt.queries.seed_ids, pa.int32()),
            )
            pq.write_table(
                pa.table(
                    {
                        schema.USER_ID: pa.array(nt.user, pa.int32()),
                        PREFIX: prefixes,
                        TARGET: pa.array(nt.target, pa.int32()),
                    }
                ),
                tmp / name / NEXT_TRACK_FILE,
            )
        write_json(tmp / SPLIT_FILE, split.info)


def load_listening_split(path: Path) -> ListeningSplit:
    """Read what :func:`write_listening_split` wrote."""
    path = Path(path)
    if not (path / SPLIT_FILE).exists():
        raise InputFileError(
            path / SPLIT_FILE, "missing; is this a directory written by `split_listening`?"
        )
    import orjson

    info = orjson.loads((path / SPLIT_FILE).read_bytes())
    train = ListeningData.load(path / "train")
    tasks = {}
    held_before = None
    for name in PARTS:
        file = path / name / TRUTH_FILE
        if not file.exists():
            raise InputFileError(file, "missing")
        truth = pq.read_table(file)
        held_user = truth.column(schema.USER_ID).to_numpy()
        held_track = truth.column(schema.TRACK_ID).to_numpy()
        if len(held_track) and (
            held_track.max() >= train.n_tracks or held_user.max() >= train.n_users
        ):
            raise InputFileError(file, "ids outside the training part's catalog")
        edges = train.edges()
        excl_user, excl_track = edges.user, edges.track
        if held_before is not None:
            excl_user = np.concatenate((excl_user, held_before[0]))
            excl_track = np.concatenate((excl_track, held_before[1]))
        nt_table = pq.read_table(path / name / NEXT_TRACK_FILE)
        prefixes = nt_table.column(PREFIX).combine_chunks()
        offsets = prefixes.offsets.to_numpy().astype(np.int64)
        target = nt_table.column(TARGET).to_numpy().astype(np.int32)
        nt_user = nt_table.column(schema.USER_ID).to_numpy().astype(np.int32)
        queries = Queries(
            offsets - offsets[0] if len(offsets) else np.zeros(1, np.int64),
            prefixes.values.to_numpy().astype(np.int32),
            [""] * len(target),
            np.arange(len(target), dtype=np.int64),
        )
        next_track = NextTrackTask(queries, target, nt_user, train.user_type[nt_user])
        tasks[name] = _task(
            name, held_user, held_track, excl_user, excl_track, train, train.user_type, next_track
        )
        held_before = (held_user, held_track)
    return ListeningSplit(train, tasks["validation"], tasks["test"], info)


# --------------------------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------------------------


@dataclass
class ListeningEvaluation:
    """``table[model][group][metric]`` (mean over the group's rows), ``counts[group]`` (rows per
    group) for the user task and ``next_track_table`` / ``next_track_counts`` likewise; groups are
    ``"all"`` and each user type present."""

    k: int
    table: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    next_track_table: dict = field(default_factory=dict)
    next_track_counts: dict = field(default_factory=dict)

    def to_markdown(self) -> str:
        lines = []
        if (
            self.table
            and self.counts.get("all") == 1
            and not any(
                values.get(m, 0) > 0
                for groups in self.table.values()
                for values in groups.values()
                for m in ("recall", "ndcg", "hit_rate")
            )
        ):
            # One listener: the held-out tracks are ones they had not played before the cut, and
            # with no other listener nobody had, so no model trained on listens can rank them.
            lines += [
                "Users: one listener, so every held-out track is new to the whole training part and "
                "no model can find it (all user metrics 0); the next-track table is the one that applies.",
                "",
            ]
        elif self.table:
            metrics = list(next(iter(next(iter(self.table.values())).values())))
            lines += [
                f"Users ({', '.join(f'{g} {n:,}' for g, n in self.counts.items())}); @{self.k}, all tracks ranked, "
                "training tracks excluded.",
                "",
                "| model | group | " + " | ".join(metrics) + " |",
                "|---|---|" + "---|" * len(metrics),
            ]
            for model, groups in self.table.items():
                for group, values in groups.items():
                    lines.append(
                        f"| {model} | {group} | "
                        + " | ".join(cell(values[m]) for m in metrics)
                        + " |"
                    )
            missing = {
                m
                for groups in self.table.values()
                for values in groups.values()
                for m, v in values.items()
                if cell(v) == NOT_APPLICABLE
            }
            if missing:
                why = (
                    " (the data has no genres)"
                    if missing <= {"genre_diversity", "genre_coverage"}
                    else ""
                )
                lines += ["", f"{NOT_APPLICABLE}: does not apply to this data{why}."]
            lines.append("")
        if self.next_track_table:
            metrics = list(next(iter(next(iter(self.next_track_table.values())).values())))
            lines += [
                f"Next track ({', '.join(f'{g} {n:,}' for g, n in self.next_track_counts.items())} "
                f"session prefixes); @{self.k}.",
                "",
                "| model | group | " + " | ".join(metrics) + " |",
                "|---|---|" + "---|" * len(metrics),
            ]
            for model, groups in self.next_track_table.items():
                for group, values in groups.items():
                    lines.append(
                        f"| {model} | {group} | "
                        + " | ".join(cell(values[m]) for m in metrics)
                        + " |"
                    )
            lines.append("")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "k": self.k,
            "users": {"counts": self.counts, "table": self.table},
            "next_track": {"counts": self.next_track_counts, "table": self.next_track_table},
        }

    def write(self, out: Path) -> None:
        """``evaluation.json`` and ``evaluation.md`` under ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "evaluation.json", self.to_dict())
        write_text(out / "evaluation.md", self.to_markdown())


def evaluate_listening(
    task: ListeningTask,
    rankings: dict[str, np.ndarray] | None = None,
    *,
    next_track: dict[str, np.ndarray] | None = None,
    k: int = 10,
) -> ListeningEvaluation:
    """Score user rankings ([len(task), n] ints, rows in ``task.users`` order) and next-track
    rankings ([len(task.next_track), n]) at ``k``; see the module docstring."""
    result = ListeningEvaluation(k)
    if rankings:
        groups = _groups(task.user_type)
        result.counts = {g: int(m.sum()) for g, m in groups.items()}
        for name, ranking in rankings.items():
            ranking = np.asarray(ranking)
            if ranking.ndim != 2 or ranking.shape[0] != len(task):
                raise SegueError(f"{name}: ranking must be [{len(task)}, n], got {ranking.shape}")
            top = without_excluded(ranking, task.exclude, k)
            per_row = user_metrics(top, task.truth, k)
            has_genres = task.track_genres.shape[1] > 0 and task.track_genres.nnz > 0
            diversity = genre_diversity(top, task.track_genres)
            result.table[name] = {}
            for group, mask in groups.items():
                some = bool(mask.any())
                values = {m: float(per_row[m][mask].mean()) if some else np.nan for m in per_row}
                values["coverage"] = (
                    ranking_metrics.catalog_coverage(top[mask], task.n_tracks) if some else np.nan
                )
                values["genre_diversity"] = (
                    float(diversity[mask].mean()) if some and has_genres else np.nan
                )
                values["genre_coverage"] = (
                    genre_coverage(top[mask], task.track_genres) if some and has_genres else np.nan
                )
                result.table[name][group] = values
    if next_track:
        nt = task.next_track
        groups = _groups(nt.user_type)
        result.next_track_counts = {g: int(m.sum()) for g, m in groups.items()}
        truth = [np.array([t], dtype=np.int64) for t in nt.target.tolist()]
        for name, ranking in next_track.items():
            ranking = np.asarray(ranking)
            if ranking.ndim != 2 or ranking.shape[0] != len(nt):
                raise SegueError(
                    f"{name}: next-track ranking must be [{len(nt)}, n], got {ranking.shape}"
                )
            top = ranking[:, :k]
            hits = ranking_metrics.hit_matrix(top, truth)
            per_row = {
                "hit_rate": ranking_metrics.hit_rate_at_k(top, truth, k, hits=hits),
                "mrr": ranking_metrics.mrr(top, truth, k, hits=hits),
            }
            result.next_track_table[name] = {
                group: {
                    m: float(v[mask].mean()) if mask.any() else np.nan for m, v in per_row.items()
                }
                for group, mask in groups.items()
            }
    return result


def _groups(user_type: np.ndarray) -> dict[str, np.ndarray]:
    groups = {"all": np.ones(len(user_type), dtype=bool)}
    present = set(np.asarray(user_type, dtype=object).tolist())
    for t in (*schema.USER_TYPES, *sorted(present - set(schema.USER_TYPES) - {""})):
        if t in present:
            groups[t] = np.asarray(user_type, dtype=object) == t
    return groups


def without_excluded(ranking: np.ndarray, exclude: sp.csr_matrix, k: int) -> np.ndarray:
    """int64 [q, k]: each row's first ``k`` ids that are not padding, not excluded for that row and
    not repeats, in order; -1 pads rows with fewer.

    >>> without_excluded(np.array([[4, 1, 4, 2, 3], [0, -1, 5, 6, 7]]),
    ...                  sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 0, 0, 0], [0] * 8])), 3).tolist()
    [[4, 2, 3], [0, 5, 6]]
    """
    ranking = np.asarray(ranking, dtype=np.int64)
    q, n = ranking.shape
    exclude = sp.csr_matrix(exclude)
    n_cols = max(exclude.shape[1], int(ranking.max(initial=0)) + 1)
    stride = np.int64(n_cols + 1)
    keys = np.arange(q, dtype=np.int64)[:, None] * stride + ranking
    excl_rows = np.repeat(np.arange(exclude.shape[0], dtype=np.int64), np.diff(exclude.indptr))
    valid = (ranking >= 0) & ~np.isin(keys, excl_rows * stride + exclude.indices)
    order = np.argsort(keys, axis=1, kind="stable")
    sorted_keys = np.take_along_axis(keys, order, axis=1)
    repeat_sorted = np.zeros((q, n), dtype=bool)
    repeat_sorted[:, 1:] = sorted_keys[:, 1:] == sorted_keys[:, :-1]
    repeat = np.empty_like(repeat_sorted)
    np.put_along_axis(repeat, order, repeat_sorted, axis=1)
    valid &= ~repeat
    pick = np.argsort(~valid, axis=1, kind="stable")[:, :k]
    out = np.where(
        np.take_along_axis(valid, pick, axis=1), np.take_along_axis(ranking, pick, axis=1), -1
    )
    if out.shape[1] < k:
        out = np.pad(out, ((0, 0), (0, k - out.shape[1])), constant_values=-1)
    return out


def user_metrics(top: np.ndarray, truth: list[np.ndarray], k: int) -> dict[str, np.ndarray]:
    """Per-row recall, NDCG and hit rate at ``k`` of already-filtered rankings (float64 [q] each)."""
    top = top[:, :k]
    hits = ranking_metrics.hit_matrix(top, truth)
    return {
        "recall": ranking_metrics.recall_at_k(top, truth, k, hits=hits),
        "ndcg": ranking_metrics.ndcg_at_k(top, truth, k, hits=hits),
        "hit_rate": ranking_metrics.hit_rate_at_k(top, truth, k, hits=hits),
    }


def _genre_rows(top: np.ndarray, track_genres: sp.csr_matrix) -> sp.csr_matrix:
    """[q, n_genres]: how many of each row's listed tracks carry each genre."""
    q = top.shape[0]
    valid = top >= 0
    lists = sp.csr_matrix(
        (
            np.ones(int(valid.sum()), np.float32),
            (np.repeat(np.arange(q), valid.sum(axis=1)), top[valid]),
        ),
        shape=(q, track_genres.shape[0]),
    )
    return lists @ track_genres


def genre_diversity(top: np.ndarray, track_genres: sp.csr_matrix) -> np.ndarray:
    """float64 [q]: distinct genres among each row's listed tracks (0 without genres).

    >>> genre_diversity(np.array([[0, 1, 2], [2, -1, -1]]),
    ...                 sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]]))).tolist()
    [3.0, 1.0]
    """
    if track_genres.shape[1] == 0 or top.size == 0:
        return np.zeros(top.shape[0], dtype=np.float64)
    counts = sp.csr_matrix(_genre_rows(top, track_genres))
    counts.eliminate_zeros()
    return np.diff(counts.indptr).astype(np.float64)


def genre_coverage(top: np.ndarray, track_genres: sp.csr_matrix) -> float:
    """Share of all genres carried by at least one listed track of any row (0 without genres).

    >>> genre_coverage(np.array([[0, 1], [1, -1]]), sp.csr_matrix(np.array([[1, 0, 0, 0], [1, 1, 0, 0]])))
    0.5
    """
    n_genres = track_genres.shape[1]
    if n_genres == 0 or top.size == 0:
        return 0.0
    listed = np.unique(top[top >= 0])
    return float(np.count_nonzero(np.asarray(track_genres[listed].sum(axis=0)).ravel())) / n_genres


# --------------------------------------------------------------------------------------------
# Asking Recommenders
# --------------------------------------------------------------------------------------------


def recommend_users(model, task: ListeningTask, n: int = 100) -> np.ndarray:
    """int32 [len(task), n]: a playlist Recommender (trained on ``train.to_playlist_data()``) asked
    with each user's training tracks as seeds, so they are never recommended back."""
    return model.recommend(task.seeds, n).ids


def recommend_next(model, task: ListeningTask, n: int = 10) -> np.ndarray:
    """int32 [len(task.next_track), n]: a Recommender asked with each session prefix."""
    if len(task.next_track) == 0:
        return np.zeros((0, n), dtype=np.int32)
    return model.recommend(task.next_track.queries, n).ids


# --------------------------------------------------------------------------------------------
# Library entry points (the pipeline and `segue sessions` call these)
# --------------------------------------------------------------------------------------------

USER_BASELINES = ("popular", "itemknn", "als")
NEXT_TRACK_MODELS = ("popular", "sknn", "gru4rec")


def split_sessions(data: Path, out: Path, *, seed: int = 0, **options) -> dict:
    """Split the listening directory ``data`` (:func:`split_listening`) and write it to ``out``;
    returns the split's info (parameters and counts)."""
    split = split_listening(ListeningData.load(data), seed=seed, **options)
    write_listening_split(split, out, catalog_from=Path(data))
    return split.info


def train_next_track(name: str, train: ListeningData, params: dict | None = None):
    """A registered Recommender fitted on the training part's sessions, in play order."""
    from segue.models.config import config_from_dict
    from segue.models.registry import get_model_class

    cls = get_model_class(name)
    return cls(config_from_dict(cls.Config, params or {}, where=f"{name} parameters")).fit(
        train.to_session_data()
    )


def evaluate_sessions(
    split: ListeningSplit,
    *,
    user_models=USER_BASELINES,
    next_models=NEXT_TRACK_MODELS,
    params: dict[str, dict] | None = None,
    part: str = "test",
    k: int = 10,
) -> tuple[ListeningEvaluation, dict]:
    """Train ``user_models`` on ``train.to_playlist_data()`` (asked with each user's training tracks)
    and ``next_models`` on ``train.to_session_data()`` (asked with session prefixes), score them on
    ``part``; returns the evaluation and ``{"fit_s": {...}, "answer_s": {...}}``."""
    import time

    from segue.models.config import config_from_dict
    from segue.models.registry import get_model_class

    task = split.part(part)
    params = params or {}
    timings: dict = {"fit_s": {}, "answer_s": {}}
    rankings, next_rankings = {}, {}
    longest = int(task.seeds.lengths().max(initial=0))
    n_users = max(k, min(k + 90, task.n_tracks - longest))
    if user_models:
        playlists = split.train.to_playlist_data()
        for name in user_models:
            cls = get_model_class(name)
            start = time.perf_counter()
            model = cls(
                config_from_dict(cls.Config, params.get(name, {}), where=f"{name} parameters")
            ).fit(playlists)
            timings["fit_s"][f"users/{name}"] = time.perf_counter() - start
            start = time.perf_counter()
            rankings[name] = recommend_users(model, task, n_users)
            timings["answer_s"][f"users/{name}"] = time.perf_counter() - start
    if next_models and len(task.next_track):
        for name in next_models:
            start = time.perf_counter()
            model = train_next_track(name, split.train, params.get(name))
            timings["fit_s"][f"next/{name}"] = time.perf_counter() - start
            start = time.perf_counter()
            next_rankings[name] = recommend_next(model, task, k)
            timings["answer_s"][f"next/{name}"] = time.perf_counter() - start
    return evaluate_listening(task, rankings, next_track=next_rankings, k=k), timings
