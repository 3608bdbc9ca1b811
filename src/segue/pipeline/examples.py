"""Example continuations for the report: a few held-out test playlists, what a model recommends
for them, why, and which of those tracks the playlist really had (its held-out tracks)."""

from __future__ import annotations

from pathlib import Path

from segue.data import schema
from segue.data.challenge import read_truth
from segue.errors import SegueError
from segue.io import atomic_dir, write_json, write_text


def write_examples(
    split: Path, model_dir: Path, out: Path, *, categories=(1, 3, 7), n: int = 10, seed: int = 0
) -> dict:
    """For the lowest-pid test playlist of each of ``categories``: its title and seeds, the
    model's top ``n`` with explanations, each marked when it is one of the playlist's held-out
    tracks. Writes ``examples.json`` and ``examples.md`` under ``out``; returns the document."""
    from segue.evaluation.split import part_paths
    from segue.models.base import Queries, Recommender

    _, challenge_path, truth_path = part_paths(split, "test")
    from segue.data.challenge import category_of, read_challenge

    entries = read_challenge(challenge_path)
    truth = read_truth(truth_path)
    model = Recommender.load(model_dir)
    catalog = model.catalog()
    uris = catalog.column(schema.TRACK_URI).to_pylist()
    lookup = {u: i for i, u in enumerate(uris)}
    examples = []
    for category in categories:
        chosen = sorted((e for e in entries if category_of(e) == category), key=lambda e: e["pid"])
        if not chosen:
            continue
        entry = chosen[0]
        queries, unknown = Queries.from_challenge([entry], lookup)
        ranking = model.recommend(queries, n)
        explanations = model.explain(queries, 0, ranking.ids[0])
        held = set(truth[entry["pid"]]["holdout_tracks"])
        labels = model.track_labels(ranking.ids[0])
        examples.append(
            {
                "pid": entry["pid"],
                "category": category,
                "title": entry.get("name", ""),
                "seeds": [
                    f"{t.get(schema.TRACK_NAME, '?')} — {t.get(schema.ARTIST_NAME, '?')}"
                    for t in entry["tracks"]
                ],
                "held_out": len(held),
                "unknown_seeds": unknown,
                "recommendations": [
                    {
                        "rank": r + 1,
                        "track": labels[r],
                        "uri": uris[t],
                        "in_held_out": uris[t] in held,
                        "because": e.text,
                        "evidence": e.evidence,
                    }
                    for r, (t, e) in enumerate(
                        zip(ranking.ids[0].tolist(), explanations, strict=True)
                    )
                ],
            }
        )
    if not examples:
        raise SegueError(
            f"{challenge_path}: no test playlist in categories {list(categories)} to show"
        )
    document = {"model": model.name, "model_dir": str(model_dir), "examples": examples}
    lines = [f"# Example continuations ({model.name})", ""]
    for ex in examples:
        hits = sum(r["in_held_out"] for r in ex["recommendations"])
        lines += [
            f"## pid {ex['pid']} — category {ex['category']}"
            + (f", title '{ex['title']}'" if ex["title"] else ""),
            "",
            f"Seeds ({len(ex['seeds'])}): "
            + (
                "; ".join(ex["seeds"][:5]) + (" …" if len(ex["seeds"]) > 5 else "")
                if ex["seeds"]
                else "none"
            ),
            f"Top {n}: {hits} of them are among the playlist's {ex['held_out']} held-out tracks (✓).",
            "",
        ]
        for r in ex["recommendations"]:
            lines.append(
                f"{r['rank']}. {'✓ ' if r['in_held_out'] else ''}{r['track']} — {r['because']}"
            )
        lines.append("")
    with atomic_dir(Path(out)) as tmp:
        write_json(tmp / "examples.json", document)
        write_text(tmp / "examples.md", "\n".join(lines))
    return {
        "model": model.name,
        "playlists": [ex["pid"] for ex in examples],
        "hits": {
            str(ex["pid"]): sum(r["in_held_out"] for r in ex["recommendations"]) for ex in examples
        },
    }
