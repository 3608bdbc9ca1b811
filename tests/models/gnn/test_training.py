"""Trainers: early stopping, the learning-rate schedule, best/last checkpoints, resume, bad input."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import scipy.sparse as sp

from segue.errors import InputFileError, SegueError
from segue.models.config import RunOptions
from segue.models.gnn.graph import PlaylistGraph
from segue.models.gnn.lightgcn import LightGCNConfig, LightGCNRecommender, LightGCNTask
from segue.models.gnn.playlist import carve_validation, held_out
from segue.models.gnn.training import (
    BEST_FILE,
    LAST_FILE,
    AdvancedTrainer,
    SimpleTrainer,
    TrainerConfig,
    TrainingTask,
    load_best_state,
    parse_duration,
    resolve_device,
)
from tests.models.test_contract import planted_data

torch = pytest.importorskip("torch")


class ScriptedTask(TrainingTask):
    """A one-weight model whose validation scores follow a script."""

    def __init__(self, scores: list[float]):
        self.module = torch.nn.Linear(1, 1, bias=False)
        self.scores = list(scores)
        self.n_edges = 10
        self.weights_at = []

    def batches(self, rng, n_examples, batch_size):
        for _ in range(2):
            yield torch.from_numpy(rng.random((4, 1)).astype(np.float32))

    def loss(self, batch):
        return self.module(batch).pow(2).mean()

    def validate(self, k):
        self.weights_at.append(float(self.module.weight))
        return self.scores.pop(0)


CPU = RunOptions("cpu")


def test_early_stopping_restores_the_best_epoch_and_lowers_the_learning_rate(tmp_path):
    task = ScriptedTask([0.1, 0.3, 0.2, 0.25, 0.1, 0.9])
    config = TrainerConfig(mode="mini", epochs=6, patience=3)
    history = AdvancedTrainer(config, RunOptions("cpu", str(tmp_path))).fit(task)
    assert history.best_epoch == 1 and history.best_metric == 0.3
    assert len(history.epochs) == 5 and history.stopped.startswith(
        "early stop"
    )  # 0.9 never reached
    assert history.early_stopped and all(e["complete"] for e in history.epochs)
    assert float(task.module.weight.detach()) == pytest.approx(
        task.weights_at[1]
    )  # best weights restored
    rates = [e["learning_rate"] for e in history.epochs]
    assert rates[0] == 0.01 and rates[-1] < rates[0]  # ReduceLROnPlateau
    best = torch.load(tmp_path / BEST_FILE, weights_only=True)
    last = torch.load(tmp_path / LAST_FILE, weights_only=True)
    assert best["epoch"] == 1 and last["epoch"] == 4
    assert float(load_best_state(tmp_path)["weight"]) == pytest.approx(task.weights_at[1])


class SlowTask(ScriptedTask):
    """Batches that take 50 ms each, 40 per epoch (2 s), and a validation that keeps improving."""

    def __init__(self):
        super().__init__([i / 1000 for i in range(1000)])

    def batches(self, rng, n_examples, batch_size):
        for _ in range(40):
            time.sleep(0.05)
            yield torch.ones((2, 1))


def test_a_time_budget_stops_training_on_time_even_mid_epoch():
    task = SlowTask()
    began = time.perf_counter()
    history = AdvancedTrainer(TrainerConfig(mode="quick", budget_seconds=5), CPU).fit(task)
    elapsed = time.perf_counter() - began
    assert 5 <= elapsed < 6.5
    assert history.stopped == "time budget of 5 s reached" and not history.early_stopped
    assert [e["complete"] for e in history.epochs] == [
        True,
        True,
        False,
    ]  # 2 s epochs: cut in the third
    assert history.best_epoch == 2 and history.budget_seconds == 5


def test_durations_are_read_with_units():
    assert [parse_duration(t) for t in ("90", "90s", "10m", "1.5h")] == [90, 90, 600, 5400]
    for bad in ("", "ten minutes", "-5m", "0", "nan"):
        with pytest.raises(SegueError, match="duration"):
            parse_duration(bad)


def test_simple_trainer_runs_every_epoch_without_validation():
    task = ScriptedTask([])
    history = SimpleTrainer(TrainerConfig(mode="mini", epochs=3), CPU).fit(task)
    assert (
        len(history.epochs) == 3
        and task.weights_at == []
        and history.stopped == "finished 3 epochs"
    )


class Interrupted(Exception):
    pass


def lightgcn_task(interrupt_at: int | None = None) -> LightGCNTask:
    data = planted_data()
    graph = PlaylistGraph.from_playlist_data(data)
    split = carve_validation(graph.playlist_tracks, 20, 0.3, seed=0)
    training = dataclasses.replace(
        graph, playlist_tracks=split.train, track_playlists=sp.csr_matrix(split.train.T)
    )
    config = LightGCNConfig(trainer=TrainerConfig(mode="mini", batch_size=0))

    # validate() ranks the held-out playlists through a (not otherwise fitted) recommender.
    owner = LightGCNRecommender(config)
    owner.popularity = data.track_popularity
    task = LightGCNTask(training, config, held_out(split.train, split.validation), owner)
    if interrupt_at is not None:
        calls = {"n": 0}
        original = task.batches

        def batches(rng, n, b):
            calls["n"] += 1
            if calls["n"] == interrupt_at:
                raise Interrupted
            return original(rng, n, b)

        task.batches = batches
    return task


def test_resume_gives_the_uninterrupted_result(tmp_path):
    config = TrainerConfig(mode="mini", epochs=3, patience=5)
    straight = lightgcn_task()
    AdvancedTrainer(config, CPU).fit(straight)
    folder = tmp_path / "ckpt"
    first = lightgcn_task(interrupt_at=3)
    with pytest.raises(Interrupted):
        AdvancedTrainer(config, RunOptions("cpu", str(folder))).fit(first)
    assert torch.load(folder / LAST_FILE, weights_only=True)["epoch"] == 1
    resumed = lightgcn_task()
    history = AdvancedTrainer(config, RunOptions("cpu", str(folder), resume=True)).fit(resumed)
    assert [e["epoch"] for e in history.epochs] == [0, 1, 2]
    torch.testing.assert_close(resumed.module.embedding.weight, straight.module.embedding.weight)
    # A checkpoint from other settings is refused, not silently mixed in.
    with pytest.raises(InputFileError, match="different configuration"):
        AdvancedTrainer(
            dataclasses.replace(config, epochs=5), RunOptions("cpu", str(folder), resume=True)
        ).fit(lightgcn_task())


def test_bad_settings_and_files_get_clear_errors(tmp_path):
    with pytest.raises(SegueError, match="mode must be one of"):
        TrainerConfig(mode="turbo")
    with pytest.raises(SegueError, match="learning_rate positive"):
        TrainerConfig(learning_rate=0)
    with pytest.raises(SegueError, match="resume needs a checkpoint directory"):
        RunOptions("cpu", resume=True)
    resume = RunOptions("cpu", str(tmp_path), resume=True)
    with pytest.raises(InputFileError, match="no checkpoint to resume"):
        SimpleTrainer(TrainerConfig(), resume).fit(ScriptedTask([]))
    (tmp_path / LAST_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(InputFileError, match="not a readable segue checkpoint"):
        SimpleTrainer(TrainerConfig(), resume).fit(ScriptedTask([]))
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(SegueError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(SegueError, match="device must be"):
        resolve_device("tpu")
