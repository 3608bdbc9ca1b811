"""The model commands through main(argv): train with --param, recommend one playlist with
explanations, recommend a challenge set with --explain, similar, and their bad inputs."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from segue.cli import main
from segue.data import schema


@pytest.fixture(scope="module")
def itemknn_dir(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "itemknn"
    assert (
        main(["train", "itemknn", str(small_data), "--out", str(out), "--param", "n_neighbors=50"])
        == 0
    )
    return out


def _popular_uri(small_data) -> tuple[str, str]:
    tracks = pq.read_table(
        small_data / schema.TRACKS_FILE, columns=[schema.TRACK_URI, schema.TRACK_NAME]
    )
    entries = pq.read_table(small_data / schema.PLAYLIST_TRACKS_FILE, columns=[schema.TRACK_ID])
    import numpy as np

    top = int(np.bincount(entries.column(schema.TRACK_ID).to_numpy()).argmax())
    return tracks.column(schema.TRACK_URI)[top].as_py(), tracks.column(schema.TRACK_NAME)[
        top
    ].as_py()


def test_params_are_applied_and_saved(itemknn_dir):
    import json

    params = json.loads((itemknn_dir / "params.json").read_text())
    assert params["model"] == "itemknn" and params["config"]["n_neighbors"] == 50


def test_unknown_or_bad_params_exit_2(small_data, tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "itemknn",
                str(small_data),
                "--out",
                str(tmp_path / "m"),
                "--param",
                "neighbours=5",
            ]
        )
        == 2
    )
    assert "unknown parameter neighbours" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "als",
                str(small_data),
                "--out",
                str(tmp_path / "m"),
                "--param",
                "factors=lots",
            ]
        )
        == 2
    )
    assert "'lots' is not a valid int" in capsys.readouterr().err
    assert main(["train", "nope", str(small_data), "--out", str(tmp_path / "m")]) == 2
    assert not (tmp_path / "m").exists()


def test_one_playlist_with_explanations(itemknn_dir, small_data, capsys):
    uri, name = _popular_uri(small_data)
    assert main(["recommend", str(itemknn_dir), "--track", uri, "-n", "5", "--explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ranked = [line for line in lines if line.strip()[:2].rstrip(".").isdigit()]
    assert len(ranked) == 5 and ranked[0].strip().startswith("1.")
    because = [line for line in lines if line.strip().startswith("Because the playlist has")]
    assert len(because) == 5 and all(name in line for line in because)  # the only seed is named


def test_challenge_set_with_explain(itemknn_dir, small_mpd, tmp_path, capsys):
    out = tmp_path / "sub.csv.gz"
    assert (
        main(
            [
                "recommend",
                str(itemknn_dir),
                "--challenge",
                str(small_mpd / "challenge_set.json"),
                "--out",
                str(out),
                "--explain",
                "--explain-playlists",
                "2",
                "--explain-tracks",
                "3",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert out.exists() and text.count("\npid ") == 2
    assert text.count("   1. ") == 2 and text.count("   3. ") == 2


def test_similar_lists_companions(itemknn_dir, small_data, capsys):
    uri, name = _popular_uri(small_data)
    assert main(["similar", str(itemknn_dir), uri, "-n", "4", "--explain"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"tracks to play with {name}")
    assert "   4. " in out and "   5. " not in out and "Because the playlist has" in out


def test_json_output_and_search(itemknn_dir, small_data, capsys):
    import orjson

    uri, name = _popular_uri(small_data)
    assert main(["recommend", str(itemknn_dir), "--track", uri, "-n", "3", "--format", "json"]) == 0
    document = orjson.loads(capsys.readouterr().out)
    assert document["model"] == "itemknn" and len(document["items"]) == 3
    first = document["items"][0]
    assert first["rank"] == 1 and first["uri"].startswith("spotify:track:") and first["uri"] != uri
    assert main(["similar", str(itemknn_dir), uri, "-n", "2", "--format", "json", "--explain"]) == 0
    items = orjson.loads(capsys.readouterr().out)["items"]
    assert len(items) == 2 and all(i["because"] and i["evidence"] for i in items)
    # text output names each track with its URI
    assert main(["similar", str(itemknn_dir), uri, "-n", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].strip().startswith("1.") and lines[1].endswith(items[0]["uri"])
    # search: by the model's catalog or by the dataset's, the same tracks; typos corrected
    word = name.split()[0]
    for source in (itemknn_dir, small_data):
        assert main(["search", word, str(source), "-n", "5", "--format", "json"]) == 0
        found = orjson.loads(capsys.readouterr().out)
        assert uri in [i["uri"] for i in found["items"]], (source, found)
    typo = word[:-1] + ("x" if word[-1] != "x" else "y")
    assert main(["search", typo + " ", str(itemknn_dir), "-n", "50"]) == 0
    out = capsys.readouterr().out
    assert f"no track has {typo.lower()!r}; searched" in out and uri in out
    assert main(["search", "x", str(small_data / "nothing")]) == 2
    assert "neither a model directory" in capsys.readouterr().err
    assert main(["similar", str(itemknn_dir), uri, "--format", "yaml"]) == 2
    assert "--format must be text or json" in capsys.readouterr().err


def test_bad_inputs_name_the_problem(itemknn_dir, small_mpd, tmp_path, capsys):
    assert main(["similar", str(itemknn_dir), "spotify:track:doesnotexist"]) == 2
    assert "not in the catalog" in capsys.readouterr().err
    assert main(["recommend", str(itemknn_dir), "--track", "spotify:track:doesnotexist"]) == 2
    assert "1 of 1 tracks are not in the catalog of model itemknn" in capsys.readouterr().err
    assert main(["recommend", str(itemknn_dir)]) == 2
    assert "give either --challenge" in capsys.readouterr().err
    assert (
        main(["recommend", str(itemknn_dir), "--challenge", str(small_mpd / "challenge_set.json")])
        == 2
    )
    assert "needs --out" in capsys.readouterr().err
    assert main(["similar", str(tmp_path), "spotify:track:x"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_hybrid_reuses_trained_components(itemknn_dir, small_data, tmp_path, capsys):
    """--components-from: the hybrid tunes its weights over models already trained on the data
    (their parameters as the hybrid's config says), and refuses when one is missing."""
    import json

    components = itemknn_dir.parent
    assert main(["train", "title", str(small_data), "--out", str(components / "title")]) == 0
    config = [
        "--param",
        "components=title,itemknn",
        "--param",
        "itemknn.n_neighbors=50",
        "--param",
        "validation_per_group=20",
    ]
    out = tmp_path / "hybrid"
    assert (
        main(
            [
                "train",
                "hybrid",
                str(small_data),
                "--out",
                str(out),
                *config,
                "--components-from",
                str(components),
            ]
        )
        == 0
    )
    assert "weights per query group" in capsys.readouterr().out
    assert json.loads((out / "params.json").read_text())["config"]["components"] == "title,itemknn"
    # A component trained with other parameters is not the configured one: refused, nothing written.
    bad = ["--param", "components=title,itemknn", "--param", "validation_per_group=20"]
    assert (
        main(
            [
                "train",
                "hybrid",
                str(small_data),
                "--out",
                str(tmp_path / "h2"),
                *bad,
                "--components-from",
                str(components),
            ]
        )
        == 2
    )
    assert (
        "trained with other parameters" in capsys.readouterr().err
        and not (tmp_path / "h2").exists()
    )
    assert (
        main(
            [
                "train",
                "hybrid",
                str(small_data),
                "--out",
                str(tmp_path / "h3"),
                "--components-from",
                str(tmp_path / "nowhere"),
            ]
        )
        == 2
    )
    assert "no trained model in" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "itemknn",
                str(small_data),
                "--out",
                str(tmp_path / "h4"),
                "--components-from",
                str(components),
            ]
        )
        == 2
    )
    assert "only hybrid and rerank" in capsys.readouterr().err
