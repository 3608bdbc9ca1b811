"""One config style: configs from dicts, JSON and ``--param``, nested groups, ensembles' params,
run options kept out of the saved model."""

from __future__ import annotations

import orjson
import pytest

from segue.errors import SegueError
from segue.models.config import (
    RunOptions,
    config_from_dict,
    config_from_pairs,
    flatten,
    given_values,
    parse_params,
    unflatten,
)
from segue.models.factor import ALSConfig
from segue.models.gnn.lightgcn import LightGCNConfig, LightGCNRecommender
from segue.models.gnn.listening import GATConfig, GenreGATConfig
from segue.models.hybrid import HybridConfig
from tests.models.test_contract import planted_data


def test_a_nested_group_is_set_key_by_key_over_the_models_own_defaults():
    config = config_from_pairs(LightGCNConfig, ["factors=16", "trainer.epochs=3"])
    assert config.factors == 16 and config.trainer.epochs == 3
    assert config.trainer.batch_size == 0  # LightGCN's own default (sized by the graph), kept
    gat = config_from_dict(GATConfig, {"trainer": {"epochs": 2}})
    assert gat.trainer.learning_rate == 0.0016  # the tuned model's default, not the trainer's
    # Nested dicts and dotted keys are the same thing, in JSON as on the command line.
    assert config_from_dict(LightGCNConfig, {"trainer.epochs": 3, "factors": 16}) == config
    assert GenreGATConfig().genre_aware and not GATConfig().genre_aware


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (
            ["trainer.epoch=3"],
            r"--param: trainer: unknown parameter epoch \(did you mean 'epochs'\?\) \(this model takes: ",
        ),
        (["trainer=3"], "trainer: expected an object of parameters"),
        (["trainer.mode=turbo"], "--param: trainer: mode must be one of mini"),
        (["trainer.learning_rate=fast"], "'fast' is not a valid float"),
        (["layers=2"], "lightgcn: layers must be 1 or 3"),
        (["factors"], "expected key=value"),
        (["trainer.epochs=3", "trainer=x"], "trainer is a group of parameters"),
    ],
)
def test_bad_parameters_name_the_key(pairs, message):
    with pytest.raises(SegueError, match=message):
        config_from_pairs(LightGCNConfig, pairs)


def test_json_values_of_the_wrong_type_are_refused_text_is_converted():
    assert config_from_dict(ALSConfig, {"factors": "32", "alpha": 2}).alpha == 2.0
    for values, message in [
        ({"factors": 2.5}, "factors: expected an integer, got 2.5"),
        ({"factors": True}, "factors: expected an integer"),
        ({"alpha": "x"}, "'x' is not a valid float"),
        ({"alpha": [1]}, "alpha: expected a number"),
    ]:
        with pytest.raises(SegueError, match=message):
            config_from_dict(ALSConfig, values)


def test_an_ensemble_takes_its_components_parameters_by_name():
    config = config_from_pairs(HybridConfig, ["components=itemknn,als", "als.factors=16"])
    assert config.params == {"als": {"factors": 16}}  # typed
    assert config == HybridConfig(components="itemknn,als", params={"als": {"factors": 16}})
    assert hash(config) == hash(HybridConfig(components="itemknn,als", params={}))  # usable as key
    with pytest.raises(SegueError, match="given for svd, which is not among the components"):
        config_from_pairs(HybridConfig, ["components=itemknn,als", "svd.factors=16"])
    with pytest.raises(SegueError, match="cannot contain a gat"):
        config_from_pairs(HybridConfig, ["components=itemknn,gat"])


def test_flat_and_nested_forms_round_trip_and_given_values_keep_only_what_was_set():
    nested = {"factors": 16, "trainer": {"epochs": 3, "mode": "mini"}}
    assert flatten(nested) == {"factors": 16, "trainer.epochs": 3, "trainer.mode": "mini"}
    assert unflatten(flatten(nested)) == nested
    assert parse_params(["trainer.epochs=3"]) == {"trainer": {"epochs": "3"}}
    config = config_from_dict(LightGCNConfig, {"trainer.epochs": "3"})
    assert given_values(config, {"trainer": {"epochs": "3"}}) == {"trainer": {"epochs": 3}}


def test_run_options_reach_the_trainer_but_not_the_saved_model(tmp_path):
    with pytest.raises(SegueError, match="resume needs a checkpoint directory"):
        RunOptions(resume=True)
    config = config_from_pairs(
        LightGCNConfig, ["factors=8", "trainer.mode=mini", "trainer.epochs=1"]
    )
    model = LightGCNRecommender(config).fit(
        planted_data(), RunOptions("cpu", checkpoint_dir=str(tmp_path / "ckpt"))
    )
    assert (tmp_path / "ckpt" / "last.pt").exists()
    model.save(tmp_path / "model")
    saved = orjson.loads((tmp_path / "model" / "params.json").read_bytes())
    assert saved["config"]["trainer"]["epochs"] == 1
    assert "device" not in orjson.dumps(saved["config"]).decode()
    assert "checkpoint" not in orjson.dumps(saved["config"]).decode()


def test_the_registry_names_every_registered_model_with_its_module():
    """Each model is imported alone by name (``_MODULES``); the map must list every model its
    modules register, under the right module."""
    from segue.models import registry

    registry._load_all()
    assert set(registry._MODULES) == set(registry._MODELS)
    for name, module in registry._MODULES.items():
        assert registry._MODELS[name].__module__ == module, name
