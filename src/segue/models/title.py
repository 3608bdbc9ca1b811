"""``title``: continue a playlist from its title alone — the answer for cold playlists.

**Fit.** Every training title is normalised (:func:`segue.features.text.normalize_title`:
``"Chiiill 😎"`` → ``"chill sunglass"``); playlists with the same key are pooled, and each key
keeps the ``max_tracks_per_title`` tracks most of its playlists hold (a sparse key × track matrix
of playlist counts; titles that normalise to nothing are ignored). A character n-gram TF-IDF
(``char_wb``, 2–4-grams) is fitted on the distinct keys, to find titles *like* a query's.

**Query.** The query title's key is looked up exactly, and its ``n_neighbors`` nearest other keys
by cosine similarity (at least ``min_similarity``) join it. A track's score is

    score(t) = Σ_v w_v · (count(v, t) + s · p_t) / (n_v + s)

over the matched keys ``v``, where ``n_v`` is how many training playlists carry key ``v``,
``p_t`` the share of all training playlists holding track ``t`` and ``s = shrinkage``:

* per-title normalisation: ``count / n_v`` is the share of ``v``'s playlists holding the track,
  so a title seen in 1,000 playlists does not drown one seen in 3 merely by size;
* shrinkage toward popularity (the usual beta-binomial estimate of that share): ``s``
  pseudo-playlists that hold tracks at their overall rate. One playlist called "jams 2k17" is
  weak evidence — with ``s = 20`` its tracks score 1/21 ≈ 5%, about what the MPD's most popular
  track (in ~5% of playlists) gets from the prior — while 2,000 called "jams" speak for
  themselves. The term also interleaves popular tracks that a title's playlists happen not to
  hold with the ones they do, by the same estimate, instead of appending them after the last
  title track (on a generated 20K-playlist copy with 2K held-out titles: recall@500 0.134,
  against 0.129 without the term and 0.075 for popularity alone; R-precision 0.039 vs 0.019);
* weights: the exact match has ``w = 1``; the neighbours share ``neighbor_weight`` ×
  min(1, Σ sim^p) in proportion to sim^p (``p = similarity_power``), so together they never
  outweigh the exact match (it dominates, they add and fill in), and a few weak neighbours
  count less than many close ones.

Only tracks a matched title holds and the ``n`` most popular tracks can reach a query's top
``n`` (any other track scores at most what the n-th most popular one does), so those are the
only candidates scored. A query without a title, or whose title matches nothing, gets no
candidates and the base fills its list with popular tracks. Seeds are ignored (the base removes
them from the output).

**Persistence** (no pickle): the keys and their most common raw spellings as UTF-8 bytes plus
offsets, the count matrix as CSR arrays and the per-key playlist counts. The TF-IDF is refitted at
load from the saved keys (its vocabulary is sorted and its arithmetic deterministic, so rankings
are identical).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.features.text import factorize_titles, normalize_title
from segue.models.base import Explanation, Queries, Recommender
from segue.models.explain import MAX_ITEMS, join_names, popularity_explanation, shares
from segue.models.registry import register
from segue.models.topn import top_n_sparse

NGRAM_RANGE = (2, 4)
NEIGHBOR_CHUNK = 256  # distinct query titles per similarity product (bounds its memory)


@dataclass(frozen=True)
class TitleConfig:
    """Parameters of :class:`TitleRecommender` (see the module docstring for the formula)."""

    n_neighbors: int = 10  # similar training titles besides the exact match
    # Cosine of char n-gram TF-IDF vectors, in (0, 1]; min_similarity, neighbor_weight and
    # shrinkage were tuned together on real MPD playlists (R-precision 0.049 → 0.051; 0.3, 0.5
    # and 20 before; a neighbour weight above 1 scored no better and would outvote the exact match).
    min_similarity: float = 0.5
    neighbor_weight: float = 1.0  # most the neighbours weigh together (exact match: 1)
    similarity_power: float = 2.0  # sharpens the neighbours' similarities
    shrinkage: float = 10.0  # pseudo-playlists (at popularity rates) added per title
    max_tracks_per_title: int = 1000  # tracks kept per title, most frequent first

    def __post_init__(self):
        problems = []
        if self.n_neighbors < 0:
            problems.append("n_neighbors must be ≥ 0")
        if not 0 < self.min_similarity <= 1:
            problems.append("min_similarity must be in (0, 1]")
        if self.neighbor_weight < 0:
            problems.append("neighbor_weight must be ≥ 0")
        if self.similarity_power <= 0:
            problems.append("similarity_power must be > 0")
        if self.shrinkage < 0:
            problems.append("shrinkage must be ≥ 0")
        if self.max_tracks_per_title < 1:
            problems.append("max_tracks_per_title must be ≥ 1")
        if problems:
            raise SegueError("title model: " + "; ".join(problems))


@register
class TitleRecommender(Recommender):
    name = "title"
    description = (
        "Playlist title alone: tracks of training playlists with the same or similar titles."
    )
    Config = TitleConfig

    # --- fit -----------------------------------------------------------------------------------
    def _fit(self, data: PlaylistData) -> None:
        factors = factorize_titles(data.names)
        titled = np.flatnonzero(factors.codes >= 0)
        n_keys = len(factors.uniques)
        # key × playlist indicator, times playlist × track: playlist counts per key and track.
        pool = sp.csr_matrix(
            (np.ones(len(titled), dtype=np.float32), (factors.codes[titled], titled)),
            shape=(n_keys, data.n_playlists),
        )
        counts = _keep_top_per_row(
            sp.csr_matrix(pool @ data.matrix), self.config.max_tracks_per_title
        )
        self._keys = factors.uniques
        self._examples = factors.examples
        self._n_playlists = factors.counts.astype(np.int32)
        self._n_total = data.n_playlists
        self._counts = sp.csr_matrix(
            (
                np.rint(counts.data).astype(np.int32),
                counts.indices.astype(np.int32),
                counts.indptr.astype(np.int64),
            ),
            shape=counts.shape,
        )
        self._prepare()

    def _prepare(self) -> None:
        """Derived state (after fit or load): score rows, key lookup, TF-IDF of the keys."""
        scale = 1.0 / (self._n_playlists.astype(np.float64) + self.config.shrinkage)
        rows = np.repeat(np.arange(len(self._keys)), np.diff(self._counts.indptr))
        # float32 [keys, tracks]: count(v, t) / (n_v + shrinkage), the per-title track shares.
        self._shares = sp.csr_matrix(
            (
                (self._counts.data * scale[rows]).astype(np.float32),
                self._counts.indices,
                self._counts.indptr,
            ),
            shape=self._counts.shape,
        )
        # float32 [keys]: s / (n_v + s), the popularity term's factor per title.
        self._prior_mass = (self.config.shrinkage * scale).astype(np.float32)
        # float32 [tracks]: p_t, the share of training playlists holding each track.
        self._prior = (self.popularity / max(int(self._n_total), 1)).astype(np.float32)
        self._key_index = {key: i for i, key in enumerate(self._keys)}
        self._vectorizer = None
        if self._keys and self.config.n_neighbors > 0:
            self._vectorizer = TfidfVectorizer(
                analyzer="char_wb", ngram_range=NGRAM_RANGE, lowercase=False, dtype=np.float32
            )
            # n-grams × keys, so a batch of query vectors times it gives cosines to every key.
            self._key_vectors_t = sp.csr_matrix(self._vectorizer.fit_transform(self._keys).T)

    # --- persistence ---------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        keys, key_offsets = _pack_strings(self._keys)
        examples, example_offsets = _pack_strings(self._examples)
        return {
            "title_keys": keys,
            "title_key_offsets": key_offsets,
            "title_examples": examples,
            "title_example_offsets": example_offsets,
            "title_playlists": self._n_playlists,
            "title_total": np.array([self._n_total], dtype=np.int64),
            "title_indptr": self._counts.indptr,
            "title_indices": self._counts.indices,
            "title_counts": self._counts.data,
        }

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._keys = _unpack_strings(arrays["title_keys"], arrays["title_key_offsets"])
        self._examples = _unpack_strings(arrays["title_examples"], arrays["title_example_offsets"])
        self._n_playlists = arrays["title_playlists"]
        self._n_total = int(arrays["title_total"][0])
        self._counts = sp.csr_matrix(
            (arrays["title_counts"], arrays["title_indices"], arrays["title_indptr"]),
            shape=(len(self._keys), self.n_tracks),
        )
        self._prepare()

    # --- query ---------------------------------------------------------------------------------
    def _match(self, titles: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The training keys each title matches, as COO entries (row order, best first per row).

        Returns ``rows`` int64 (index into ``titles``), ``keys`` int64 (index into the training
        keys), ``similarity`` float32 (1 for the exact match) and ``weight`` float32 (``w_v`` of
        the module docstring); a row with no entry matches nothing.
        """
        factors = factorize_titles(titles)  # distinct query keys only: titles repeat in a batch
        n_unique = len(factors.uniques)
        exact = np.array([self._key_index.get(k, -1) for k in factors.uniques], dtype=np.int64)
        u_rows = [np.flatnonzero(exact >= 0)]
        u_keys = [exact[u_rows[0]]]
        u_sims = [np.ones(len(u_rows[0]), dtype=np.float32)]
        u_weights = [np.ones(len(u_rows[0]), dtype=np.float32)]
        if self._vectorizer is not None and n_unique:
            for start in range(0, n_unique, NEIGHBOR_CHUNK):
                stop = min(start + NEIGHBOR_CHUNK, n_unique)
                ids, sims = self._neighbors(factors.uniques[start:stop], exact[start:stop])
                power = sims.astype(np.float64) ** self.config.similarity_power
                total = power.sum(axis=1, keepdims=True)
                weights = self.config.neighbor_weight * power / np.maximum(total, 1.0)
                r, c = np.nonzero(ids >= 0)
                u_rows.append(r + start)
                u_keys.append(ids[r, c])
                u_sims.append(sims[r, c])
                u_weights.append(weights[r, c].astype(np.float32))
        u_rows, u_keys, u_sims, u_weights = (
            np.concatenate(a) for a in (u_rows, u_keys, u_sims, u_weights)
        )
        # Exact match first, then neighbours by rank: one order per key, whatever the batch.
        order = np.argsort(u_rows, kind="stable")
        u_rows, u_keys, u_sims, u_weights = (
            u_rows[order],
            u_keys[order],
            u_sims[order],
            u_weights[order],
        )
        # Expand distinct query keys back to the titles (CSR-style gather).
        starts = np.searchsorted(u_rows, np.arange(n_unique + 1))
        codes = factors.codes.astype(np.int64)
        has = codes >= 0
        lengths = np.zeros(len(titles), dtype=np.int64)
        lengths[has] = np.diff(starts)[codes[has]]
        rows = np.repeat(np.arange(len(titles), dtype=np.int64), lengths)
        within = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        take = starts[codes[rows]] + within if len(rows) else np.zeros(0, dtype=np.int64)
        return rows, u_keys[take].astype(np.int64), u_sims[take], u_weights[take]

    def _neighbors(self, keys: list[str], exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n_neighbors`` training keys by cosine ≥ ``min_similarity``, the exact match left
        out: ids int64 [len(keys), n_neighbors] (-1 padding) and similarities float32."""
        sims = sp.csr_matrix(self._vectorizer.transform(keys) @ self._key_vectors_t)
        rows = np.repeat(np.arange(len(keys)), np.diff(sims.indptr))
        keep = (sims.data >= self.config.min_similarity) & (sims.indices != exact[rows])
        indptr = np.concatenate(([0], np.cumsum(np.bincount(rows[keep], minlength=len(keys)))))
        kept = sp.csr_matrix((sims.data[keep], sims.indices[keep], indptr), shape=sims.shape)
        return top_n_sparse(kept, self.config.n_neighbors)

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        b = len(queries)
        rows, keys, _, weights = self._match(queries.titles)
        weight_matrix = sp.csr_matrix(
            (weights, keys, np.searchsorted(rows, np.arange(b + 1))), shape=(b, len(self._keys))
        )
        prior = (weight_matrix @ self._prior_mass).astype(np.float32)  # [b]: Σ_v w_v s/(n_v+s)
        # Popularity term on the n most popular tracks of every matched query...
        top = self._popular_order[:n]
        active = np.flatnonzero(prior > 0)
        popular = sp.csr_matrix(
            (
                (prior[active, None] * self._prior[top]).ravel(),
                np.tile(top, len(active)),
                np.searchsorted(active, np.arange(b + 1)) * len(top),
            ),
            shape=(b, self.n_tracks),
        )
        scores = sp.csr_matrix(weight_matrix @ self._shares + popular)
        # ...and on the other tracks the titles hold (the same float32 product as above, so a
        # track's score does not depend on n, nor the ranking on the batch).
        entry_rows = np.repeat(np.arange(b), np.diff(scores.indptr))
        in_top = np.zeros(self.n_tracks, dtype=bool)
        in_top[top] = True
        rest = ~in_top[scores.indices]
        scores.data[rest] += prior[entry_rows[rest]] * self._prior[scores.indices[rest]]
        return top_n_sparse(scores, n)

    # --- explain -------------------------------------------------------------------------------
    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        """Evidence in proportion to the terms of each track's score: one ``"title"`` item per
        matched training title that holds the track (``title``: its most common spelling;
        ``playlists``: how many training playlists with that title hold the track;
        ``title_playlists``: how many carry the title; ``similarity``; ``exact``), up to
        :data:`MAX_ITEMS` named and the rest as ``"other"``, and a ``"popularity"`` item for the
        shrinkage term. A track no matched title holds is explained by popularity alone."""
        self._check_fitted()
        track_ids = np.asarray(track_ids, dtype=np.int64)
        title = (queries.titles[row] or "").strip()
        _, keys, sims, weights = self._match([title])
        exact = self._key_index.get(normalize_title(title), -1)
        counts = self._counts[keys][:, track_ids].toarray()  # [m, t]
        title_terms = weights[:, None] * self._shares[keys][:, track_ids].toarray()  # [m, t]
        prior_terms = float(weights @ self._prior_mass[keys]) * self._prior[track_ids]  # [t]
        out = []
        for j, track in enumerate(track_ids.tolist()):
            if not (title_terms[:, j] > 0).any():
                reason = ""
                if not title:
                    reason = "The playlist has no title: a popular track"
                elif not len(keys):
                    reason = f"No training playlist has a title like '{title}': a popular track"
                if reason:
                    reason += f", in {int(self.popularity[track]):,} training playlists."
                out.append(popularity_explanation(self, track, reason))
                continue
            share = shares(np.append(title_terms[:, j], prior_terms[j]))
            title_share, prior_share = share[:-1], float(share[-1])
            order = [
                i
                for i in np.argsort(-title_share, kind="stable")[:MAX_ITEMS].tolist()
                if title_share[i] > 0
            ]
            evidence = [
                {
                    "kind": "title",
                    "title": self._examples[keys[i]],
                    "share": float(title_share[i]),
                    "playlists": int(counts[i, j]),
                    "title_playlists": int(self._n_playlists[keys[i]]),
                    "similarity": float(sims[i]),
                    "exact": bool(keys[i] == exact),
                }
                for i in order
            ]
            if prior_share > 0:
                evidence.append(
                    {
                        "kind": "popularity",
                        "playlists": int(self.popularity[track]),
                        "share": prior_share,
                    }
                )
            rest = 1.0 - sum(e["share"] for e in evidence)
            if rest > 1e-9:
                evidence.append({"kind": "other", "share": rest})
            top = order[0]
            if keys[top] == exact:
                text = (
                    f"Playlists called '{title}' often include it "
                    f"({int(counts[top, j]):,} of {int(self._n_playlists[keys[top]]):,})."
                )
            else:
                named = [f"'{self._examples[keys[i]]}'" for i in order[:2]]
                text = (
                    f"Playlists with titles like '{title}' ({join_names(named)}) often include it."
                )
            out.append(Explanation(track, evidence, text))
        return out


def _keep_top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """``matrix`` (CSR of non-negative integer counts, stored as floats) with only the ``k``
    largest entries of each row kept, ties to the lower column; the result has sorted indices.

    Only rows longer than ``k`` are sorted. Their entries are packed as one int64 per entry —
    (row, max − count, column) in bit fields — so one plain ``np.sort`` orders every row best
    first (several times faster than a three-key lexsort over the ~60M entries at full scale).

    >>> m = sp.csr_matrix(np.array([[1.0, 3, 2, 3], [0, 5, 0, 0]]))
    >>> _keep_top_per_row(m, 2).toarray().tolist()
    [[0.0, 3.0, 0.0, 3.0], [0.0, 5.0, 0.0, 0.0]]
    """
    lengths = np.diff(matrix.indptr)
    if lengths.max(initial=0) <= k:
        return matrix
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), lengths)
    long = lengths[rows] > k
    long_rows, cols = rows[long], matrix.indices[long].astype(np.int64)
    counts = np.rint(matrix.data[long]).astype(np.int64)
    top = int(counts.max())
    col_bits, count_bits = int(matrix.shape[1]).bit_length(), top.bit_length()
    if int(matrix.shape[0]).bit_length() + count_bits + col_bits <= 63:
        keys = np.sort((long_rows << (count_bits + col_bits)) | ((top - counts) << col_bits) | cols)
        long_rows = keys >> (count_bits + col_bits)
        counts = top - ((keys >> col_bits) & ((1 << count_bits) - 1))
        cols = keys & ((1 << col_bits) - 1)
    else:  # too wide to pack: the same order, slower
        order = np.lexsort((cols, -counts, long_rows))
        long_rows, counts, cols = long_rows[order], counts[order], cols[order]
    keep = (np.arange(len(long_rows)) - np.searchsorted(long_rows, long_rows)) < k
    short = ~long
    kept = sp.csr_matrix(
        (
            np.concatenate((matrix.data[short], counts[keep].astype(matrix.dtype))),
            (
                np.concatenate((rows[short], long_rows[keep])),
                np.concatenate((matrix.indices[short], cols[keep])),
            ),
        ),
        shape=matrix.shape,
    )
    kept.sort_indices()
    return kept


def _pack_strings(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings → (UTF-8 bytes uint8 [total], offsets int64 [len + 1]): savable without pickle.

    >>> _unpack_strings(*_pack_strings(["chill", "", "músic 😎"]))
    ['chill', '', 'músic 😎']
    """
    encoded = [s.encode() for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets


def _unpack_strings(blob: np.ndarray, offsets: np.ndarray) -> list[str]:
    """Inverse of :func:`_pack_strings`."""
    raw = blob.tobytes()
    return [
        raw[a:b].decode() for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
    ]
