"""Item–item co-occurrence: each track's top-``k`` neighbours, over every track, in bounded memory.

For a weighted playlists × tracks matrix ``W`` (float32 [p, t]; 0/1 membership, or BM25 weights)
the co-occurrence of tracks ``i`` and ``j`` is ``co(i, j) = Σ_p W[p, i] · W[p, j]``. What is kept
is, for every track ``i``, the ``k`` tracks ``j ≠ i`` with the largest
``key(i, j) = co(i, j) · column_factor[j]``, and their value
``co(i, j) · row_factor[i] · column_factor[j]`` — so one kernel serves the plain count, the
cosine (both factors ``pop^-½``), the asymmetric cosine (``row_factor = pop^-α``,
``column_factor = pop^-(1-α)``) and BM25-weighted dot products.

Why a kernel of our own: the full co-occurrence matrix of the MPD has billions of entries, so it
must never be built; ``scipy``'s sparse product builds it (and runs on one core), and
``implicit``'s ``all_pairs_knn`` preallocates 24 bytes × ``k`` for every track (11 GB at 2.3M
tracks and ``k = 200``) before it starts. Here (numba, compiled once and cached on disk) each
thread walks its tracks' playlists into a dense accumulator of one row, keeps that row's best
``k`` (a partition, not a sort) and writes them as int32/float32; tracks are processed in
blocks, so memory is the result (8 bytes per kept neighbour) plus one block. Each row is
computed by one thread in a fixed order, so the result does not depend on the thread count.
Ties at the cut go to the lower track id.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp

from segue.errors import SegueError
from segue.progress import Progress

log = logging.getLogger(__name__)

_BLOCK_WORK = 400_000_000  # accumulator updates per block (bounds a block's time, not its memory)
_MAX_BLOCK_ROWS = 65_536  # rows per block (bounds a block's output buffer: rows × k × 8 bytes)


def top_k_cooccurrence(
    weights: sp.csr_matrix,
    k: int,
    *,
    row_factor: np.ndarray | None = None,
    column_factor: np.ndarray | None = None,
    num_threads: int = 0,
    description: str = "co-occurrence",
) -> sp.csr_matrix:
    """Each track's ``k`` best neighbours (see the module docstring).

    ``weights``: CSR float [p, t]; ``row_factor``, ``column_factor``: float [t] (default 1);
    ``num_threads``: 0 = every core. Returns CSR float32 [t, t], sorted indices, no diagonal, at
    most ``k`` entries per row, entries with ``co = 0`` never stored.

    >>> w = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1]], dtype=np.float32))
    >>> top_k_cooccurrence(w, 2).toarray().tolist()
    [[0.0, 2.0, 1.0, 0.0], [2.0, 0.0, 2.0, 0.0], [1.0, 2.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]]
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    by_playlist = (
        weights
        if weights.dtype == np.float32 and sp.isspmatrix_csr(weights)
        else sp.csr_matrix(weights, dtype=np.float32)
    )
    by_playlist.sort_indices()
    by_track = sp.csr_matrix(by_playlist.T)  # [t, p]
    by_track.sort_indices()
    n = by_playlist.shape[1]
    row_factor = np.ones(n) if row_factor is None else np.asarray(row_factor, dtype=np.float64)
    column_factor = (
        np.ones(n) if column_factor is None else np.asarray(column_factor, dtype=np.float64)
    )
    # Work of track i: the playlist entries it walks, Σ over its playlists of their lengths.
    lengths = np.diff(by_playlist.indptr).astype(np.float64)
    work = (
        sp.csr_matrix(
            (np.ones(by_track.nnz), by_track.indices, by_track.indptr), shape=by_track.shape
        )
        @ lengths
    )
    threads = max(
        1, min(num_threads or numba.config.NUMBA_NUM_THREADS, numba.config.NUMBA_NUM_THREADS)
    )
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    # The result is written in place into buffers sized by an upper bound of what is kept (a row
    # keeps at most k and at most the entries it walks); pages never written are never resident,
    # so the bound costs address space, not memory, and no concatenation copies the result.
    bound = np.minimum(work, k).astype(np.int64)
    indices = np.empty(int(bound.sum()), dtype=np.int32)
    data = np.empty(len(indices), dtype=np.float32)
    indptr = np.zeros(n + 1, dtype=np.int64)
    progress = Progress(description, n, unit="tracks")
    try:
        start = 0
        cumulative = np.cumsum(work)
        while start < n:
            done = cumulative[start - 1] if start else 0.0
            stop = int(np.searchsorted(cumulative, done + _BLOCK_WORK, side="right"))
            stop = min(max(stop, start + 1), start + _MAX_BLOCK_ROWS, n)
            out_idx = np.empty((stop - start, k), dtype=np.int32)
            out_val = np.empty((stop - start, k), dtype=np.float32)
            out_n = np.zeros(stop - start, dtype=np.int64)
            _block(
                by_track.indptr,
                by_track.indices,
                by_track.data,
                by_playlist.indptr,
                by_playlist.indices,
                by_playlist.data,
                row_factor,
                column_factor,
                start,
                stop,
                k,
                threads,
                out_idx,
                out_val,
                out_n,
            )
            keep = np.arange(k)[None, :] < out_n[:, None]
            at = indptr[start]
            indptr[start + 1 : stop + 1] = at + np.cumsum(out_n)
            indices[at : indptr[stop]] = out_idx[keep]
            data[at : indptr[stop]] = out_val[keep]
            progress.advance(stop - start)
            start = stop
    finally:
        numba.set_num_threads(previous)
        progress.close()
    nnz = int(indptr[-1])
    result = sp.csr_matrix((data[:nnz], indices[:nnz], indptr), shape=(n, n), copy=False)
    result.sort_indices()
    return result


@numba.njit(parallel=True, cache=True, nogil=True)
def _block(
    t_indptr,
    t_indices,
    t_data,
    p_indptr,
    p_indices,
    p_data,
    row_factor,
    column_factor,
    start,
    stop,
    k,
    n_threads,
    out_idx,
    out_val,
    out_n,
):  # pragma: no cover - compiled
    rows = stop - start
    n = len(column_factor)
    # Rows interleaved over the threads (row r to thread r mod T) balance popular and rare tracks.
    for thread in numba.prange(n_threads):
        acc = np.zeros(n, dtype=np.float64)
        seen = np.zeros(n, dtype=np.bool_)
        touched = np.empty(n, dtype=np.int32)
        keys = np.empty(n, dtype=np.float64)
        for r in range(thread, rows, n_threads):
            i = start + r
            m = 0
            for a in range(t_indptr[i], t_indptr[i + 1]):
                p = t_indices[a]
                w = t_data[a]
                for b in range(p_indptr[p], p_indptr[p + 1]):
                    j = p_indices[b]
                    if j == i:
                        continue
                    if not seen[j]:
                        seen[j] = True
                        touched[m] = j
                        m += 1
                    acc[j] += w * p_data[b]
            c = 0
            if m > k:
                for x in range(m):
                    keys[x] = acc[touched[x]] * column_factor[touched[x]]
                # The k-th largest key; of the entries tied with it, the lowest columns are kept.
                cut = np.partition(keys[:m], m - k)[m - k]
                n_ties = 0
                for x in range(m):
                    if keys[x] > cut:
                        j = touched[x]
                        out_idx[r, c] = j
                        out_val[r, c] = acc[j] * row_factor[i] * column_factor[j]
                        c += 1
                    elif keys[x] == cut:
                        n_ties += 1
                ties = np.empty(n_ties, dtype=np.int32)
                t = 0
                for x in range(m):
                    if keys[x] == cut:
                        ties[t] = touched[x]
                        t += 1
                ties.sort()
                for t in range(k - c):
                    j = ties[t]
                    out_idx[r, c] = j
                    out_val[r, c] = acc[j] * row_factor[i] * column_factor[j]
                    c += 1
            else:
                for x in range(m):
                    j = touched[x]
                    if acc[j] != 0:
                        out_idx[r, c] = j
                        out_val[r, c] = acc[j] * row_factor[i] * column_factor[j]
                        c += 1
            out_n[r] = c
            for x in range(m):
                acc[touched[x]] = 0.0
                seen[touched[x]] = False


def write_cooccurrence(
    data_dir: Path, out_dir: Path, *, k: int = 50, top: int = 50, num_threads: int = 0
) -> dict:
    """The co-occurrence table of an ingested dataset: each track's ``k`` most frequent companions.

    Writes (whole or not at all) ``cooccurrence.parquet`` (``track_id``, ``neighbor_id`` int32,
    ``count`` int32: playlists holding both; rows by track, then by count, highest first),
    ``top_pairs.md`` (the ``top`` most frequent pairs, named) and ``summary.json``; returns the
    summary. Every track is covered, not only the most popular (the source design kept 10K).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from segue.data import schema
    from segue.data.dataset import PlaylistData
    from segue.io import atomic_dir, write_json, write_text

    data = PlaylistData.load(data_dir)
    if data.n_playlists == 0 or data.matrix.nnz == 0:
        raise SegueError(f"{data_dir}: the dataset has no playlist tracks to count")
    counts = top_k_cooccurrence(
        data.matrix, k, num_threads=num_threads, description="co-occurrence"
    )
    rows = np.repeat(np.arange(counts.shape[0], dtype=np.int32), np.diff(counts.indptr))
    values = np.rint(counts.data).astype(np.int32)
    order = np.lexsort((counts.indices, -values, rows))
    table = pa.table(
        {
            "track_id": rows[order],
            "neighbor_id": counts.indices[order].astype(np.int32),
            "count": values[order],
        }
    )
    # The most frequent pairs, each once (i < j).
    once = np.flatnonzero(rows < counts.indices)
    best = once[np.lexsort((counts.indices[once], rows[once], -values[once]))[:top]]
    catalog = pq.read_table(
        Path(data_dir) / schema.TRACKS_FILE, columns=[schema.TRACK_NAME, schema.ARTIST_NAME]
    )
    names = [
        f"{t} — {a}"
        for t, a in zip(
            catalog.column(schema.TRACK_NAME).to_pylist(),
            catalog.column(schema.ARTIST_NAME).to_pylist(),
            strict=True,
        )
    ]
    lines = [
        f"# Most frequent track pairs ({data.n_playlists:,} playlists)",
        "",
        "| # | track | track | playlists with both |",
        "|---|---|---|---|",
    ]
    for rank, e in enumerate(best.tolist(), 1):
        lines.append(f"| {rank} | {names[rows[e]]} | {names[counts.indices[e]]} | {values[e]:,} |")
    summary = {
        "tracks": int(counts.shape[0]),
        "pairs_kept": int(counts.nnz),
        "k": k,
        "tracks_with_companions": int(np.count_nonzero(np.diff(counts.indptr))),
        "top_pair_count": int(values.max(initial=0)),
    }
    with atomic_dir(Path(out_dir)) as tmp:
        pq.write_table(table, tmp / "cooccurrence.parquet", compression="zstd")
        write_text(tmp / "top_pairs.md", "\n".join(lines) + "\n")
        write_json(tmp / "summary.json", summary)
    return summary
