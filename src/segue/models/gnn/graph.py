"""Graphs for the graph models, built from segue's own data views.

Two graphs, each kept as CSR adjacency in numpy (what the samplers and the exact inference
passes read) and exportable as a PyTorch Geometric ``HeteroData`` (for inspection, PyG tooling
and ``segue graph build``):

:class:`PlaylistGraph` (from :class:`~segue.data.dataset.PlaylistData`)
    playlist —contains→ track —by→ artist, track —on→ album, and track —has_genre→ genre when a
    track × genre matrix is given (MPD has no genres), plus optional per-track audio features
    (the Kaggle CSV joined to an audio-features CSV: ``track_features.parquet``).

:class:`ListeningGraph` (from :class:`~segue.data.sessions.ListeningData`, the *training* part)
    user —listens→ track (edge attributes: ``edge_weight``, normalised play count, completion and
    whether completion is known — a source without durations has none, and the flag keeps that
    from looking like "never finished"), track —by→ artist, track —has_genre→ genre,
    artist —has_genre→ genre. user —prefers→ genre edges exist **only when asked for**
    (``user_genres="listening"``: each user's genre shares computed from their own training
    listens; ``"stated"``: the source's stated preferences, which for generated data are the
    generator's latent truth and would hand the model the answer). Never by default.

:meth:`ListeningGraph.homogeneous` puts every node type into one id space with **explicit
offsets** (users first, then tracks, artists, genres) and every relation in both directions,
typed: the public code behind the source design skipped the offsets, so track messages landed
on user rows. Tests check that each relation's ends fall in the right id ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pyarrow.parquet as pq
import scipy.sparse as sp

from segue.data import schema
from segue.data.dataset import PlaylistData
from segue.errors import InputFileError, SegueError
from segue.io import atomic_dir, write_json

GRAPH_FILE = "graph.npz"
GRAPH_INFO_FILE = "graph.json"


def _binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    if (
        sp.issparse(matrix)
        and matrix.format == "csr"
        and matrix.dtype == np.float32
        and matrix.has_sorted_indices
        and (matrix.nnz == 0 or (matrix.data.min() == 1 and matrix.data.max() == 1))
    ):
        return matrix  # already what we need (PlaylistData's matrix): no copy of 66M entries
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.sum_duplicates()
    out.sort_indices()
    out.eliminate_zeros()
    out.data[:] = 1.0
    return out


# ================================================================================================
# Playlists
# ================================================================================================


@dataclass
class PlaylistGraph:
    """Playlist–track–artist–album(–genre) graph over training playlists.

    Attributes:
        playlist_tracks: csr [n_playlists, n_tracks] float32 0/1, sorted indices.
        track_playlists: its transpose as csr [n_tracks, n_playlists] (the other direction).
        track_artist, track_album: int32 [n_tracks].
        track_genres: csr [n_tracks, n_genres] float32 0/1, or ``None``.
        audio: float32 [n_tracks, n_features] standardised audio features (0 where a track has
            none, and a last column 1/0 saying whether it has them), or ``None``.
        audio_names: names of ``audio``'s columns.
    """

    playlist_tracks: sp.csr_matrix
    track_playlists: sp.csr_matrix
    track_artist: np.ndarray
    track_album: np.ndarray
    track_genres: sp.csr_matrix | None = None
    audio: np.ndarray | None = None
    audio_names: list[str] = field(default_factory=list)

    @classmethod
    def from_playlist_data(
        cls,
        data: PlaylistData,
        *,
        track_genres: sp.csr_matrix | None = None,
        audio: bool | np.ndarray = True,
    ) -> PlaylistGraph:
        """Build from ``data``. ``audio=True`` reads ``track_features.parquet`` beside the data
        when it exists (a Kaggle dataset ingested with ``--features``); an array is used as is."""
        matrix = _binary(data.matrix)
        names: list[str] = []
        features = None
        if isinstance(audio, np.ndarray):
            features = np.asarray(audio, dtype=np.float32)
            names = [f"feature_{i}" for i in range(features.shape[1])]
        elif audio and data.path is not None and (data.path / schema.TRACK_FEATURES_FILE).exists():
            features, names = load_track_features(
                data.path / schema.TRACK_FEATURES_FILE, data.n_tracks
            )
        if features is not None and features.shape[0] != data.n_tracks:
            raise SegueError(
                f"audio features have {features.shape[0]} rows for {data.n_tracks} tracks"
            )
        if track_genres is not None:
            track_genres = _binary(track_genres)
            if track_genres.shape[0] != data.n_tracks:
                raise SegueError(
                    f"track_genres has {track_genres.shape[0]} rows for {data.n_tracks} tracks"
                )
        return cls(
            matrix,
            sp.csr_matrix(matrix.T),
            np.asarray(data.track_artist, dtype=np.int32),
            np.asarray(data.track_album, dtype=np.int32),
            track_genres,
            features,
            names,
        )

    @property
    def n_playlists(self) -> int:
        return self.playlist_tracks.shape[0]

    @property
    def n_tracks(self) -> int:
        return self.playlist_tracks.shape[1]

    @property
    def n_artists(self) -> int:
        return int(self.track_artist.max(initial=-1)) + 1

    @property
    def n_albums(self) -> int:
        return int(self.track_album.max(initial=-1)) + 1

    @property
    def n_genres(self) -> int:
        return 0 if self.track_genres is None else self.track_genres.shape[1]

    @property
    def track_degree(self) -> np.ndarray:
        """int64 [n_tracks]: training playlists holding each track."""
        return np.diff(self.track_playlists.indptr).astype(np.int64)

    def holds(self, playlists: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """int64 0/1: whether each playlist holds the track paired with it."""
        from segue.models.gnn.sampling import csr_contains

        return csr_contains(
            self.playlist_tracks.indptr, self.playlist_tracks.indices, playlists, tracks
        ).astype(np.int64)

    @property
    def playlist_degree(self) -> np.ndarray:
        """int64 [n_playlists]: tracks of each training playlist."""
        return np.diff(self.playlist_tracks.indptr).astype(np.int64)

    def counts(self) -> dict:
        return {
            "playlists": self.n_playlists,
            "tracks": self.n_tracks,
            "artists": self.n_artists,
            "albums": self.n_albums,
            "genres": self.n_genres,
            "contains_edges": int(self.playlist_tracks.nnz),
            "audio_features": len(self.audio_names),
        }

    def to_hetero_data(self):
        """A PyG ``HeteroData`` with node types playlist/track/artist/album(/genre), the relations
        and their reverses (``rev_…``), track ``x`` = audio features when present."""
        import torch
        from torch_geometric.data import HeteroData

        graph = HeteroData()
        graph["playlist"].num_nodes = self.n_playlists
        graph["track"].num_nodes = self.n_tracks
        graph["artist"].num_nodes = self.n_artists
        graph["album"].num_nodes = self.n_albums
        if self.audio is not None:
            graph["track"].x = torch.from_numpy(self.audio)
        tracks = np.arange(self.n_tracks, dtype=np.int64)
        relations = [
            ("playlist", "contains", "track", *_coo(self.playlist_tracks)),
            ("track", "by", "artist", tracks, self.track_artist.astype(np.int64)),
            ("track", "on", "album", tracks, self.track_album.astype(np.int64)),
        ]
        if self.track_genres is not None:
            graph["genre"].num_nodes = self.n_genres
            relations.append(("track", "has_genre", "genre", *_coo(self.track_genres)))
        for src, rel, dst, a, b in relations:
            graph[src, rel, dst].edge_index = torch.from_numpy(np.stack([a, b]))
            graph[dst, f"rev_{rel}", src].edge_index = torch.from_numpy(np.stack([b, a]))
        return graph


def _coo(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    return rows, matrix.indices.astype(np.int64)


def load_track_features(path: Path, n_tracks: int) -> tuple[np.ndarray, list[str]]:
    """``track_features.parquet`` → (float32 [n_tracks, f + 1], names): every numeric column but
    ``track_id``, standardised (z-scores; nulls and tracks without a row become 0, the mean),
    plus a last column ``has_features`` (1/0)."""
    try:
        table = pq.read_table(path)
    except OSError as exc:
        raise InputFileError(path, f"unreadable ({exc})") from None
    if schema.TRACK_ID not in table.column_names:
        raise InputFileError(path, f"has no {schema.TRACK_ID!r} column")
    ids = table.column(schema.TRACK_ID).to_numpy().astype(np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= n_tracks):
        raise InputFileError(path, f"{schema.TRACK_ID} outside 0..{n_tracks - 1}")
    names = [
        c
        for c in table.column_names
        if c != schema.TRACK_ID
        and (str(table.schema.field(c).type).startswith(("int", "uint", "float", "double")))
    ]
    out = np.zeros((n_tracks, len(names) + 1), dtype=np.float32)
    for j, name in enumerate(names):
        values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        known = ~np.isnan(values)
        if known.sum() > 1:
            mean, std = values[known].mean(), values[known].std()
            out[ids[known], j] = ((values[known] - mean) / (std if std > 0 else 1.0)).astype(
                np.float32
            )
    out[ids, -1] = 1.0
    return out, [*names, "has_features"]


# ================================================================================================
# Listening
# ================================================================================================

USER_GENRE_SOURCES = ("none", "listening", "stated")
LISTEN_ATTRIBUTES = ("edge_weight", "play_count_normalised", "completion", "completion_known")


@dataclass
class HomogeneousGraph:
    """Every node type in one id space, relations in both directions, as CSR by destination.

    ``offsets[type]`` is where a type's ids start (``node_types`` in order); a node ``i`` of type
    ``τ`` is ``offsets[τ] + i``. ``indptr`` (int64 [n_nodes + 1]) / ``source`` (int64 [e]):
    the in-neighbours of each node; ``edge_type`` (int8 [e]) indexes ``relations``;
    ``edge_attr`` float32 [e, len(relations) + 5]: one-hot relation, then the listens
    attributes (:data:`LISTEN_ATTRIBUTES`, zero on other relations), then the prefers affinity.
    """

    node_types: list[str]
    offsets: dict[str, int]
    n_nodes: int
    indptr: np.ndarray
    source: np.ndarray
    edge_type: np.ndarray
    edge_attr: np.ndarray
    relations: list[tuple[str, str, str]]

    @property
    def edge_dim(self) -> int:
        return self.edge_attr.shape[1]

    def node_type_of(self, nodes: np.ndarray) -> np.ndarray:
        """int64: index into ``node_types`` of each global node id."""
        starts = np.array([self.offsets[t] for t in self.node_types], dtype=np.int64)
        return np.searchsorted(starts, np.asarray(nodes, dtype=np.int64), side="right") - 1

    def edge_keys(self) -> np.ndarray:
        """int64 [e] sorted: ``destination * n_nodes + source`` of every edge."""
        dst = np.repeat(np.arange(self.n_nodes, dtype=np.int64), np.diff(self.indptr))
        return dst * np.int64(self.n_nodes) + self.source


@dataclass
class ListeningGraph:
    """User–track–artist–genre graph over the training edges of a :class:`ListeningData`.

    Attributes:
        listens: csr [n_users, n_tracks] float32 edge weights (> 0), sorted indices.
        listen_attr: float32 [e, 4], aligned with ``listens.data``: :data:`LISTEN_ATTRIBUTES`.
        track_artist: int32 [n_tracks]; track_genres: csr [n_tracks, n_genres];
        artist_genres: csr [n_artists, n_genres]; genre_names: list[str].
        user_genres: csr [n_users, n_genres] float32 affinities, or ``None`` (the default).
        user_genre_source: ``"none"``, ``"listening"`` or ``"stated"`` (see the module docstring).
        user_type: object [n_users].
    """

    listens: sp.csr_matrix
    listen_attr: np.ndarray
    track_artist: np.ndarray
    track_genres: sp.csr_matrix
    artist_genres: sp.csr_matrix
    genre_names: list[str]
    user_type: np.ndarray
    user_genres: sp.csr_matrix | None = None
    user_genre_source: str = "none"

    @classmethod
    def from_listening(cls, data, *, user_genres: str = "none") -> ListeningGraph:
        """Build from a (training) ``ListeningData``. ``user_genres``: see the module docstring."""
        if user_genres not in USER_GENRE_SOURCES:
            raise SegueError(
                f"user_genres must be one of {', '.join(USER_GENRE_SOURCES)}, got {user_genres!r}"
            )
        listens = sp.csr_matrix(data.matrix, dtype=np.float32, copy=True)
        listens.sort_indices()
        play = sp.csr_matrix(data.play_count, dtype=np.float32, copy=True)
        play.sort_indices()
        completion = sp.csr_matrix(data.completion, dtype=np.float32, copy=True)
        completion.sort_indices()
        if not (
            np.array_equal(play.indices, listens.indices)
            and np.array_equal(completion.indices, listens.indices)
        ):
            raise SegueError(
                "listening data: play_count and completion must have the matrix's sparsity"
            )
        degree = np.diff(listens.indptr)
        owner = np.repeat(np.arange(listens.shape[0]), degree)
        # Play counts normalised per user on a log scale, as the edge weight does (segue.data.sessions).
        user_max = np.zeros(listens.shape[0], dtype=np.float64)
        if listens.nnz:
            np.maximum.at(user_max, owner, play.data.astype(np.float64))
        normalised = np.log1p(play.data) / np.log1p(np.maximum(user_max[owner], 1.0))
        known = ~np.isnan(completion.data)
        attr = np.stack(
            [listens.data, normalised, np.where(known, completion.data, 0.0), known], axis=1
        )
        preferences = None
        if user_genres == "listening":
            preferences = genre_profile(listens, data.track_genres)
        elif user_genres == "stated":
            if getattr(data, "user_genre_preferences", None) is None:
                raise SegueError(
                    "user_genres='stated' needs ListeningData.load(..., user_genre_preferences=True) "
                    "on a source that has them"
                )
            preferences = sp.csr_matrix(data.user_genre_preferences, dtype=np.float32)
        return cls(
            listens,
            attr.astype(np.float32),
            np.asarray(data.track_artist, dtype=np.int32),
            _binary(data.track_genres),
            _binary(data.artist_genres),
            list(data.genre_names),
            np.asarray(data.user_type, dtype=object),
            preferences,
            user_genres,
        )

    @property
    def n_users(self) -> int:
        return self.listens.shape[0]

    @property
    def n_tracks(self) -> int:
        return self.listens.shape[1]

    @property
    def n_artists(self) -> int:
        return max(self.artist_genres.shape[0], int(self.track_artist.max(initial=-1)) + 1)

    @property
    def n_genres(self) -> int:
        return len(self.genre_names)

    def counts(self) -> dict:
        return {
            "users": self.n_users,
            "tracks": self.n_tracks,
            "artists": self.n_artists,
            "genres": self.n_genres,
            "listens_edges": int(self.listens.nnz),
            "track_genre_edges": int(self.track_genres.nnz),
            "artist_genre_edges": int(self.artist_genres.nnz),
            "user_genre_edges": 0 if self.user_genres is None else int(self.user_genres.nnz),
            "user_genre_source": self.user_genre_source,
        }

    def homogeneous(self, *, genres: bool = True) -> HomogeneousGraph:
        """The graph in one id space (see :class:`HomogeneousGraph`); ``genres=False`` leaves the
        genre nodes out (the basic GAT is collaborative only)."""
        node_types = ["user", "track", "artist"] + (["genre"] if genres else [])
        sizes = {
            "user": self.n_users,
            "track": self.n_tracks,
            "artist": self.n_artists,
            "genre": self.n_genres,
        }
        offsets, total = {}, 0
        for t in node_types:
            offsets[t] = total
            total += sizes[t]
        users, tracks = _coo(self.listens)
        all_tracks = np.arange(self.n_tracks, dtype=np.int64)
        forward = [
            ("user", "listens", "track", users, tracks, self.listen_attr, None),
            ("track", "by", "artist", all_tracks, self.track_artist.astype(np.int64), None, None),
        ]
        if genres:
            forward.append(("track", "has_genre", "genre", *_coo(self.track_genres), None, None))
            forward.append(("artist", "has_genre", "genre", *_coo(self.artist_genres), None, None))
            if self.user_genres is not None:
                u, g = _coo(self.user_genres)
                forward.append(
                    (
                        "user",
                        "prefers",
                        "genre",
                        u,
                        g,
                        None,
                        self.user_genres.data.astype(np.float32),
                    )
                )
        relations = []
        for src_t, rel, dst_t, *_ in forward:
            relations += [(src_t, rel, dst_t), (dst_t, f"rev_{rel}", src_t)]
        n_rel = len(relations)
        dim = n_rel + len(LISTEN_ATTRIBUTES) + 1
        src_parts, dst_parts, type_parts, attr_parts = [], [], [], []
        for r, (src_t, _, dst_t, a, b, listen, affinity) in enumerate(forward):
            attr = np.zeros((len(a), dim), dtype=np.float32)
            if listen is not None:
                attr[:, n_rel : n_rel + len(LISTEN_ATTRIBUTES)] = listen
            if affinity is not None:
                attr[:, -1] = affinity
            for direction, (s, d, st, dt) in enumerate(
                ((a, b, src_t, dst_t), (b, a, dst_t, src_t))
            ):
                kind = 2 * r + direction
                typed = attr.copy()
                typed[:, kind] = 1.0
                src_parts.append(s + offsets[st])
                dst_parts.append(d + offsets[dt])
                type_parts.append(np.full(len(s), kind, dtype=np.int8))
                attr_parts.append(typed)
        src = np.concatenate(src_parts)
        dst = np.concatenate(dst_parts)
        order = np.lexsort((src, dst))
        indptr = np.concatenate(([0], np.cumsum(np.bincount(dst, minlength=total)))).astype(
            np.int64
        )
        return HomogeneousGraph(
            node_types,
            offsets,
            total,
            indptr,
            src[order],
            np.concatenate(type_parts)[order],
            np.concatenate(attr_parts)[order],
            relations,
        )

    def to_hetero_data(self):
        """A PyG ``HeteroData``: user/track/artist/genre nodes; ``listens`` with ``edge_attr``
        [e, 4] (:data:`LISTEN_ATTRIBUTES`), ``by``, ``has_genre`` (track and artist), ``prefers``
        only when built with user genres; every relation with its ``rev_…`` reverse."""
        import torch
        from torch_geometric.data import HeteroData

        graph = HeteroData()
        for t, n in (
            ("user", self.n_users),
            ("track", self.n_tracks),
            ("artist", self.n_artists),
            ("genre", self.n_genres),
        ):
            graph[t].num_nodes = n
        graph["genre"].names = list(self.genre_names)
        users, tracks = _coo(self.listens)
        all_tracks = np.arange(self.n_tracks, dtype=np.int64)
        relations = [
            ("user", "listens", "track", users, tracks, self.listen_attr),
            ("track", "by", "artist", all_tracks, self.track_artist.astype(np.int64), None),
            ("track", "has_genre", "genre", *_coo(self.track_genres), None),
            ("artist", "has_genre", "genre", *_coo(self.artist_genres), None),
        ]
        if self.user_genres is not None:
            relations.append(
                (
                    "user",
                    "prefers",
                    "genre",
                    *_coo(self.user_genres),
                    self.user_genres.data[:, None],
                )
            )
        for src, rel, dst, a, b, attr in relations:
            for s, r, d, x, y in ((src, rel, dst, a, b), (dst, f"rev_{rel}", src, b, a)):
                graph[s, r, d].edge_index = torch.from_numpy(np.stack([x, y]))
                if attr is not None:
                    graph[s, r, d].edge_attr = torch.from_numpy(np.asarray(attr, dtype=np.float32))
        return graph


def genre_profile(listens: sp.csr_matrix, track_genres: sp.csr_matrix) -> sp.csr_matrix:
    """csr [n_users, n_genres] float32: each user's genre shares from their own listens, weighted by
    edge weight (rows sum to 1; users or tracks without genres give empty rows).

    >>> listens = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.5]]))
    >>> genres = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]))
    >>> genre_profile(listens, genres).toarray().astype(float).round(3).tolist()
    [[0.667, 0.333], [0.0, 1.0]]
    """
    profile = sp.csr_matrix(listens @ track_genres, dtype=np.float64)
    totals = np.asarray(profile.sum(axis=1)).ravel()
    scale = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    return sp.csr_matrix(sp.diags(scale) @ profile, dtype=np.float32)


# ================================================================================================
# Persistence (``segue graph build``): arrays + JSON, no pickle
# ================================================================================================


def graph_arrays(graph: PlaylistGraph | ListeningGraph) -> tuple[dict[str, np.ndarray], dict]:
    """A graph as plain arrays (each CSR part by :func:`~segue.models.base.csr_arrays`) and a
    JSON-able description (``kind``, counts, names); :func:`graph_from_arrays` undoes it. Used
    by ``segue graph build`` and by the listening models, which save their training graph."""
    from segue.models.base import csr_arrays

    arrays: dict[str, np.ndarray] = {}
    if isinstance(graph, PlaylistGraph):
        matrices = {"playlist_tracks": graph.playlist_tracks, "track_genres": graph.track_genres}
        arrays["track_artist"], arrays["track_album"] = graph.track_artist, graph.track_album
        if graph.audio is not None:
            arrays["audio"] = graph.audio
        info = {"kind": "playlist", "audio_names": graph.audio_names}
    else:
        matrices = {
            name: getattr(graph, name)
            for name in ("listens", "track_genres", "artist_genres", "user_genres")
        }
        arrays["listen_attr"], arrays["track_artist"] = graph.listen_attr, graph.track_artist
        arrays["user_type"] = np.array([str(t) for t in graph.user_type], dtype=np.str_)
        info = {
            "kind": "listening",
            "genre_names": graph.genre_names,
            "user_genre_source": graph.user_genre_source,
            "listen_attributes": list(LISTEN_ATTRIBUTES),
        }
    for name, matrix in matrices.items():
        if matrix is not None:
            arrays |= csr_arrays(name, matrix)
    return arrays, info


def graph_from_arrays(arrays: dict[str, np.ndarray], info: dict) -> PlaylistGraph | ListeningGraph:
    """The graph :func:`graph_arrays` described; ``KeyError`` names a missing array, ``ValueError``
    an unknown kind."""
    from segue.models.base import csr_from_arrays

    def get(name: str) -> sp.csr_matrix:
        matrix = csr_from_arrays(name, arrays)
        if matrix is None:
            raise KeyError(f"{name}_indptr")
        return matrix

    if info.get("kind") == "playlist":
        matrix = get("playlist_tracks")
        return PlaylistGraph(
            matrix,
            sp.csr_matrix(matrix.T),
            arrays["track_artist"],
            arrays["track_album"],
            csr_from_arrays("track_genres", arrays),
            arrays.get("audio"),
            list(info.get("audio_names", [])),
        )
    if info.get("kind") == "listening":
        return ListeningGraph(
            get("listens"),
            arrays["listen_attr"],
            arrays["track_artist"],
            csr_from_arrays("track_genres", arrays),
            csr_from_arrays("artist_genres", arrays),
            list(info["genre_names"]),
            arrays["user_type"].astype(object),
            csr_from_arrays("user_genres", arrays),
            info.get("user_genre_source", "none"),
        )
    raise ValueError(f"unknown graph kind {info.get('kind')!r}")


def save_graph(graph: PlaylistGraph | ListeningGraph, out: Path) -> dict:
    """Write ``graph.npz`` (:func:`graph_arrays`, ``allow_pickle=False`` readable) and
    ``graph.json`` (kind, counts, names) into ``out``, whole or not at all. Returns the info."""
    arrays, info = graph_arrays(graph)
    info = {"kind": info.pop("kind"), "counts": graph.counts(), **info}
    with atomic_dir(Path(out)) as tmp:
        with open(tmp / GRAPH_FILE, "wb") as handle:
            np.savez(handle, **arrays)
        write_json(tmp / GRAPH_INFO_FILE, info)
    return info


def load_graph(path: Path) -> PlaylistGraph | ListeningGraph:
    """Read what :func:`save_graph` wrote (no unpickling)."""
    path = Path(path)
    try:
        info = orjson.loads((path / GRAPH_INFO_FILE).read_bytes())
        with np.load(path / GRAPH_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        raise InputFileError(
            Path(exc.filename or path), "missing: not a graph directory (`segue graph build`)"
        ) from None
    except (orjson.JSONDecodeError, ValueError, OSError) as exc:
        raise InputFileError(path, f"unreadable graph ({exc})") from None
    try:
        return graph_from_arrays(arrays, info)
    except KeyError as exc:
        raise InputFileError(
            path / GRAPH_FILE,
            f"has no array {exc} (written by another version?); rebuild it with `segue graph build`",
        ) from None
    except ValueError as exc:
        raise InputFileError(path / GRAPH_INFO_FILE, str(exc)) from None
