"""Cold start for the listening graph models (the source design's three cases).

* **A new user** (no listens at all) who states some genres gets the most-played training
  tracks carrying any of those genres (:func:`popular_in_genres`); with no genre stated, the
  most-played tracks overall.
* **A new track** starts from its artist's input embedding plus small Gaussian noise and goes
  through the trained layers with its real neighbours — its artist (and the artist's genres
  for the genre-aware model) and its self-loop — so it gets a representation in the same space
  as every other track before anyone has played it (:func:`add_tracks`).
* **A sparse user** (fewer than ``min_tracks`` training tracks) is supplemented by similar
  users: their vector becomes ``(1 − weight) · own + weight · mean(neighbours)`` over the
  ``neighbours`` users with the most similar listening (cosine of the 0/1 listen rows)
  (:func:`supplement_sparse_users`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from segue.errors import SegueError


def genre_ids(genre_names: list[str], wanted: list[str | int]) -> np.ndarray:
    """Ids of genres given by name (case-insensitive) or id; an unknown one is an error naming it."""
    lookup = {name.casefold(): i for i, name in enumerate(genre_names)}
    out = []
    for genre in wanted:
        if isinstance(genre, int | np.integer):
            if not 0 <= int(genre) < len(genre_names):
                raise SegueError(f"genre id {genre} outside 0..{len(genre_names) - 1}")
            out.append(int(genre))
        elif str(genre).casefold() in lookup:
            out.append(lookup[str(genre).casefold()])
        else:
            raise SegueError(
                f"unknown genre {genre!r}; known: {', '.join(genre_names[:20])}"
                + (" …" if len(genre_names) > 20 else "")
            )
    return np.array(sorted(set(out)), dtype=np.int64)


def popular_in_genres(
    track_genres: sp.csr_matrix, popularity: np.ndarray, genres: np.ndarray, n: int
) -> np.ndarray:
    """int64 [≤ n]: the tracks carrying any of ``genres``, most popular first (ties: lower id);
    every track when ``genres`` is empty.

    >>> g = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 1], [0, 1]]))
    >>> popular_in_genres(g, np.array([5, 9, 1, 9]), np.array([1]), 2).tolist()
    [1, 3]
    """
    if len(genres):
        carries = np.asarray(sp.csr_matrix(track_genres)[:, genres].sum(axis=1)).ravel() > 0
        candidates = np.flatnonzero(carries)
    else:
        candidates = np.arange(len(popularity))
    order = np.lexsort((candidates, -popularity[candidates]))
    return candidates[order[:n]].astype(np.int64)


def new_user(model, genres: list[str | int], n: int = 10) -> np.ndarray:
    """Recommendations for a user with no listens who states ``genres`` (names or ids)."""
    ids = genre_ids(model.graph.genre_names, genres) if genres else np.zeros(0, np.int64)
    track_genres = (
        model.track_genre_unit if model.graph.n_genres else sp.csr_matrix((model.graph.n_tracks, 0))
    )
    return popular_in_genres(track_genres, model.track_listeners, ids, n)


def add_tracks(model, artist_ids, *, noise: float = 0.01, seed: int = 0) -> np.ndarray:
    """Add tracks nobody has played yet, by the given artists (int [m]); returns their new ids.

    Each starts from its artist's input embedding plus N(0, (noise · the embeddings' std)²)
    noise and passes through the trained layers with its artist, the artist's genres
    (genre-aware model) and its self-loop as neighbours. The model then ranks them like any
    other track (they have no listeners and no training edges to exclude).
    """
    import torch

    artist_ids = np.asarray(artist_ids, dtype=np.int64)
    graph, homo, net = model.graph, model.homo, model.net
    if len(artist_ids) and (artist_ids.min() < 0 or artist_ids.max() >= graph.n_artists):
        raise SegueError(f"artist id outside 0..{graph.n_artists - 1}")
    m = len(artist_ids)
    rng = np.random.default_rng(seed)
    weight = net.embedding.weight.detach().cpu().numpy()
    artist_nodes = homo.offsets["artist"] + artist_ids
    start = weight[artist_nodes] + rng.normal(
        0, noise * float(weight.std()), size=(m, weight.shape[1])
    )
    relations = {rel: i for i, rel in enumerate(homo.relations)}
    # Neighbours of each new track: its artist, then (genre-aware) the artist's genres.
    src_parts, dst_parts, kind_parts = (
        [artist_nodes],
        [np.arange(m)],
        [np.full(m, relations[("artist", "rev_by", "track")])],
    )
    genre_rows = sp.csr_matrix((m, graph.n_genres), dtype=np.float32)
    if "genre" in homo.offsets and graph.n_genres:
        genre_rows = sp.csr_matrix(graph.artist_genres[artist_ids])
        owner = np.repeat(np.arange(m), np.diff(genre_rows.indptr))
        src_parts.append(homo.offsets["genre"] + genre_rows.indices.astype(np.int64))
        dst_parts.append(owner)
        kind_parts.append(np.full(len(owner), relations[("genre", "rev_has_genre", "track")]))
    src, dst, kind = (
        np.concatenate(src_parts),
        np.concatenate(dst_parts),
        np.concatenate(kind_parts),
    )
    attr = np.zeros((len(src) + m, homo.edge_dim), dtype=np.float32)
    attr[np.arange(len(src)), kind] = 1.0
    attr[len(src) + np.arange(m), relations[("node", "self", "node")]] = 1.0
    net.eval()
    with torch.no_grad():
        x_new = torch.from_numpy(start.astype(np.float32))
        for i, layer in enumerate(net.layers):
            x_graph = torch.from_numpy(model.layer_inputs[i])
            # sources: the graph's nodes, then the new tracks (self-loops)
            sources = torch.cat((x_graph, x_new))
            index = torch.from_numpy(
                np.stack(
                    [
                        np.concatenate((src, homo.n_nodes + np.arange(m))),
                        np.concatenate((dst, np.arange(m))),
                    ]
                )
            )
            x_new = layer((sources, x_new), index, edge_attr=torch.from_numpy(attr))
            if i < len(net.layers) - 1:
                if i < len(net.norms):
                    x_new = net.norms[i](x_new)
                x_new = torch.nn.functional.elu(x_new)
    vectors = x_new.numpy().astype(np.float32)
    first = model.track_vectors.shape[0]
    model.track_vectors = np.vstack((model.track_vectors, vectors))
    model.track_listeners = np.concatenate((model.track_listeners, np.zeros(m, np.int64)))
    model.track_start_vectors = start.astype(np.float32)
    if model.config.genre_aware:
        from segue.models.gnn.listening import unit_rows, unit_vectors

        model.track_genre_unit = sp.vstack((model.track_genre_unit, unit_rows(genre_rows))).tocsr()
        model.track_side = np.vstack(
            (
                model.track_side,
                np.hstack((unit_vectors(vectors), unit_rows(genre_rows).toarray())).astype(
                    np.float32
                ),
            )
        )
    elif model.config.score == "cosine":
        from segue.models.gnn.listening import unit_vectors

        model.track_side = np.vstack((model.track_side, unit_vectors(vectors).astype(np.float32)))
    else:
        model.track_side = np.vstack((model.track_side, vectors))
    return np.arange(first, first + m, dtype=np.int64)


def supplement_sparse_users(
    model, *, min_tracks: int = 5, neighbours: int = 10, weight: float = 0.5
) -> np.ndarray:
    """Mix each sparse user's vector with their ``neighbours`` most similar users' (see the
    module docstring); returns the ids of the users changed. Users with no listens at all are
    left alone (:func:`new_user` serves them)."""
    if not 0 <= weight <= 1 or neighbours < 1:
        raise SegueError("weight must be within [0, 1] and neighbours ≥ 1")
    listens = sp.csr_matrix(model.graph.listens, dtype=np.float64, copy=True)
    listens.data[:] = 1.0
    degree = np.diff(listens.indptr)
    sparse_users = np.flatnonzero((degree > 0) & (degree < min_tracks))
    if len(sparse_users) == 0:
        return sparse_users
    norm = np.sqrt(np.maximum(degree, 1)).astype(np.float64)
    similarity = sp.csr_matrix((listens[sparse_users] @ listens.T).multiply(1.0 / norm[None, :]))
    similarity = sp.csr_matrix(sp.diags(1.0 / norm[sparse_users]) @ similarity)
    base = model.user_side.copy()
    for row, user in enumerate(sparse_users.tolist()):  # only the (few) sparse users
        cols = similarity.indices[similarity.indptr[row] : similarity.indptr[row + 1]]
        vals = similarity.data[similarity.indptr[row] : similarity.indptr[row + 1]]
        keep = cols != user
        cols, vals = cols[keep], vals[keep]
        if len(cols) == 0:
            continue
        # Rounded so that equal similarities tie exactly and go to the lower user id.
        best = cols[np.lexsort((cols, -np.round(vals, 12)))[:neighbours]]
        model.user_side[user] = (1 - weight) * base[user] + weight * base[best].mean(axis=0)
    return sparse_users
