"""The MPD generator: real format, determinism, calibrated shapes, learnable structure."""

from __future__ import annotations

import re

import numpy as np
import orjson
import pytest
import scipy.sparse as sp

from segue.data import schema
from segue.data.challenge import CATEGORY_BY_NUMBER, category_of, read_challenge
from segue.data.dataset import PlaylistData
from segue.data.synthetic.calibration import normalize_name_mpd
from segue.data.synthetic.mpd import generate_mpd
from segue.errors import SegueError
from tests.conftest import SMALL_N

URI = re.compile(r"^spotify:(track|artist|album):[0-9A-Za-z]{22}$")


def _slices(path):
    return sorted(
        path.glob("mpd.slice.*.json"), key=lambda p: int(p.name.split(".")[2].split("-")[0])
    )


def test_files_have_the_real_names_and_fields(small_mpd):
    files = _slices(small_mpd)
    assert [f.name for f in files] == [
        f"mpd.slice.{i}-{i + 999}.json" for i in range(0, SMALL_N, 1000)
    ]
    doc = orjson.loads(files[1].read_bytes())
    assert doc["info"]["slice"] == "1000-1999"
    playlists = doc["playlists"]
    assert [p["pid"] for p in playlists] == list(range(1000, 2000))
    required = set(schema.MPD_PLAYLIST_FIELDS) - {schema.DESCRIPTION} | {"tracks"}
    for p in playlists:
        assert required <= set(p) <= required | {schema.DESCRIPTION}
        assert p["collaborative"] in ("true", "false")
        assert p["num_tracks"] == len(p["tracks"])
        assert 5 <= p["num_tracks"] <= 250
        assert [t["pos"] for t in p["tracks"]] == list(range(p["num_tracks"]))
        assert p["num_artists"] == len({t["artist_uri"] for t in p["tracks"]})
        assert p["num_albums"] == len({t["album_uri"] for t in p["tracks"]})
        assert p["duration_ms"] == sum(t["duration_ms"] for t in p["tracks"])
        assert len({t["track_uri"] for t in p["tracks"]}) == p["num_tracks"]  # no repeats
    track = playlists[0]["tracks"][0]
    assert list(track) == list(schema.MPD_TRACK_FIELDS)
    for key in ("track_uri", "artist_uri", "album_uri"):
        assert URI.match(track[key]), track[key]
    assert track["track_name"] and track["artist_name"] and track["album_name"]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = generate_mpd(tmp_path / "a", 1500, seed=5, workers=2).out
    b = generate_mpd(tmp_path / "b", 1500, seed=5, workers=1).out
    c = generate_mpd(tmp_path / "c", 1500, seed=6, workers=1).out
    for fa, fb in zip(_slices(a), _slices(b), strict=True):
        assert fa.read_bytes() == fb.read_bytes()
    assert _slices(a)[0].read_bytes() != _slices(c)[0].read_bytes()
    assert [f.name for f in _slices(a)] == ["mpd.slice.0-999.json", "mpd.slice.1000-1499.json"]


def test_refuses_bad_sizes_and_occupied_output(tmp_path):
    with pytest.raises(SegueError, match="at least 1"):
        generate_mpd(tmp_path / "x", 0)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(SegueError, match="holds files segue did not write"):
        generate_mpd(tmp_path / "busy", 10)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_statistics_have_the_real_shapes(small_data):
    """At small N the shares and histogram shapes already match the MPD's (counts need 1M)."""
    from segue.data.synthetic.calibration import dataset_figures

    f = dataset_figures(small_data)
    assert 56 < f["average playlist length"] < 77  # MPD 66.3
    assert 0.70 < f["share with 1 follower"] < 0.81  # MPD 0.754
    assert 0.12 < f["share with 2 followers"] < 0.18  # MPD 0.150
    assert f["share with 2 edits"] > f["share with 5 edits"] > f["share with 10 edits"] > 0.015
    assert 0.004 < f["share with a description"] < 0.04  # MPD 0.019
    assert 0.02 < f["top track's share of playlists"] < 0.12  # MPD 0.047
    assert 0.005 < f["top artist's share of entries"] < 0.03  # MPD 0.013
    playlists = PlaylistData.load(small_data)
    lengths = np.diff(playlists.matrix.indptr)
    hist = np.bincount(lengths, minlength=251)
    assert 10 <= np.argmax(np.convolve(hist, np.ones(9) / 9, mode="same")) <= 30  # mode ~20
    assert np.median(lengths) < lengths.mean()  # right-skewed, long tail to 250


def test_titles_are_noisy_but_normalise_to_a_vocabulary(small_data):
    playlists = PlaylistData.load(small_data)
    raw = set(playlists.names)
    normalized = {normalize_name_mpd(t) for t in playlists.names}
    assert len(raw) > 1.3 * len(normalized)  # case, emoji, stretched letters
    assert {"country", "chill", "workout", "christmas", "rap"} <= normalized


def test_challenge_set_layout_and_truth(small_mpd):
    entries = read_challenge(small_mpd / schema.CHALLENGE_FILE)
    truth = {
        t["pid"]: t
        for t in orjson.loads((small_mpd / schema.CHALLENGE_TRUTH_FILE).read_bytes())["playlists"]
    }
    assert len(entries) == 200
    assert min(e["pid"] for e in entries) >= 1_000_000  # never an MPD pid
    counts = {}
    for e in entries:
        cat = CATEGORY_BY_NUMBER[truth[e["pid"]]["category"]]
        assert category_of(e) == cat.number
        counts[cat.number] = counts.get(cat.number, 0) + 1
        assert ("name" in e) == cat.with_title
        assert e["num_samples"] == len(e["tracks"]) == cat.n_seeds
        holdout = truth[e["pid"]]["holdout_tracks"]
        assert e["num_holdouts"] == len(holdout) == e["num_tracks"] - cat.n_seeds
        assert e["num_tracks"] >= cat.min_tracks
        seeds = {t["track_uri"] for t in e["tracks"]}
        assert not seeds & set(holdout)
        positions = [t["pos"] for t in e["tracks"]]
        if cat.random_seeds:
            assert positions == sorted(positions) and positions != list(range(cat.n_seeds))
        else:
            assert positions == list(range(cat.n_seeds))
    assert counts == {c: 20 for c in range(1, 11)}


def test_structure_is_learnable_cooccurrence_and_titles_beat_popularity(small_data, small_mpd):
    """The world must be learnable like real data: neighbours and titles carry signal."""
    data = PlaylistData.load(small_data)
    uri_to_id = data.uri_to_id
    entries = read_challenge(small_mpd / schema.CHALLENGE_FILE)
    truth = {
        t["pid"]: t
        for t in orjson.loads((small_mpd / schema.CHALLENGE_TRUTH_FILE).read_bytes())["playlists"]
    }
    popularity = data.track_popularity.astype(float)
    cooc = (data.matrix.T @ data.matrix).tocsr()
    cooc.setdiag(0)
    by_title: dict[str, list[int]] = {}
    for row, name in enumerate(data.names):
        by_title.setdefault(normalize_name_mpd(name), []).append(row)

    def hits(scores, seeds, held, k=100):
        scores = scores.copy()
        scores[seeds] = -np.inf
        top = np.argpartition(-scores, k)[:k]
        return len(set(top.tolist()) & held)

    pop_hits = co_hits = pop_title_hits = title_hits = 0
    for e in entries:
        held = {uri_to_id[u] for u in truth[e["pid"]]["holdout_tracks"] if u in uri_to_id}
        seeds = [uri_to_id[t["track_uri"]] for t in e["tracks"] if t["track_uri"] in uri_to_id]
        if seeds:
            pop_hits += hits(popularity, seeds, held)
            co_hits += hits(np.asarray(cooc[seeds].sum(0)).ravel() + 1e-9 * popularity, seeds, held)
        if e.get("name"):  # the title alone, for every titled query (160 of them here)
            rows = by_title.get(normalize_name_mpd(e["name"]), [])
            title_scores = (
                np.asarray(sp.csr_matrix(data.matrix[rows]).sum(0)).ravel() if rows else 0
            )
            pop_title_hits += hits(popularity, seeds, held)
            title_hits += hits(title_scores + 1e-9 * popularity, seeds, held)
    assert co_hits > 1.5 * pop_hits, (co_hits, pop_hits)
    assert title_hits > 1.2 * pop_title_hits, (title_hits, pop_title_hits)


def test_report_measures_the_slices_as_the_library_does_beside_a_real_set(
    small_data, tmp_path, capsys
):
    from segue.analysis.structure import structure_stats
    from segue.cli import main
    from segue.data.ingest import ingest_mpd

    out = tmp_path / "gen"
    argv = [
        "generate",
        "mpd",
        "-n",
        "1500",
        "--out",
        str(out),
        "--report",
        "--compare",
        str(small_data),
    ]
    assert main(argv) == 0
    assert "report:" in capsys.readouterr().out
    doc = orjson.loads((out / "generation_report.json").read_bytes())
    ingest_mpd(out, tmp_path / "data")
    assert doc["structure"]["generated"] == pytest.approx(structure_stats(tmp_path / "data"))
    assert doc["structure"]["real"] == pytest.approx(structure_stats(small_data))
    lengths = [
        len(p["tracks"]) for f in _slices(out) for p in orjson.loads(f.read_bytes())["playlists"]
    ]
    published = {r["figure"]: r for r in doc["published"]}
    assert published["average playlist length"]["generated"] == pytest.approx(np.mean(lengths))
    assert published["unique tracks"]["reference"] is None  # a count, compared only at 1M
    text = (out / "generation_report.md").read_text()
    assert "| pair rules per 1,000 playlists |" in text and "generated / real" in text


def test_report_options_refused_before_anything_is_written(tmp_path, capsys):
    from segue.cli import main

    assert (
        main(
            [
                "generate",
                "mpd",
                "-n",
                "10",
                "--out",
                str(tmp_path / "a"),
                "--compare",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "--compare goes with --report" in capsys.readouterr().err
    missing = tmp_path / "nowhere"
    assert (
        main(
            [
                "generate",
                "mpd",
                "-n",
                "10",
                "--out",
                str(tmp_path / "b"),
                "--report",
                "--compare",
                str(missing),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert str(missing) in err and "not a directory" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_followers_mark_curated_playlists_and_the_dev_sets_population_can_be_generated():
    """With min_followers=10 every playlist has ≥ 10 followers, with the MPD's k^-3 shape beyond
    (10 followers 1.331 times as common as 11); followed playlists are longer and draw more of the
    heads of their (genre, mood) blocks than the average one, and only through the curation
    settings (set to 0, the population is drawn like any other)."""
    from segue.data.synthetic.playlists import PlaylistConfig, sample_playlists
    from segue.data.synthetic.world import WorldConfig, get_world

    world = get_world(WorldConfig(n_artists=3000, scene_size=5), 0)  # heads well inside the blocks
    head = np.isin(np.arange(world.n_tracks), world.genre_mood_head.items)

    def draw(config, seed):
        batch = sample_playlists(world, config, np.arange(20_000), np.random.default_rng(seed))
        return batch, float(np.median(batch.lengths)), float(head[batch.tracks].mean())

    followed, followed_len, followed_head = draw(PlaylistConfig(min_followers=10), 1)
    f = followed.num_followers
    assert f.min() == 10 and (f == 10).sum() / (f == 11).sum() == pytest.approx(
        (11 / 10) ** 3, rel=0.1
    )
    _, average_len, average_head = draw(PlaylistConfig(), 2)
    assert followed_len > 1.4 * average_len and followed_head > 1.5 * average_head
    plain = PlaylistConfig(
        min_followers=10,
        curation_head=0.0,
        curation_titles=0.0,
        curation_length=0.0,
        curation_hits=0.0,
    )
    _, plain_len, plain_head = draw(plain, 3)
    assert plain_len == pytest.approx(average_len, rel=0.06) and plain_head == pytest.approx(
        average_head, rel=0.1
    )


def test_scenes_are_recoverable_from_titles_and_tracks():
    """Followed playlists given the same vocabulary title share a head scene more often than chance:
    two playlists with one title hold far more common head tracks than two with different titles
    of the same genre; with title_scene=0 the title tells only the context's moods, not the scene."""
    from segue.data.synthetic.playlists import PlaylistConfig, TitleModel, sample_playlists
    from segue.data.synthetic.world import WorldConfig, get_world

    world = get_world(WorldConfig(n_artists=3000, scene_size=5, scenes=240), 0)  # several per genre
    head = np.zeros(world.n_tracks, dtype=bool)
    head[world.genre_mood_head.items] = True

    def overlap(title_scene: float) -> tuple[float, float]:
        config = PlaylistConfig(
            min_followers=30, title_scene=title_scene, tail_title_prob=0.0, artist_title_prob=0.0
        )
        batch = sample_playlists(
            world, config, np.arange(4_000), np.random.default_rng(5), TitleModel(config)
        )
        owner = np.repeat(np.arange(len(batch.lengths)), batch.lengths)
        keep = head[batch.tracks]
        m = sp.csr_matrix(
            (np.ones(keep.sum()), (owner[keep], batch.tracks[keep])),
            shape=(len(batch.lengths), world.n_tracks),
        )
        m.data[:] = 1.0
        shared = (m @ m.T).toarray()
        name = np.asarray([n.lower().strip(" !.:)✨0123456789") for n in batch.name])
        same_genre = batch.genre[:, None] == batch.genre[None, :]
        same_title = (name[:, None] == name[None, :]) & same_genre
        off_diagonal = ~np.eye(len(name), dtype=bool)
        return (
            float(shared[same_title & off_diagonal].mean()),
            float(shared[same_genre & ~same_title].mean()),
        )

    bound_same, bound_other = overlap(1.0)
    free_same, free_other = overlap(0.0)
    assert bound_same / bound_other > 2.0 * (free_same / free_other)


def test_min_followers_generates_the_followed_population_and_names_each_scene(tmp_path, capsys):
    """`--min-followers 10` writes only playlists with ≥ 10 followers, every one with a head scene in
    latent_themes.parquet (the average population: null for the playlists below 4 followers, not
    curated); 0 is refused before anything is written."""
    import pyarrow.parquet as pq

    from segue.cli import main
    from segue.data.synthetic.mpd import generate_mpd

    assert (
        main(
            ["generate", "mpd", "-n", "10", "--out", str(tmp_path / "none"), "--min-followers", "0"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--min-followers" in err and "Traceback" not in err and not (tmp_path / "none").exists()
    with pytest.raises(SegueError, match="--min-followers must be at least 1, got 0"):
        generate_mpd(tmp_path / "none", 10, min_followers=0)

    out = tmp_path / "followed"
    assert (
        main(
            [
                "generate",
                "mpd",
                "-n",
                "1000",
                "--out",
                str(out),
                "--min-followers",
                "10",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    playlists = orjson.loads((out / "mpd.slice.0-999.json").read_bytes())["playlists"]
    assert min(p["num_followers"] for p in playlists) >= 10
    themes = pq.read_table(out / "latent_themes.parquet")
    assert themes.column("scene").null_count == 0
    scenes = themes.column("scene").to_numpy()
    assert scenes.min() >= 0 and len(np.unique(scenes)) > 1

    average = generate_mpd(tmp_path / "average", 1000, seed=0, workers=1)
    followers = np.array(
        [
            p["num_followers"]
            for p in orjson.loads((average.out / "mpd.slice.0-999.json").read_bytes())["playlists"]
        ]
    )
    scene = pq.read_table(average.out / "latent_themes.parquet").column("scene")
    assert (
        scene.null_count == int((followers <= 3).sum()) > 900
    )  # curation starts above 3 followers
