"""``segue tune`` through main(argv) and ``segue.tuning``: a planted best is found and scored as
``segue evaluate`` scores it, best.json trains the same model, the same seed gives the same
trials, a study resumes, a refused configuration is skipped, and bad inputs exit 2 naming what.

playlistknn is the model tuned: it fits in a tenth of a second on the 4,000-playlist data, and
one voting neighbour (``n_neighbors=1``) is clearly worse than a hundred on every split of it
(R-precision about 0.020 against 0.029 on the 200 validation playlists).
"""

from __future__ import annotations

import csv
import json

import pytest

from segue.cli import main
from segue.tuning import SPACES, tune

PLANTED = {"n_neighbors": {"type": "categorical", "choices": [1, 100]}}
TWO_PARAMS = {
    "n_neighbors": {"type": "int", "low": 1, "high": 200, "log": True},
    "power": {"type": "float", "low": 0.5, "high": 4.0},
}


@pytest.fixture(scope="module")
def split(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "split"
    assert (
        main(
            [
                "split",
                str(small_data),
                "--out",
                str(out),
                "--per-category",
                "5",
                "--validation-per-category",
                "20",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    return out


def _write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _rows(out):
    with (out / "trials.csv").open() as handle:
        return list(csv.DictReader(handle))


def _without_times(rows):
    return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in rows]


def test_planted_best_is_found_and_scored_like_evaluate(split, tmp_path, capsys):
    out, space = tmp_path / "tuned", _write(tmp_path / "space.json", PLANTED)
    assert (
        main(
            [
                "tune",
                "playlistknn",
                str(split),
                "--trials",
                "4",
                "--space",
                str(space),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "best r_precision" in printed and "n_neighbors=100" in printed
    rows = _rows(out)
    assert [r["number"] for r in rows] == ["0", "1", "2", "3"] and {r["state"] for r in rows} == {
        "complete"
    }
    assert {r["n_neighbors"] for r in rows} == {"1", "100"}  # both tried (TPE, seed 0)
    best = max(rows, key=lambda r: float(r["value"]))
    worst = min(rows, key=lambda r: float(r["value"]))
    assert best["n_neighbors"] == "100" and worst["n_neighbors"] == "1"
    assert json.loads((out / "best.json").read_text()) == {"n_neighbors": 100}
    for figure in ("history.png", "importance.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary left

    # The known right answer: the best value is what `segue evaluate --part validation` reports
    # for the model trained from best.json on the validation training part.
    model, report = tmp_path / "model", tmp_path / "eval"
    assert (
        main(
            [
                "train",
                "playlistknn",
                str(split / "validation" / "train"),
                "--config",
                str(out / "best.json"),
                "--out",
                str(model),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                str(model),
                "--split",
                str(split),
                "--part",
                "validation",
                "--out",
                str(report),
                "--bootstrap",
                "100",
            ]
        )
        == 0
    )
    table = json.loads((report / "evaluation.json").read_text())["table"]
    assert table["model"]["all"]["r_precision"]["mean"] == pytest.approx(
        float(best["value"]), abs=1e-12
    )


def test_best_json_round_trips_into_train_config(split, tmp_path, capsys):
    out = tmp_path / "tuned"
    result = tune("playlistknn", split, out, trials=3, space=TWO_PARAMS, fixed_params={"seed": 5})
    best = json.loads((out / "best.json").read_text())
    assert (
        best == result["best_params"]
        and set(best) == {"n_neighbors", "power", "seed"}
        and best["seed"] == 5
    )
    model = tmp_path / "model"
    assert (
        main(
            [
                "train",
                "playlistknn",
                str(split / "train"),
                "--config",
                str(out / "best.json"),
                "--out",
                str(model),
            ]
        )
        == 0
    )
    config = json.loads((model / "params.json").read_text())["config"]
    assert {k: config[k] for k in best} == best
    # --param wins over the file.
    assert (
        main(
            [
                "train",
                "playlistknn",
                str(split / "train"),
                "--config",
                str(out / "best.json"),
                "--param",
                "power=3",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    config = json.loads((model / "params.json").read_text())["config"]
    assert config["power"] == 3.0 and config["n_neighbors"] == best["n_neighbors"]


def test_same_seed_same_trials(split, tmp_path):
    runs = [
        tune("playlistknn", split, tmp_path / name, trials=5, space=TWO_PARAMS, seed=seed)
        for name, seed in (("a", 7), ("b", 7), ("c", 8))
    ]
    a, b, c = (_without_times(_rows(tmp_path / name)) for name in "abc")
    assert a == b and len(a) == 5
    assert (
        runs[0]["best_params"] == runs[1]["best_params"]
        and runs[0]["best_value"] == runs[1]["best_value"]
    )
    assert [r["power"] for r in a] != [r["power"] for r in c]  # the seed matters
    assert set(runs[0]["importances"]) == {"n_neighbors", "power"}


def test_resuming_adds_trials_to_the_study(split, tmp_path, capsys):
    out, space = tmp_path / "tuned", _write(tmp_path / "space.json", TWO_PARAMS)
    args = ["tune", "playlistknn", str(split), "--space", str(space), "--out", str(out)]
    assert main([*args, "--trials", "3"]) == 0
    first = _without_times(_rows(out))
    assert main([*args, "--trials", "2"]) == 0
    assert " of 5; 2 run now" in capsys.readouterr().out
    rows = _without_times(_rows(out))
    assert [r["number"] for r in rows] == ["0", "1", "2", "3", "4"] and rows[:3] == first
    assert {r["power"] for r in rows[3:]}.isdisjoint(r["power"] for r in first)  # no replayed draws
    import optuna

    study = optuna.load_study(study_name="playlistknn", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 5
    # A study is resumed only with the settings it was started with.
    assert main([*args, "--trials", "1", "--metric", "ndcg"]) == 2
    assert "started with another metric" in capsys.readouterr().err
    assert main(["tune", "title", str(split), "--trials", "1", "--out", str(out)]) == 2
    assert "holds the study of playlistknn" in capsys.readouterr().err
    assert len(_rows(out)) == 5
    (tmp_path / "other").mkdir()
    _write(tmp_path / "other" / "study.db", "not a database")
    assert main([*args[:-1], str(tmp_path / "other"), "--trials", "1"]) == 2
    assert "study.db: not an SQLite database" in capsys.readouterr().err


def test_refused_configuration_is_skipped_not_fatal(split, tmp_path, capsys):
    space = {"power": {"type": "categorical", "choices": [0.0, 2.0]}}  # power must be positive
    result = tune("playlistknn", split, tmp_path / "t", trials=4, space=space, metric="clicks")
    rows = _rows(tmp_path / "t")
    skipped = [r for r in rows if r["state"] == "pruned"]
    assert skipped and all(
        r["power"] == "0.0" and "power must be positive" in r["error"] for r in skipped
    )
    assert result["best_params"] == {"power": 2.0} and result["direction"] == "minimize"
    assert result["n_skipped"] == len(skipped) and result["n_complete"] == 4 - len(skipped)
    # Every trial refused: one clear error, no best.json.
    only_bad = _write(tmp_path / "bad.json", {"power": {"type": "categorical", "choices": [0.0]}})
    assert (
        main(
            [
                "tune",
                "playlistknn",
                str(split),
                "--trials",
                "2",
                "--space",
                str(only_bad),
                "--out",
                str(tmp_path / "u"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "no trial of playlistknn completed" in err and "power must be positive" in err
    assert not (tmp_path / "u" / "best.json").exists()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"neighbours": {"type": "int", "low": 1, "high": 5}}, "unknown parameter 'neighbours'"),
        (
            {"n_neighbors": {"type": "int", "low": 50, "high": 5}},
            "n_neighbors: low (50) is greater than high (5)",
        ),
        (
            {"power": {"type": "float", "low": 0, "high": 2, "log": True}},
            "power: a log scale needs low > 0",
        ),
        (
            {"n_neighbors": {"type": "float", "low": 1, "high": 5}},
            "n_neighbors: the parameter is an integer",
        ),
        (
            {"power": {"type": "normal", "low": 1, "high": 5}},
            "power: type must be one of int, float, categorical",
        ),
        (
            {"power": {"type": "categorical", "choices": []}},
            "power: choices must be a non-empty list",
        ),
        ({"power": {"type": "float", "low": 1}}, "power: high is missing"),
        ([1, 2], "expected a JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_space_file_is_named(split, tmp_path, capsys, space, message):
    path = _write(tmp_path / "space.json", space)
    assert (
        main(
            ["tune", "playlistknn", str(split), "--space", str(path), "--out", str(tmp_path / "t")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert str(path) in err and message in err and "Traceback" not in err
    assert not (tmp_path / "t").exists()


def test_bad_arguments_exit_2_naming_the_thing(split, small_data, tmp_path, capsys):
    out = str(tmp_path / "t")
    cases = [
        (["tune", "nope", str(split)], "unknown model 'nope'"),
        (["tune", "popular", str(split)], "popular has no parameters to tune"),
        (["tune", "rules", str(split)], "rules has no built-in search space"),
        (
            ["tune", "playlistknn", str(split), "--trials", "0"],
            "--trials must be at least 1, got 0",
        ),
        (["tune", "playlistknn", str(split), "--timeout", "0"], "--timeout must be a positive"),
        (
            ["tune", "playlistknn", str(split), "--metric", "auc"],
            "--metric must be one of r_precision, ndcg, clicks",
        ),
        (["tune", "playlistknn", str(small_data)], f"{small_data}: not a split directory"),
        (["tune", "playlistknn", str(split), "--param", "power=-1"], "power must be positive"),
        (
            ["tune", "playlistknn", str(split), "--param", "neighbours=3"],
            "unknown parameter neighbours",
        ),
        (
            ["tune", "playlistknn", str(split), "--param", "n_neighbors=3", "--param", "power=2"],
            "nothing left to tune",
        ),
    ]
    for argv, message in cases:
        assert main([*argv, "--out", out]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "t").exists()


def test_train_config_file_errors_name_file_and_key(split, tmp_path, capsys):
    train = ["train", "playlistknn", str(split / "train"), "--out", str(tmp_path / "m")]
    cases = [
        (tmp_path / "missing.json", "no such file"),
        (_write(tmp_path / "list.json", [1]), "expected a JSON object of parameters"),
        (_write(tmp_path / "broken.json", "{"), "not valid JSON"),
        (_write(tmp_path / "unknown.json", {"neighbours": 3}), "unknown parameter neighbours"),
        (
            _write(tmp_path / "type.json", {"n_neighbors": "many"}),
            "n_neighbors: 'many' is not a valid int",
        ),
        (_write(tmp_path / "value.json", {"power": -1}), "power must be positive"),
    ]
    for path, message in cases:
        assert main([*train, "--config", str(path)]) == 2, path
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (path, err)
        if "must be positive" not in message:
            assert str(path) in err
    assert not (tmp_path / "m").exists()


def test_train_reads_a_toml_config(split, tmp_path, capsys):
    import json

    out = tmp_path / "m"
    (tmp_path / "p.toml").write_text("n_neighbors = 7\n")
    train = ["train", "playlistknn", str(split / "train"), "--out", str(out)]
    assert main([*train, "--config", str(tmp_path / "p.toml")]) == 0
    assert json.loads((out / "params.json").read_text())["config"]["n_neighbors"] == 7
    (tmp_path / "bad.toml").write_text("n_neighbors = \n")
    assert main([*train, "--config", str(tmp_path / "bad.toml")]) == 2
    assert f"{tmp_path / 'bad.toml'}: not valid TOML" in capsys.readouterr().err
    (tmp_path / "nested.toml").write_text("[trainer]\nepochs = 2\n")
    from segue.models.gnn.lightgcn import LightGCNConfig
    from segue.tuning import read_params_file

    assert read_params_file(tmp_path / "nested.toml", LightGCNConfig) == {"trainer": {"epochs": 2}}


def test_built_in_spaces_fit_their_models():
    from segue.models.config import config_from_dict
    from segue.models.registry import get_model_class
    from segue.tuning import config_class, space_for

    for name in SPACES:
        space = space_for(name, config_class(name))  # names real fields, valid ranges
        for key, spec in space.items():  # every choice is a value the config accepts
            for choice in spec.get("choices", [spec.get("low"), spec.get("high")]):
                config_from_dict(config_class(name), {key: choice})
    assert set(SPACES) == {
        "als",
        "svd",
        "bpr",
        "itemknn",
        "playlistknn",
        "title",
        "embed",
        "lightgcn",
        "playlistgat",
        "gat",
        "genre_gat",
    }
    assert config_class("als") is get_model_class("als").Config
    assert config_class("gat").__name__ == "GATConfig"


# ------------------------------------------------------------------------------------------------
# The listening GATs: tuned on a listening split's validation part, trained from best.json
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listening_dir(tmp_path_factory):
    from tests.models.gnn.test_listening import planted_listening

    path = tmp_path_factory.mktemp("listening") / "data"
    planted_listening().write(path, source="planted test data")
    return path


def test_listening_gat_planted_best_is_found_and_scored_like_the_harness(
    listening_dir, tmp_path, capsys
):
    """A learning rate of 1e-7 leaves the embeddings where they started; 0.03 learns the planted
    genres (validation Recall@10 well above it): the study must pick 0.03, its value must be the
    harness's recall of that model on the validation part, and best.json must train it."""
    import numpy as np

    from segue.evaluation.sessions import evaluate_listening
    from segue.models.config import config_from_dict
    from segue.models.gnn.listening import GATConfig, GATRecommender, ListeningGATRecommender
    from segue.models.gnn.runs import load_listening_split

    space = _write(
        tmp_path / "space.json",
        {"trainer.learning_rate": {"type": "categorical", "choices": [1e-7, 0.03]}},
    )
    out = tmp_path / "tuned"
    fixed = ["--param", "trainer.epochs=3", "--param", "heads=2"]
    argv = [
        "tune",
        "gat",
        str(listening_dir),
        "--trials",
        "4",
        "--space",
        str(space),
        "--out",
        str(out),
    ]
    assert main([*argv, *fixed]) == 0
    printed = capsys.readouterr().out
    assert "best recall" in printed and f"segue train gat {listening_dir} --config" in printed
    best = json.loads((out / "best.json").read_text())
    assert best == {"heads": [2], "trainer.epochs": 3, "trainer.learning_rate": 0.03}
    values = {float(r["trainer.learning_rate"]): float(r["value"]) for r in _rows(out)}
    assert values[0.03] > values[1e-7] + 0.1

    split = load_listening_split(listening_dir, 0)
    config = config_from_dict(
        GATConfig, {"trainer.epochs": 3, "heads": "2", "trainer.learning_rate": 0.03}
    )
    model = GATRecommender(config).fit(split.train, split.validation)
    ranking = model.recommend_users(split.validation.users, 100)
    recall = evaluate_listening(split.validation, {"gat": ranking}, k=10).table["gat"]["all"][
        "recall"
    ]
    assert np.isclose(values[0.03], recall)

    assert (
        main(
            [
                "train",
                "gat",
                str(listening_dir),
                "--config",
                str(out / "best.json"),
                "--out",
                str(tmp_path / "model"),
                "-p",
                "trainer.mode=mini",
            ]
        )
        == 0
    )
    trained = ListeningGATRecommender.load(tmp_path / "model")
    assert trained.config.trainer.learning_rate == 0.03 and trained.config.heads == (2,)
    assert trained.config.trainer.mode == "mini" and trained.config.trainer.epochs == 3
    assert trained.config.temperature == GATConfig().temperature  # the model's own default stays


def test_listening_tuning_refuses_what_does_not_fit(listening_dir, split, tmp_path, capsys):
    out = str(tmp_path / "t")
    cases = [
        (["tune", "gat", str(split)], "gat is tuned on listening data"),
        (
            ["tune", "playlistknn", str(listening_dir)],
            "is listening data; playlistknn is tuned on a playlist split",
        ),
        (
            ["tune", "gat", str(listening_dir), "--metric", "r_precision"],
            "--metric must be one of recall, ndcg",
        ),
        (["tune", "gat", str(listening_dir), "--param", "heads=2,x"], "'x' is not a valid int"),
        (["tune", "gat", str(listening_dir), "--param", "alpah=1"], "unknown parameter alpah"),
    ]
    for argv, message in cases:
        assert main([*argv, "--out", out]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "t").exists()
    bad = _write(tmp_path / "bad.json", {"heads": "four"})
    assert main(["train", "gat", str(listening_dir), "--config", str(bad), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "'four' is not a valid int" in err and str(bad) in err and "Traceback" not in err
