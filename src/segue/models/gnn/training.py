"""Trainers for the graph models: BPR, modes, early stopping, checkpoints, resume, device choice.

A model's training is described by a :class:`TrainingTask` — its ``torch`` module, how it draws
a batch of BPR examples, its loss, and (optionally) how well it ranks held-out validation edges.
Two trainers run any task:

:class:`SimpleTrainer`
    A fixed number of epochs at a fixed learning rate on all training edges; keeps the last
    state (and writes ``last.pt`` when given a checkpoint directory).
:class:`AdvancedTrainer`
    Evaluates validation Recall@K after every epoch, lowers the learning rate when it stops
    improving (``ReduceLROnPlateau``), stops early after ``patience`` epochs without
    improvement, writes ``best.pt`` (the best state so far) and ``last.pt`` (everything needed to
    resume: model, optimisers, schedulers, random generators, history), and ends with the best
    weights loaded. ``resume=True`` continues from ``last.pt`` and gives the same result as an
    uninterrupted run.

Checkpoints are ``torch.save`` of plain containers (tensors, numbers, strings) and are read
with ``torch.load(weights_only=True)``: no unpickling of arbitrary objects.

**Modes** (:data:`MODES`) set the training budget — epochs, examples per epoch, patience — so
the same code runs as a smoke test (``mini``), in the demo (``quick``), for a good model
(``balanced``) and for the best one (``full``). Memory does not depend on the mode: every batch
is a bounded sample (see :mod:`segue.models.gnn.sampling`).

**Device**: ``"auto"`` (the default) is CUDA when ``torch.cuda.is_available()``, else the CPU.
"""

from __future__ import annotations

import abc
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import orjson

from segue.errors import InputFileError, SegueError
from segue.io import atomic_file
from segue.models.config import RunOptions
from segue.progress import progress

log = logging.getLogger("segue")

BEST_FILE = "best.pt"
LAST_FILE = "last.pt"
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class Mode:
    """A training budget: ``seconds`` of wall-clock time (checked after every batch, so a large
    graph stops mid-epoch when its time is up), at most ``epochs`` epochs, and ``patience``
    epochs without a better validation score before stopping early. An epoch visits every
    training example once (at least ``min_examples``: tiny data is revisited), so the same mode
    is sensible at 5,000 and at 1,000,000 playlists: the clock, not an example count, decides."""

    name: str
    seconds: float
    epochs: int
    patience: int
    min_examples: int = 5_000


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode("mini", seconds=10, epochs=2, patience=1),
        Mode("quick", seconds=60, epochs=100, patience=3),
        Mode("balanced", seconds=300, epochs=300, patience=4),
        Mode("full", seconds=1800, epochs=1000, patience=5),
    )
}


def get_mode(name: str) -> Mode:
    if name not in MODES:
        raise SegueError(f"mode must be one of {', '.join(MODES)}, got {name!r}")
    return MODES[name]


def resolve_device(device: str):
    """``"auto"`` → CUDA when available, else CPU; ``"cpu"``/``"cuda"``/``"cuda:N"`` as given."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SegueError(f"device {device!r} asked for, but torch sees no CUDA device")
    if not (device == "cpu" or device.startswith("cuda")):
        raise SegueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    return torch.device(device)


@dataclass(frozen=True)
class TrainerConfig:
    """What the trainer learns with, nested in each graph model's config as ``trainer``
    (``--param trainer.learning_rate=0.005``): ``mode`` (budget, see :data:`MODES`);
    ``budget_seconds``/``epochs``/``patience`` override the mode's when positive;
    ``batch_size`` (0 for the playlist graph models: sized by the graph); ``learning_rate``
    (Adam for dense weights, SparseAdam for the embedding tables); ``k`` of the validation
    Recall@K; ``lr_factor``/``lr_patience`` of ReduceLROnPlateau; ``seed``. How a fit runs
    (device, checkpoints, threads) is :class:`~segue.models.config.RunOptions`, not saved."""

    mode: str = "quick"  # training budget: mini, quick, balanced or full (time, epochs, patience)
    budget_seconds: float = 0.0  # wall-clock training budget in seconds; 0: the mode's
    epochs: int = 0  # most epochs to train; 0: the mode's
    patience: int = 0  # epochs without better validation recall before stopping; 0: the mode's
    # examples per batch (0 for the playlist graph models: sized by the graph)
    batch_size: int = 512
    learning_rate: float = 0.01  # Adam (dense weights) and SparseAdam (embedding tables) step size
    k: int = 10  # K of the validation Recall@K that early stopping and the LR schedule watch
    lr_factor: float = 0.5  # ReduceLROnPlateau: the learning rate is multiplied by it on a plateau
    lr_patience: int = 0  # ReduceLROnPlateau: epochs without improvement before lowering the rate
    seed: int = 0  # seed of the torch and numpy generators (initial weights, batch sampling)

    def __post_init__(self):
        get_mode(self.mode)
        if self.budget_seconds < 0:
            raise SegueError(
                f"budget_seconds must be ≥ 0 (0: the mode's), got {self.budget_seconds}"
            )
        if self.batch_size < 0 or self.learning_rate <= 0:
            raise SegueError(
                f"batch_size must be ≥ 0 and learning_rate positive, got {self.batch_size} "
                f"and {self.learning_rate}"
            )
        if self.epochs < 0 or self.patience < 0 or self.k < 1:
            raise SegueError("epochs and patience must be ≥ 0 (0: the mode's) and k ≥ 1")

    def budget(self) -> tuple[int, int]:
        mode = get_mode(self.mode)
        return (
            self.epochs if self.epochs > 0 else mode.epochs,
            self.patience if self.patience > 0 else mode.patience,
        )

    def seconds(self) -> float:
        return self.budget_seconds if self.budget_seconds > 0 else get_mode(self.mode).seconds

    def examples_per_epoch(self, n_edges: int) -> int:
        return max(n_edges, get_mode(self.mode).min_examples)


def parse_duration(text: str) -> float:
    """Seconds in a duration written ``90``, ``90s``, ``10m``, ``1.5h``.

    >>> parse_duration("10m"), parse_duration("45"), parse_duration("1.5h")
    (600.0, 45.0, 5400.0)
    """
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    value = text.strip().lower()
    scale = units.get(value[-1:], None)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        raise SegueError(
            f"a duration is a number with an optional unit s, m or h (90s, 10m, 1h), got {text!r}"
        ) from None
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise SegueError(f"a duration must be positive, got {text!r}")
    return seconds


@dataclass
class TrainingHistory:
    """Per-epoch records (``epoch``, ``loss``, ``seconds``, ``learning_rate``, ``complete``
    (False for an epoch the time budget cut short), and ``validation_recall`` (Recall@``k``) for
    the advanced trainer), the best epoch, why training stopped (``stopped``; ``early_stopped`` when
    validation stopped improving, rather than the budget or the epoch cap), the budget and the
    seconds spent."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_metric: float = float("-inf")
    stopped: str = ""
    early_stopped: bool = False
    budget_seconds: float = 0.0
    seconds: float = 0.0
    k: int = 10

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        """What a saved model keeps of its training (``params.json``'s ``training``): epochs
        run, why it stopped, the best epoch, the budget, the seconds and every epoch's record."""
        return {
            "epochs_run": len(self.epochs),
            "stopped": self.stopped,
            "early_stopped": self.early_stopped,
            "best_epoch": self.best_epoch,
            "budget_seconds": self.budget_seconds,
            "seconds": round(self.seconds, 1),
            "history": self.epochs,
        }


class TrainingTask(abc.ABC):
    """What a trainer trains. Subclasses hold the graph and the ``module`` (a ``torch.nn.Module``
    whose ``sparse=True`` embedding tables are optimised by SparseAdam, the rest by Adam)."""

    module = None
    n_edges: int = 0

    @abc.abstractmethod
    def batches(self, rng: np.random.Generator, n_examples: int, batch_size: int) -> Iterator:
        """One epoch of batches (any object :meth:`loss` understands), drawn with ``rng``."""

    @abc.abstractmethod
    def loss(self, batch):
        """Scalar loss tensor of a batch (BPR plus regularisation)."""

    def validate(self, k: int) -> float | None:
        """Mean Recall@k over the validation rows (``None``: no validation part)."""
        return None

    def to(self, device) -> None:
        self.device = device
        self.module.to(device)


def seeded_module(seed: int, build):
    """``build()`` with torch's global generator seeded by ``seed`` and restored afterwards, so
    a module's initial weights depend on the seed alone (PyG layers initialise from the global
    generator), and building it leaves other code's randomness untouched."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def bpr_loss(positive, negative):
    """Bayesian Personalized Ranking (Rendle et al. 2009): mean −log σ(s⁺ − s⁻), computed as
    softplus(s⁻ − s⁺) so it stays finite for large margins."""
    import torch.nn.functional as F

    return F.softplus(negative - positive).mean()


# ------------------------------------------------------------------------------------------------


@dataclass
class _Progress:
    """What a fit carries from epoch to epoch (and what ``last.pt`` saves to resume it)."""

    optimizers: list
    schedulers: list
    rng: np.random.Generator
    history: TrainingHistory = field(default_factory=TrainingHistory)
    start_epoch: int = 0
    bad_epochs: int = 0
    best_state: dict | None = None


class SimpleTrainer:
    """Fixed epochs at a fixed learning rate on all training edges (see the module docstring)."""

    validates = False

    def __init__(self, config: TrainerConfig | None = None, run: RunOptions | None = None):
        self.config = config or TrainerConfig()
        self.run = run or RunOptions()
        if self.config.batch_size < 1:
            raise SegueError(f"batch_size must be ≥ 1, got {self.config.batch_size}")

    def fit(self, task: TrainingTask) -> TrainingHistory:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.run.num_threads or previous)
        try:
            return self._fit(task)
        finally:
            torch.set_num_threads(previous)

    def _fit(self, task: TrainingTask) -> TrainingHistory:
        """Epochs until the epoch cap, the time budget or (validating) the patience runs out."""
        c = self.config
        device = resolve_device(self.run.device)
        task.to(device)
        state = self._start(task)
        folder = Path(self.run.checkpoint_dir) if self.run.checkpoint_dir else None
        fingerprint = _fingerprint(c, task)
        epochs, patience = c.budget()
        if self.run.resume:
            self._resume(task, state, folder, fingerprint, device, epochs)
        history = state.history
        n_examples = c.examples_per_epoch(task.n_edges)
        budget = c.seconds()
        history.budget_seconds, history.k = budget, c.k
        clock = time.perf_counter() - history.seconds  # a resumed run keeps the time it spent
        for epoch in range(state.start_epoch, epochs):
            record = self._epoch(task, state, epoch, epochs, n_examples, clock + budget)
            improved = self.validates and self._validate(task, state, epoch, record)
            history.epochs.append(record)
            log.info(
                "epoch %d/%d: loss %.4f%s (%.1f s)",
                epoch + 1,
                epochs,
                record["loss"],
                "".join(f", {k} {v:.4f}" for k, v in record.items() if k.startswith("validation")),
                record["seconds"],
            )
            early = self.validates and history.best_epoch >= 0 and state.bad_epochs >= patience
            out_of_time = not record["complete"] or time.perf_counter() - clock >= budget
            history.seconds = time.perf_counter() - clock
            if early:
                history.stopped = f"early stop: no better validation recall for {patience} epochs"
                history.early_stopped = True
            elif out_of_time:
                history.stopped = f"time budget of {budget:g} s reached"
            elif epoch == epochs - 1:
                history.stopped = f"finished {epochs} epochs"
            if folder is not None:
                _write_checkpoints(folder, task, state, epoch, improved, fingerprint)
            if early or out_of_time:
                break
        if self.validates and state.best_state is not None:
            task.module.load_state_dict(state.best_state)
        task.module.eval()
        return history

    def _start(self, task: TrainingTask) -> _Progress:
        """Seeded generators, optimisers and (validating) the learning-rate schedulers."""
        import torch

        c = self.config
        torch.manual_seed(c.seed)
        optimizers = _optimizers(task.module, c.learning_rate)
        schedulers = (
            [
                torch.optim.lr_scheduler.ReduceLROnPlateau(
                    o, mode="max", factor=c.lr_factor, patience=c.lr_patience
                )
                for o in optimizers
            ]
            if self.validates
            else []
        )
        return _Progress(optimizers, schedulers, np.random.default_rng(c.seed))

    def _resume(self, task, state: _Progress, folder: Path, fingerprint: str, device, epochs):
        """Restore ``state`` from ``folder/last.pt`` (refused when written by other settings)."""
        import torch

        saved = _load_checkpoint(folder / LAST_FILE, device)
        if saved["fingerprint"] != fingerprint:
            raise InputFileError(
                folder / LAST_FILE,
                "was written by a different configuration or "
                "dataset; train from scratch or use the same settings",
            )
        task.module.load_state_dict(saved["model"])
        for opt, s in zip(state.optimizers, saved["optimizers"], strict=True):
            opt.load_state_dict(s)
        for sch, s in zip(state.schedulers, saved["schedulers"], strict=True):
            sch.load_state_dict(s)
        state.rng.bit_generator.state = json.loads(saved["numpy_rng"])
        torch.set_rng_state(saved["torch_rng"])
        state.history = TrainingHistory(**orjson.loads(saved["history"]))
        state.start_epoch, state.bad_epochs = int(saved["epoch"]) + 1, int(saved["bad_epochs"])
        if (folder / BEST_FILE).exists():
            state.best_state = _load_checkpoint(folder / BEST_FILE, device)["model"]
        if state.history.stopped:
            log.info(
                "checkpoint %s: training had already finished (%s)",
                folder / LAST_FILE,
                state.history.stopped,
            )
            state.start_epoch = epochs

    def _epoch(self, task, state: _Progress, epoch, epochs, n_examples, deadline) -> dict:
        """One pass over ``n_examples`` examples (cut short at ``deadline``); its record."""
        began = time.perf_counter()
        task.module.train()
        total, steps, complete = 0.0, 0, True
        with progress(f"epoch {epoch + 1}/{epochs}", n_examples, "examples") as bar:
            for batch in task.batches(state.rng, n_examples, self.config.batch_size):
                for opt in state.optimizers:
                    opt.zero_grad(set_to_none=True)
                loss = task.loss(batch)
                loss.backward()
                for opt in state.optimizers:
                    opt.step()
                total += float(loss.detach())
                steps += 1
                size = getattr(batch, "size", None)
                bar.advance(size if isinstance(size, int) else self.config.batch_size)
                if time.perf_counter() >= deadline:
                    complete = False
                    break
        return {
            "epoch": epoch,
            "loss": total / max(steps, 1),
            "seconds": time.perf_counter() - began,
            "learning_rate": state.optimizers[0].param_groups[0]["lr"],
            "complete": complete,
        }

    def _validate(self, task, state: _Progress, epoch: int, record: dict) -> bool:
        """Validation Recall@K into ``record``, the schedulers stepped; whether it improved."""
        import torch

        task.module.eval()
        with torch.no_grad():
            metric = task.validate(self.config.k)
        if metric is None:
            return False
        record["validation_recall"] = metric
        for sch in state.schedulers:
            sch.step(metric)
        history = state.history
        if metric > history.best_metric:
            history.best_metric, history.best_epoch, state.bad_epochs = metric, epoch, 0
            state.best_state = {k: v.detach().clone() for k, v in task.module.state_dict().items()}
            return True
        state.bad_epochs += 1
        return False


class AdvancedTrainer(SimpleTrainer):
    """Validation Recall@K, ReduceLROnPlateau, early stopping, best + last checkpoints, resume."""

    validates = True


def _optimizers(module, learning_rate: float) -> list:
    import torch

    sparse, dense = [], []
    for sub in module.modules():
        if isinstance(sub, torch.nn.Embedding) and sub.sparse:
            sparse += list(sub.parameters(recurse=False))
    sparse_ids = {id(p) for p in sparse}
    dense = [p for p in module.parameters() if id(p) not in sparse_ids and p.requires_grad]
    out = []
    if dense:
        # The fused kernel: one pass over a dense embedding table instead of a dozen (6× faster
        # per step on a [729,000, 64] table on this machine's CPU).
        out.append(torch.optim.Adam(dense, lr=learning_rate, fused=True))
    if sparse:
        out.append(torch.optim.SparseAdam(sparse, lr=learning_rate))
    return out


def _fingerprint(config: TrainerConfig, task: TrainingTask) -> str:
    """What must match for a checkpoint to be resumed: the training settings and the task's own
    description (model config, data shape); not how the run runs (:class:`RunOptions`)."""
    return orjson.dumps(
        {"trainer": asdict(config), "task": getattr(task, "fingerprint", lambda: {})()},
        option=orjson.OPT_SORT_KEYS,
        default=str,
    ).decode()


def _write_checkpoints(folder: Path, task, state: _Progress, epoch, improved, fingerprint) -> None:
    """``best.pt`` when the epoch improved; ``last.pt`` (all a resume needs) every epoch."""
    import torch

    history = state.history
    if improved:
        _save_checkpoint(
            folder / BEST_FILE,
            {
                "format": CHECKPOINT_FORMAT,
                "model": state.best_state,
                "epoch": epoch,
                "metric": history.best_metric,
            },
        )
    _save_checkpoint(
        folder / LAST_FILE,
        {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": fingerprint,
            "epoch": epoch,
            "bad_epochs": state.bad_epochs,
            "model": task.module.state_dict(),
            "optimizers": [o.state_dict() for o in state.optimizers],
            "schedulers": [s.state_dict() for s in state.schedulers],
            "numpy_rng": json.dumps(state.rng.bit_generator.state),  # 128-bit ints: not orjson
            "torch_rng": torch.get_rng_state(),
            "history": orjson.dumps(history.to_dict()).decode(),
        },
    )


def _save_checkpoint(path: Path, state: dict) -> None:
    import torch

    with atomic_file(path) as handle:
        torch.save(state, handle)


def _load_checkpoint(path: Path, device) -> dict:
    import torch

    if not path.exists():
        raise InputFileError(path, "missing: no checkpoint to resume from")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many kinds for a corrupt or foreign file
        raise InputFileError(
            path, f"not a readable segue checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputFileError(path, "not a segue checkpoint (unknown format)")
    return state


def load_best_state(folder: Path, device: str = "cpu") -> dict:
    """The model ``state_dict`` of ``folder/best.pt`` (read with ``weights_only=True``)."""
    return _load_checkpoint(Path(folder) / BEST_FILE, resolve_device(device))["model"]
