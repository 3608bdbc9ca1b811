"""``segue graph …``: build, train, evaluate and explain the graph models (thin: parse, call, print).

Imports only typer at module level, so ``segue --help`` stays fast; torch is loaded by the
commands that train or score.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from segue.cli.common import app, echo, output_dir
from segue.errors import SegueError

graph_app = typer.Typer(
    no_args_is_help=True,
    help="Graph models: build graphs, evaluate GAT / LightGCN / PlaylistGAT against baselines, explain (train them with `segue train`).",
)
app.add_typer(graph_app, name="graph")

Mode = Annotated[str, typer.Option(help="Training budget: mini, quick, balanced or full.")]
Seed = Annotated[int, typer.Option(help="Random seed (same seed, same model).")]
Budget = Annotated[
    str,
    typer.Option(
        help="Wall-clock training budget per model (90s, 10m, 1h), "
        "overriding the mode's (mini 10s, quick 1m, balanced 5m, full 30m)."
    ),
]


@graph_app.command("build")
def build_cmd(
    data: Annotated[
        Path,
        typer.Argument(
            help="A playlist dataset (`segue ingest`) or listening dataset (`segue ingest sessions`)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", callback=output_dir, help="Directory for graph.npz and graph.json."
        ),
    ],
    user_genres: Annotated[
        str,
        typer.Option(
            help="Listening graphs: user→genre edges: none (default), "
            "listening (from the user's own listens) or stated (the source's)."
        ),
    ] = "none",
) -> None:
    """Build the heterogeneous graph of a dataset and save it (arrays + JSON, no pickle)."""
    from segue.models.gnn.graph import ListeningGraph, PlaylistGraph, save_graph
    from segue.models.gnn.runs import is_listening_dir

    if is_listening_dir(data):
        from segue.data.sessions import ListeningData

        listening = ListeningData.load(
            data, events=False, user_genre_preferences=user_genres == "stated"
        )
        graph = ListeningGraph.from_listening(listening, user_genres=user_genres)
    else:
        from segue.data.dataset import PlaylistData

        if user_genres != "none":
            raise SegueError("--user-genres applies to listening data only")
        graph = PlaylistGraph.from_playlist_data(PlaylistData.load(data))
    info = save_graph(graph, out)
    echo(
        f"wrote {out} ({info['kind']} graph): "
        + ", ".join(
            f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in info["counts"].items()
        )
    )


@graph_app.command("evaluate")
def evaluate_cmd(
    data: Annotated[
        Path,
        typer.Argument(help="Listening data or split; or a playlist split from `segue split`."),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", callback=output_dir, help="Directory for the report.")
    ],
    models: Annotated[str, typer.Option(help="Graph models, comma-separated.")] = "",
    baselines: Annotated[str, typer.Option(help="Baselines, comma-separated.")] = "",
    mode: Mode = "quick",
    budget: Budget = "",
    seed: Seed = 0,
    part: Annotated[str, typer.Option(help="test, or validation.")] = "test",
) -> None:
    """Train graph models and baselines on a split's training part and score them on held-out data.

    Listening data: Recall@10 / NDCG@10 (all tracks ranked, training tracks excluded) by user type,
    genre figures, training time and inference time per user. Playlist split: the Evaluation
    harness (challenge metrics per category, CIs, paired tests)."""
    from segue.models.gnn import runs
    from segue.models.gnn.training import parse_duration

    seconds = parse_duration(budget) if budget else 0.0
    start = time.perf_counter()
    if runs.is_listening_dir(data):
        chosen = _names(models, runs.GRAPH_MODELS)
        report = runs.evaluate_listening_models(
            runs.load_listening_split(data, seed),
            models=chosen,
            baselines=_names(baselines, runs.BASELINES),
            mode=mode,
            seed=seed,
            part=part,
            budget_seconds=seconds,
        )
        report.write(out)
        echo(report.to_markdown())
    else:
        result, timings = runs.evaluate_playlist_split(
            data,
            out,
            models=_names(models, runs.PLAYLIST_GRAPH_MODELS),
            baselines=_names(baselines, ("als",)),
            mode=mode,
            part=part,
            seed=seed,
            budget_seconds=seconds,
        )
        echo(result.headline())
        for name, t in timings.items():
            echo(
                f"{name:<12} trained in {t['train_s']:.1f} s; {t['ms_single_query']:.1f} ms per single query "
                f"({t['ms_per_query_batch']:.2f} ms per query in a batch)"
            )
    echo(f"report in {out} [{time.perf_counter() - start:.1f} s]")


def _names(text: str, default: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    return names or default


@graph_app.command("explain")
def explain_cmd(
    model_dir: Annotated[
        Path, typer.Argument(help="A trained gat / genre_gat directory (`segue train`).")
    ],
    user: Annotated[int, typer.Option(help="User id to explain.")],
    n: Annotated[int, typer.Option("-n", help="Recommendations to explain.", min=1)] = 5,
    heatmap: Annotated[
        Path | None, typer.Option(help="Also write the attention heatmap (PNG) here.")
    ] = None,
) -> None:
    """Recommend for a user and explain each track: attention over their history, genres, popularity."""
    import numpy as np

    from segue.models.gnn.explain import listening_heatmap
    from segue.models.gnn.listening import ListeningGATRecommender

    model = ListeningGATRecommender.load(model_dir)
    if not 0 <= user < model.graph.n_users:
        raise SegueError(f"user {user} outside 0..{model.graph.n_users - 1}")
    tracks = model.recommend_users(np.array([user]), n)[0]
    tracks = tracks[tracks >= 0]
    for explanation in model.explain(user, tracks):
        echo(explanation.text)
        echo("")
    if heatmap is not None:
        listening_heatmap(model, user, tracks, heatmap)
        echo(f"wrote {heatmap}")
