"""Models made of other models (``hybrid``, ``rerank``): components, their lists, fit and persistence.

An ensemble is configured by ``components`` (comma-separated model names) and
``component_params`` (``"als.factors=128;itemknn.n_neighbors=100"``). Its fit has two steps:
:meth:`Ensemble._tune` learns how to combine the components on validation queries carved from
the training data (components fitted on the rest), then the components are refitted on all the
data. :meth:`Ensemble.fit_from` skips the refit when the components are already trained on the
same data. The components' arrays are saved inside the ensemble's ``arrays.npz`` under
``<component>/<key>``, so an ensemble directory is self-contained.

A component's answer to a query is its *scaled list*: its first ``depth`` tracks that are not
seeds, scores divided by the list's top score (non-positive scores dropped), so every component
speaks on the same 0–1 scale whatever its own units.
"""

from __future__ import annotations

import abc
import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.evaluation.split import seed_groups
from segue.models.base import (
    Queries,
    Recommender,
    _describe,
    _read_params,
    config_from_dict,
    parse_params,
)
from segue.models.registry import get_model_class
from segue.models.topn import seed_matrix

log = logging.getLogger(__name__)


def query_groups(queries: Queries) -> np.ndarray:
    """int64 [q]: each query's group, ``2 · seed-count class + has_title``
    (:func:`segue.evaluation.split.seed_groups`; a repeated seed counts once).

    >>> query_groups(Queries.from_lists([[], [1], [1, 2, 3], list(range(30))], ["a", "", "b", ""])).tolist()
    [1, 2, 5, 8]
    """
    distinct = np.diff(seed_matrix(queries, int(queries.seed_ids.max(initial=-1)) + 1).indptr)
    return seed_groups(distinct, [bool((t or "").strip()) for t in queries.titles])


def component_names(components: str, owner: str) -> list[str]:
    """The model names of ``components``; unknown, repeated or nested ensembles refused."""
    names = [n.strip() for n in components.split(",") if n.strip()]
    if not names:
        raise SegueError(f"{owner}: components is empty")
    if len(set(names)) != len(names):
        raise SegueError(f"{owner}: a component is listed twice in {components!r}")
    for name in names:
        cls = get_model_class(name)  # unknown names are refused with the list of models
        if issubclass(cls, Ensemble):
            raise SegueError(f"{owner}: a {owner} cannot contain a {name}")
    return names


def component_configs(components: str, component_params: str, owner: str) -> dict[str, object]:
    """Each component's config from ``component_params`` (``MODEL.key=value;…``, unknown keys refused)."""
    names = component_names(components, owner)
    pairs: dict[str, list[str]] = {name: [] for name in names}
    for item in (p.strip() for p in component_params.split(";")):
        if not item:
            continue
        model, dot, rest = item.partition(".")
        if not dot or model not in pairs:
            raise SegueError(
                f"{owner}: component_params item {item!r} must read MODEL.key=value "
                f"with MODEL one of {', '.join(names)}"
            )
        pairs[model].append(rest)
    return {name: parse_params(get_model_class(name).Config, pairs[name]) for name in names}


class Ensemble(Recommender):
    """Base of the models that combine components. Subclasses set a ``Config`` with
    ``components``, ``component_params`` and ``depth``, and implement :meth:`_tune`,
    :meth:`_own_arrays`, :meth:`_load_own_arrays` and ``_candidates``."""

    batch_size = 256

    def component_configs(self) -> dict[str, object]:
        return component_configs(self.config.components, self.config.component_params, self.name)

    @abc.abstractmethod
    def _tune(self, data: PlaylistData, configs: dict[str, object]) -> None:
        """Learn the combination on validation queries carved from ``data`` (components fitted on the rest)."""

    @abc.abstractmethod
    def _own_arrays(self) -> dict[str, np.ndarray]:
        """What :meth:`_tune` learned, as arrays (keys without '/')."""

    @abc.abstractmethod
    def _load_own_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`_own_arrays` returned."""

    # --- fit -----------------------------------------------------------------------------------
    def _fit(self, data: PlaylistData) -> None:
        configs = self.component_configs()
        self._tune(data, configs)
        self.components = []
        for name, config in configs.items():
            log.info("%s: fitting %s on all %s playlists", self.name, name, f"{data.n_playlists:,}")
            self.components.append(get_model_class(name)(config).fit(data))

    def fit_from(self, data: PlaylistData, fitted: list[Recommender]) -> Ensemble:
        """Fit reusing components already fitted on ``data`` (the refit step is their fit): only
        the tuning runs. ``fitted`` must be the configured components, in order, with their
        configured parameters, each trained on ``data`` (checked by the data's description)."""
        configs = self.component_configs()
        given = [(m.name, m.config) for m in fitted]
        if given != list(configs.items()):
            raise SegueError(
                f"{self.name}.fit_from: expected components {list(configs.items())}, got {given}"
            )
        self._check_trained_on(data, [(m.name, m.trained_on) for m in fitted])
        self._adopt(data.track_popularity.copy(), _describe(data), data_path=data.path)
        self._tune(data, configs)
        self.components = list(fitted)
        return self

    def fit_from_directory(self, data: PlaylistData, directory: Path) -> Ensemble:
        """:meth:`fit_from` with the components trained under ``directory`` (``DIR/<name>``), loaded
        only after the tuning: the tuning fits its own copies of the components, and holding both
        at once doubled the peak memory (at 1M playlists, 15.7 GiB during the carve). Each saved
        component's kind, parameters and training data are checked first, from its params.json."""
        configs = self.component_configs()
        paths = self.component_paths(directory)
        saved = []
        for (name, config), path in zip(configs.items(), paths, strict=True):
            params = _read_params(path)
            model_cls = get_model_class(params.get("model", "?"))
            if params.get("model") != name:
                raise SegueError(
                    f"{self.name}: {path} holds a {params.get('model')!r} model, not {name!r}"
                )
            found = config_from_dict(
                model_cls.Config, params.get("config", {}), where=str(path / "params.json")
            )
            if found != config:
                differ = [
                    f"{k}={getattr(found, k)!r} (configured {getattr(config, k)!r})"
                    for k in config.__dataclass_fields__
                    if getattr(found, k) != getattr(config, k)
                ]
                raise SegueError(
                    f"{self.name}: the {name} model in {path} was trained with other parameters: "
                    + ", ".join(differ)
                )
            saved.append((name, params.get("trained_on", {})))
        self._check_trained_on(data, saved)
        self._adopt(data.track_popularity.copy(), _describe(data), data_path=data.path)
        self._tune(data, configs)
        self.components = [Recommender.load(p) for p in paths]
        return self

    def _check_trained_on(self, data: PlaylistData, trained_on: list[tuple[str, dict]]) -> None:
        described = _describe(data)
        for name, where in trained_on:
            if where != described:
                raise SegueError(
                    f"{self.name}.fit_from: the {name} model was trained on "
                    f"{where.get('path', 'other data')}, not on {described.get('path', 'this data')}"
                )

    def component_paths(self, directory: Path) -> list[Path]:
        """``DIR/<name>`` of every configured component; :class:`SegueError` names those without a model."""
        paths = [Path(directory) / name for name in self.component_configs()]
        missing = [str(p) for p in paths if not (p / "params.json").exists()]
        if missing:
            raise SegueError(f"no trained model in {', '.join(missing)}")
        return paths

    def load_components(self, directory: Path) -> list[Recommender]:
        """The configured components as trained under ``directory`` (``DIR/<name>``), in order,
        for :meth:`fit_from`; raises :class:`SegueError` naming every directory that holds none."""
        return [Recommender.load(p) for p in self.component_paths(directory)]

    # --- persistence ---------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = dict(self._own_arrays())
        for component in self.components:
            for key, value in component._arrays().items():
                arrays[f"{component.name}/{key}"] = value
        return arrays

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._load_own_arrays({k: v for k, v in arrays.items() if "/" not in k})
        self.components = []
        for name, config in self.component_configs().items():
            component = get_model_class(name)(config)
            component._adopt(self.popularity, self.trained_on, model_dir=self.model_dir)
            prefix = f"{name}/"
            component._load_arrays(
                {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            )
            self.components.append(component)

    def _adopt(self, popularity, trained_on, *, data_path=None, model_dir=None) -> None:
        super()._adopt(popularity, trained_on, data_path=data_path, model_dir=model_dir)
        for component in getattr(self, "components", []):  # so explanations find the catalog
            component._adopt(popularity, trained_on, data_path=data_path, model_dir=model_dir)

    # --- the components' answers -----------------------------------------------------------------
    def _carved_lists(self, held, configs: dict[str, object]) -> list[sp.csr_matrix]:
        """Each configured component fitted on a carve's rest (``held.train``) and its scaled lists
        for the carved queries (``held``: a ``HeldOutQueries``), one component in memory at a time."""
        lists = []
        for name, config in configs.items():
            component = get_model_class(name)(config).fit(held.train)
            lists.append(self._component_lists(component, held.queries))
            del component
        return lists

    def _component_lists(self, component: Recommender, queries: Queries) -> sp.csr_matrix:
        """CSR float32 [q, n_tracks]: the component's first ``depth`` non-seed tracks per query,
        scores divided by the query's top score (non-positive scores dropped)."""
        depth = self.config.depth
        out = []
        for start in range(0, len(queries), self.batch_size):
            batch = queries.slice(start, min(start + self.batch_size, len(queries)))
            longest = int(batch.lengths().max(initial=0))
            ids, scores = component._candidates(batch, min(depth + longest, component.n_tracks))
            out.append(
                scaled_lists(
                    batch,
                    np.asarray(ids, dtype=np.int64),
                    np.asarray(scores, dtype=np.float32),
                    depth,
                    component.n_tracks,
                )
            )
        return (
            sp.vstack(out, format="csr")
            if out
            else sp.csr_matrix((0, self.n_tracks), dtype=np.float32)
        )


def scaled_lists(
    batch: Queries, ids: np.ndarray, scores: np.ndarray, depth: int, n_tracks: int
) -> sp.csr_matrix:
    """A component's candidates → CSR [b, n_tracks]: padding, seeds and repeats dropped, the first
    ``depth`` left per row, divided by the row's top score, non-positive scores dropped."""
    b = ids.shape[0]
    stride = np.int64(n_tracks + 1)
    keys = np.arange(b, dtype=np.int64)[:, None] * stride + ids
    seed_keys = np.repeat(np.arange(b, dtype=np.int64), batch.lengths()) * stride + batch.seed_ids
    valid = (ids >= 0) & ~np.isin(keys, seed_keys) & np.isfinite(scores)
    # A repeated id keeps its first (best) place.
    order = np.argsort(keys, axis=1, kind="stable")
    sorted_keys = np.take_along_axis(keys, order, axis=1)
    repeat = np.zeros_like(valid)
    np.put_along_axis(
        repeat,
        order,
        np.c_[np.zeros((b, 1), bool), sorted_keys[:, 1:] == sorted_keys[:, :-1]],
        axis=1,
    )
    valid &= ~repeat
    valid &= np.cumsum(valid, axis=1) <= depth
    top = np.where(valid, scores, -np.inf).max(axis=1, initial=-np.inf)
    scale = np.where(top > 0, top, 1).astype(np.float32)
    values = np.where(valid, scores / scale[:, None], 0)
    valid &= values > 0
    rows = np.repeat(np.arange(b), valid.sum(axis=1))
    matrix = sp.csr_matrix(
        (values[valid].astype(np.float32), (rows, ids[valid])), shape=(b, n_tracks)
    )
    matrix.sum_duplicates()
    return matrix
