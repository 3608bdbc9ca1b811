"""Challenge submissions: the writer, the checker and the reader, each case with a known answer."""

from __future__ import annotations

import gzip
import string

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segue.data.challenge import read_challenge
from segue.errors import InputFileError, SegueError
from segue.evaluation.submission import (
    N_TRACKS,
    VIOLATION_KINDS,
    check_submission,
    is_track_uri,
    read_submission,
    write_submission,
)

BASE62 = string.digits + string.ascii_letters
TEAM, EMAIL = "segue", "team@example.com"


def uri(i: int) -> str:
    """A deterministic, valid-looking track URI for integer ``i`` (distinct for distinct i)."""
    x = (i * 0x9E3779B97F4A7C15 + 0x1234567) % 62**22  # odd multiplier: injective below 62**22
    chars = []
    for _ in range(22):
        x, r = divmod(x, 62)
        chars.append(BASE62[r])
    return "spotify:track:" + "".join(chars)


# Three challenge playlists: titled with 2 seeds, title only (no seeds), untitled with 5 seeds.
PIDS = (1000000, 1000001, 1000002)
SEEDS = {1000000: [uri(0), uri(1)], 1000001: [], 1000002: [uri(i) for i in range(10, 15)]}


def _track(pos: int, track_uri: str) -> dict:
    return {
        "pos": pos,
        "artist_name": "A",
        "track_uri": track_uri,
        "artist_uri": "spotify:artist:x",
        "track_name": "T",
        "album_uri": "spotify:album:x",
        "duration_ms": 200000,
        "album_name": "B",
    }


@pytest.fixture
def challenge(tmp_path):
    playlists = []
    for pid, name in zip(PIDS, ("chill", "road trip", None), strict=True):
        seeds = SEEDS[pid]
        entry = {
            "pid": pid,
            "name": name,
            "num_tracks": 20,
            "num_samples": len(seeds),
            "num_holdouts": 20 - len(seeds),
            "tracks": [_track(k, u) for k, u in enumerate(seeds)],
        }
        if name is None:
            del entry["name"]
        playlists.append(entry)
    path = tmp_path / "challenge_set.json"
    path.write_bytes(
        orjson.dumps(
            {
                "date": "2018-01-16",
                "version": "v1",
                "name": "challenge_set",
                "description": "test",
                "playlists": playlists,
            }
        )
    )
    return read_challenge(path)


def ranked(pid: int, n: int = N_TRACKS) -> list[str]:
    """Valid recommendations for ``pid``: n distinct URIs, none a seed."""
    base = 100_000 * (pid - 999_999)
    return [uri(base + j) for j in range(n)]


def good_lines() -> list[str]:
    """The text lines of a valid submission for the test challenge set."""
    return [f"team_info,{TEAM},{EMAIL}"] + [f"{pid}," + ",".join(ranked(pid)) for pid in PIDS]


def write_text(path, lines: list[str]):
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def test_uri_helper_makes_distinct_valid_uris():
    uris = [uri(i) for i in range(5000)]
    assert len(set(uris)) == 5000
    assert all(is_track_uri(u) for u in uris)


# --- round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["submission.csv", "submission.csv.gz"])
def test_round_trip(tmp_path, challenge, name):
    rows = {pid: ranked(pid) for pid in PIDS}
    path = write_submission(
        tmp_path / name, list(rows), list(rows.values()), team=TEAM, email=EMAIL
    )
    assert path == tmp_path / name
    report = check_submission(path, challenge)
    assert report.ok, report.format_text()
    assert report.violations == []
    assert (report.team, report.email, report.n_rows) == (TEAM, EMAIL, 3)
    assert report.rows == rows
    assert read_submission(path, challenge) == rows
    assert "ok, 3 playlist rows" in report.format_text()
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")


def test_written_text_is_the_challenge_format(tmp_path):
    path = write_submission(
        tmp_path / "s.csv",
        [7, 3],
        [["a", "b"], ("c", "d")],
        team=" my team ",
        email="me@example.org",
        n=2,
    )
    assert path.read_text() == "team_info,my team,me@example.org\n7,a,b\n3,c,d\n"


@pytest.mark.parametrize("name", ["submission.csv", "submission.csv.gz"])
def test_output_is_byte_identical(tmp_path, name):
    args = (list(PIDS), [ranked(pid) for pid in PIDS])
    a = write_submission(tmp_path / "a" / name, *args, team=TEAM, email=EMAIL).read_bytes()
    b = write_submission(tmp_path / "b" / name, *args, team=TEAM, email=EMAIL).read_bytes()
    assert a == b
    if name.endswith(".gz"):
        assert a[4:8] == b"\0\0\0\0"  # mtime 0


def test_large_gzip_output_is_multi_member_and_reads_back(tmp_path, monkeypatch):
    import segue.evaluation.submission as sub

    monkeypatch.setattr(sub, "_GZIP_CHUNK", 4096)  # force several members with a small file
    rows = [ranked(pid, 200) for pid in PIDS]
    path = write_submission(tmp_path / "s.csv.gz", list(PIDS), rows, team=TEAM, email=EMAIL, n=200)
    assert path.read_bytes().count(b"\x1f\x8b\x08") > 3
    again = write_submission(tmp_path / "t.csv.gz", list(PIDS), rows, team=TEAM, email=EMAIL, n=200)
    assert path.read_bytes() == again.read_bytes()
    assert read_submission(path, n=200) == dict(zip(PIDS, rows, strict=True))


def test_writer_accepts_generators_and_numpy(tmp_path):
    import numpy as np

    path = write_submission(
        tmp_path / "s.csv",
        np.array([5, 6]),
        [iter(["x", "y"]), np.array(["z", "w"])],
        team=TEAM,
        email=EMAIL,
        n=2,
    )
    assert read_submission(path, n=2, strict_uris=False) == {5: ["x", "y"], 6: ["z", "w"]}


# --- the checker: one kind per fault ------------------------------------------------------------


def _replace_last(lines, row, new):
    fields = lines[row].split(",")
    fields[-1] = new
    lines[row] = ",".join(fields)


def mutate_no_team_info(lines):
    del lines[0]


def mutate_team_info_fields(lines):
    lines[0] = f"team_info,main,{TEAM},{EMAIL}"  # the old four-field layout


def mutate_bad_email(lines):
    lines[0] = f"team_info,{TEAM},not-an-address"


def mutate_missing_pid(lines):
    del lines[2]


def mutate_pid_twice(lines):
    lines.append(lines[2])


def mutate_unknown_pid(lines):
    lines[2] = "999" + lines[2][len("1000001") :]


def mutate_bad_pid(lines):
    lines[2] = "abc" + lines[2][len("1000001") :]


def mutate_499(lines):
    lines[2] = lines[2].rsplit(",", 1)[0]


def mutate_501(lines):
    lines[2] += "," + uri(999_999)


def mutate_duplicate_uri(lines):
    _replace_last(lines, 2, ranked(1000001)[0])


def mutate_seed(lines):
    _replace_last(lines, 1, SEEDS[1000000][1])


def mutate_bad_uri(lines):
    _replace_last(lines, 2, "spotify:track:tooShort")


def mutate_trailing_comma(lines):
    lines[2] += ","  # 500 good URIs, then an empty field


# (mutation, expected (kind, line, pid) triples, in the order reported)
CASES = {
    "no_team_info": (mutate_no_team_info, [("no_team_info", 1, None)]),
    "team_info_fields": (mutate_team_info_fields, [("bad_team_info", 1, None)]),
    "bad_email": (mutate_bad_email, [("bad_team_info", 1, None)]),
    "missing_pid": (mutate_missing_pid, [("missing_pid", None, 1000001)]),
    "pid_twice": (mutate_pid_twice, [("duplicate_pid", 5, 1000001)]),
    "unknown_pid": (mutate_unknown_pid, [("unknown_pid", 3, 999), ("missing_pid", None, 1000001)]),
    "bad_pid": (mutate_bad_pid, [("bad_pid", 3, None), ("missing_pid", None, 1000001)]),
    "499_tracks": (mutate_499, [("wrong_count", 3, 1000001)]),
    "501_tracks": (mutate_501, [("wrong_count", 3, 1000001)]),
    "duplicate_uri": (mutate_duplicate_uri, [("duplicate_track", 3, 1000001)]),
    "seed_track": (mutate_seed, [("seed_track", 2, 1000000)]),
    "bad_uri": (mutate_bad_uri, [("bad_uri", 3, 1000001)]),
    "trailing_comma": (mutate_trailing_comma, [("bad_line", 3, 1000001)]),
}


@pytest.mark.parametrize("name", ["s.csv", "s.csv.gz"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_fault_has_its_own_kind(tmp_path, challenge, case, name):
    mutate, expected = CASES[case]
    lines = good_lines()
    mutate(lines)
    report = check_submission(write_text(tmp_path / name, lines), challenge)
    assert not report.ok
    assert [(v.kind, v.line, v.pid) for v in report.violations] == expected
    for v in report.violations:
        assert v.kind in VIOLATION_KINDS
        if v.line is not None:
            assert f"line {v.line}" in v.message
        if v.pid is not None:
            assert f"pid {v.pid}" in v.message
        assert str(v) == v.message
    first = report.violations[0]
    with pytest.raises(InputFileError) as err:
        read_submission(tmp_path / name, challenge)
    assert err.value.path == tmp_path / name
    assert str(err.value).startswith(f"{tmp_path / name}: ")
    assert first.problem in str(err.value)
    if first.line is not None:
        assert f"line {first.line}" in str(err.value)


def test_messages_say_what_is_wrong(tmp_path, challenge):
    def message(mutate):
        lines = good_lines()
        mutate(lines)
        report = check_submission(write_text(tmp_path / "s.csv", lines), challenge)
        return report.violations[0].message

    assert message(mutate_499) == "line 3 (pid 1000001): 499 track URIs, expected exactly 500"
    assert message(mutate_501) == "line 3 (pid 1000001): 501 track URIs, expected exactly 500"
    assert "4 fields, expected 3" in message(mutate_team_info_fields)
    assert "'not-an-address'" in message(mutate_bad_email)
    assert message(mutate_missing_pid).startswith("pid 1000001: ")
    assert "first on line 3" in message(mutate_pid_twice)
    assert "'spotify:track:tooShort'" in message(mutate_bad_uri)
    assert repr(SEEDS[1000000][1]) in message(mutate_seed)
    assert repr(ranked(1000001)[0]) in message(mutate_duplicate_uri)
    assert "'abc'" in message(mutate_bad_pid)
    assert "position(s) 502" in message(mutate_trailing_comma)


def test_lenient_uris(tmp_path, challenge):
    lines = good_lines()
    mutate_bad_uri(lines)
    path = write_text(tmp_path / "s.csv", lines)
    report = check_submission(path, challenge, strict_uris=False)
    assert report.ok
    assert report.rows[1000001][-1] == "spotify:track:tooShort"


def test_all_violations_are_collected(tmp_path, challenge):
    lines = good_lines()
    mutate_team_info_fields(lines)
    mutate_seed(lines)
    mutate_499(lines)
    del lines[3]  # pid 1000002 missing
    lines.append("123," + ",".join(ranked(1000002)))  # unknown pid
    lines.append(lines[1])  # pid 1000000 again, with its seed track
    report = check_submission(write_text(tmp_path / "s.csv", lines), challenge)
    assert [(v.kind, v.line, v.pid) for v in report.violations] == [
        ("bad_team_info", 1, None),
        ("seed_track", 2, 1000000),
        ("wrong_count", 3, 1000001),
        ("unknown_pid", 4, 123),
        ("duplicate_pid", 5, 1000000),
        ("seed_track", 5, 1000000),
        ("missing_pid", None, 1000002),
    ]
    assert report.n_rows == 4
    assert set(report.rows) == {1000000, 1000001}
    assert report.counts() == {
        "bad_team_info": 1,
        "unknown_pid": 1,
        "duplicate_pid": 1,
        "missing_pid": 1,
        "wrong_count": 1,
        "seed_track": 2,
    }
    text = report.format_text()
    assert text.startswith(f"{tmp_path / 's.csv'}: 7 violation(s), 4 playlist rows")
    assert "  seed_track     2\n" in text
    assert "line 2 (pid 1000000): 1 seed track(s)" in text
    short = report.format_text(max_per_kind=1)
    assert "line 5 (pid 1000000)" not in short.split("seed_track (2):")[1]
    assert "… and 1 more" in short


def test_many_faults_in_one_row_are_all_reported(tmp_path, challenge):
    row = [*ranked(1000000, 498), SEEDS[1000000][0], "bogus", ranked(1000000)[0]]
    lines = good_lines()
    lines[1] = "1000000," + ",".join(row)
    report = check_submission(write_text(tmp_path / "s.csv", lines), challenge)
    assert [v.kind for v in report.violations] == [
        "wrong_count",
        "duplicate_track",
        "seed_track",
        "bad_uri",
    ]


def test_comments_blank_lines_and_whitespace_are_ignored(tmp_path, challenge):
    lines = good_lines()
    lines[1] = " , ".join(lines[1].split(","))  # spaces around fields
    lines = [
        "# made by segue",
        "",
        lines[0],
        "   ",
        "#  comment, with commas",
        lines[1],
        lines[2] + "\r",
        "",
        lines[3],
        "",
    ]
    path = write_text(tmp_path / "s.csv.gz", lines)
    report = check_submission(path, challenge)
    assert report.ok, report.format_text()
    assert report.rows == {pid: ranked(pid) for pid in PIDS}
    # Line numbers count the ignored lines too.
    lines[8] = lines[8].rsplit(",", 1)[0]
    report = check_submission(write_text(tmp_path / "t.csv", lines), challenge)
    assert [(v.kind, v.line, v.pid) for v in report.violations] == [("wrong_count", 9, 1000002)]


def test_team_info_must_come_first(tmp_path, challenge):
    lines = good_lines()
    lines = [*lines[1:2], lines[0], *lines[2:]]
    report = check_submission(write_text(tmp_path / "s.csv", lines), challenge)
    assert [(v.kind, v.line) for v in report.violations] == [
        ("no_team_info", 1),
        ("bad_team_info", 2),
    ]


def test_empty_file(tmp_path, challenge):
    path = tmp_path / "s.csv"
    path.write_text("# nothing here\n\n")
    report = check_submission(path, challenge)
    assert [(v.kind, v.pid) for v in report.violations] == [("no_team_info", None)] + [
        ("missing_pid", pid) for pid in PIDS
    ]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("s.csv.gz", b"this is not gzip at all", "not a valid gzip file"),
        (
            "s.csv.gz",
            gzip.compress(b"team_info,a,b@c.de\n" * 100, mtime=0)[:-30],
            "not a valid gzip file",
        ),
        ("s.csv", b"team_info,\xff\xfe,b@c.de\n", "not UTF-8"),
        ("s.csv", gzip.compress(b"\xff" * 10, mtime=0), "not UTF-8"),
    ],
    ids=["not-gzip", "truncated-gzip", "latin1", "gzip-of-binary"],
)
def test_unreadable_files_give_one_violation(tmp_path, challenge, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    report = check_submission(path, challenge)
    assert [(v.kind, v.line, v.pid) for v in report.violations] == [("unreadable", None, None)]
    assert str(path) in report.violations[0].message
    assert reason in report.violations[0].message
    assert report.rows == {}
    with pytest.raises(InputFileError, match=reason) as err:
        read_submission(path, challenge)
    assert err.value.path == path


def test_missing_file(tmp_path, challenge):
    report = check_submission(tmp_path / "nope.csv.gz", challenge)
    assert [v.kind for v in report.violations] == ["unreadable"]
    assert "file not found" in report.violations[0].message
    assert "nope.csv.gz" in report.format_text()


def test_without_challenge_set_only_the_file_itself_is_checked(tmp_path):
    lines = good_lines()
    mutate_unknown_pid(lines)
    mutate_seed(lines)
    rows = read_submission(write_text(tmp_path / "s.csv", lines))
    assert set(rows) == {1000000, 999, 1000002}


# --- the writer refuses what the checker would reject -----------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"rows": [ranked(p) for p in PIDS[:2]] + [ranked(1000002, 499)]},
            "pid 1000002: 499 track URIs, expected exactly 500",
        ),
        (
            {"rows": [ranked(p) for p in PIDS[:2]] + [ranked(1000002, 501)]},
            "pid 1000002: 501 track URIs",
        ),
        (
            {"rows": [ranked(1000000)[:-1] + ranked(1000000)[:1]] + [ranked(p) for p in PIDS[1:]]},
            "pid 1000000: duplicate track URIs",
        ),
        (
            {"rows": [ranked(p) for p in PIDS[:2]] + [[*ranked(1000002)[:-1], "a,b"]]},
            "pid 1000002: track URIs must be non-empty, without commas",
        ),
        (
            {"rows": [ranked(p) for p in PIDS[:2]] + [[*ranked(1000002)[:-1], " x"]]},
            "pid 1000002: .*surrounding whitespace",
        ),
        (
            {"rows": [ranked(p) for p in PIDS[:2]] + [[*ranked(1000002)[:-1], "x\ny"]]},
            "pid 1000002: .*line breaks",
        ),
        ({"rows": [ranked(p) for p in PIDS[:2]] + [[*ranked(1000002)[:-1], ""]]}, "pid 1000002: "),
        (
            {"rows": [ranked(p) for p in PIDS[:2]] + [[*ranked(1000002)[:-1], 5]]},
            "pid 1000002: track URIs must be strings",
        ),
        ({"team": "segue, inc."}, "team name 'segue, inc.' must not contain commas"),
        ({"team": "seg\nue"}, "team name .* line breaks"),
        ({"team": "  "}, "team name is empty"),
        ({"email": ""}, "email is empty"),
        ({"email": "nobody"}, "does not look like an email address"),
        ({"pids": [1000000, 1000001]}, "2 pids but 3 rows"),
        ({"pids": [1000000, 1000001, 1000000]}, "pid 1000000 appears twice"),
        ({"pids": [1000000, 1000001, "1000002"]}, "pid '1000002' is not an integer"),
    ],
    ids=[
        "499",
        "501",
        "duplicate",
        "comma",
        "space",
        "newline",
        "empty",
        "not-str",
        "team-comma",
        "team-newline",
        "team-empty",
        "email-empty",
        "email-bad",
        "lengths",
        "pid-twice",
        "pid-str",
    ],
)
@pytest.mark.parametrize("name", ["s.csv", "s.csv.gz"])
def test_writer_refuses(tmp_path, kwargs, match, name):
    args = {"pids": list(PIDS), "rows": [ranked(p) for p in PIDS], "team": TEAM, "email": EMAIL}
    args.update(kwargs)
    with pytest.raises(SegueError, match=match):
        write_submission(
            tmp_path / name, args["pids"], args["rows"], team=args["team"], email=args["email"]
        )
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left behind


# Any fields the writer accepts, the reader gives back unchanged (lenient URIs, no challenge).
_uri_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.dictionaries(
        st.integers(0, 10**7), st.lists(_uri_text, min_size=3, max_size=3, unique=True), max_size=4
    ),
    team=st.text(min_size=1, max_size=10),
    gz=st.booleans(),
)
def test_what_the_writer_accepts_reads_back_unchanged(tmp_path_factory, rows, team, gz):
    path = tmp_path_factory.mktemp("prop") / ("s.csv.gz" if gz else "s.csv")
    try:
        write_submission(path, list(rows), list(rows.values()), team=team, email=EMAIL, n=3)
    except SegueError:
        return
    report = check_submission(path, None, n=3, strict_uris=False)
    assert report.ok, report.format_text()
    assert report.rows == rows
    assert report.team == team.strip()
