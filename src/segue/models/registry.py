"""Model registry: name → class. A new model is one module plus its ``@register`` line here."""

from __future__ import annotations

import importlib

from segue.errors import SegueError, did_you_mean

_MODELS: dict[str, type] = {}
# The module that defines each model; imported on first use, only the one asked for, so that
# `segue --help` and loading one model stay fast (loading item-kNN imported every model's
# module, scikit-learn's included: 1.2 s of a 1.7 s cold start).
_MODULES = {
    "popular": "segue.models.popular",
    "title": "segue.models.title",
    "itemknn": "segue.models.itemknn",
    "playlistknn": "segue.models.playlistknn",
    "svd": "segue.models.factor",
    "als": "segue.models.factor",
    "bpr": "segue.models.factor",
    "embed": "segue.models.embed",
    "hybrid": "segue.models.hybrid",
    "rerank": "segue.models.rerank",
    "rules": "segue.models.rules",
    "sknn": "segue.models.sequence",
    "gru4rec": "segue.models.sequence",
    "lightgcn": "segue.models.gnn.lightgcn",
    "playlistgat": "segue.models.gnn.playlist_gat",
    "gat": "segue.models.gnn.listening",
    "genre_gat": "segue.models.gnn.listening",
    "rp3beta": "segue.models.rp3beta",
}


def register(cls: type) -> type:
    """Class decorator: make a model available by its ``name`` (``cls.data`` says what it is
    trained on: playlists, or listening data for the listening GATs)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _MODELS[cls.name] = cls
    return cls


def _load_all() -> None:
    for module in dict.fromkeys(_MODULES.values()):
        importlib.import_module(module)


def require_extra(needs, extra: str, what: str) -> None:
    """Refuse with one line when an optional package ``what`` needs is not installed.

    >>> require_extra(("no_such_package_here",), "graph", "lightgcn")
    Traceback (most recent call last):
    ...
    segue.errors.SegueError: lightgcn needs no_such_package_here, which is not installed: pip install 'segue[graph]'
    """
    missing = []
    for module in needs:  # imported, not looked up: the model imports them next anyway
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            missing.append(module)
    if missing:
        raise SegueError(
            f"{what} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed: pip install 'segue[{extra}]'"
        )


def usable_model_class(name: str) -> type:
    """:func:`get_model_class`, refused with the extra to install when its packages are missing
    (what training and loading use; listing and describing models need none)."""
    cls = get_model_class(name)
    require_extra(cls.needs, cls.extra, name)
    return cls


def get_model_class(name: str) -> type:
    if name in _MODULES:
        importlib.import_module(_MODULES[name])
    if name not in _MODELS:
        _load_all()  # for the list of every model and the closest names
    if name not in _MODELS:
        raise SegueError(
            f"unknown model {name!r}{did_you_mean(name, _MODELS)}; available: "
            f"{', '.join(sorted(_MODELS))}"
        )
    return _MODELS[name]


def available(data: str | None = None) -> list[tuple[str, str]]:
    """(name, one-line description) of every registered model, by name; only those trained on
    ``data`` (``"playlists"``, ``"listening"``) when given."""
    _load_all()
    return sorted(
        (name, cls.description) for name, cls in _MODELS.items() if data is None or cls.data == data
    )


def available_classes() -> list[tuple[str, type]]:
    """(name, class) of every registered model, by name."""
    _load_all()
    return sorted(_MODELS.items())


def load_model(path):
    """The saved model in directory ``path``, of whichever registered kind it holds."""
    from pathlib import Path

    from segue.errors import InputFileError
    from segue.models.base import PARAMS_FILE, read_params

    params = read_params(Path(path))
    try:
        model_cls = usable_model_class(params.get("model", "?"))
    except SegueError as exc:
        raise InputFileError(Path(path) / PARAMS_FILE, str(exc)) from None
    return model_cls.load(path)
