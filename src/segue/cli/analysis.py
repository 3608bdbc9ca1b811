"""`segue rules`, `cluster`, `diversity`, `popularity-model`: mining and analyses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segue.cli.common import Engine, Master, app, echo, output_dir
from segue.errors import SegueError


@app.command()
def rules(
    data: Annotated[Path, typer.Argument(help="Dataset directory written by `segue ingest`.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            callback=output_dir,
            help="Directory for rules.parquet, rules.md, summary.json.",
        ),
    ],
    min_support: Annotated[
        float, typer.Option(help="Least share of playlists holding a whole rule, in (0, 1].")
    ] = 0.001,
    min_confidence: Annotated[float, typer.Option(help="Least confidence, in [0, 1].")] = 0.1,
    min_lift: Annotated[float, typer.Option(help="Least lift (1 = independent).")] = 1.2,
    max_len: Annotated[
        int, typer.Option(help="Most tracks in a rule, antecedent and consequent together.")
    ] = 3,
    top: Annotated[int, typer.Option(help="Rules listed per table of rules.md.")] = 50,
    engine: Engine = "local",
    master: Master = None,
) -> None:
    """Association rules between tracks (FP-growth): support, confidence, lift, leverage, conviction."""
    from segue.mining.rules import RuleThresholds, mine_rules

    s = mine_rules(
        data,
        out,
        RuleThresholds(min_support, min_confidence, min_lift, max_len),
        top=top,
        engine=engine,
        master=master,
    )
    echo(
        f"wrote {s['n_rules']:,} rules over {s['n_frequent_tracks']:,} frequent tracks "
        f"(≥ {s['min_count']:,} of {s['n_playlists']:,} playlists) to {out}/rules.parquet and rules.md "
        f"[{s['seconds']:.1f} s]"
    )


@app.command()
def cluster(
    data: Annotated[Path, typer.Argument(help="Dataset directory written by `segue ingest`.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Directory for assignments, profiles, report and figures."
        ),
    ],
    k: Annotated[
        str, typer.Option(help="Number of clusters, or 'auto' to choose by silhouette.")
    ] = "auto",
    k_min: Annotated[int, typer.Option(help="Smallest k tried by --k auto.")] = 5,
    k_max: Annotated[int, typer.Option(help="Largest k tried by --k auto.")] = 30,
    max_features: Annotated[int, typer.Option(help="TF-IDF vocabulary size.")] = 5000,
    min_df: Annotated[int, typer.Option(help="Least playlists a term must be in.")] = 10,
    svd_components: Annotated[
        int, typer.Option(help="Dimensions after truncated SVD (0: cluster TF-IDF rows).")
    ] = 100,
    sample_size: Annotated[int, typer.Option(help="Playlists in the silhouette sample.")] = 5000,
    plot_sample: Annotated[
        int, typer.Option(help="Playlists in the PCA and t-SNE figures.")
    ] = 2000,
    themes: Annotated[
        Path | None,
        typer.Option(
            help="latent_themes.parquet to compare with (default: beside the source slices)."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed gives the same clusters.")
    ] = 0,
) -> None:
    """Cluster playlists by TF-IDF of titles, track and artist names (MiniBatchKMeans; k by silhouette)."""
    from segue.mining.clusters import ClusterSettings, cluster_playlists

    if k != "auto" and not k.isdigit():
        raise SegueError(f"--k must be 'auto' or a whole number, got {k!r}")
    settings = ClusterSettings(
        k=None if k == "auto" else int(k),
        k_min=k_min,
        k_max=k_max,
        max_features=max_features,
        min_df=min_df,
        svd_components=svd_components,
        sample_size=sample_size,
        plot_sample=plot_sample,
        seed=seed,
    )
    s = cluster_playlists(data, out, settings=settings, themes=themes)
    echo(
        f"clustered {s['n_playlists']:,} playlists into k = {s['k']} ({s['k_chosen_by']}); "
        f"report in {out}/clusters.md [{s['seconds']:.1f} s]"
    )
    if s["silhouette"]:
        from segue.mining.clusters import silhouette_verdict

        echo(silhouette_verdict(s["silhouette"]).split("; the curve")[0])
    if s["themes"]:
        t = s["themes"]
        echo(
            f"agreement with the generator's themes (AMI): genre {t['ami_genre']:.3f}, "
            f"context {t['ami_context']:.3f}, genre × context {t['ami_genre_context']:.3f}"
        )


@app.command()
def diversity(
    model_dirs: Annotated[
        list[Path] | None, typer.Argument(help="Model directories trained on the split.")
    ] = None,
    split_dir: Annotated[
        Path, typer.Option("--split", help="Split directory from `segue split`.")
    ] = Path("split"),
    submission: Annotated[
        list[Path] | None, typer.Option(help="Submission files to analyse, repeatable.")
    ] = None,
    part: Annotated[str, typer.Option(help="test, or validation.")] = "test",
    cutoff: Annotated[
        list[int] | None, typer.Option(help="List cut-offs k, repeatable (default 10 and 500).")
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            callback=output_dir,
            help="Directory for diversity.md/.csv/.json and figures.",
        ),
    ] = Path("diversity"),
) -> None:
    """Coverage, artist diversity, novelty, popularity bias and long-tail share per challenge category."""
    from segue.analysis.diversity import analyse_diversity

    doc = analyse_diversity(
        split_dir,
        out,
        model_dirs=model_dirs or [],
        submissions=submission or [],
        part=part,
        cutoffs=cutoff or (10, 500),
    )
    echo(
        f"analysed {len(doc['models'])} list set{'s' if len(doc['models']) > 1 else ''} on {doc['n_queries']:,} "
        f"playlists at k = {', '.join(map(str, doc['cutoffs']))}; report in {out}/diversity.md "
        f"[{doc['seconds']:.1f} s]"
    )


@app.command("popularity-model")
def popularity_model_cmd(
    data: Annotated[Path, typer.Argument(help="Dataset directory written by `segue ingest`.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Directory for popularity.md/.json, figures, predictions."
        ),
    ],
    cut: Annotated[
        str | None,
        typer.Option(help="Cut date (YYYY-MM-DD, UTC) or unix seconds; default: --cut-quantile."),
    ] = None,
    cut_quantile: Annotated[
        float, typer.Option(help="Cut at this quantile of modified_at when --cut is not given.")
    ] = 0.75,
    test_share: Annotated[
        float, typer.Option(help="Share of tracks held out to score the models.")
    ] = 0.2,
    max_train_tracks: Annotated[
        int, typer.Option(help="Training tracks the random forest sees (a sample).")
    ] = 100_000,
    n_estimators: Annotated[
        int, typer.Option(help="Trees per model (LightGBM gets twice as many rounds).")
    ] = 100,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Predict tracks' later popularity from earlier playlists (random forest, LightGBM) vs baselines."""
    from datetime import UTC, datetime

    from segue.analysis.predictive import PopularitySettings, popularity_model

    cut_s = None
    if cut is not None:
        try:
            cut_s = (
                int(cut)
                if cut.isdigit()
                else int(datetime.strptime(cut, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
            )
        except ValueError:
            raise SegueError(
                f"--cut must be a date YYYY-MM-DD or unix seconds, got {cut!r}"
            ) from None
    settings = PopularitySettings(
        cut=cut_s,
        cut_quantile=cut_quantile,
        test_share=test_share,
        max_train_tracks=max_train_tracks,
        n_estimators=n_estimators,
        seed=seed,
    )
    s = popularity_model(data, out, settings=settings)
    echo(
        f"cut {s['cut_date']}: {s['n_before']:,} earlier / {s['n_after']:,} later playlists; "
        f"{s['test_tracks']:,} test tracks; report in {out}/popularity.md [{s['seconds']:.1f} s]"
    )
    for name, v in s["scores"].items():
        echo(
            f"  {name:<40} R² {v['r2']:7.4f}   Spearman {v['spearman']:7.4f}   top-1% precision {v['top_precision']:.3f}"
        )
