"""Every file a user can hand over broken, and every bad ``--out``: one line naming the file,
exit 2, no traceback, nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from segue.cli import main
from segue.data import schema


@pytest.fixture(scope="module")
def trained(small_data, tmp_path_factory) -> Path:
    """A trained ``itemknn`` directory (params.json, arrays.npz with a CSR, catalog.parquet)."""
    out = tmp_path_factory.mktemp("models") / "itemknn"
    assert main(["train", "itemknn", str(small_data), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def popular(small_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "popular"
    assert main(["train", "popular", str(small_data), "--out", str(out)]) == 0
    return out


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def _rewrite(path: Path, **changes) -> None:
    """The .npz at ``path`` written again with some arrays changed (a valid file, other data)."""
    with np.load(path) as npz:
        arrays = {k: changes[k](npz[k]) if k in changes else npz[k] for k in npz.files}
    np.savez(path, **arrays)


def _params(change):
    def apply(model: Path) -> None:
        params = orjson.loads((model / "params.json").read_bytes())
        change(params)
        (model / "params.json").write_bytes(orjson.dumps(params))

    return apply


CORRUPTIONS = {
    "arrays truncated": (lambda m: _truncate(m / "arrays.npz"), "arrays.npz: unreadable"),
    "arrays bit-flipped": (lambda m: _flip(m / "arrays.npz"), "arrays.npz: unreadable"),
    "arrays empty": (lambda m: (m / "arrays.npz").write_bytes(b""), "arrays.npz: unreadable"),
    "arrays missing": (lambda m: (m / "arrays.npz").unlink(), "arrays.npz: missing"),
    "arrays of another model": (None, "arrays.npz: unreadable: holds arrays"),
    # A params.json without digests (an older segue's): read by np.load, its arrays checked.
    "arrays of another model, no digests": (None, "arrays.npz: has no array"),
    "arrays changed, digests kept": (
        lambda m: _rewrite(m / "arrays.npz", sim_data=lambda a: a * 2),
        "arrays.npz: unreadable: array 'sim_data' does not match its digest",
    ),
    "params not JSON": (
        lambda m: (m / "params.json").write_text("{"),
        "params.json: not valid JSON",
    ),
    "params unknown key": (
        _params(lambda p: p.update(extra=1)),
        "params.json: unknown key extra",
    ),
    "params wrong type": (
        _params(lambda p: p.update(n_tracks="many")),
        "params.json: n_tracks: expected a JSON int",
    ),
    "params unknown model": (
        _params(lambda p: p.update(model="nope")),
        "params.json: unknown model 'nope'",
    ),
    "config from another version": (
        _params(lambda p: p["config"].update(neighbours=5)),
        "unknown parameter neighbours",
    ),
    "catalog corrupt": (
        lambda m: (m / "catalog.parquet").write_bytes(b"PAR1 not really parquet PAR1"),
        "catalog.parquet: unreadable track catalog",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupt_model_directory_is_one_line_and_exit_2(
    case, trained, popular, small_data, tmp_path, capsys
):
    corrupt, message = CORRUPTIONS[case]
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    if corrupt is None:  # a popular model's arrays in an itemknn directory
        shutil.copy(popular / "arrays.npz", model / "arrays.npz")
        if "no digests" in case:
            _params(lambda p: p.pop("arrays"))(model)
    else:
        corrupt(model)
    uri = pq.read_table(small_data / schema.TRACKS_FILE, columns=[schema.TRACK_URI]).column(0)[0]
    capsys.readouterr()
    code = main(["recommend", str(model), "--track", uri.as_py(), "-n", "3"])
    err = capsys.readouterr().err
    assert code == 2, (case, err)
    assert err.startswith("error: ") and err.count("\n") == 1, (case, err)
    assert message in err and "Traceback" not in err, (case, err)


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_a_bad_out_is_refused_before_any_work_and_nothing_is_written(
    small_data, small_mpd, popular, tmp_path, capsys
):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    cases = [
        (a_file, "notes.txt: exists and is not a directory"),
        (a_file / "model", "notes.txt is a file, not a directory"),
        (fifo, "pipe: exists and is not a directory"),
    ]
    for out, message in cases:
        code = main(["train", "popular", str(small_data), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (out, err)
    assert a_file.read_text() == "keep me" and fifo.exists() and not fifo.is_dir()
    assert _leftovers(tmp_path) == []
    # A command that writes one file refuses a directory there.
    challenge = small_mpd / schema.CHALLENGE_FILE
    code = main(["recommend", str(popular), "--challenge", str(challenge), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "exists and is not a regular file" in err


def test_only_a_directory_segue_wrote_is_replaced(small_data, small_mpd, tmp_path, capsys):
    """One rule for every output directory: new, empty, or segue's own (marked) is replaced;
    a folder of the user's is refused before any work and left as it was."""
    mine = tmp_path / "Music"
    mine.mkdir()
    (mine / "song.mp3").write_bytes(b"ID3")
    for argv in (
        ["train", "popular", str(small_data), "--out", str(mine)],
        ["generate", "mpd", "-n", "1000", "--out", str(mine)],
        ["ingest", str(small_mpd), "--out", str(mine)],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"{mine}: holds files segue did not write" in err and "Traceback" not in err, err
    assert [p.name for p in mine.iterdir()] == ["song.mp3"] and _leftovers(tmp_path) == []
    (tmp_path / "empty").mkdir()
    model = tmp_path / "empty"
    assert main(["train", "popular", str(small_data), "--out", str(model)]) == 0
    assert (model / ".segue-output").exists() and (model / "params.json").exists()
    assert main(["train", "popular", str(small_data), "--out", str(model)]) == 0  # its own: again
    gen = tmp_path / "gen"
    assert main(["generate", "mpd", "-n", "1000", "--out", str(gen)]) == 0
    assert main(["generate", "mpd", "-n", "1000", "--out", str(gen), "--overwrite"]) == 0


def test_a_pipeline_replaces_its_own_unmarked_outputs_and_nothing_else(tmp_path):
    from segue.io import OUTPUT_MARK, OutputPathError, atomic_dir, owned

    run = tmp_path / "run"
    (run / "models" / "popular").mkdir(parents=True)
    (run / "models" / "popular" / "params.json").write_text("{}")  # a segue 0.2 output
    with pytest.raises(OutputPathError, match="holds files segue did not write"):
        with atomic_dir(run / "models" / "popular"):
            pass
    with owned(run):
        with atomic_dir(run / "models" / "popular") as tmp:
            (tmp / "params.json").write_text('{"new": true}')
        with pytest.raises(OutputPathError):  # the run directory itself is not a stage output
            with atomic_dir(run):
                pass
    assert (run / "models" / "popular" / "params.json").read_text() == '{"new": true}'
    assert (run / "models" / "popular" / OUTPUT_MARK).exists()


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(small_data, tmp_path):
    """Writes limited to 64 kB (RLIMIT_FSIZE, as a full disk would refuse them): the command
    fails with the OS's reason in one line and no output, temporary or final, is left."""
    resource = pytest.importorskip("resource")
    out = tmp_path / "out" / "model"

    def limit():  # in the child only; Python ignores SIGXFSZ, so writes fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))

    done = subprocess.run(
        [sys.executable, "-m", "segue", "train", "itemknn", str(small_data), "--out", str(out)],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{out}: File too large (EFBIG)" in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.count("error:") == 1
    assert not out.exists() and _leftovers(out.parent) == []
