"""Model registry: name → class. A new model is one module plus its ``@register`` line here."""

from __future__ import annotations

import importlib

from segue.errors import SegueError

_MODELS: dict[str, type] = {}
# Modules that define models; imported on first use so `segue --help` stays fast.
_MODULES = (
    "segue.models.popular",
    "segue.models.title",
    "segue.models.itemknn",
    "segue.models.playlistknn",
    "segue.models.factor",
    "segue.models.embed",
    "segue.models.hybrid",
    "segue.models.rerank",
    "segue.models.rules",
    "segue.models.sequence",
    "segue.models.gnn.lightgcn",
    "segue.models.gnn.playlist_gat",
    "segue.models.rp3beta",
)


def register(cls: type) -> type:
    """Class decorator: make a Recommender available by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _MODELS[cls.name] = cls
    return cls


def _load_all() -> None:
    for module in _MODULES:
        importlib.import_module(module)


def get_model_class(name: str) -> type:
    _load_all()
    if name not in _MODELS:
        raise SegueError(f"unknown model {name!r}; available: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def available() -> list[tuple[str, str]]:
    """(name, one-line description) of every registered model, by name."""
    _load_all()
    return sorted((name, cls.description) for name, cls in _MODELS.items())
