"""The Recommender contract: what every model implements and what the base does once for all.

A model implements ``_fit`` (learn from :class:`PlaylistData`) and ``_candidates`` (its best
tracks per query, best first). The base class turns candidates into the final ranking the same
way for every model — seed tracks removed, duplicates removed, exactly ``n`` unique ids per
query, popularity back-fill when a model has too few candidates — in vectorised batches, and
saves/loads models as ``params.json`` + ``arrays.npz`` (never pickle) + the training catalog.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import orjson
import pyarrow.parquet as pq

from segue import __version__
from segue.arrayfile import DIGEST, ArrayFileError, read_arrays, write_arrays
from segue.arrays import sorted_unique
from segue.data import schema
from segue.data.dataset import PlaylistData
from segue.errors import InputFileError, SegueError
from segue.io import atomic_dir, write_json
from segue.models.config import RunOptions, config_from_dict

PARAMS_FILE = "params.json"
ARRAYS_FILE = "arrays.npz"
CATALOG_FILE = "catalog.parquet"
CATALOG_COLUMNS = (schema.TRACK_URI, schema.TRACK_NAME, schema.ARTIST_NAME, schema.ARTIST_ID)


@dataclass
class Queries:
    """A batch of partial playlists.

    ``indptr`` (int64, [q+1]) and ``seed_ids`` (int32, [m]) hold each query's seed tracks as CSR
    rows, in playlist order; ``titles`` (q strings, ``""`` when absent); ``pids`` (int64, [q]).
    """

    indptr: np.ndarray
    seed_ids: np.ndarray
    titles: list[str]
    pids: np.ndarray

    @classmethod
    def from_lists(
        cls, seeds: list[list[int]], titles: list[str] | None = None, pids: list[int] | None = None
    ) -> Queries:
        lengths = np.array([len(s) for s in seeds], dtype=np.int64)
        flat = np.fromiter((t for s in seeds for t in s), dtype=np.int32, count=int(lengths.sum()))
        return cls(
            np.concatenate(([0], np.cumsum(lengths))),
            flat,
            list(titles) if titles is not None else [""] * len(seeds),
            np.asarray(pids if pids is not None else np.arange(len(seeds)), dtype=np.int64),
        )

    @classmethod
    def from_challenge(cls, entries: list[dict], uri_to_id: dict[str, int]) -> tuple[Queries, int]:
        """Queries of challenge-set entries; seeds unknown to the catalog are dropped (counted)."""
        seeds, unknown = [], 0
        for e in entries:
            ids = [uri_to_id.get(t[schema.TRACK_URI], -1) for t in e["tracks"]]
            unknown += sum(i < 0 for i in ids)
            seeds.append([i for i in ids if i >= 0])
        return cls.from_lists(
            seeds, [e.get("name") or "" for e in entries], [e["pid"] for e in entries]
        ), unknown

    def __len__(self) -> int:
        return len(self.pids)

    def seeds(self, row: int) -> np.ndarray:
        return self.seed_ids[self.indptr[row] : self.indptr[row + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def slice(self, start: int, stop: int) -> Queries:
        lo, hi = self.indptr[start], self.indptr[stop]
        return Queries(
            self.indptr[start : stop + 1] - lo,
            self.seed_ids[lo:hi],
            self.titles[start:stop],
            self.pids[start:stop],
        )


@dataclass
class Ranking:
    """``ids`` (int32, [q, n]) best first; ``scores`` (float32, [q, n]), NaN where the base
    back-filled a model's list with popular tracks."""

    ids: np.ndarray
    scores: np.ndarray


@dataclass
class Explanation:
    """Why a track was recommended: evidence items with shares that sum to 1, and a sentence."""

    track_id: int
    evidence: list[dict]
    text: str


@dataclass(frozen=True)
class NoConfig:
    """A model without parameters."""


class LiveUpdateUnsupported(SegueError):
    """The model cannot learn new playlists without retraining (see :meth:`Recommender.add_playlists`)."""


class Recommender(abc.ABC):
    """Base class of every model; see the module docstring for who does what."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    data: ClassVar[str] = "playlists"  # what it is trained on (the listening GATs: "listening")
    # Optional packages it needs and the extra that installs them (segue's core has neither).
    needs: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str] = ""
    # Where it can train (``RunOptions.engine``): this machine, and for some Spark too.
    engines: ClassVar[tuple[str, ...]] = ("local",)
    Config: ClassVar[type] = NoConfig
    batch_size: ClassVar[int] = 1024

    def __init__(self, config=None):
        self.config = config if config is not None else self.Config()
        self.popularity: np.ndarray | None = None  # int64 [n_tracks]
        self.trained_on: dict = {}

    # --- what models implement ---------------------------------------------------------------
    @abc.abstractmethod
    def _fit(self, data: PlaylistData) -> None:
        """Learn from ``data``; called by :meth:`fit` after the shared state is set."""

    @abc.abstractmethod
    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n`` best tracks per query, best first: (ids int [b, m], scores float [b, m]).

        -1 pads rows with fewer candidates; seeds and duplicates may appear (the base removes them).
        """

    def _arrays(self) -> dict[str, np.ndarray]:
        """The model's learned arrays, saved in ``arrays.npz``."""
        return {}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:  # noqa: B027 - optional hook
        """Restore what :meth:`_arrays` returned."""

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        """Evidence for recommending ``track_ids`` to query ``row`` (models override)."""
        raise NotImplementedError(f"{self.name} does not explain its recommendations yet")

    def _add_playlists(self, queries: Queries) -> None:
        """Fold new playlists into the learned state (models that can learn live override).

        Called by :meth:`add_playlists` before the shared popularity counts are updated, so
        ``self.popularity`` still holds the counts without ``queries``.
        """
        raise LiveUpdateUnsupported(
            f"model {self.name!r} cannot learn new playlists live; retrain it with them "
            f"(`segue train {self.name} DATA --out DIR`)"
        )

    @property
    def learns_live(self) -> bool:
        """Whether :meth:`add_playlists` is supported (the model overrides ``_add_playlists``)."""
        return type(self)._add_playlists is not Recommender._add_playlists

    # --- what the base does ----------------------------------------------------------------------
    @property
    def n_tracks(self) -> int:
        self._check_fitted()
        return len(self.popularity)

    def fit(self, data: PlaylistData, run: RunOptions | None = None) -> Self:
        """Fit from scratch (refitting forgets everything learned before). ``run``: how the fit
        runs (device, checkpoints, threads), for the models that train with torch."""
        self.run = run or RunOptions()
        self.adopt(data.track_popularity.copy(), describe_data(data), data_path=data.path)
        self._fit(data)
        return self

    def adopt(
        self,
        popularity: np.ndarray,
        trained_on: dict,
        *,
        data_path: Path | None = None,
        model_dir: Path | None = None,
    ) -> None:
        """Set the state the base keeps for every model: the popularity counts (int64
        [n_tracks]) that back-fill and explain, what it was trained on, and where its catalog
        is. Called by :meth:`fit`, at load, and by an ensemble for its components."""
        self.popularity = popularity
        self._saved_as = None  # a new state: no saved file holds it
        # Ties broken by id, so the order is the same on every machine.
        self._popular_order = np.lexsort((np.arange(len(popularity)), -popularity))
        self.trained_on = trained_on
        self._data_path = data_path
        self.model_dir = model_dir
        self._labels = None

    def recommend(self, queries: Queries, n: int = 500) -> Ranking:
        """Exactly ``n`` unique track ids per query, none of them a seed, best first."""
        self._check_fitted()
        if n < 1:
            raise SegueError(f"n must be at least 1, got {n}")
        longest = int(queries.lengths().max(initial=0))
        if n + longest > self.n_tracks:
            raise SegueError(
                f"the catalog has {self.n_tracks:,} tracks: too few for {n} recommendations "
                f"besides up to {longest} seed tracks"
            )
        ids = np.empty((len(queries), n), dtype=np.int32)
        scores = np.empty((len(queries), n), dtype=np.float32)
        for start in range(0, len(queries), self.batch_size):
            stop = min(start + self.batch_size, len(queries))
            batch = queries.slice(start, stop)
            cand_ids, cand_scores = self._candidates(batch, n + int(batch.lengths().max(initial=0)))
            ids[start:stop], scores[start:stop] = self._finalize(batch, cand_ids, cand_scores, n)
        return Ranking(ids, scores)

    def candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The model's own best tracks per query before the base finalises them (ids int
        [q, m], scores float [q, m], best first; seeds and repeats may appear, -1 pads): what an
        ensemble combines, in batches of :attr:`batch_size` queries or fewer."""
        self._check_fitted()
        return self._candidates(queries, n)

    def learned_arrays(self) -> dict[str, np.ndarray]:
        """The model's learned arrays (what ``arrays.npz`` keeps besides the popularity counts)."""
        self._check_fitted()
        return self._arrays()

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Take back what :meth:`learned_arrays` gave (after :meth:`adopt`); a missing array
        raises ``KeyError``."""
        self._check_fitted()
        self._load_arrays(arrays)

    def add_playlists(self, queries: Queries) -> None:
        """Learn new playlists (each query's seeds are its tracks) without retraining.

        The model's own state is updated first (:meth:`_add_playlists`; raises
        :class:`LiveUpdateUnsupported` for models that cannot), then the shared popularity counts
        and their order, which back-fill and explanations read. The next :meth:`recommend` sees
        the new playlists. Cost: the model's update plus O(n_tracks) for the popularity order.
        """
        self._check_fitted()
        ids = queries.seed_ids
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= self.n_tracks):
            raise SegueError(f"track id out of range 0..{self.n_tracks - 1}")
        self._add_playlists(queries)
        self._saved_as = None  # learned past what its file holds
        self._count_playlists(queries)

    def _count_playlists(self, queries: Queries) -> None:
        """Add each query's distinct tracks to ``popularity`` and move them in ``_popular_order``.

        The order is (popularity descending, id ascending). Instead of re-sorting all tracks, the
        touched ones are taken out and put back at their new places (binary search on the
        order's composite key), two O(n_tracks) passes.
        """
        n = self.n_tracks
        rows = np.repeat(np.arange(len(queries), dtype=np.int64), queries.lengths())
        pairs = sorted_unique(rows * n + queries.seed_ids)  # one count per playlist and track
        touched, counts = np.unique(pairs % n, return_counts=True)
        if not len(touched):
            return
        self.popularity = (
            self.popularity.copy() if not self.popularity.flags.writeable else self.popularity
        )
        self.popularity[touched] += counts
        moved = np.zeros(n, dtype=bool)
        moved[touched] = True
        rest = self._popular_order[~moved[self._popular_order]]
        # Composite key increasing along the order: -popularity * n + id (fits int64 at MPD scale).
        rest_keys = -self.popularity[rest].astype(np.int64) * n + rest
        touched_keys = -self.popularity[touched].astype(np.int64) * n + touched
        by_key = np.argsort(touched_keys, kind="stable")
        self._popular_order = np.insert(
            rest, np.searchsorted(rest_keys, touched_keys[by_key]), touched[by_key]
        )

    def _finalize(
        self, batch: Queries, cand_ids: np.ndarray, cand_scores: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Drop seeds, padding and repeats; back-fill with popular tracks; keep the first ``n``."""
        b = len(batch)
        fill = self._popular_order[: n + int(batch.lengths().max(initial=0))]
        ids = np.concatenate(
            (
                np.asarray(cand_ids, dtype=np.int64).reshape(b, -1),
                np.broadcast_to(fill, (b, len(fill))),
            ),
            axis=1,
        )
        scores = np.concatenate(
            (
                np.asarray(cand_scores, dtype=np.float32).reshape(b, -1),
                np.full((b, len(fill)), np.nan, dtype=np.float32),
            ),
            axis=1,
        )
        width = ids.shape[1]
        stride = np.int64(self.n_tracks + 1)
        keys = np.arange(b, dtype=np.int64)[:, None] * stride + ids
        seed_keys = (
            np.repeat(np.arange(b, dtype=np.int64), batch.lengths()) * stride + batch.seed_ids
        )
        valid = (ids >= 0) & ~np.isin(keys, seed_keys)
        # Keep the first occurrence of each id in a row: stable sort by key, mark repeats.
        order = np.argsort(keys, axis=1, kind="stable")
        sorted_keys = np.take_along_axis(keys, order, axis=1)
        repeat_sorted = np.zeros_like(valid)
        repeat_sorted[:, 1:] = sorted_keys[:, 1:] == sorted_keys[:, :-1]
        repeat = np.empty_like(valid)
        np.put_along_axis(repeat, order, repeat_sorted, axis=1)
        valid &= ~repeat
        # Compact: valid columns first, in their original (best-first) order.
        pick = np.argsort(~valid, axis=1, kind="stable")[:, :n]
        assert width >= n and np.take_along_axis(valid, pick, axis=1).all(), "back-fill too short"
        return (
            np.take_along_axis(ids, pick, axis=1).astype(np.int32),
            np.take_along_axis(scores, pick, axis=1),
        )

    def _check_fitted(self) -> None:
        if self.popularity is None:
            raise SegueError(
                f"model {self.name!r} is not trained; call fit() or load a trained model"
            )

    # --- persistence ---------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """``params.json`` + ``arrays.npz`` + ``catalog.parquet`` (+ what :meth:`_save_parts`
        adds), written whole or not at all."""
        self._check_fitted()
        source = self._catalog_path()
        with write_model(path, self, self.saved_params(), self.saved_arrays()) as tmp:
            if source is not None and source.exists():  # a loaded model saved again keeps it
                pq.write_table(
                    read_catalog(source),
                    tmp / CATALOG_FILE,
                    compression="zstd",
                )
            self._save_parts(tmp)

    def saved_params(self) -> dict:
        """What ``params.json`` keeps besides the model's name and config."""
        return {
            "trained_on": self.trained_on,
            "n_tracks": self.n_tracks,
            # How training went (epochs, validation curve, why it stopped), for models that keep it.
            **({"training": self.training_log} if getattr(self, "training_log", None) else {}),
        }

    def saved_arrays(self) -> dict[str, np.ndarray]:
        """What ``arrays.npz`` keeps: the popularity counts and the learned arrays."""
        return {"popularity": self.popularity, **self._arrays()}

    def _save_parts(self, directory: Path) -> None:  # noqa: B027 - optional hook
        """Write any other part of the model into ``directory`` (the model directory being
        written); an ensemble writes its components there."""

    @property
    def saved_as(self) -> Path | None:
        """The ``arrays.npz`` this model's state was loaded from, while nothing changed it
        (training or learning live forgets it): an ensemble shares that file instead of
        writing a copy."""
        path = getattr(self, "_saved_as", None)
        return path if path is not None and path.exists() else None

    @classmethod
    def load(cls, path: Path, *, catalog_dir: Path | None = None) -> Recommender:
        """Load a saved model of any registered kind (no unpickling: JSON and plain arrays).
        ``catalog_dir``: where its catalog is when not in ``path`` (an ensemble's component)."""
        path = Path(path)
        model_cls, params, arrays = read_model(path, cls)
        if not issubclass(model_cls, Recommender):
            raise InputFileError(
                path / PARAMS_FILE,
                f"holds a {model_cls.name!r} model, trained on {model_cls.data} data, not on "
                "playlists",
            )
        model = model_cls(saved_config(model_cls, params, path))
        if "popularity" not in arrays or len(arrays["popularity"]) != params.get("n_tracks"):
            raise InputFileError(
                path / ARRAYS_FILE, "popularity array missing or of the wrong size"
            )
        model.adopt(
            arrays.pop("popularity"),
            params.get("trained_on", {}),
            model_dir=path if catalog_dir is None else Path(catalog_dir),
        )
        if "training" in params:
            model.training_log = params["training"]
        try:
            model.restore(arrays)
        except KeyError as exc:
            raise InputFileError(
                path / ARRAYS_FILE,
                f"has no array {exc} (saved by another version of the "
                f"{params['model']!r} model?); retrain it with `segue train`",
            ) from None
        except (ValueError, IndexError, TypeError) as exc:  # arrays of the wrong shape or kind
            raise InputFileError(
                path / ARRAYS_FILE,
                f"arrays that do not fit together ({type(exc).__name__}: {str(exc)[:200]}); "
                "retrain it with `segue train`",
            ) from None
        except InputFileError:
            raise
        except SegueError as exc:  # a part of the model (an ensemble's component) refused
            raise InputFileError(path / ARRAYS_FILE, str(exc)) from None
        model._saved_as = path / ARRAYS_FILE
        return model

    def similar(self, track_ids, n: int = 10) -> Ranking:
        """Tracks to play with each of ``track_ids`` (int [t]): the model's continuation of a
        one-track playlist, so every model answers it the same way. Models with an item–item
        structure (kNN, factors) rank by it directly through ``_candidates``."""
        track_ids = np.asarray(track_ids, dtype=np.int64)
        if len(track_ids) and (track_ids.min() < 0 or track_ids.max() >= self.n_tracks):
            raise SegueError(f"track id out of range 0..{self.n_tracks - 1}")
        return self.recommend(Queries.from_lists([[int(t)] for t in track_ids]), n)

    def track_labels(self, track_ids) -> list[str]:
        """'Track — Artist' for each id, from the training catalog ('track 12' without one)."""
        track_ids = np.asarray(track_ids, dtype=np.int64)
        names = getattr(self, "_labels", None)
        if names is None:
            try:
                table = self.catalog()
                names = np.array(
                    [
                        f"{t} — {a}"
                        for t, a in zip(
                            table.column(schema.TRACK_NAME).to_pylist(),
                            table.column(schema.ARTIST_NAME).to_pylist(),
                            strict=True,
                        )
                    ],
                    dtype=object,
                )
            except (SegueError, AttributeError, TypeError):
                names = np.array([], dtype=object)
            self._labels = names
        return [names[t] if t < len(names) else f"track {t}" for t in track_ids.tolist()]

    def _catalog_path(self) -> Path | None:
        """Where the training catalog lives: the model directory, else the training data."""
        if getattr(self, "model_dir", None) is not None:
            return self.model_dir / CATALOG_FILE
        if getattr(self, "_data_path", None) is not None:
            return self._data_path / schema.TRACKS_FILE
        return None

    def catalog(self):
        """The training catalog (track_uri, track_name, artist_name, artist_id) as an Arrow table."""
        path = self._catalog_path()
        if path is None:
            raise SegueError(
                "this model was trained on data built in memory: it has no track catalog"
            )
        if not path.exists():
            raise InputFileError(path, "missing: the model directory has no track catalog")
        return read_catalog(path)


@contextlib.contextmanager
def write_model(path: Path, model, params: dict, arrays: dict[str, np.ndarray]):
    """Write a model directory whole or not at all: ``arrays.npz`` (``arrays``, plain arrays;
    :mod:`segue.arrayfile`) and ``params.json`` (``model``, ``config``, ``segue_version``,
    ``params`` and the arrays' digests); yields the temporary directory for any other file the
    model keeps. Every model saves through this."""
    with atomic_dir(Path(path)) as tmp:
        digests = write_arrays(tmp / ARRAYS_FILE, arrays)
        write_json(
            tmp / PARAMS_FILE,
            {
                "model": model.name,
                "config": dataclasses.asdict(model.config),
                "segue_version": __version__,
                **params,
                "arrays": {DIGEST: digests},
            },
        )
        yield tmp


def read_model(
    path: Path, expected: type | None = None
) -> tuple[type, dict, dict[str, np.ndarray]]:
    """(model class, params, arrays) of a directory :func:`write_model` wrote, never unpickling.

    The class is the registered one ``params.json`` names; with ``expected`` (a model class
    other than a base), a directory holding another kind is refused. Every error names the file.
    """
    from segue.models.registry import get_model_class

    path = Path(path)
    params = read_params(path)
    try:
        model_cls = get_model_class(params.get("model", "?"))
    except SegueError as exc:
        raise InputFileError(path / PARAMS_FILE, str(exc)) from None
    if expected is not None and expected.name and model_cls is not expected:
        raise InputFileError(
            path / PARAMS_FILE, f"holds a {params['model']!r} model, not {expected.name!r}"
        )
    digests = (params.get("arrays") or {}).get(DIGEST)
    try:
        arrays = read_arrays(path / ARRAYS_FILE, digests if isinstance(digests, dict) else None)
    except FileNotFoundError:
        raise InputFileError(
            path / ARRAYS_FILE, "missing: the model directory is incomplete"
        ) from None
    except ArrayFileError as exc:  # does not match the digests and names params.json lists
        raise InputFileError(path / ARRAYS_FILE, f"unreadable: {exc}; retrain the model") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        # Truncated, bit-flipped, empty or not an .npz at all: numpy and zipfile say it many ways.
        raise InputFileError(
            path / ARRAYS_FILE,
            f"unreadable ({type(exc).__name__}: {exc or 'empty file'}); retrain the model",
        ) from None
    return model_cls, params, arrays


def read_catalog(path: Path):
    """The catalog columns of a ``catalog.parquet`` (or a dataset's tracks table) as an Arrow
    table; a corrupt or foreign file is refused naming it."""
    import pyarrow as pa

    try:
        return pq.read_table(path, columns=list(CATALOG_COLUMNS))
    except (pa.ArrowException, OSError) as exc:
        raise InputFileError(
            path, f"unreadable track catalog ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def saved_config(model_cls: type, params: dict, path: Path):
    """The config a saved ``params.json`` holds; one this version cannot read (a parameter
    renamed or moved since) is refused with the advice to retrain, naming the file."""
    try:
        return config_from_dict(model_cls.Config, params.get("config", {}), where="config")
    except SegueError as exc:
        raise InputFileError(
            path / PARAMS_FILE,
            f"{exc}; saved by segue {params.get('segue_version', '?')}, this is {__version__}: "
            f"retrain it with `segue train {model_cls.name} DATA --out {path}`",
        ) from None


PARAMS_KEYS = {
    "model": str,
    "config": dict,
    "segue_version": str,
    "trained_on": dict,
    "n_tracks": int,
    "training": dict,
    "graph": dict,
    "arrays": dict,  # {"xxh3_64": {array name: digest}} of arrays.npz (segue.arrayfile)
}
"""What a ``params.json`` may hold, and the JSON type of each (``model`` and ``config`` required)."""


def read_params(path: Path) -> dict:
    """The ``params.json`` of model directory ``path`` as a dict, checked against
    :data:`PARAMS_KEYS` (unknown keys, missing ``model``/``config`` and wrong types refused);
    errors name the file."""
    if not path.is_dir():
        raise InputFileError(path, "not a model directory (train one with `segue train`)")
    try:
        params = orjson.loads((path / PARAMS_FILE).read_bytes())
    except FileNotFoundError:
        raise InputFileError(path / PARAMS_FILE, "missing: not a model directory") from None
    except orjson.JSONDecodeError as exc:
        raise InputFileError(path / PARAMS_FILE, f"not valid JSON ({exc})") from None
    if not isinstance(params, dict):
        raise InputFileError(path / PARAMS_FILE, "expected a JSON object")
    unknown = sorted(set(params) - set(PARAMS_KEYS))
    if unknown:
        raise InputFileError(
            path / PARAMS_FILE,
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (a model's "
            f"params.json holds {', '.join(PARAMS_KEYS)})",
        )
    for key, kind in PARAMS_KEYS.items():
        if key in ("model", "config") and key not in params:
            raise InputFileError(path / PARAMS_FILE, f"has no {key!r}: not a segue model")
        value = params.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise InputFileError(
                path / PARAMS_FILE, f"{key}: expected a JSON {kind.__name__}, got {value!r}"[:300]
            )
    return params


def csr_arrays(name: str, matrix, *, values: bool = True) -> dict[str, np.ndarray]:
    """A CSR matrix as the arrays ``<name>_indptr``, ``<name>_indices``, ``<name>_data`` and
    ``<name>_shape`` of ``arrays.npz`` (the one way segue persists a sparse matrix;
    :func:`csr_from_arrays` reads it). ``values=False``: a 0/1 matrix, saved without its data."""
    return {
        f"{name}_indptr": matrix.indptr,
        f"{name}_indices": matrix.indices,
        **({f"{name}_data": matrix.data} if values else {}),
        f"{name}_shape": np.array(matrix.shape, dtype=np.int64),
    }


def csr_from_arrays(name: str, arrays: dict[str, np.ndarray], n_columns: int | None = None):
    """The CSR matrix :func:`csr_arrays` stored under ``name`` (``None`` when absent), of its
    saved shape (arrays saved before shapes were: square unless ``n_columns`` is given); float32
    ones where it was saved without values.

    >>> import scipy.sparse as sp
    >>> m = sp.csr_matrix(np.array([[0.0, 2.0, 0.0], [3.0, 0.0, 0.0]]))
    >>> back = csr_from_arrays("m", csr_arrays("m", m))
    >>> back.shape, (back != m).nnz, csr_from_arrays("other", {})
    ((2, 3), 0, None)
    """
    import scipy.sparse as sp

    if f"{name}_indptr" not in arrays:
        return None
    n = len(arrays[f"{name}_indptr"]) - 1
    shape = arrays.get(f"{name}_shape")
    indices = arrays[f"{name}_indices"]
    data = arrays.get(f"{name}_data")
    return sp.csr_matrix(
        (
            data if data is not None else np.ones(len(indices), np.float32),
            indices,
            arrays[f"{name}_indptr"],
        ),
        shape=tuple(int(v) for v in shape)
        if shape is not None
        else (n, n if n_columns is None else n_columns),
    )


def describe_data(data: PlaylistData) -> dict:
    """What a model keeps of the data it was trained on (``trained_on``): sizes, path and the
    manifest's digest, compared by ``segue evaluate`` and by an ensemble's reused components."""
    info = {"n_playlists": data.n_playlists, "n_tracks": data.n_tracks}
    if data.path is not None:
        manifest = data.path / schema.MANIFEST_FILE
        info["path"] = str(data.path)
        if manifest.exists():
            info["manifest_sha256"] = schema.manifest_digest(data.path)
    return info
