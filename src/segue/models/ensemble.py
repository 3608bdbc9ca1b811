"""Models made of other models (``hybrid``, ``rerank``): components, their lists, fit and persistence.

An ensemble is configured by ``components`` (comma-separated model names) and ``params``, each
component's parameters by its name (``{"als": {"factors": 128}}``; on the command line
``--param als.factors=128``). Its fit has two steps:
:meth:`Ensemble._tune` learns how to combine the components on validation queries carved from
the training data (components fitted on the rest), then the components are refitted on all the
data. :meth:`Ensemble.fit_from` skips the refit when the components are already trained on the
same data. Each component is saved as a model directory ``components/<name>`` inside the
ensemble's, so an ensemble directory is self-contained; a component loaded from disk shares its
``arrays.npz`` by a hard link instead of a copy (:meth:`Ensemble._save_parts`).

A component's answer to a query is its *scaled list*: its first ``depth`` tracks that are not
seeds, scores divided by the list's top score (non-positive scores dropped), so every component
speaks on the same 0–1 scale whatever its own units.
"""

from __future__ import annotations

import abc
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import InputFileError, SegueError
from segue.evaluation.split import seed_groups
from segue.models.base import (
    ARRAYS_FILE,
    PARAMS_FILE,
    Queries,
    Recommender,
    describe_data,
    read_params,
    write_model,
)
from segue.models.config import config_from_dict, given_values
from segue.models.registry import get_model_class
from segue.models.topn import seed_matrix

log = logging.getLogger(__name__)

COMPONENTS = "components"  # an ensemble directory's folder of component model directories


def query_groups(queries: Queries) -> np.ndarray:
    """int64 [q]: each query's group, ``2 · seed-count class + has_title``
    (:func:`segue.evaluation.split.seed_groups`; a repeated seed counts once).

    >>> query_groups(Queries.from_lists([[], [1], [1, 2, 3], list(range(30))], ["a", "", "b", ""])).tolist()
    [1, 2, 5, 8]
    """
    distinct = np.diff(seed_matrix(queries, int(queries.seed_ids.max(initial=-1)) + 1).indptr)
    return seed_groups(distinct, [bool((t or "").strip()) for t in queries.titles])


def component_names(components: str, owner: str) -> list[str]:
    """The model names of ``components``; unknown, repeated, nested ensembles or models of
    other data refused."""
    names = [n.strip() for n in components.split(",") if n.strip()]
    if not names:
        raise SegueError(f"{owner}: components is empty")
    if len(set(names)) != len(names):
        raise SegueError(f"{owner}: a component is listed twice in {components!r}")
    for name in names:
        cls = get_model_class(name)  # unknown names are refused with the list of models
        if not issubclass(cls, Recommender) or issubclass(cls, Ensemble):
            raise SegueError(
                f"{owner}: a {owner} cannot contain a {name} (its components are playlist "
                "models that are not ensembles)"
            )
    return names


def component_configs(components: str, params: dict, owner: str) -> dict[str, object]:
    """Each component's config: its defaults with ``params[name]`` set over them (unknown
    keys refused; parameters for a model that is not a component refused)."""
    names = component_names(components, owner)
    strays = sorted(set(params) - set(names))
    if strays:
        raise SegueError(
            f"{owner}: parameters given for {', '.join(strays)}, which "
            f"{'is' if len(strays) == 1 else 'are'} not among the components "
            f"({', '.join(names)})"
        )
    return {
        name: config_from_dict(
            get_model_class(name).Config, params.get(name, {}), where=f"{owner}: {name}"
        )
        for name in names
    }


def check_components(config, owner: str) -> None:
    """For an ensemble config's ``__post_init__``: its components and their parameters are
    valid, and ``params`` holds the parameters typed (text from the CLI converted)."""
    if not isinstance(config.params, dict):
        raise SegueError(f"{owner}: params must map component names to their parameters")
    configs = component_configs(config.components, config.params, owner)
    typed = {name: given_values(configs[name], values) for name, values in config.params.items()}
    object.__setattr__(config, "params", typed)


class Ensemble(Recommender):
    """Base of the models that combine components. Subclasses set a ``Config`` with
    ``components``, ``params`` and ``depth``, and implement :meth:`_tune`,
    :meth:`_own_arrays`, :meth:`_load_own_arrays` and ``_candidates``."""

    batch_size = 256

    def component_configs(self) -> dict[str, object]:
        return component_configs(self.config.components, self.config.params, self.name)

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
        self.adopt(data.track_popularity.copy(), describe_data(data), data_path=data.path)
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
            params = read_params(path)
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
        self.adopt(data.track_popularity.copy(), describe_data(data), data_path=data.path)
        self._tune(data, configs)
        self.components = [Recommender.load(p) for p in paths]
        return self

    def _check_trained_on(self, data: PlaylistData, trained_on: list[tuple[str, dict]]) -> None:
        described = describe_data(data)
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
        return dict(self._own_arrays())

    def _save_parts(self, directory: Path) -> None:
        """Each component as a model directory ``components/<name>`` (params.json + arrays.npz;
        the catalog is the ensemble's). A component loaded from disk and unchanged shares its
        ``arrays.npz`` by a hard link, not a copy: the ensemble costs no disk for the components
        the pipeline trained beside it, and still holds them if those are retrained or deleted
        (a link keeps the file it was made to). Where links are refused (another file system),
        the file is copied."""
        for component in self.components:
            dest = directory / COMPONENTS / component.name
            source = component.saved_as
            if source is None:
                with write_model(
                    dest, component, component.saved_params(), component.saved_arrays()
                ):
                    pass
                continue
            dest.mkdir(parents=True)
            try:
                os.link(source, dest / ARRAYS_FILE)
            except OSError:  # EXDEV, EPERM, a file system without hard links
                shutil.copyfile(source, dest / ARRAYS_FILE)
            shutil.copyfile(source.parent / PARAMS_FILE, dest / PARAMS_FILE)

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._load_own_arrays({k: v for k, v in arrays.items() if "/" not in k})
        if any("/" in k for k in arrays):  # saved before components had directories
            self._restore_inline_components(arrays)
            return
        self.components = []
        for name, config in self.component_configs().items():
            where = self.model_dir / COMPONENTS / name
            component = Recommender.load(where, catalog_dir=self.model_dir)
            if component.name != name or component.config != config:
                raise InputFileError(
                    where / PARAMS_FILE,
                    f"holds {component.name} with other parameters than the {self.name} was "
                    f"trained with; retrain the {self.name}",
                )
            component.popularity = self.popularity  # the same counts: share them
            self.components.append(component)

    def _restore_inline_components(self, arrays: dict[str, np.ndarray]) -> None:
        """Components saved as ``<component>/<key>`` arrays inside the ensemble's own file."""
        self.components = []
        for name, config in self.component_configs().items():
            component = get_model_class(name)(config)
            component.adopt(self.popularity, self.trained_on, model_dir=self.model_dir)
            prefix = f"{name}/"
            component.restore(
                {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            )
            self.components.append(component)

    def adopt(self, popularity, trained_on, *, data_path=None, model_dir=None) -> None:
        super().adopt(popularity, trained_on, data_path=data_path, model_dir=model_dir)
        for component in getattr(self, "components", []):  # so explanations find the catalog
            component.adopt(popularity, trained_on, data_path=data_path, model_dir=model_dir)

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
            ids, scores = component.candidates(batch, min(depth + longest, component.n_tracks))
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
