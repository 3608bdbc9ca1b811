"""The main job end to end through the CLI, on the shared small run (see ``conftest.py``):
the report and its evaluation table, the submission, resuming, logs, and bad input."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import orjson

from segue.data.challenge import read_challenge, read_truth
from segue.data.dataset import PlaylistData
from segue.evaluation.submission import N_TRACKS, check_submission
from segue.pipeline.runner import LOGS, RECORDS
from tests.pipeline.conftest import MODELS, PER_CATEGORY, run_cli

PHASE1 = ["verify", "ingest", "eda", "cooccurrence"]
PHASE2 = [
    "split",
    "rules",
    "clusters",
    "train popular",
    "train title",
    "train itemknn",
    "train playlistknn",
    "train rp3beta",
    "train rules",
]
FINISH = ["evaluate", "diversity", "examples", "submission", "report"]


def stage_lines(output: str) -> dict[str, str]:
    """{stage: "skipped" | "ran"} from the runner's lines ("[ 3] name   unchanged, skipped …")."""
    found = {}
    for match in re.finditer(r"^\[\s*\d+\] (.+?)\s{2,}(unchanged, skipped|…)", output, re.M):
        found[match.group(1).strip()] = (
            "skipped" if match.group(2).startswith("unchanged") else "ran"
        )
    return found


def evaluation(run) -> dict:
    return orjson.loads((run.out / "evaluation" / "evaluation.json").read_bytes())


def test_each_command_ran_its_stages_and_the_added_model_reran_only_the_finish(demo_run):
    assert stage_lines(demo_run.outputs["phase1"]) == dict.fromkeys([*PHASE1, "report"], "ran")
    assert stage_lines(demo_run.outputs["phase2"]) == dict.fromkeys([*PHASE2, *FINISH], "ran")
    # A model trained outside the pipeline lands in models/: phase 2's own stages are unchanged,
    # the finish (which reads every trained model) runs again and evaluates it too.
    again = stage_lines(demo_run.outputs["finish again"])
    assert again == {**dict.fromkeys(PHASE2, "skipped"), **dict.fromkeys(FINISH, "ran")}
    assert evaluation(demo_run)["models"] == list(MODELS)
    # Every stage that ran has its record and its log.
    records = {p.stem for p in (demo_run.out / RECORDS).iterdir()}
    assert records == {re.sub(r"\W+", "-", s) for s in PHASE1 + PHASE2 + FINISH}


def test_the_reported_r_precision_is_the_held_out_truth_recounted_by_hand(demo_run):
    """R-precision of every model, recounted from its saved lists and the test part's truth
    (|G ∩ R[:|G|]| / |G| per playlist, by URI), is the evaluation's and the report's figure."""
    split = demo_run.out / "split"
    entries = read_challenge(split / "test" / "challenge_set.json")
    truth = read_truth(split / "test" / "challenge_truth.json")
    assert len(entries) == 10 * PER_CATEGORY
    uris = PlaylistData.load(split / "train").track_uris.tolist()
    table = evaluation(demo_run)["table"]
    report_md = (demo_run.out / "report" / "report.md").read_text()
    report_html = (demo_run.out / "report" / "index.html").read_text()
    with np.load(demo_run.out / "evaluation" / "rankings.npz", allow_pickle=False) as saved:
        assert sorted(saved.files) == sorted(MODELS)
        for model in MODELS:
            ranking = saved[model]
            assert ranking.shape == (len(entries), N_TRACKS)
            per_playlist = []
            for row, entry in enumerate(entries):
                held = truth[entry["pid"]]["holdout_tracks"]
                top = {uris[i] for i in ranking[row, : len(held)].tolist() if i >= 0}
                per_playlist.append(len(top & set(held)) / len(held))
            cell = table[model]["all"]["r_precision"]
            assert cell["n"] == len(entries)
            assert abs(cell["mean"] - float(np.mean(per_playlist))) < 1e-9, model
            # The report's table row: the model's name and its mean [CI] as evaluation.json has them.
            shown = f"{cell['mean']:.4f} [{cell['ci_low']:.4f}, {cell['ci_high']:.4f}]"
            assert re.search(
                rf"^\| (\*\*)?{model}(\*\*)? \| {re.escape(shown)} \|", report_md, re.M
            ), model
            assert re.search(
                rf"<td>(<strong>)?{model}(</strong>)?</td>\s*<td>{re.escape(shown)}</td>",
                report_html,
            ), model
    # Not all zero: the run really recommends (title and neighbourhood models find held-out tracks).
    assert max(table[m]["all"]["r_precision"]["mean"] for m in MODELS) > 0.01


def test_the_report_has_its_sections_figures_and_run_timings(demo_run):
    md = (demo_run.out / "report" / "report.md").read_text()
    for title in (
        "Dataset and exploration",
        "Association rules and playlist clusters",
        "Evaluation on held-out playlists",
        "Diversity",
        "Example continuations",
    ):
        assert f"## {title}" in md
    assert "| 2,000 |" in md  # the dataset's playlists, from the EDA
    # The summary comes first and names the evaluation's winner, as evaluation.json ranks them.
    assert md.index("## Summary") < md.index("## Dataset and exploration")
    evaluation = json.loads((demo_run.out / "evaluation" / "evaluation.json").read_text())
    table = evaluation["table"]
    winner = max(evaluation["models"], key=lambda m: table[m]["all"]["r_precision"]["mean"])
    assert f"- **{winner}** has the best R-precision: " in md
    assert "Best per category: " in md
    figures = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", md)
    assert len(figures) >= 5
    for figure in figures:
        assert (demo_run.out / "report" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (demo_run.out / "report" / "index.html").read_text()
    assert html.count("data:image/png;base64,") == len(figures)  # self-contained
    assert 'src="figures/' not in html
    for stage in ("clusters", "evaluate", "train playlistknn"):  # the run's timings per stage
        assert re.search(rf"\| {stage} \|", md), stage
    # Every table has a numbered caption just above it; every figure one just below it.
    lines = md.splitlines()
    starts = [
        i
        for i, line in enumerate(lines)
        if line.startswith("|") and not lines[i - 1].startswith("|")
    ]
    assert len(starts) >= 8
    for i in starts:
        assert lines[i - 1] == "" and re.fullmatch(r"\*Table \d+\. .+\*", lines[i - 2]), lines[
            i - 2
        ]
    captions = [lines[i - 2] for i in starts]
    assert [int(re.match(r"\*Table (\d+)", c)[1]) for c in captions] == list(
        range(1, len(starts) + 1)
    )
    diversity = next(c for c in captions if "Diversity per challenge category" in c)
    assert "At k = " in diversity and "diversity/diversity.md" in diversity
    for i, line in enumerate(lines):
        if line.startswith("!["):
            assert lines[i + 2] == f"*{line[2 : line.index(']')]}*"


def test_the_submission_is_valid_for_the_challenge_set(demo_run):
    challenge = read_challenge(demo_run.mpd / "challenge_set.json")
    path = demo_run.out / "submissions" / "challenge.csv.gz"
    report = check_submission(path, challenge)
    assert report.ok, report.format_text()
    assert report.team == "segue"
    assert sorted(report.rows) == sorted(e["pid"] for e in challenge)
    assert all(len(uris) == N_TRACKS for uris in report.rows.values())


def test_stage_logs_show_progress_and_the_records_peak_memory(demo_run):
    logs = {p.name.rsplit("_", 2)[0] for p in (demo_run.out / LOGS).iterdir()}
    assert {"clusters", "evaluate", "train-itemknn", "verify"} <= logs
    (clusters_log,) = sorted((demo_run.out / LOGS).glob("clusters_*.log"))
    text = clusters_log.read_text()
    assert re.search(r"\d+/\d+ .*ETA \d+ s, RSS \d+\.\d\d GiB", text)
    assert "stage clusters: done in" in text and "output " in text
    record = orjson.loads((demo_run.out / RECORDS / "clusters.json").read_bytes())
    assert record["status"] == "ran" and record["peak_rss_gib"] > 0.05 and record["seconds"] > 0


def test_a_second_run_skips_every_stage(demo_run):
    start = time.perf_counter()
    for phase, stages in (("phase1", PHASE1), ("phase2", PHASE2)):
        code, output = run_cli(demo_run.pipeline_args(phase))
        assert code == 0, output
        # Each command ends with the finish (the split exists); the report is rebuilt on purpose
        # (it shows this run's timings); nothing else runs.
        assert stage_lines(output) == {
            **dict.fromkeys(stages + FINISH[:-1], "skipped"),
            "report": "ran",
        }
        assert f"{len(stages) + len(FINISH)} stages: 1 ran" in output
    assert time.perf_counter() - start < 20


def test_missing_or_corrupt_slices_exit_2_with_one_line_naming_the_file(
    demo_run, tmp_path, capsys, monkeypatch
):
    # The CLI's log handler writes to the stderr of the test that first configured it; a fresh
    # one here writes to this test's captured stderr, so all of stderr is checked.
    monkeypatch.setattr(logging.getLogger("segue"), "handlers", [])
    empty = tmp_path / "empty"
    empty.mkdir()
    code = run_cli(["pipeline", "phase1", "--data", empty, "--out", tmp_path / "run1"])[0]
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: stage 'verify' failed: {empty}: no MPD slice files")
    assert not (tmp_path / "run1" / RECORDS / "verify.json").exists()

    code = run_cli(
        ["pipeline", "phase1", "--data", tmp_path / "nowhere", "--out", tmp_path / "run2"]
    )[0]
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert [x for x in err.splitlines() if x.startswith("error:")] == [
        f"error: --data {tmp_path / 'nowhere'}: not a directory of MPD slices"
    ]

    # A slice cut short: the error names the file and where its JSON ends; stderr stays one error line.
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for source in sorted(demo_run.mpd.glob("mpd.slice.*.json")):
        data = source.read_bytes()
        (corrupt / source.name).write_bytes(
            data if source.name.startswith("mpd.slice.0-") else data[: len(data) // 2]
        )
    code = run_cli(["pipeline", "phase1", "--data", corrupt, "--out", tmp_path / "run3"])[0]
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert re.match(
        rf"error: stage 'verify' failed: {re.escape(str(corrupt))}: verification failed: "
        r"mpd\.slice\.1000-1999\.json: line \d+, column \d+ .*invalid JSON",
        line,
    ), line
    assert "(log: " in line and Path(line.split("(log: ")[1].split(")")[0]).exists()
