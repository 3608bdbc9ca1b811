"""Diversity and category analysis: what each model recommends, beyond accuracy, per category.

The playlist-continuation design's diversity analysis and its evaluation by challenge category. For each model
directory and/or submission file answering a split's challenge set, and for each challenge
category (and all queries together), at each list cut-off ``k``:

* **catalog coverage** — distinct tracks recommended to the group's queries / training catalog;
* **artist diversity** — distinct artists / distinct tracks within a list (mean over queries);
* **novelty** — mean −log₂(popularity / training playlists) of the recommended tracks;
* **popularity bias** (ARP) — mean training popularity of the recommended tracks;
* **long-tail share** — share of recommended tracks outside the short head (the most popular
  tracks that carry 80% of training entries).

The metric functions are :mod:`segue.evaluation.metrics`'s; this module groups them by category
and cut-off, adds the same figures for the *held-out tracks themselves* (what people actually
added to those playlists: the reference a recommender's popularity bias is read against, over
the whole held-out set, so shown under every ``k``), and writes ``diversity.json``,
``diversity.csv``, ``diversity.md``, one figure per cut-off and a popularity profile
(which share of each model's recommendations falls in each training-popularity band).

Rankings come from models exactly as ``segue evaluate`` makes them (:func:`segue.evaluation.rankings.part_rankings`: a model not trained on the
split's training part is refused: its track ids would not be the split's). A submission may name
held-out tracks that training never saw: they count as tracks of popularity 0, and not in the
catalog coverage (which is of the training catalog).
"""

from __future__ import annotations

import csv
import io
import itertools
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from segue.colours import model_colour
from segue.data.challenge import CATEGORY_BY_NUMBER
from segue.errors import SegueError
from segue.evaluation import metrics as ranking_metrics
from segue.evaluation.runner import EvaluationTask
from segue.io import atomic_dir, atomic_file, write_json

METRICS = ("catalog_coverage", "artist_diversity", "novelty", "popularity_bias", "long_tail_share")
LABELS = {
    "catalog_coverage": "catalog coverage",
    "artist_diversity": "artist diversity",
    "novelty": "novelty (bits)",
    "popularity_bias": "popularity bias (ARP, playlists)",
    "long_tail_share": "long-tail share",
}
REFERENCE = "held-out tracks"
POPULARITY_BANDS = (0, 1, 10, 100, 1_000, 10_000)  # lower edges of the profile's bands


def group_label(group: str) -> str:
    return "all queries" if group == "all" else f"{group} — {CATEGORY_BY_NUMBER[int(group)].label}"


def diversity_table(
    task: EvaluationTask,
    rankings: dict[str, np.ndarray],
    cutoffs: Sequence[int] = (10, 500),
    head_share: float = 0.8,
) -> dict:
    """``table[name][str(k)][group][metric]`` for every ranking, cut-off and group.

    ``rankings``: name → int [q, n] ids aligned with ``task.pids`` (-1 padding; ids ≥
    ``task.n_items`` are tracks training never saw). Groups: ``"all"`` and each category
    present. The held-out truth appears as :data:`REFERENCE`, the same under every cut-off.
    Returns ``{"table": …, "groups": […], "sizes": {group: queries}}``.
    """
    q = len(task.pids)
    cats = [c for c in sorted(CATEGORY_BY_NUMBER) if (task.categories == c).any()]
    members = {"all": np.arange(q)} | {str(c): np.flatnonzero(task.categories == c) for c in cats}
    # Popularity over every id a list may hold (unknown held-out tracks: 0 playlists).
    popularity = np.zeros(len(task.track_artist), dtype=np.int64)
    popularity[: task.n_items] = task.item_popularity
    head = np.zeros(len(popularity), dtype=bool)
    head[: task.n_items] = ranking_metrics.head_mask(task.item_popularity, head_share)
    longest = max((len(t) for t in task.truth), default=0)
    truth = np.full((q, max(longest, 1)), -1, dtype=np.int64)
    for i, t in enumerate(task.truth):  # per query (≤ 10,000), not per training row
        truth[i, : len(t)] = t

    def measure(ranking: np.ndarray, k: int | None) -> dict[str, dict[str, float]]:
        r = np.sort(ranking[:, :k] if k else ranking, axis=1)
        per_query = {
            "artist_diversity": ranking_metrics.artist_diversity(r, task.track_artist),
            "novelty": ranking_metrics.novelty(r, popularity, task.n_playlists),
            "popularity_bias": ranking_metrics.popularity_bias(r, popularity),
            # long_tail_share with the head fixed by training popularity (unknown tracks: tail).
            "long_tail_share": _tail_share(r, head),
        }
        out = {}
        for group, rows in members.items():
            known = r[rows]
            known = known[(known >= 0) & (known < task.n_items)]
            cells = {"catalog_coverage": float(np.unique(known).size / task.n_items)}
            cells |= {m: float(v[rows].mean()) if len(rows) else 0.0 for m, v in per_query.items()}
            out[group] = cells
        return out

    table: dict = {}
    for name, ranking in rankings.items():
        ranking = np.asarray(ranking, dtype=np.int64)
        if ranking.ndim != 2 or ranking.shape[0] != q:
            raise SegueError(f"ranking {name!r} has shape {ranking.shape}; expected {q} rows")
        if ranking.size and (ranking.min() < -1 or ranking.max() >= len(popularity)):
            raise SegueError(f"ranking {name!r} holds ids outside the split's catalog")
        table[name] = {str(k): measure(ranking, k) for k in cutoffs}
    reference = measure(truth, None)
    table[REFERENCE] = {str(k): reference for k in cutoffs}
    return {
        "table": table,
        "groups": list(members),
        "sizes": {g: len(r) for g, r in members.items()},
    }


def _tail_share(sorted_ranking: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Share of each row's distinct, non-padding ids that are not head: float64 [q]."""
    distinct = np.ones(sorted_ranking.shape, dtype=bool)
    distinct[:, 1:] = sorted_ranking[:, 1:] != sorted_ranking[:, :-1]
    distinct &= sorted_ranking >= 0
    tail = ~head[np.maximum(sorted_ranking, 0)] & distinct
    count = distinct.sum(axis=1)
    return np.divide(tail.sum(axis=1), count, out=np.zeros(len(count)), where=count > 0)


def band_labels() -> list[str]:
    """Labels of :data:`POPULARITY_BANDS`.

    >>> band_labels()
    ['0', '1–9', '10–99', '100–999', '1,000–9,999', '≥ 10,000']
    """
    bounds = POPULARITY_BANDS
    inner = [
        f"{lo:,}" if hi - 1 == lo else f"{lo:,}–{hi - 1:,}" for lo, hi in itertools.pairwise(bounds)
    ]
    return [*inner, f"≥ {bounds[-1]:,}"]


def popularity_profile(
    task: EvaluationTask, rankings: dict[str, np.ndarray], k: int
) -> dict[str, list[float]]:
    """Share of each list's recommendations (top ``k``, all queries pooled) per popularity band
    (:data:`POPULARITY_BANDS`), with the held-out tracks as :data:`REFERENCE`."""
    popularity = np.zeros(len(task.track_artist), dtype=np.int64)
    popularity[: task.n_items] = task.item_popularity
    edges = np.array(POPULARITY_BANDS[1:])
    out = {}
    lists = {name: np.asarray(r)[:, :k] for name, r in rankings.items()}
    lists[REFERENCE] = np.concatenate(task.truth) if task.truth else np.zeros(0, np.int64)
    for name, ids in lists.items():
        ids = np.asarray(ids).ravel()
        ids = ids[ids >= 0]
        band = np.searchsorted(edges, popularity[ids], side="right")
        counts = np.bincount(band, minlength=len(POPULARITY_BANDS)).astype(np.float64)
        out[name] = (counts / max(counts.sum(), 1)).tolist()
    return out


# --- the `segue diversity` stage ------------------------------------------------------------------


def analyse_diversity(
    split_dir: Path,
    out_dir: Path,
    *,
    model_dirs: Sequence[Path] = (),
    submissions: Sequence[Path] = (),
    part: str = "test",
    cutoffs: Sequence[int] = (10, 500),
    n: int = 500,
    head_share: float = 0.8,
    rankings: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """Diversity of every model / submission on a split's ``part``, per category; see the module
    docstring. ``rankings``: lists already computed on this part's queries (name → int [q, n]
    track ids of the part's training data, in the challenge set's order), used as they are — the
    pipeline passes the evaluation's, so no model recommends twice. Writes ``diversity.json``, ``diversity.csv``, ``diversity.md``,
    ``diversity_at_<k>.png`` per cut-off and ``popularity_profile.png`` (all or nothing) and
    returns the JSON document."""
    from segue.evaluation.rankings import part_rankings
    from segue.evaluation.task import load_part

    if not model_dirs and not submissions and not rankings:
        raise SegueError("nothing to analyse: give model directories and/or --submission files")
    cutoffs = sorted(set(int(k) for k in cutoffs))
    if not cutoffs or cutoffs[0] < 1 or cutoffs[-1] > n:
        raise SegueError(f"cut-offs must be between 1 and the list length {n}, got {cutoffs}")
    if not 0 < head_share <= 1:
        raise SegueError(f"head_share must be in (0, 1], got {head_share}")
    start = time.perf_counter()
    loaded = load_part(Path(split_dir), part)
    given = {name: np.asarray(ids, dtype=np.int64) for name, ids in (rankings or {}).items()}
    for name, ids in given.items():
        if ids.shape != (len(loaded.task.pids), n):
            raise SegueError(
                f"rankings of {name}: shape {ids.shape}, expected {(len(loaded.task.pids), n)}"
            )
    rankings = {
        **given,
        **part_rankings(loaded, model_dirs, submissions, n=n, reserved={REFERENCE, *given}),
    }
    result = diversity_table(loaded.task, rankings, cutoffs, head_share)
    document = {
        "split": str(split_dir),
        "part": part,
        "n_queries": len(loaded.task.pids),
        "models": list(rankings),
        "reference": REFERENCE,
        "cutoffs": cutoffs,
        "n": n,
        "head_share": head_share,
        "metrics": list(METRICS),
        "groups": result["groups"],
        "group_labels": {g: group_label(g) for g in result["groups"]},
        "sizes": result["sizes"],
        "table": result["table"],
        "popularity_bands": band_labels(),
        "popularity_profile": popularity_profile(loaded.task, rankings, cutoffs[-1]),
    }
    with atomic_dir(Path(out_dir)) as tmp:
        write_json(tmp / "diversity.json", document)
        (tmp / "diversity.csv").write_text(_csv(document), encoding="utf-8")
        (tmp / "diversity.md").write_text(_markdown(document), encoding="utf-8")
        for k in cutoffs:
            _figure(document, k, tmp / f"diversity_at_{k}.png")
        _profile_figure(document, tmp / "popularity_profile.png")
    document["seconds"] = round(time.perf_counter() - start, 2)
    return document


def _csv(doc: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["model", "cutoff", "group", "group_label", "queries", "metric", "value"])
    for name, by_k in doc["table"].items():
        for k, by_group in by_k.items():
            for group, cells in by_group.items():
                for metric in METRICS:
                    writer.writerow(
                        [
                            name,
                            "all" if name == REFERENCE else k,
                            group,
                            doc["group_labels"][group],
                            doc["sizes"][group],
                            metric,
                            repr(cells[metric]),
                        ]
                    )
    return buffer.getvalue()


def _fmt(metric: str, value: float) -> str:
    if metric == "popularity_bias":
        return f"{value:,.1f}"
    if metric == "novelty":
        return f"{value:.2f}"
    if metric == "catalog_coverage":
        return f"{value:.3%}"
    return f"{value:.4f}"


def _markdown(doc: dict) -> str:
    names = [*doc["models"], REFERENCE]
    lines = [
        f"# Diversity by challenge category ({doc['part']} part of {doc['split']})",
        "",
        f"{doc['n_queries']:,} queries; lists of {doc['n']}, measured at k = "
        + ", ".join(str(k) for k in doc["cutoffs"])
        + f". The last column, *{REFERENCE}*, measures the tracks people really added to these playlists "
        "(all of them, whatever k): the reference for popularity bias and novelty.",
        "",
    ]
    for k in doc["cutoffs"]:
        lines += [f"## At k = {k}", ""]
        for metric in METRICS:
            lines += [
                f"### {LABELS[metric]}",
                "",
                "| category | " + " | ".join(f"`{m}`" for m in names) + " | queries |",
                "|---|" + "---:|" * (len(names) + 1),
            ]
            for group in [*doc["groups"][1:], "all"]:
                cells = [_fmt(metric, doc["table"][m][str(k)][group][metric]) for m in names]
                lines.append(
                    f"| {doc['group_labels'][group]} | "
                    + " | ".join(cells)
                    + f" | {doc['sizes'][group]:,} |"
                )
            lines.append("")
    lines += [
        "## Popularity profile",
        "",
        f"Share of the top-{doc['cutoffs'][-1]} recommendations (all queries) by the track's training "
        "popularity (playlists holding it):",
        "",
        "| list | " + " | ".join(doc["popularity_bands"]) + " |",
        "|---|" + "---:|" * len(doc["popularity_bands"]),
    ]
    for name in names:
        lines.append(
            f"| `{name}` | "
            + " | ".join(f"{v:.1%}" for v in doc["popularity_profile"][name])
            + " |"
        )
    lines += [
        "",
        "## Definitions",
        "",
        "- catalog coverage: distinct tracks recommended to the group's queries / tracks of the training "
        "catalog (grows with the number of queries, so compare within a category).",
        "- artist diversity: distinct artists / distinct tracks in a list, averaged over queries.",
        "- novelty: mean −log₂(popularity / training playlists) of a list's tracks (popularity 0 counts as 1).",
        "- popularity bias (ARP): mean training popularity of a list's tracks.",
        f"- long-tail share: share of a list's tracks outside the short head (the most popular tracks "
        f"carrying {doc['head_share']:.0%} of training entries).",
        "",
    ]
    return "\n".join(lines)


def _new_figure(width: float, height: float):
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, path: Path) -> None:
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png")


def _figure(doc: dict, k: int, path: Path) -> None:
    names = [*doc["models"], REFERENCE]
    groups = [*doc["groups"][1:], "all"]
    fig = _new_figure(13, 3.2 * len(METRICS))
    axes = fig.subplots(len(METRICS), 1, sharex=True)
    x = np.arange(len(groups), dtype=np.float64)
    x[-1] += 0.5
    width = 0.8 / len(names)
    for ax, metric in zip(axes, METRICS, strict=True):
        for j, name in enumerate(names):
            values = [doc["table"][name][str(k)][g][metric] for g in groups]
            ax.bar(
                x + (j - (len(names) - 1) / 2) * width,
                values,
                width=width,
                label=name,
                color="0.75" if name == REFERENCE else model_colour(name),
                hatch="//" if name == REFERENCE else None,
            )
        ax.set_ylabel(textwrap.fill(LABELS[metric], 18), fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    axes[0].legend(fontsize=8, ncols=min(len(names), 5), loc="best")
    axes[0].set_title(f"Diversity at k = {k} by challenge category")
    ticks = [
        "all queries"
        if g == "all"
        else f"{g}\n" + textwrap.fill(CATEGORY_BY_NUMBER[int(g)].label, 14)
        for g in groups
    ]
    axes[-1].set_xticks(x, ticks, fontsize=8)
    _save(fig, path)


def _profile_figure(doc: dict, path: Path) -> None:
    names = [*doc["models"], REFERENCE]
    bands = doc["popularity_bands"]
    fig = _new_figure(10, 4.5)
    ax = fig.subplots()
    x = np.arange(len(bands))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        ax.bar(
            x + (j - (len(names) - 1) / 2) * width,
            doc["popularity_profile"][name],
            width=width,
            label=name,
            color="0.75" if name == REFERENCE else model_colour(name),
            hatch="//" if name == REFERENCE else None,
        )
    ax.set_xticks(x, bands)
    ax.set_xlabel("training popularity of the track (playlists)")
    ax.set_ylabel("share of recommended tracks")
    ax.set_title(f"Popularity profile of the top-{doc['cutoffs'][-1]} lists (all queries)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
