"""From a split part to what the evaluation runner scores: truth ids, categories, catalogs.

Ids: training tracks keep their training ids (0 … n_items-1). A held-out track that training
never saw gets an id ≥ n_items: it counts in |G| but no model can recommend it. Its artist is
looked up by artist key, so a recommended track by the same artist still earns the artist credit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from segue.data import schema
from segue.data.challenge import category_of, read_challenge, read_truth
from segue.data.dataset import PlaylistData
from segue.errors import InputFileError, SegueError
from segue.evaluation.runner import EvaluationTask
from segue.evaluation.split import artist_keys, part_paths


@dataclass
class LoadedPart:
    task: EvaluationTask
    entries: list[dict]  # challenge_set.json entries, in task order
    train: PlaylistData
    eval_ids: dict[str, int]  # URI → id for training tracks and unknown held-out tracks
    train_dir: Path


def load_part(split: Path, part: str = "test") -> LoadedPart:
    """Load a split's part (``test`` or ``validation``) for evaluation."""
    train_dir, challenge_path, truth_path = part_paths(split, part)
    train = PlaylistData.load(train_dir)
    entries = read_challenge(challenge_path)
    truth_by_pid = read_truth(truth_path)
    eval_ids = dict(train.uri_to_id)
    n_items = train.n_tracks
    tracks = pq.read_table(
        train_dir / schema.TRACKS_FILE,
        columns=[schema.ARTIST_URI, schema.ARTIST_NAME, schema.ARTIST_ID],
    )
    artist_of_key = dict(
        zip(
            artist_keys(tracks).to_pylist(),
            tracks.column(schema.ARTIST_ID).to_pylist(),
            strict=True,
        )
    )
    next_artist = int(train.track_artist.max(initial=-1)) + 1
    extra_artists: list[int] = []
    truth, categories = [], []
    for entry in entries:  # per challenge playlist (≤ 10,000), not per training row
        pid = entry["pid"]
        if pid not in truth_by_pid:
            raise InputFileError(
                truth_path, f"has no held-out tracks for pid {pid} of {challenge_path.name}"
            )
        t = truth_by_pid[pid]
        artists = t.get("holdout_artists") or [None] * len(t["holdout_tracks"])
        ids = []
        for uri, artist in zip(t["holdout_tracks"], artists, strict=True):
            if uri not in eval_ids:
                eval_ids[uri] = n_items + len(extra_artists)
                if artist not in artist_of_key:
                    artist_of_key[artist] = next_artist
                    next_artist += 1
                extra_artists.append(artist_of_key[artist])
            ids.append(eval_ids[uri])
        truth.append(np.array(ids, dtype=np.int64))
        categories.append(t.get("category") or category_of(entry))
    if len(truth_by_pid) != len(entries):
        raise InputFileError(
            truth_path, f"lists {len(truth_by_pid)} playlists; the challenge set has {len(entries)}"
        )
    task = EvaluationTask(
        pids=np.array([e["pid"] for e in entries], dtype=np.int64),
        categories=np.array(categories, dtype=np.int8),
        truth=truth,
        track_artist=np.concatenate(
            (train.track_artist, np.array(extra_artists, dtype=np.int32))
        ).astype(np.int32),
        item_popularity=train.track_popularity,
        n_playlists=train.n_playlists,
        n_items=n_items,
    )
    return LoadedPart(task, entries, train, eval_ids, train_dir)


def ranking_from_submission(
    rows: dict[int, list[str]], pids: np.ndarray, eval_ids: dict[str, int], n: int = 500
) -> np.ndarray:
    """A submission's rows as an id matrix [q, n] aligned with ``pids`` (-1 for URIs unknown to both
    training and the truth, which therefore can never count as hits)."""
    out = np.full((len(pids), n), -1, dtype=np.int64)
    for i, pid in enumerate(pids.tolist()):
        uris = rows.get(pid)
        if uris is None:
            raise SegueError(f"the submission has no row for pid {pid}")
        ids = [eval_ids.get(u, -1) for u in uris[:n]]
        out[i, : len(ids)] = ids
    return out
