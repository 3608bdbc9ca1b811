"""The orchestration every front end shares: rankings of models on a split part (refusing models
trained on other data), answering a challenge set, an evaluation read back from its JSON."""

from __future__ import annotations

import numpy as np
import pytest

from segue.data import schema
from segue.errors import SegueError
from segue.evaluation.rankings import answer_challenge, part_rankings, unique_name
from segue.evaluation.runner import EvaluationResult, evaluate
from segue.evaluation.split import split_dataset
from segue.evaluation.submission import check_submission, read_submission
from segue.evaluation.task import load_part
from segue.models.base import Queries, Recommender
from segue.models.registry import get_model_class


@pytest.fixture(scope="module")
def trained(small_data, tmp_path_factory):
    """A split of the small set, popular trained on its test part's training data and on the
    whole collection."""
    base = tmp_path_factory.mktemp("rankings")
    split_dataset(small_data, base / "split", per_category=5, seed=0)
    loaded = load_part(base / "split", "test")
    cls = get_model_class("popular")
    cls(cls.Config()).fit(loaded.train).save(base / "popular")
    from segue.data.dataset import PlaylistData

    cls(cls.Config()).fit(PlaylistData.load(small_data)).save(base / "whole")
    return base, loaded


def test_part_rankings_are_the_models_own_lists_under_unique_names(trained):
    base, loaded = trained
    rankings = part_rankings(
        loaded, [base / "popular", base / "popular"], n=50, reserved={"popular-2"}
    )
    assert list(rankings) == ["popular", "popular-3"]
    queries, _ = Queries.from_challenge(loaded.entries, loaded.train.uri_to_id)
    expected = Recommender.load(base / "popular").recommend(queries, 50).ids
    assert rankings["popular"].dtype == np.int64 and rankings["popular"].shape == (
        len(loaded.entries),
        50,
    )
    np.testing.assert_array_equal(rankings["popular"], expected)
    np.testing.assert_array_equal(rankings["popular-3"], expected)


def test_a_model_trained_on_other_data_is_refused_before_any_recommends(trained):
    base, loaded = trained
    assert Recommender.load(base / "whole").trained_on["manifest_sha256"] != schema.manifest_digest(
        loaded.train_dir
    )
    with pytest.raises(
        SegueError, match=r"whole: this model was not trained on .*could leak held-out playlists"
    ):
        part_rankings(loaded, [base / "popular", base / "whole"])


def test_answering_a_challenge_set_writes_a_submission_its_checker_accepts(trained, tmp_path):
    base, loaded = trained
    model = Recommender.load(base / "popular")
    challenge = base / "split" / "test" / schema.CHALLENGE_FILE
    answer = answer_challenge(model, challenge, tmp_path / "answer.csv.gz", n=500, check=True)
    assert answer.playlists == len(loaded.entries) and answer.n == 500 and answer.model == "popular"
    assert check_submission(answer.path, loaded.entries).ok
    rows = read_submission(answer.path, loaded.entries)
    uris = model.catalog().column(schema.TRACK_URI).to_pylist()
    first = loaded.entries[0]["pid"]
    assert rows[first] == [uris[i] for i in answer.ranking.ids[0]]
    # The same answer through the ranking of the evaluation: the submission scores as the model does.
    submitted = part_rankings(loaded, submissions=[answer.path])["answer"]
    np.testing.assert_array_equal(submitted, part_rankings(loaded, [base / "popular"])["popular"])


def test_an_evaluation_reads_back_from_its_json_with_the_same_headline(trained):
    base, loaded = trained
    result = evaluate(
        loaded.task, part_rankings(loaded, [base / "popular"]), n_bootstrap=100, seed=0
    )
    again = EvaluationResult.from_json(result.to_json())
    assert again.headline() == result.headline()
    lines = result.headline().splitlines()
    assert lines[0].split() == ["model", "R-precision", "NDCG", "clicks"] and lines[1].startswith(
        "popular "
    )
    mean = result.table["popular"]["all"]["r_precision"]["mean"]
    assert f"{mean:.4f} [" in lines[1]


def test_unique_name_skips_every_taken_name():
    assert unique_name("a", set()) == "a" and unique_name("a", {"a"}) == "a-2"
    assert unique_name("a", {"a", "a-2", "a-3"}) == "a-4"
