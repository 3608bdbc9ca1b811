"""Model registry: name → class. A new model is one module plus its ``@register`` line here."""

from __future__ import annotations

import importlib

from segue.errors import SegueError, did_you_mean

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
    "segue.models.gnn.listening",
    "segue.models.rp3beta",
)


def register(cls: type) -> type:
    """Class decorator: make a model available by its ``name`` (``cls.data`` says what it is
    trained on: playlists, or listening data for the listening GATs)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _MODELS[cls.name] = cls
    return cls


def _load_all() -> None:
    for module in _MODULES:
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
    _load_all()
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
