"""One way to configure every model: frozen dataclasses, built from dicts, JSON or ``--param``.

A model's ``Config`` is a frozen dataclass whose ``__post_init__`` validates it (the one place a
bad value is refused, whoever builds the config). A field may itself be a config (the graph
models' ``trainer``: :class:`~segue.models.gnn.training.TrainerConfig`); an ensemble's ``params``
field maps each component's name to the parameters it changes. Three front doors build them,
all through :func:`config_from_dict`:

* Python: ``LightGCNConfig(factors=128)``, or ``config_from_dict(LightGCNConfig, {...})``;
* JSON (``params.json`` of a saved model, ``segue tune``'s ``best.json``): nested objects;
* the CLI: ``--param factors=128 --param trainer.learning_rate=0.005 --param als.factors=64``,
  dotted keys reaching into nested configs (:func:`parse_params`).

Values given as text (the CLI's) are converted to the field's type; values of the wrong type
(JSON's) are refused naming the key. What only changes *how* a fit runs, not what it learns —
the device, checkpoints, threads — is not configuration: it is :class:`RunOptions`, passed to
``fit`` and never saved with the model.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Any

from segue.errors import SegueError, did_you_mean

COMPONENT_PARAMS = "params"
"""The field of an ensemble's config that holds its components' parameters by component name."""


@dataclass(frozen=True)
class RunOptions:
    """How a fit runs, not what it learns (so never saved as a hyper-parameter).

    ``device`` ("auto": CUDA when available, else CPU; "cpu"; "cuda"); ``checkpoint_dir`` (write
    ``best.pt``/``last.pt`` there; "" keeps checkpoints in memory); ``resume`` (continue from
    ``checkpoint_dir/last.pt``); ``num_threads``: torch CPU threads while training (1 by default:
    batches are small, and on a shared 2-core machine torch's intra-op threads measured 80×
    slower than one thread on a [8000, 64] index_add); ``engine``: ``local``, or ``spark`` for
    the models that can train there (a model's ``engines``), on ``master`` (None: ``local[*]``)."""

    device: str = "auto"
    checkpoint_dir: str = ""
    resume: bool = False
    num_threads: int = 1
    engine: str = "local"
    master: str | None = None

    def __post_init__(self):
        if self.resume and not self.checkpoint_dir:
            raise SegueError("resume needs a checkpoint directory to resume from")
        if self.num_threads < 0:
            raise SegueError(f"num_threads must be ≥ 0 (0: all cores), got {self.num_threads}")
        if self.engine not in ("local", "spark"):
            raise SegueError(f"--engine must be local or spark, not {self.engine!r}")
        if self.master is not None and self.engine != "spark":
            raise SegueError("--master is for --engine spark")
        if self.engine == "spark":
            from segue.spark.session import check_master, require_spark

            if self.master is not None:
                check_master(self.master)
            require_spark()


def config_from_dict(config_cls: type, values: dict, *, where: str = "parameters", base=None):
    """The config ``config_cls`` with ``values`` set over ``base`` (default: the class's defaults).

    Unknown keys are refused with the list of known ones; text is converted to the field's type
    (``"8,4"`` for a ``tuple[int, ...]`` field, ``"true"`` for a bool); other values must already
    have the field's type (an int is accepted for a float). A nested config field takes a dict
    applied over its default (``{"trainer": {"epochs": 3}}``, or ``{"trainer.epochs": 3}``); in
    an ensemble's config, a dict under a key that is not a field is a component's parameters
    (moved into its ``params`` field, checked by the ensemble).

    >>> from segue.models.gnn.listening import GATConfig
    >>> c = config_from_dict(GATConfig, {"heads": "8", "hidden": [16], "trainer": {"epochs": "3"}})
    >>> c.heads, c.hidden, c.trainer.epochs, c.trainer.learning_rate
    ((8,), (16,), 3, 0.0016)
    """
    if not isinstance(values, dict):
        raise SegueError(f"{where}: expected an object of parameters, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    values = unflatten(values, where)
    if COMPONENT_PARAMS in fields:
        extra = {k: v for k, v in values.items() if k not in fields and isinstance(v, dict)}
        if extra:
            values = {k: v for k, v in values.items() if k not in extra}
            values[COMPONENT_PARAMS] = {**dict(values.get(COMPONENT_PARAMS) or {}), **extra}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        allowed = ", ".join(sorted(fields)) or "none"
        hint = did_you_mean(unknown[0], fields) if len(unknown) == 1 else ""
        raise SegueError(
            f"{where}: unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}{hint} (this model takes: {allowed}; `segue models NAME` "
            "says what each means)"
        )
    hints = typing.get_type_hints(config_cls)
    converted = {}
    for key, value in values.items():
        kind = hints[key]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            default = getattr(base, key) if base is not None else _default(fields[key])
            converted[key] = config_from_dict(kind, value, where=f"{where}: {key}", base=default)
        elif dataclasses.is_dataclass(kind) and not isinstance(value, kind):
            raise SegueError(
                f"{where}: {key}: expected an object of parameters (or {key}.name=value), "
                f"got {value!r}"
            )
        else:
            converted[key] = _typed(kind, value, f"{where}: {key}")
    try:
        if base is not None:
            return dataclasses.replace(base, **converted)
        return config_cls(**converted)
    except (SegueError, TypeError) as exc:  # refused by __post_init__ (or not even comparable)
        raise SegueError(f"{where}: {exc}") from None


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["key=value", "trainer.epochs=3", "als.factors=64"]`` from the CLI → a nested dict of
    the raw text (``{"key": "value", "trainer": {"epochs": "3"}, "als": {"factors": "64"}}``),
    for :func:`config_from_dict`, which converts and checks it. Dashes in keys read as
    underscores.

    >>> parse_params(["factors=64", "trainer.learning-rate=0.01"])
    {'factors': '64', 'trainer': {'learning_rate': '0.01'}}
    """
    flat = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = ".".join(part.strip().replace("-", "_") for part in key.split("."))
        if not sep or not all(key.split(".")):
            raise SegueError(f"--param {pair!r}: expected key=value (or part.key=value)")
        flat[key] = raw
    return unflatten(flat, "--param")


def unflatten(values: dict, where: str = "parameters") -> dict:
    """Dotted keys made nested dicts, merged with any nested dicts already there.

    >>> unflatten({"a": 1, "trainer.epochs": 3, "trainer": {"seed": 2}})
    {'a': 1, 'trainer': {'epochs': 3, 'seed': 2}}
    """
    out: dict = {}
    for key, value in values.items():
        *path, last = str(key).split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SegueError(f"{where}: {part} is given a value and also parameters ({key})")
        if isinstance(value, dict):
            value = unflatten(value, where)
            if isinstance(node.get(last), dict):
                value = merge_params(node[last], value)
        elif isinstance(node.get(last), dict):
            raise SegueError(f"{where}: {key} is a group of parameters, not one value")
        node[last] = value
    return out


def field_type(config_cls: type, key: str):
    """The type of the (dotted) field ``key`` of ``config_cls``; unknown keys refused, naming
    the fields there are.

    >>> from segue.models.gnn.lightgcn import LightGCNConfig
    >>> field_type(LightGCNConfig, "trainer.learning_rate")
    <class 'float'>
    """
    kind = config_cls
    for part in key.split("."):
        if not dataclasses.is_dataclass(kind):
            raise SegueError(f"unknown parameter {key!r} ({part!r} is not a group of parameters)")
        names = [f.name for f in dataclasses.fields(kind)]
        if part not in names:
            nested = sorted(
                f"{n}.*" if dataclasses.is_dataclass(typing.get_type_hints(kind)[n]) else n
                for n in names
            )
            raise SegueError(
                f"unknown parameter {key!r}{did_you_mean(part, names)} "
                f"(this model takes: {', '.join(nested) or 'none'})"
            )
        kind = typing.get_type_hints(kind)[part]
    return kind


def merge_params(*layers: dict) -> dict:
    """Parameter dicts merged left to right, nested dicts key by key (later layers win).

    >>> merge_params({"a": 1, "trainer": {"epochs": 2, "seed": 0}}, {"trainer": {"seed": 5}})
    {'a': 1, 'trainer': {'epochs': 2, 'seed': 5}}
    """
    out: dict = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge_params(out[key], value)
            else:
                out[key] = value
    return out


def flatten(values: dict, prefix: str = "") -> dict:
    """Nested parameter dicts as one level of dotted keys (:func:`unflatten` undoes it).

    >>> flatten({"factors": 64, "trainer": {"epochs": 3}})
    {'factors': 64, 'trainer.epochs': 3}
    """
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _typed(kind, value, where: str):
    """``value`` as a field of type ``kind``: text converted, other values type-checked."""
    if typing.get_origin(kind) is tuple:
        return _as_tuple(kind, value, where)
    if kind in (int, float, bool) and isinstance(value, str):
        return _scalar(kind, value.strip(), where)
    if kind is bool and not isinstance(value, bool):
        raise SegueError(f"{where}: expected true or false, got {value!r}")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise SegueError(f"{where}: expected an integer, got {value!r}")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SegueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if kind is str and not isinstance(value, str):
        raise SegueError(f"{where}: expected a string, got {value!r}")
    return value


def _scalar(kind, text: str, where: str):
    try:
        if kind is bool:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError(text)
            return text.lower() in _TRUE
        return kind(text)
    except (TypeError, ValueError):
        raise SegueError(f"{where}: {text!r} is not a valid {kind.__name__}") from None


def _as_tuple(kind, value, where: str):
    """A list or ``"a,b"`` text as a tuple of the element type of ``kind`` (``tuple[X, ...]``)."""
    if isinstance(value, tuple):
        return value
    element = typing.get_args(kind)[0]
    items = [part.strip() for part in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise SegueError(f"{where}: expected a list such as 8,4, got {value!r}")
    return tuple(
        _scalar(element, item, where) if isinstance(item, str) else _typed(element, item, where)
        for item in items
    )


def given_values(config, values: dict) -> dict:
    """The fields of ``config`` that ``values`` set, as the config holds them (typed), nested
    the way ``values`` is: what to store or show of a user's choices, not the defaults.

    >>> from segue.models.gnn.lightgcn import LightGCNConfig
    >>> given_values(config_from_dict(LightGCNConfig, {"trainer": {"epochs": "3"}}), {"trainer": {"epochs": "3"}})
    {'trainer': {'epochs': 3}}
    """
    out = {}
    for key, value in values.items():
        if not hasattr(config, key):  # an ensemble component's parameters, kept under params
            out[key] = getattr(config, COMPONENT_PARAMS)[key]
            continue
        current = getattr(config, key)
        if isinstance(value, dict) and dataclasses.is_dataclass(current):
            out[key] = given_values(current, value)
        else:
            out[key] = current
    return out


def config_from_pairs(config_cls: type, pairs: list[str]):
    """The config of ``--param`` pairs (:func:`parse_params`) over ``config_cls``'s defaults.

    >>> from segue.models.factor import ALSConfig
    >>> config_from_pairs(ALSConfig, ["factors=16", "num-threads=1"]).factors
    16
    """
    return config_from_dict(config_cls, parse_params(pairs), where="--param")


@dataclasses.dataclass(frozen=True)
class ParamDoc:
    """One parameter of a model: dotted ``name``, ``type`` as written, ``default``, ``meaning``."""

    name: str
    type: str
    default: Any
    meaning: str


def describe_params(config_cls: type, prefix: str = "") -> list[ParamDoc]:
    """Every parameter of ``config_cls`` (nested groups as dotted names), with the comment
    written beside the field in the source as its meaning: the one place it is written.

    >>> from segue.models.itemknn import ItemKNNConfig
    >>> doc = {d.name: d for d in describe_params(ItemKNNConfig)}
    >>> doc["alpha"].type, doc["alpha"].default
    ('float', 0.9)
    >>> doc["alpha"].meaning
    "cosine's asymmetry: 0.5 = plain cosine, → 1 = P(candidate | seed)"
    """
    comments = _field_comments(config_cls)
    hints = typing.get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            out += describe_params(kind, f"{prefix}{f.name}.")
            continue
        default = _default(f)
        type_text = f.type if isinstance(f.type, str) else getattr(kind, "__name__", str(kind))
        out.append(ParamDoc(f"{prefix}{f.name}", type_text, default, comments.get(f.name, "")))
    return out


def _field_comments(config_cls: type) -> dict[str, str]:
    """field → the comment on its line, else the comment lines right above it (joined), from
    the class's source and those of its dataclass bases."""
    import inspect
    import io
    import tokenize

    found: dict[str, str] = {}
    for cls in reversed(config_cls.__mro__):
        if not dataclasses.is_dataclass(cls) or cls is object:
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        comment_at = {}
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comment_at[tok.start[0]] = tok.string.lstrip("#").strip()
        for number, line in enumerate(lines, start=1):
            match = re.match(r"^    (\w+)\s*:", line)
            if not match or match.group(1) not in {f.name for f in dataclasses.fields(cls)}:
                continue
            text = comment_at.get(number)
            if text is None:  # the block of comment-only lines just above
                above, k = [], number - 1
                while k in comment_at and lines[k - 1].strip().startswith("#"):
                    above.insert(0, comment_at[k])
                    k -= 1
                text = " ".join(above) if above else None
            if text:
                found[match.group(1)] = text
    return found
