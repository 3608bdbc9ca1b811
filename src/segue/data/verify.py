"""``segue verify``: is an MPD directory complete, parseable and consistent?

Checks, in order: the slice set (contiguous pid ranges starting at 0, none missing or
overlapping), every file parses (a truncated or corrupt file is named with the position of the
failure), the playlist invariants of each slice (``mpd.check_slice``), pids unique across files,
and the challenge set (present, well formed, categories). The report is readable text; the exit
status is non-zero when anything is an error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segue.data import schema
from segue.data.challenge import CATEGORY_BY_NUMBER, category_of, read_challenge
from segue.data.mpd import (
    FULL_MPD_SLICES,
    Problem,
    SliceFile,
    SlicePart,
    check_slice,
    count_problems,
    find_slices,
    parse_part,
    slice_parts,
)
from segue.errors import InputFileError
from segue.parallel import ordered_map
from segue.progress import progress


@dataclass
class _FileResult:
    file: SliceFile
    problems: list[Problem]
    pids: np.ndarray
    n_entries: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    modified: tuple[int, int] | None = None
    last: bool = True  # the file's last part (always, for a file parsed whole)
    streamed: bool = False


def _verify_file(part: SlicePart) -> _FileResult:
    file = part.file
    try:
        parsed = parse_part(part)
    except InputFileError as exc:
        return _FileResult(
            file,
            [Problem(file.name, exc.where or "", exc.problem)],
            np.zeros(0, np.int64),
            last=part.last or part.error is not None,
            streamed=part.raw is not None or part.error is not None,
        )
    modified = parsed.playlists.column(schema.MODIFIED_AT).drop_null().to_numpy()
    return _FileResult(
        file,
        check_slice(parsed),
        parsed.playlists.column(schema.PID).to_numpy().astype(np.int64),
        int(parsed.lengths.sum()),
        parsed.missing,
        (int(modified.min()), int(modified.max())) if len(modified) else None,
        parsed.last,
        not parsed.whole,
    )


@dataclass
class VerifyReport:
    source: Path
    n_files: int = 0
    n_playlists: int = 0
    n_entries: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: dict[str, int] = field(default_factory=dict)
    modified_range: tuple[int, int] | None = None
    challenge: dict | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def format_text(self, max_problems: int = 40) -> str:
        from datetime import UTC, datetime

        lines = ["MPD verification report", "=" * 23, f"source: {self.source}"]
        mark = "✓" if not any(p.where == "" and "slice" in p.message for p in self.errors) else "✗"
        lines.append(
            f"{mark} {self.n_files:,} slice files, {self.n_playlists:,} playlists, {self.n_entries:,} track entries"
        )
        if self.modified_range:
            lo, hi = (
                datetime.fromtimestamp(t, UTC).date().isoformat() for t in self.modified_range
            )
            lines.append(f"  last modified between {lo} and {hi}")
        if self.missing:
            parts = ", ".join(f"{k} ({v:,} records)" for k, v in sorted(self.missing.items()))
            lines.append(f"  fields missing: {parts}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.challenge is not None:
            c = self.challenge
            mark = "✓" if c.get("ok") else "✗"
            lines.append(f"{mark} challenge set {c['path']}: {c.get('n', 0):,} playlists")
            for number, count in sorted(c.get("categories", {}).items()):
                label = (
                    CATEGORY_BY_NUMBER[number].label
                    if number in CATEGORY_BY_NUMBER
                    else "unrecognised"
                )
                lines.append(f"    category {number:>2} ({label}): {count:,}")
        errors, warnings = self.errors, [p for p in self.problems if p.severity != "error"]
        if errors:
            lines.append(f"✗ {len(errors)} error{'s' if len(errors) > 1 else ''}:")
            lines += [f"  - {p}" for p in errors[:max_problems]]
            if len(errors) > max_problems:
                lines.append(f"  ... and {len(errors) - max_problems} more")
        if warnings:
            lines.append(f"! {len(warnings)} warning{'s' if len(warnings) > 1 else ''}:")
            lines += [f"  - {p}" for p in warnings[:max_problems]]
        lines.append("RESULT: OK" if self.ok else "RESULT: FAILED")
        return "\n".join(lines)


def check_slice_set(files: list[SliceFile]) -> list[Problem]:
    """Contiguous ranges from pid 0, no gaps and no overlaps."""
    problems = []
    expected_start = 0
    for f in files:
        if f.end < f.start:
            problems.append(Problem(f.name, "", f"its name's range {f.start}-{f.end} is empty"))
            continue
        if f.start > expected_start:
            problems.append(
                Problem(
                    f.name,
                    "",
                    f"slice set has a gap: pids {expected_start}-{f.start - 1} are in no file",
                )
            )
        elif f.start < expected_start:
            problems.append(
                Problem(
                    f.name,
                    "",
                    f"slice overlaps the previous one (pids {f.start}-{expected_start - 1})",
                )
            )
        expected_start = max(expected_start, f.end + 1)
    return problems


def verify_mpd(
    source: Path, challenge: Path | None = None, workers: int | None = None
) -> VerifyReport:
    """Verify the MPD files under ``source``; raises only when ``source`` holds no slices."""
    source = Path(source)
    files = find_slices(source)
    report = VerifyReport(source, n_files=len(files))
    report.problems += check_slice_set(files)
    if len(files) != FULL_MPD_SLICES:
        report.notes.append(
            f"{len(files)} slices (the full MPD has {FULL_MPD_SLICES:,}); a subset is fine if intended"
        )
    all_pids, pid_files = [], []
    streamed: set[str] = set()
    in_file = 0  # playlists so far in the file in progress
    lo, hi = None, None
    with progress("verifying slices", len(files), "slices") as bar:
        for result in ordered_map(_verify_file, slice_parts(files), workers):
            report.problems += result.problems
            all_pids.append(result.pids)
            pid_files.append(result.file.name)
            in_file += len(result.pids)
            if result.streamed:
                streamed.add(result.file.name)
            if result.last:
                bar.advance(1)
                if result.streamed:  # a whole file's count is checked with its playlists
                    report.problems += count_problems(result.file, in_file)
                in_file = 0
            report.n_playlists += len(result.pids)
            report.n_entries += result.n_entries
            for key, count in result.missing.items():
                report.missing[key] = report.missing.get(key, 0) + count
            if result.modified:
                lo = result.modified[0] if lo is None else min(lo, result.modified[0])
                hi = result.modified[1] if hi is None else max(hi, result.modified[1])
    report.modified_range = (lo, hi) if lo is not None else None
    pids = np.concatenate(all_pids) if all_pids else np.zeros(0, np.int64)
    uniq, counts = np.unique(pids, return_counts=True)
    file_of = np.repeat(np.arange(len(all_pids)), [len(p) for p in all_pids])
    for pid in uniq[counts > 1][:20]:
        names = sorted({pid_files[i] for i in file_of[pids == pid]})
        if len(names) > 1:
            report.problems.append(
                Problem(names[-1], "", f"pid {pid} also appears in {', '.join(names[:-1])}")
            )
        elif names[0] in streamed:  # parts of one file: check_slice saw only its own part
            times = int(counts[np.searchsorted(uniq, pid)])
            report.problems.append(
                Problem(names[0], "", f"pid {pid} appears {times} times in this file")
            )
    report.challenge = _verify_challenge(source, challenge)
    if report.challenge and not report.challenge["ok"]:
        report.problems.append(Problem(report.challenge["path"], "", report.challenge["error"]))
    elif report.challenge and report.challenge.get("warning"):
        report.problems.append(
            Problem(report.challenge["path"], "", report.challenge["warning"], "warning")
        )
    return report


def _verify_challenge(source: Path, explicit: Path | None) -> dict | None:
    candidates = (
        [explicit]
        if explicit
        else [source / schema.CHALLENGE_FILE, source.parent / schema.CHALLENGE_FILE]
    )
    path = next((p for p in candidates if p is not None and p.exists()), None)
    if path is None:
        if explicit:
            return {"path": str(explicit), "ok": False, "error": "challenge set not found"}
        return None
    try:
        entries = read_challenge(path)
    except InputFileError as exc:
        return {
            "path": str(path),
            "ok": False,
            "error": exc.problem if not exc.where else f"{exc.where}: {exc.problem}",
        }
    categories = Counter(category_of(e) for e in entries)
    for i, e in enumerate(entries):
        if (
            "num_holdouts" in e
            and "num_tracks" in e
            and e["num_holdouts"] + len(e["tracks"]) != e["num_tracks"]
        ):
            return {
                "path": str(path),
                "ok": False,
                "n": len(entries),
                "categories": dict(categories),
                "error": f"playlist {i} (pid {e['pid']}): num_samples + num_holdouts != num_tracks",
            }
    info = {"path": str(path), "ok": True, "n": len(entries), "categories": dict(categories)}
    if categories.get(0):
        info["ok"] = False
        info["error"] = f"{categories[0]} playlists match no challenge category"
    elif len(categories) != 10:
        info["warning"] = f"only {len(categories)} of the 10 challenge categories are present"
    return info
