"""Generated playlists beside real ones: structure and model behaviour, side by side.

    .venv/bin/python benchmarks/calibrate.py --work /work/scratch/calib
    .venv/bin/python benchmarks/calibrate.py --work W --seed 1
    .venv/bin/python benchmarks/calibrate.py --work W --population length --generate 100000

Steps: ingest the real dev set (``../shared/data/real-mpd-dev`` beside the checkout, or
``--real``); generate as many MPD-format playlists with ≥ 10 followers (the rule the dev set was
selected by; the generator makes followed playlists longer, drawn from scenes of their taste's
heavy tracks, lighter in chart hits and more individually titled: ``PlaylistConfig``'s curation
settings) and ingest them — or, with
``--population length``, draw that many from ``--generate`` generated playlists with the real set's
length histogram (:func:`segue.analysis.structure.length_matched`); then on both, with the same code:

* the structure figures of :mod:`segue.analysis.structure` (pair co-occurrence, companions,
  rules, artist runs, titles, popularity);
* model behaviour: each collection split as ``segue split`` does (``--per-category`` test and
  validation playlists per challenge category, same seed), popular, title, item-kNN,
  playlist-kNN, ALS and SVD trained with their defaults on the training part and scored by
  R-precision on the test queries (seeds excluded), and the Spearman correlation of the two
  rankings of models.

Writes ``<work>/calibration.md`` (and ``calibration.json``, ``calibration.png``) and prints the
Markdown. When the real data is absent it says so and exits 0: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import machine  # noqa: E402

REAL_MPD = HERE.parent.parent / "shared" / "data" / "real-mpd-dev"
MODELS = ("popular", "title", "itemknn", "playlistknn", "als", "svd")
MIN_FOLLOWERS = 10  # the dev set's rule


def ingest(source: Path, out: Path) -> Path:
    from segue.data.ingest import ingest_mpd

    if not (out / "manifest.json").exists():
        ingest_mpd(source, out)
    return out


def generated_population(
    work: Path, n_generate: int, reference: Path, seed: int, population: str
) -> Path:
    """``work/generated/data``, as many playlists as ``reference``: generated with ≥ 10 followers
    (``population="followers"``, the dev set's own rule), or a length-matched draw from
    ``n_generate`` generated playlists (``"length"``)."""
    from segue.analysis.structure import length_matched
    from segue.data import schema
    from segue.data.synthetic.mpd import MPDConfig, generate_mpd
    from segue.data.synthetic.playlists import PlaylistConfig
    from segue.data.tables import Tables
    from segue.io import atomic_dir

    out = work / "generated" / "data"
    if (out / "manifest.json").exists():
        return out
    real = Tables.read(reference)
    slices = work / "generated" / "mpd"
    if population == "followers":
        if not slices.exists():
            config = MPDConfig(playlists=PlaylistConfig(min_followers=MIN_FOLLOWERS))
            generate_mpd(slices, real.playlists.num_rows, seed=seed, config=config)
        return ingest(slices, out)
    if not slices.exists():
        generate_mpd(slices, n_generate, seed=seed)
    pool = Tables.read(ingest(slices, work / "generated" / "all"))
    lengths = pool.playlists.column(schema.NUM_TRACKS).to_numpy()
    wanted = real.playlists.column(schema.NUM_TRACKS).to_numpy()
    chosen = length_matched(lengths, wanted, len(wanted), np.random.default_rng(seed))
    with atomic_dir(out) as tmp:
        pool.keep(chosen).write(
            tmp, source=f"{len(wanted)} length-matched of {n_generate} generated (seed {seed})"
        )
    return out


def model_behaviour(
    data: Path, work: Path, per_category: int, seed: int
) -> dict[str, dict[str, float]]:
    """R-precision (test queries) and fit seconds of each of :data:`MODELS` on a split of ``data``."""
    from segue.evaluation.split import split_dataset
    from segue.evaluation.task import load_part
    from segue.models.base import Queries
    from segue.models.registry import get_model_class
    from segue.tuning import score

    split = work / "split"
    if not (split / "split.json").exists():
        split_dataset(data, split, per_category=per_category, seed=seed)
    part = load_part(split, "test")
    queries, _ = Queries.from_challenge(part.entries, part.train.uri_to_id)
    out = {}
    for name in MODELS:
        cls = get_model_class(name)
        start = time.perf_counter()
        model = cls(cls.Config()).fit(part.train)
        fit = time.perf_counter() - start
        ranking = model.recommend(queries, 500).ids
        out[name] = {"r_precision": score("r_precision", ranking, part.task.truth), "fit_s": fit}
        print(
            f"  {data.parent.name}: {name} R-precision {out[name]['r_precision']:.4f} ({fit:.1f} s)",
            flush=True,
        )
    return out


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def figure(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=110, layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1, 1.4))
    x = np.arange(len(MODELS))
    for offset, side in ((-0.2, "real"), (0.2, "generated")):
        left.bar(
            x + offset,
            [doc["models"][side][m]["r_precision"] for m in MODELS],
            width=0.4,
            label=side,
        )
    left.set_xticks(x, MODELS, rotation=30)
    left.set_ylabel("R-precision (test queries)")
    left.set_title(f"Models (Spearman {doc['spearman']:.2f})")
    left.legend(fontsize=8)
    names = [k for k in doc["structure"]["real"] if k not in ("playlists",)]
    ratio = [
        doc["structure"]["generated"][k] / doc["structure"]["real"][k]
        if doc["structure"]["real"][k]
        else np.nan
        for k in names
    ]
    right.barh(
        np.arange(len(names)),
        np.log2(np.clip(np.nan_to_num(ratio, nan=1.0), 1e-4, None)),
        color="C2",
    )
    right.axvline(0, color="k", lw=0.8)
    right.set_yticks(np.arange(len(names)), names, fontsize=7)
    right.invert_yaxis()
    right.set_xlabel("log2(generated / real)")
    right.set_title("Structure")
    with path.open("wb") as handle:
        fig.savefig(handle, format="png")


def markdown(doc: dict, command: str) -> str:
    real, gen = doc["structure"]["real"], doc["structure"]["generated"]
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Real: {doc['real']} ({int(real['playlists']):,} playlists). Generated (seed {doc['seed']}): "
        + (
            f"{int(gen['playlists']):,} playlists with ≥ {MIN_FOLLOWERS} followers, the dev set's rule."
            if doc["population"] == "followers"
            else f"{int(gen['playlists']):,} of {doc['generate']:,} drawn with the real set's length histogram."
        ),
        "",
        "| structure | real | generated | generated / real |",
        "|---|---|---|---|",
    ]
    for key, value in real.items():
        ratio = gen[key] / value if value else float("nan")
        lines.append(f"| {key} | {value:.4g} | {gen[key]:.4g} | {ratio:.2f} |")
    lines += [
        "",
        f"| model (R-precision, {doc['queries']} test queries each) | real | generated | generated / real |",
        "|---|---|---|---|",
    ]
    for name in MODELS:
        r, g = (
            doc["models"]["real"][name]["r_precision"],
            doc["models"]["generated"][name]["r_precision"],
        )
        lines.append(f"| {name} | {r:.4f} | {g:.4f} | {g / r if r else float('nan'):.2f} |")
    lines += ["", f"Spearman correlation of the two rankings of models: **{doc['spearman']:.2f}**"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--real", type=Path, default=REAL_MPD, help="real MPD slices (default: %(default)s)"
    )
    parser.add_argument(
        "--work", type=Path, required=True, help="where data, splits and results go"
    )
    parser.add_argument(
        "--population",
        choices=("followers", "length"),
        default="followers",
        help="followers: generate playlists with >= 10 followers, as the dev set kept; "
        "length: draw from --generate playlists with the real set's length histogram",
    )
    parser.add_argument(
        "--generate", type=int, default=60_000, help="with --population length: the pool's size"
    )
    parser.add_argument(
        "--per-category", type=int, default=100, help="test playlists per challenge category"
    )
    parser.add_argument("--seed", type=int, default=0, help="generator, draw and split seed")
    args = parser.parse_args()
    if not args.real.is_dir():
        print(f"calibrate: no real MPD playlists at {args.real}; skipped (pass --real DIR)")
        return 0
    from segue.analysis.structure import structure_stats

    work = args.work
    real = ingest(args.real, work / "real" / "data")
    generated = generated_population(work, args.generate, real, args.seed, args.population)
    doc = {
        "real": args.real.name,
        "generate": args.generate,
        "population": args.population,
        "seed": args.seed,
        "structure": {},
        "models": {},
    }
    for side, data in (("real", real), ("generated", generated)):
        doc["structure"][side] = structure_stats(data)
        doc["models"][side] = model_behaviour(data, data.parent, args.per_category, args.seed)
    doc["queries"] = 10 * args.per_category
    doc["spearman"] = spearman(
        [doc["models"]["real"][m]["r_precision"] for m in MODELS],
        [doc["models"]["generated"][m]["r_precision"] for m in MODELS],
    )
    command = (
        f".venv/bin/python benchmarks/calibrate.py --work {work}"
        + (f" --population {args.population}" if args.population != "followers" else "")
        + (f" --generate {args.generate}" if args.generate != 60_000 else "")
        + (f" --seed {args.seed}" if args.seed else "")
        + (f" --per-category {args.per_category}" if args.per_category != 100 else "")
    )
    text = markdown(doc, command)
    (work / "calibration.json").write_text(json.dumps(doc, indent=2))
    (work / "calibration.md").write_text(text)
    figure(doc, work / "calibration.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
