"""``popular``: the most-played tracks, the same for every query — the floor every model must beat."""

from __future__ import annotations

import numpy as np

from segue.data.dataset import PlaylistData
from segue.models.base import Explanation, Queries, Recommender
from segue.models.registry import register


@register
class PopularRecommender(Recommender):
    name = "popular"
    description = "Global popularity: tracks in the most training playlists (the baseline)."

    def _fit(self, data: PlaylistData) -> None:
        self.n_playlists = data.n_playlists

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"n_playlists": np.array([self.n_playlists], dtype=np.int64)}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.n_playlists = int(arrays["n_playlists"][0])

    def _add_playlists(self, queries: Queries) -> None:
        # Live updates: the base counts the new playlists' tracks; only the total is ours.
        self.n_playlists += len(queries)

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        top = self._popular_order[:n]
        shape = (len(queries), len(top))
        return np.broadcast_to(top, shape), np.broadcast_to(
            self.popularity[top].astype(np.float32), shape
        )

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        out = []
        for t in np.asarray(track_ids, dtype=np.int64):
            count = int(self.popularity[t])
            share = count / max(self.n_playlists, 1)
            out.append(
                Explanation(
                    int(t),
                    [{"kind": "popularity", "playlists": count, "share": 1.0}],
                    f"One of the most popular tracks: in {share:.1%} of playlists.",
                )
            )
        return out
