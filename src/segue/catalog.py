"""A model's track catalog: URI → id, ids → display rows, and search.

Used by the Python API (``segue.load``) and the service. Built once per model, from a model's ``catalog.parquet`` (2.26M tracks at MPD
scale), with whole-column operations only; a request then costs binary searches and array
slices, never a Python loop over the catalog.

**URI lookup.** Each URI's 64-bit hash (polars' vectorised string hash, one call over the whole
column: 0.04 s for 636K URIs where Python's ``hash`` over a list took 0.4 s; the same at start
and per request within one process and its forked workers) is kept sorted with the track ids. A request's URIs are hashed, found by binary search, and the catalog's own
URI at that id is compared with the requested one, so a hash collision can never answer with the
wrong track. (A dict of 2.3M URIs would hold ~300 MB of Python objects; this holds 37 MB.)

**Search** (:class:`SearchIndex`). Track and artist names are folded (Unicode NFKD, accents
and apostrophes dropped, lower case) and split into words. The distinct words are sorted (the
vocabulary) and each word's tracks are listed by popularity rank (an inverted index as CSR
arrays: word → ranks). Since the vocabulary is sorted, the words that start with a prefix are a
contiguous range, so their tracks are one contiguous slice of the postings. A query matches
tracks holding every word of the query (the last one as a prefix, so results appear while
typing); a word that matches nothing is replaced by its closest vocabulary words (rapidfuzz's
Levenshtein ratio, ≥ 75/100, a C++ scan of the vocabulary), and the correction is reported.
Results come most popular first, paginated by ``offset``/``limit``.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from segue.arrays import sorted_unique
from segue.data import schema

FUZZY_CUTOFF = 75.0  # rapidfuzz ratio (0-100) a correction must reach
FUZZY_ALTERNATIVES = 3  # vocabulary words a misspelt word may stand for
FUZZY_MIN_LENGTH = 3  # shorter words are matched as prefixes only
MAX_QUERY_WORDS = 8


def fold(texts: pa.Array) -> pa.Array:
    """Lower case, accents and apostrophes removed (NFKD): ``"Don't Stop Ünïcödé"`` → ``"dont stop unicode"``."""
    texts = pc.utf8_normalize(pc.fill_null(texts, ""), "NFKD")
    texts = pc.replace_substring_regex(texts, r"[\p{Mn}'’`]", "")
    return pc.utf8_lower(texts)


def words(texts: pa.Array) -> pa.ListArray:
    """Each text's words (letters and digits), after :func:`fold`."""
    return pc.split_pattern_regex(fold(texts), r"[^\p{L}\p{N}]+")


def query_words(query: str) -> list[str]:
    """The words of a search query, folded like the catalog (at most :data:`MAX_QUERY_WORDS`)."""
    found = words(pa.array([query], type=pa.string()))[0].as_py() or []
    return [w for w in found if w][:MAX_QUERY_WORDS]


@dataclass
class SearchResult:
    """``ids`` int64 [≤ limit] track ids, most popular first; ``total`` tracks matched."""

    ids: np.ndarray
    total: int
    corrections: dict[str, list[str]] = field(default_factory=dict)


class SearchIndex:
    """Word → tracks inverted index over track and artist names (see the module docstring)."""

    def __init__(self, track_names: pa.Array, artist_names: pa.Array, popularity: np.ndarray):
        n = len(track_names)
        # Rank 0 is the most popular track (ties by id), so sorted ranks are the display order.
        self.by_rank = np.lexsort((np.arange(n), -np.asarray(popularity))).astype(
            np.int64
        )  # rank → id
        rank = np.empty(n, dtype=np.int64)
        rank[self.by_rank] = np.arange(n)
        token_ids, token_tracks = [], []
        vocab_parts = []
        for column in (track_names, artist_names):
            lists = words(column)
            flat = pc.list_flatten(lists)
            owner = pc.list_parent_indices(lists).to_numpy()
            keep = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
            encoded = pc.dictionary_encode(flat.filter(pa.array(keep)))
            vocab_parts.append(encoded.dictionary)
            token_ids.append(encoded.indices.to_numpy().astype(np.int64))
            token_tracks.append(owner[keep])
        # One sorted vocabulary over both columns; remap each column's codes into it.
        vocabulary = pc.unique(pa.concat_arrays(vocab_parts))
        order = pc.sort_indices(vocabulary).to_numpy()
        self.vocabulary: list[str] = vocabulary.take(
            pa.array(order)
        ).to_pylist()  # sorted (code points)
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        codes = []
        for part, ids in zip(vocab_parts, token_ids, strict=True):
            in_vocab = pc.index_in(part, value_set=vocabulary).to_numpy()
            codes.append(position[in_vocab][ids])
        n_words = len(self.vocabulary)
        pairs = sorted_unique(np.concatenate(codes) * n + rank[np.concatenate(token_tracks)])
        word_of_pair = pairs // n
        self.postings = (pairs % n).astype(np.int32)  # ranks, sorted per word
        self.indptr = np.searchsorted(word_of_pair, np.arange(n_words + 1)).astype(np.int64)
        self.n_tracks = n

    def _word_range(self, word: str, prefix: bool) -> tuple[int, int]:
        """Vocabulary positions [lo, hi) equal to ``word`` (or starting with it)."""
        lo = bisect.bisect_left(self.vocabulary, word)
        if prefix:
            return lo, bisect.bisect_left(self.vocabulary, word + "\U0010ffff", lo)
        return lo, lo + (lo < len(self.vocabulary) and self.vocabulary[lo] == word)

    def _fuzzy(self, word: str) -> list[int]:
        from rapidfuzz import fuzz, process

        if len(word) < FUZZY_MIN_LENGTH:
            return []
        found = process.extract(
            word,
            self.vocabulary,
            scorer=fuzz.ratio,
            limit=FUZZY_ALTERNATIVES,
            score_cutoff=FUZZY_CUTOFF,
        )
        return sorted(index for _, _, index in found)

    def search(self, query: str, offset: int = 0, limit: int = 20) -> SearchResult:
        """Tracks whose track or artist name holds every word of ``query`` (the last as a prefix)."""
        found = query_words(query)
        if not found:
            return SearchResult(np.zeros(0, dtype=np.int64), 0)
        # The last word is a prefix unless the query ends with a space (the user finished it).
        last_is_prefix = not query[-1].isspace()
        corrections: dict[str, list[str]] = {}
        matched: np.ndarray | None = None  # bool [n_tracks] by rank
        for i, word in enumerate(found):
            lo, hi = self._word_range(word, prefix=last_is_prefix and i == len(found) - 1)
            if hi > lo:
                slices = [(self.indptr[lo], self.indptr[hi])]
            else:
                alternatives = self._fuzzy(word)
                corrections[word] = [self.vocabulary[a] for a in alternatives]
                slices = [(self.indptr[a], self.indptr[a + 1]) for a in alternatives]
            hits = np.zeros(self.n_tracks, dtype=bool)
            for start, stop in slices:
                hits[self.postings[start:stop]] = True
            matched = hits if matched is None else (matched & hits)
        ranks = np.flatnonzero(matched)
        return SearchResult(self.by_rank[ranks[offset : offset + limit]], len(ranks), corrections)


def _hashes(uris) -> np.ndarray:
    """uint64 [len(uris)]: polars' hash of each string (a list or an Arrow string array; see
    the module docstring)."""
    import polars as pl

    values = pl.from_arrow(uris) if isinstance(uris, pa.Array) else pl.Series(uris, dtype=pl.String)
    return values.hash(seed=0).to_numpy()


class Catalog:
    """A model's track catalog: URI lookup, display rows and search (built once)."""

    def __init__(self, table: pa.Table, popularity: np.ndarray):
        table = table.combine_chunks()
        self.uris = (
            table.column(schema.TRACK_URI).chunk(0) if table.num_rows else pa.array([], pa.string())
        )
        self.track_names = (
            table.column(schema.TRACK_NAME).chunk(0)
            if table.num_rows
            else pa.array([], pa.string())
        )
        self.artist_names = (
            table.column(schema.ARTIST_NAME).chunk(0)
            if table.num_rows
            else pa.array([], pa.string())
        )
        hashes = _hashes(self.uris)
        self._by_hash = np.argsort(hashes, kind="stable")
        self._hashes = hashes[self._by_hash]
        self._popularity = popularity

    @functools.cached_property
    def search_index(self) -> SearchIndex:
        """Built on first use (a recommendation needs none); the service builds it at start."""
        return SearchIndex(self.track_names, self.artist_names, self._popularity)

    def __len__(self) -> int:
        return len(self.uris)

    def lookup(self, uris: list[str]) -> np.ndarray:
        """int64 [len(uris)]: the track id of each URI, -1 where the catalog does not have it."""
        if not uris:
            return np.zeros(0, dtype=np.int64)
        hashes = _hashes(list(uris))
        lo = np.searchsorted(self._hashes, hashes, side="left").tolist()
        hi = np.searchsorted(self._hashes, hashes, side="right").tolist()
        ids = []
        for uri, start, stop in zip(uris, lo, hi, strict=True):
            # Confirm by the URI itself; a different URI with the same hash (never seen, but
            # possible) is passed over for the next id that shares the hash.
            ids.append(
                next(
                    (
                        int(self._by_hash[k])
                        for k in range(start, stop)
                        if self.uris[int(self._by_hash[k])].as_py() == uri
                    ),
                    -1,
                )
            )
        return np.array(ids, dtype=np.int64)

    def rows(self, ids: np.ndarray) -> list[dict]:
        """Display rows ``{track_uri, track_name, artist_name}`` of track ids, in order."""
        take = pa.array(np.asarray(ids, dtype=np.int64))
        uris = self.uris.take(take).to_pylist()
        names = self.track_names.take(take).to_pylist()
        artists = self.artist_names.take(take).to_pylist()
        return [
            {"track_uri": u, "track_name": t, "artist_name": a}
            for u, t, a in zip(uris, names, artists, strict=True)
        ]


def dataset_catalog(path) -> tuple[Catalog, np.ndarray]:
    """The catalog of a dataset written by ``segue ingest`` (``tracks.parquet``) and its
    tracks' popularity (int64 [n_tracks]: playlists holding each), for search."""
    from pathlib import Path

    import pyarrow.parquet as pq

    from segue.errors import InputFileError

    path = Path(path)
    tracks_file = path / schema.TRACKS_FILE
    if not tracks_file.exists():
        raise InputFileError(
            path, "neither a model directory (params.json) nor a dataset (tracks.parquet)"
        )
    try:
        tracks = pq.read_table(
            tracks_file, columns=[schema.TRACK_URI, schema.TRACK_NAME, schema.ARTIST_NAME]
        )
        ids = pq.read_table(path / schema.PLAYLIST_TRACKS_FILE, columns=[schema.TRACK_ID])
    except (OSError, pa.ArrowException) as exc:
        raise InputFileError(path, f"cannot read the dataset ({exc})") from None
    popularity = np.bincount(
        ids.column(schema.TRACK_ID).to_numpy(), minlength=tracks.num_rows
    ).astype(np.int64)
    return Catalog(tracks, popularity), popularity
