"""The run's report: ``report/report.md`` and its self-contained twin ``report/index.html``.

Built from what the stages wrote (their JSON summaries, Markdown tables and figures) and the
runner's records (timings, peak memory), so it can be rebuilt at any time and shows only what was
really computed. A section whose stage did not run says so instead of showing stale or made-up
numbers. The Markdown twin links the figures copied into ``report/figures/``; the HTML embeds
them (base64), so the one file can be mailed or opened anywhere.
"""

from __future__ import annotations

import base64
import datetime
import re
import shutil
from pathlib import Path

import orjson

from segue.colours import model_colour
from segue.io import atomic_dir, write_text
from segue.models.config import flatten
from segue.pipeline.runner import RECORDS

HEADLINE = (("r_precision", "R-precision"), ("ndcg", "NDCG"), ("clicks", "clicks"))
CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232a;
       margin: 0; background: #f6f7f9; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 64px; background: #fff; }
h1 { font-size: 28px; margin: 8px 0 4px; } h2 { font-size: 21px; margin-top: 36px; border-bottom: 2px solid #e3e6ea;
     padding-bottom: 4px; } h3 { font-size: 17px; margin-top: 22px; }
table { border-collapse: collapse; margin: 10px 0 16px; font-size: 13.5px; display: block; overflow-x: auto;
        max-width: 100%; }
th, td { border: 1px solid #d9dde2; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f4; } tr:nth-child(even) td { background: #fafbfc; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0 18px; border: 1px solid #e3e6ea; }
code { background: #f0f2f4; padding: 1px 4px; border-radius: 3px; font-size: 13px; }
nav { font-size: 14px; margin: 12px 0 0; } nav a { margin-right: 12px; }
.muted { color: #5b6670; }
"""


def write_report(settings, out: Path) -> dict:
    """Write the report for the run under ``settings.out`` into ``out``; returns a summary."""
    root = Path(settings.out)
    builder = _Builder(root)
    text = builder.build(settings)
    with atomic_dir(Path(out)) as tmp:
        (tmp / "figures").mkdir()
        for name, source in builder.figures.items():
            shutil.copyfile(source, tmp / "figures" / name)
        write_text(tmp / "report.md", text)
        write_text(tmp / "index.html", _html(text, builder.figures))
    return {"sections": builder.sections, "figures": len(builder.figures)}


def training_status(history: dict) -> str:
    """How a graph model's training ended, for the report: converged when early stopping fired;
    **undertrained** when its budget or epoch cap stopped it while validation was still at its best
    in the last epoch (more training would likely help); else stopped after its best epoch.

    >>> training_status({"epochs": [{}, {}], "best_epoch": 1, "early_stopped": False})
    'undertrained: validation still improving when training stopped'
    >>> training_status({"epochs": [{}, {}, {}], "best_epoch": 0, "early_stopped": True})
    'converged (early stopping kept epoch 1)'
    """
    epochs, best = len(history.get("epochs", [])), history.get("best_epoch", -1)
    if history.get("early_stopped"):
        return f"converged (early stopping kept epoch {best + 1})"
    if best < 0:
        return "not validated"
    if best == epochs - 1:
        return "undertrained: validation still improving when training stopped"
    return f"stopped after its best epoch ({best + 1} of {epochs})"


class _Builder:
    def __init__(self, root: Path):
        self.root = root
        self.figures: dict[str, Path] = {}
        self.sections: list[str] = []
        self.lines: list[str] = []
        self.table_count = 0

    # --- pieces -------------------------------------------------------------------------------
    def json(self, relative: str) -> dict | None:
        path = self.root / relative
        try:
            return orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None

    def figure(self, relative: str, caption: str) -> None:
        path = self.root / relative
        if path.exists():
            name = relative.replace("/", "_")
            self.figures[name] = path
            # the caption shown under the figure too, not only as its alt text
            self.lines += [f"![{caption}](figures/{name})", "", f"*{caption}*", ""]

    def section(self, title: str, anchor: str) -> None:
        self.sections.append(title)
        self.lines += [f'<a id="{anchor}"></a>', "", f"## {title}", ""]

    def caption(self, text: str) -> str:
        """The next table's caption line ("*Table N. text*")."""
        self.table_count += 1
        return f"*Table {self.table_count}. {text}*"

    def missing(self, what: str) -> None:
        self.lines += [f"*{what} did not run in this output directory.*", ""]

    def markdown_tables(
        self, relative: str, caption: str, limit_rows: int = 12, limit_tables: int = 1
    ) -> None:
        """The first ``limit_tables`` tables of a Markdown file, each cut to ``limit_rows`` rows,
        each under a caption: ``caption`` and the file's headings above the table (so a table
        from a section "At k = 500 › Catalog coverage" says so)."""
        path = self.root / relative
        if not path.exists():
            return
        tables, current, headings = [], [], {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("|"):
                if not current:
                    context = [headings[level] for level in sorted(headings) if level > 1]
                current.append(line)
                continue
            if current:
                tables.append((context, current))
                current = []
            if line.startswith("#"):
                level = len(line) - len(line.lstrip("#"))
                headings = {k: v for k, v in headings.items() if k < level}
                headings[level] = line.lstrip("#").strip()
        if current:
            tables.append((context, current))
        for context, table in tables[:limit_tables]:
            shown = table[: limit_rows + 2]
            cut = (
                f" (first {limit_rows} of {len(table) - 2} rows)" if len(table) > len(shown) else ""
            )
            title = " › ".join([caption, *context])
            self.lines += [
                self.caption(f"{title}{cut}; in full: `{relative}`."),
                "",
                *shown,
                "",
            ]

    # --- the document -------------------------------------------------------------------------
    def build(self, settings) -> str:
        records = self.records()
        self.lines = [
            "# segue run report",
            "",
            f'<p class="muted">{self.root} — written {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC'
            " — every figure below comes from held-out playlists, seed tracks excluded.</p>",
            "",
            '<nav><a href="#summary">Summary</a> <a href="#data">Data</a> <a href="#mining">Rules and clusters</a> '
            '<a href="#evaluation">Evaluation</a> <a href="#diversity">Diversity</a> '
            '<a href="#examples">Examples</a> <a href="#graphs">Graph and session models</a> '
            '<a href="#popularity">Track popularity</a> <a href="#run">Run</a></nav>',
            "",
        ]
        self.summary_section()
        self.data_section()
        self.mining_section()
        self.evaluation_section()
        self.diversity_section()
        self.examples_section()
        self.graph_section()
        self.popularity_section()
        self.run_section(records)
        self.models_table(records)
        return "\n".join(self.lines) + "\n"

    def records(self) -> list[dict]:
        out = []
        folder = self.root / RECORDS
        for path in sorted(folder.glob("*.json")) if folder.exists() else []:
            try:
                out.append(orjson.loads(path.read_bytes()))
            except orjson.JSONDecodeError:
                continue
        return sorted(out, key=lambda r: r.get("finished_at", ""))

    def data_section(self) -> None:
        self.section("Dataset and exploration", "data")
        eda = self.json("eda/eda.json")
        if eda is None:
            self.missing("The EDA stage")
            return
        counts = eda.get("counts", {})
        length = eda.get("playlist_length", {})
        self.lines += [
            self.caption("The dataset's size."),
            "",
            "| playlists | tracks | artists | albums | playlist–track entries | mean length | median |",
            "|---|---|---|---|---|---|---|",
            f"| {counts.get('playlists', 0):,} | {counts.get('unique_tracks', 0):,} | {counts.get('unique_artists', 0):,} | "
            f"{counts.get('unique_albums', 0):,} | {counts.get('entries', 0):,} | {length.get('mean', 0):.1f} | "
            f"{length.get('median', '—')} |",
            "",
        ]
        self.figure("eda/eda.png", "Playlist lengths, track and artist popularity, followers")
        co = self.json("cooccurrence/summary.json")
        if co:
            self.lines += [
                "### Co-occurrence",
                "",
                f"{co['tracks']:,} tracks, each with its {co['k']} most frequent companions "
                f"({co['pairs_kept']:,} pairs kept; {co['tracks_with_companions']:,} tracks have at least one).",
                "",
            ]
            self.markdown_tables(
                "cooccurrence/top_pairs.md", "The most frequent track pairs", limit_rows=10
            )

    def mining_section(self) -> None:
        self.section("Association rules and playlist clusters", "mining")
        rules = self.json("rules/summary.json")
        if rules:
            shown = {
                k: v
                for k, v in rules.items()
                if isinstance(v, int | float | str) and k != "seconds"
            }
            self.lines += [
                "### Association rules",
                "",
                ", ".join(
                    f"{k.replace('_', ' ')}: {v:,}"
                    if isinstance(v, int)
                    else f"{k.replace('_', ' ')}: {v}"
                    for k, v in shown.items()
                ),
                "",
            ]
            self.markdown_tables("rules/rules.md", "Association rules", limit_rows=10)
        else:
            self.missing("The rules stage")
        clusters = self.json("clusters/summary.json")
        if clusters:
            themes = clusters.get("themes") or {}
            self.lines += [
                "### Playlist clusters",
                "",
                f"k = {clusters.get('k')} ({clusters.get('k_chosen_by', '')}) over "
                f"{clusters.get('n_playlists', 0):,} playlists."
                + (
                    f" Agreement with the generator's themes (adjusted mutual information): genre "
                    f"{themes.get('ami_genre', 0):.3f}, context {themes.get('ami_context', 0):.3f}."
                    if themes
                    else ""
                ),
                "",
            ]
            self.markdown_tables("clusters/clusters.md", "Playlist clusters", limit_rows=10)
            self.figure(
                "clusters/cluster_pca.png", "Clusters in the first two principal components"
            )
            self.figure("clusters/cluster_tsne.png", "Clusters by t-SNE (a sample)")
        else:
            self.missing("The clustering stage")

    def summary_section(self) -> None:
        """What the evaluation decides, first: the winner, its margin and significance, the
        winner per category, the lead over popularity, and which models a time budget cut."""
        from segue.evaluation.runner import verdict

        doc = self.json("evaluation/evaluation.json")
        if doc is None:
            return
        self.section("Summary", "summary")
        self.lines += [f"- {line}" for line in verdict(doc)]
        cut = [
            name
            for name, history in self._histories().items()
            if training_status(history).startswith("undertrained")
        ]
        if cut:
            self.lines.append(
                f"- **Undertrained**: {', '.join(cut)} — their validation was still improving when "
                "the time budget or epoch cap stopped them (curves under *Graph and session "
                "models*); more training may change their place."
            )
        self.lines.append("")

    def evaluation_section(self) -> None:
        self.section("Evaluation on held-out playlists", "evaluation")
        doc = self.json("evaluation/evaluation.json")
        if doc is None:
            self.missing("The evaluation stage")
            return
        settings = doc.get("settings", {})
        self.lines += [
            f"{settings.get('n_queries', '')} test playlists the models never saw, in the challenge's 10 "
            "categories; seed tracks excluded; 500 tracks per playlist; 95% stratified-bootstrap "
            "confidence intervals.",
            "",
            self.caption(
                "Every model on all test playlists, best R-precision first (bold: the best)."
            ),
            "",
            "| model | " + " | ".join(label for _, label in HEADLINE) + " |",
            "|---|---|---|---|",
        ]
        table = doc["table"]
        order = sorted(doc["models"], key=lambda m: -table[m]["all"]["r_precision"]["mean"])
        for model in order:
            cells = []
            for metric, _ in HEADLINE:
                c = table[model]["all"][metric]
                cells.append(f"{c['mean']:.4f} [{c['ci_low']:.4f}, {c['ci_high']:.4f}]")
            name = f"**{model}**" if model == order[0] else model  # the best overall in bold
            self.lines.append(f"| {name} | " + " | ".join(cells) + " |")
        self.lines += [
            "",
            self.caption("R-precision per challenge category."),
            "",
            "| model | "
            + " | ".join(doc["group_labels"].get(g, g) for g in doc["groups"] if g != "all")
            + " |",
            "|---" * len(doc["groups"]) + "|",
        ]
        groups = [g for g in doc["groups"] if g != "all"]
        best = {g: max(table[m][g]["r_precision"]["mean"] for m in order) for g in groups}

        def cell(model: str, g: str) -> str:
            value = table[model][g]["r_precision"]["mean"]
            return (
                f"**{value:.4f}**" if value == best[g] else f"{value:.4f}"
            )  # each category's best in bold

        for model in order:
            self.lines.append(f"| {model} | " + " | ".join(cell(model, g) for g in groups) + " |")
        best = order[0]
        significant = [
            c
            for c in doc.get("comparisons", [])
            if c["group"] == "all"
            and c["metric"] == "r_precision"
            and best in (c["model_a"], c["model_b"])
        ]
        if significant:
            self.lines += [
                "",
                f"Paired sign-flip tests of **{best}** against each model (R-precision, all playlists, "
                "Holm-adjusted):",
                "",
                self.caption(f"{best} against each model."),
                "",
                "| against | difference [95% CI] | p (adjusted) | significant |",
                "|---|---|---|---|",
            ]
            for c in significant:
                other = c["model_b"] if c["model_a"] == best else c["model_a"]
                sign = 1 if c["model_a"] == best else -1
                low, high = sorted((sign * c["ci_low"], sign * c["ci_high"]))
                self.lines.append(
                    f"| {other} | {sign * c['diff']:+.4f} [{low:+.4f}, {high:+.4f}] | "
                    f"{'< 0.0001' if c['p_adjusted'] < 1e-4 else format(c['p_adjusted'], '.4f')} | "
                    f"{'yes' if c['significant'] else 'no'} |"
                )  # a p-value is never 0.0000
        self.lines.append("")
        self.figure(
            "evaluation/fig_ranking.png",
            "Left: the models ranked by R-precision over all test playlists (95% CIs). Right: "
            "R-precision per challenge category, best model of each category boxed.",
        )
        for metric, label in HEADLINE:
            self.figure(f"evaluation/fig_{metric}.png", f"{label} per category with 95% CIs")
        hybrid = self.json("models/hybrid/params.json")
        if hybrid:
            self.lines += [
                "The hybrid's weights were tuned per kind of query on validation playlists carved from the "
                "training part (never the test part).",
                "",
            ]
        if self.json("models/rerank/params.json"):
            self.lines += [
                "The two-stage ranker (`rerank`) pools the candidates of its components and orders them "
                "with gradient-boosted trees trained on validation playlists carved from the training part "
                "(never the test part); its training record (candidate recall, validation curve) is in "
                "the pipeline's record of the `train rerank` stage.",
                "",
            ]

    def diversity_section(self) -> None:
        self.section("Diversity and popularity bias", "diversity")
        if not (self.root / "diversity" / "diversity.json").exists():
            self.missing("The diversity stage")
            return
        self.markdown_tables(
            "diversity/diversity.md", "Diversity per challenge category", limit_rows=14
        )
        for path in sorted((self.root / "diversity").glob("*.png")):
            self.figure(f"diversity/{path.name}", path.stem.replace("_", " "))

    def examples_section(self) -> None:
        self.section("Example continuations, explained", "examples")
        doc = self.json("examples/examples.json")
        if doc is None:
            self.missing("The examples stage")
            return
        self.lines += [
            f"Model: **{doc['model']}**. ✓ marks a track the playlist really had (one of its held-out tracks).",
            "",
        ]
        for ex in doc["examples"]:
            title = f" “{ex['title']}”" if ex.get("title") else " (no title)"
            seeds = (
                "; ".join(ex["seeds"][:5]) + (" …" if len(ex["seeds"]) > 5 else "")
                if ex["seeds"]
                else "no seed tracks"
            )
            self.lines += [
                f"### Playlist {ex['pid']}{title}, category {ex['category']}",
                "",
                f"Seeds ({len(ex['seeds'])}): {seeds}",
                "",
                self.caption(f"Playlist {ex['pid']}'s continuation (✓: a held-out track)."),
                "",
                "| # | track | because |",
                "|---|---|---|",
            ]
            for r in ex["recommendations"]:
                mark = "✓ " if r["in_held_out"] else ""
                self.lines.append(
                    f"| {r['rank']} | {mark}{_cell(r['track'])} | {_cell(r['because'])} |"
                )
            self.lines.append("")

    def graph_section(self) -> None:
        self.section("Graph and session models", "graphs")
        curves = self._training_curves()
        if curves:
            self.figure(*curves)
            rows = [
                f"| {name} | {len(h['epochs'])} | {h.get('stopped', '')} | {training_status(h)} |"
                for name, h in self._histories().items()
            ]
            self.lines += [
                self.caption("How the graph models' training went."),
                "",
                "| model | epochs | stopped | status |",
                "|---|---|---|---|",
                *rows,
                "",
            ]
        report = self.root / "sessions-evaluation" / "graph_report.md"
        if report.exists():
            self.lines += [
                "### Listening sessions: users' next tracks and their held-out listens",
                "",
            ]
            text = report.read_text(encoding="utf-8")
            self.lines += [line for line in text.splitlines() if not line.startswith("#")] + [""]
            self.markdown_tables(
                "sessions-evaluation/next_track/evaluation.md",
                "Listening sessions",
                limit_rows=20,
                limit_tables=2,
            )
        elif not curves:
            self.missing("The graph and session stages")

    def _histories(self) -> dict[str, dict]:
        histories = {}
        for path in (
            sorted((self.root / "models").glob("*.history.json"))
            if (self.root / "models").exists()
            else []
        ):
            doc = self.json(f"models/{path.name}") or {}
            if doc.get("history"):
                histories[doc["model"]] = doc["history"]
        graph = self.json("sessions-evaluation/graph_report.json") or {}
        for name, history in (graph.get("histories") or {}).items():
            if history:
                histories.setdefault(f"{name} (sessions)", history)
        return histories

    def _training_curves(self) -> tuple[str, str] | None:
        """(the figure of the graph models' training curves, its caption), or None."""
        histories = self._histories()
        if not histories:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        measured = any(
            e.get("validation_recall") is not None for h in histories.values() for e in h["epochs"]
        )
        # The validation panel only where some model measured it (a mode that trains without a
        # validation carve has none): no empty panel.
        fig, axes = plt.subplots(1, 2 if measured else 1, figsize=(10 if measured else 5.5, 3.6))
        loss_ax, recall_ax = (axes[0], axes[1]) if measured else (axes, None)
        for name, history in histories.items():
            epochs = [e["epoch"] + 1 for e in history["epochs"]]
            loss_ax.plot(
                epochs,
                [e["loss"] for e in history["epochs"]],
                marker="o",
                label=name,
                color=model_colour(name),
            )
            recall = [
                (e["epoch"] + 1, e["validation_recall"])
                for e in history["epochs"]
                if e.get("validation_recall") is not None
            ]
            if recall and recall_ax is not None:
                recall_ax.plot(
                    *zip(*recall, strict=True), marker="o", label=name, color=model_colour(name)
                )
        loss_ax.set(title="training loss", xlabel="epoch")
        if recall_ax is not None:
            recall_ax.set(title="validation recall@10", xlabel="epoch")
        for ax in (loss_ax, recall_ax):
            if ax is not None:
                ax.grid(alpha=0.3)
                ax.legend(fontsize=8)
        fig.tight_layout()
        dest = self.root / "models" / "training_curves.png"
        fig.savefig(dest, dpi=110)
        plt.close(fig)
        return "models/training_curves.png", "Training curves of the graph models (" + (
            "loss; validation recall@10)" if measured else "loss; no validation carve in this run)"
        )

    def popularity_section(self) -> None:
        self.section("Track popularity, predicted honestly", "popularity")
        if not (self.root / "popularity" / "popularity.json").exists():
            self.missing("The popularity-model stage")
            return
        self.lines += [
            "Features from playlists modified before a cut; the target from the playlists after it.",
            "",
        ]
        self.markdown_tables(
            "popularity/popularity.md", "Track popularity", limit_rows=10, limit_tables=2
        )
        self.figure("popularity/importances.png", "Permutation importances")

    def models_table(self, records: list[dict]) -> None:
        """Each trained model: its parameters, its training time, and how training ended."""
        models = self.root / "models"
        dirs = (
            sorted(p for p in models.iterdir() if (p / "params.json").exists())
            if models.exists()
            else []
        )
        if not dirs:
            return
        seconds = {
            r["name"].removeprefix("train "): r.get("seconds", 0)
            for r in records
            if r.get("name", "").startswith("train ")
        }
        histories = self._histories()
        self.lines += [
            "Every trained model, with the parameters it was trained with (`segue models NAME` "
            "says what each means) and its training stage's time:",
            "",
            self.caption("The trained models."),
            "",
            "| model | parameters | training | how training ended |",
            "|---|---|---|---|",
        ]
        for path in dirs:
            params = self.json(f"models/{path.name}/params.json") or {}
            flat = flatten(params.get("config") or {})
            shown = ", ".join(f"{k}={v}" for k, v in flat.items())
            if len(shown) > 160:
                shown = shown[:160].rsplit(", ", 1)[0] + ", …"
            ended = training_status(histories[path.name]) if path.name in histories else ""
            took = f"{seconds[path.name]:.0f} s" if path.name in seconds else ""
            self.lines.append(f"| {path.name} | {_cell(shown) or '—'} | {took} | {_cell(ended)} |")
        self.lines.append("")

    def run_section(self, records: list[dict]) -> None:
        self.section("The run: stages, time and memory", "run")
        if not records:
            self.missing("No stage")
            return
        total = sum(r.get("seconds", 0) for r in records)
        peak = max((r.get("peak_rss_gib", 0) for r in records), default=0)
        self.lines += [
            f"{len(records)} stages, {total / 60:.1f} min of work in all (as last computed), peak "
            f"{peak:.2f} GiB.",
            "",
            self.caption("Every stage of the run."),
            "",
            "| phase | stage | time | peak memory | finished (UTC) |",
            "|---|---|---|---|---|",
        ]
        for r in records:
            self.lines.append(
                f"| {r.get('phase', '')} | {r.get('name', '')} | {r.get('seconds', 0):.1f} s | "
                f"{r.get('peak_rss_gib', 0):.2f} GiB | {r.get('finished_at', '')} |"
            )
        self.lines.append("")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _html(markdown_text: str, figures: dict[str, Path]) -> str:
    """The Markdown as one self-contained HTML page (figures inlined)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown_text)

    def inline(match: re.Match) -> str:
        name = match.group(1)
        path = figures.get(name)
        if path is None:
            return match.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"'

    body = re.sub(r'src="figures/([^"]+)"', inline, body)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>segue run report</title><style>{CSS}</style></head><body><main>\n{body}</main></body></html>\n"
    )
