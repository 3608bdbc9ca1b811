"""Explanations of the graph models: attention read from the layers, genre evidence, the source
design's multi-factor text, and an attention heatmap figure.

For a listening model (``gat``, ``genre_gat``) and a user ``u``, the last attention layer is run
on ``u`` and **all** its in-neighbours (the tracks it played in training, its own self-loop, and
— only when that opt-in graph was built — its preferred genres) with
``return_attention_weights=True``. The layer's output is linear in its neighbours' messages::

    h_u = Σ_heads Σ_j α_uj (W x_j) + b           (heads concatenated, or averaged)

so the collaborative part of a track's score splits exactly into per-neighbour terms
``α_uj (W x_j) · t`` (scaled by ``α / |h_u|`` for the genre-aware model's cosine), and the genre
part ``(1 − α) ĝ_u · ĝ_t`` into per-genre terms. Evidence items carry those parts as shares
(positive parts, summing to 1) together with the attention the layer gave each neighbour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segue.models.base import Explanation
from segue.models.explain import shares

MAX_NEIGHBOURS = 5


def user_attention(model, user: int):
    """The last layer's attention over ``user``'s in-neighbours, read from the layer.

    Returns ``(neighbours, attention, messages)``: global node ids int64 [m] (the user's own
    node included, for its self-loop), float64 [m, heads] (sums to 1 per head) and float64
    [m, heads, channels] (``W x_j`` per head).
    """
    import torch

    homo = model.homo
    node = homo.offsets["user"] + int(user)
    edges = np.arange(homo.indptr[node], homo.indptr[node + 1])
    neighbours = homo.source[edges]
    layer = model.net.layers[-1]
    x = torch.from_numpy(model.layer_inputs[-1])
    index = torch.from_numpy(np.stack([neighbours, np.zeros(len(edges), dtype=np.int64)]))
    with torch.no_grad():
        _, (returned, alpha) = layer(
            (x, x[node : node + 1]),
            index,
            edge_attr=torch.from_numpy(homo.edge_attr[edges]),
            return_attention_weights=True,
        )
        messages = layer.lin(x[torch.from_numpy(neighbours)]).view(
            len(edges), layer.heads, layer.out_channels
        )
    assert np.array_equal(returned[0].numpy(), neighbours)  # the layer kept the edges as given
    return neighbours, alpha.numpy().astype(np.float64), messages.numpy().astype(np.float64)


def neighbour_contributions(model, user: int, track_ids: np.ndarray):
    """Per-neighbour parts of the collaborative score of ``track_ids`` for ``user``:
    (neighbours [m], attention [m, heads], parts float64 [t, m], bias part float64 [t])."""
    neighbours, alpha, messages = user_attention(model, user)
    layer = model.net.layers[-1]
    heads, channels = layer.heads, layer.out_channels
    targets = model.track_vectors[track_ids].astype(np.float64)  # [t, out]
    if layer.concat:
        per_head = np.einsum(
            "mhc,thc->tmh", messages, targets.reshape(len(track_ids), heads, channels)
        )
    else:
        per_head = np.einsum("mhc,tc->tmh", messages, targets) / heads
    parts = (per_head * alpha[None]).sum(2)
    bias = targets @ layer.bias.detach().numpy().astype(np.float64)
    if model.config.score == "cosine":  # α · cos(h_u, t): divide by both norms
        weight = model.config.alpha if model.config.genre_aware else 1.0
        scale = weight / (
            np.linalg.norm(model.user_vectors[user]) * np.linalg.norm(targets, axis=1)
        )
        parts, bias = parts * scale[:, None], bias * scale
    return neighbours, alpha, parts, bias


def explain_listening(model, user: int, track_ids, labels=None) -> list[Explanation]:
    """Explanations of ``track_ids`` for ``user`` (see the module docstring). ``labels``: names
    of the tracks (object [n_tracks]); ``"track i"`` without them."""
    track_ids = np.asarray(track_ids, dtype=np.int64)
    homo = model.homo
    neighbours, alpha, parts, bias = neighbour_contributions(model, user, track_ids)
    kinds = homo.node_type_of(neighbours)
    graph = model.graph
    genre_parts = np.zeros((len(track_ids), graph.n_genres))
    if model.config.genre_aware and graph.n_genres:
        user_genres = model.user_genre_unit[user].toarray().ravel()
        genre_parts = (
            (1 - model.config.alpha)
            * model.track_genre_unit[track_ids].toarray()
            * user_genres[None]
        )
    profile = model.user_genre_profile[user].toarray().ravel() if graph.n_genres else np.zeros(0)

    def name_of(node: int) -> tuple[str, dict]:
        kind = homo.node_types[homo.node_type_of(np.array([node]))[0]]
        local = int(node - homo.offsets[kind])
        if kind == "track":
            label = labels[local] if labels is not None else f"track {local}"
            return label, {
                "kind": "neighbor",
                "node_type": "track",
                "track_id": local,
                "label": label,
            }
        if kind == "user":
            return "your own listening", {"kind": "self", "node_type": "user", "user_id": local}
        if kind == "genre":
            label = graph.genre_names[local]
            return label, {
                "kind": "neighbor",
                "node_type": "genre",
                "genre_id": local,
                "label": label,
            }
        return f"{kind} {local}", {
            "kind": "neighbor",
            "node_type": kind,
            "id": local,
            "label": f"{kind} {local}",
        }

    out = []
    for i, track in enumerate(track_ids.tolist()):
        weights = np.concatenate((parts[i], genre_parts[i], [bias[i]]))
        share = shares(weights)
        m, g = len(neighbours), genre_parts.shape[1]
        evidence = []
        if share.sum() == 0:
            evidence.append(
                {"kind": "popularity", "listeners": int(model.track_listeners[track]), "share": 1.0}
            )
        else:
            for j in np.argsort(-share[:m], kind="stable")[:MAX_NEIGHBOURS]:
                if share[j] > 0:
                    _, item = name_of(int(neighbours[j]))
                    item |= {
                        "share": float(share[j]),
                        "attention": float(alpha[j].mean()),
                        "attention_heads": [float(a) for a in alpha[j]],
                    }
                    evidence.append(item)
            for j in np.argsort(-share[m : m + g], kind="stable")[:3]:
                if share[m + j] > 0:
                    evidence.append(
                        {
                            "kind": "genre",
                            "genre_id": int(j),
                            "label": graph.genre_names[j],
                            "share": float(share[m + j]),
                            "affinity": float(profile[j]),
                        }
                    )
            if share[-1] > 0:
                evidence.append(
                    {
                        "kind": "popularity",
                        "listeners": int(model.track_listeners[track]),
                        "share": float(share[-1]),
                    }
                )
            rest = 1.0 - sum(e["share"] for e in evidence)
            if rest > 1e-9:
                evidence.append({"kind": "other", "share": rest})
        label = labels[track] if labels is not None else f"track {track}"
        explanation = Explanation(track, evidence, "")
        explanation.text = multi_factor_text(explanation, label, kinds_present=set(kinds.tolist()))
        out.append(explanation)
    return out


def multi_factor_text(explanation: Explanation, label: str, kinds_present=None) -> str:
    """The source design's three-part explanation, from an explanation's evidence::

    Recommending "X" because:
    1. Similar listening patterns (75% influence):
       - Similar to "A" in your history (attention: 0.45)
    2. Genre match (25% influence):
       - Matches your preference for Rock (affinity: 0.85)
    3. Popularity context:
       - Played by 120 listeners in training
    """
    evidence = explanation.evidence
    collab = [e for e in evidence if e["kind"] in ("neighbor", "self", "seed")]
    genre = [e for e in evidence if e["kind"] == "genre"]
    popularity = [e for e in evidence if e["kind"] == "popularity"]
    lines = [f'Recommending "{label}" because:']
    number = 1
    if collab:
        lines.append(
            f"{number}. Similar listening patterns ({100 * sum(e['share'] for e in collab):.0f}% influence):"
        )
        for e in collab:
            if e["kind"] == "self":
                lines.append(
                    f"   - Your own taste as the model learned it (attention: {e['attention']:.2f})"
                )
            elif e.get("node_type") == "genre":
                lines.append(
                    f"   - Your listening leans to {e['label']} (attention: {e['attention']:.2f})"
                )
            else:
                lines.append(
                    f'   - Similar to "{e["label"]}" in your history (attention: {e["attention"]:.2f})'
                )
        number += 1
    if genre:
        lines.append(
            f"{number}. Genre match ({100 * sum(e['share'] for e in genre):.0f}% influence):"
        )
        for e in genre:
            lines.append(
                f"   - Matches your preference for {e['label']} (affinity: {e['affinity']:.2f})"
            )
        number += 1
    lines.append(f"{number}. Popularity context:")
    count = popularity[0].get("listeners", popularity[0].get("playlists")) if popularity else None
    if count is not None:
        lines.append(
            f"   - Played by {count:,} listeners in training"
            + (
                f" ({100 * popularity[0]['share']:.0f}% of the score)"
                if popularity[0]["share"] < 1
                else ""
            )
        )
    else:
        lines.append("   - Not a popularity pick: the score comes from your history")
    return "\n".join(lines)


def attention_heatmap(
    neighbour_labels: list[str],
    attention: np.ndarray,
    track_labels: list[str],
    contributions: np.ndarray,
    out: Path,
    title: str = "",
) -> Path:
    """A two-panel PNG: the attention of each head over the query's neighbours (``attention``
    float [m, heads]) and each recommended track's score shares over them (``contributions``
    float [t, m]). Written whole or not at all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from segue.io import atomic_file

    m = len(neighbour_labels)
    fig, axes = plt.subplots(
        1,
        2,
        figsize=(6 + 0.45 * m, 1.5 + 0.4 * max(len(track_labels), attention.shape[1])),
        gridspec_kw={"width_ratios": [1, 1.6]},
    )
    left = axes[0].imshow(attention.T, aspect="auto", cmap="viridis", vmin=0)
    axes[0].set_yticks(
        range(attention.shape[1]), [f"head {h + 1}" for h in range(attention.shape[1])]
    )
    axes[0].set_xticks(
        range(m), [_short(s) for s in neighbour_labels], rotation=60, ha="right", fontsize=7
    )
    axes[0].set_title("attention over neighbours")
    fig.colorbar(left, ax=axes[0], fraction=0.046)
    right = axes[1].imshow(contributions, aspect="auto", cmap="magma", vmin=0)
    axes[1].set_yticks(range(len(track_labels)), [_short(s) for s in track_labels], fontsize=7)
    axes[1].set_xticks(
        range(m), [_short(s) for s in neighbour_labels], rotation=60, ha="right", fontsize=7
    )
    axes[1].set_title("share of each recommendation's score")
    fig.colorbar(right, ax=axes[1], fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    with atomic_file(out) as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)
    return out


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def listening_heatmap(
    model, user: int, track_ids, out: Path, labels=None, max_neighbours: int = 15
) -> Path:
    """The heatmap for a listening model's user: their strongest neighbours (by mean attention)."""
    track_ids = np.asarray(track_ids, dtype=np.int64)
    neighbours, alpha, parts, _ = neighbour_contributions(model, user, track_ids)
    top = np.argsort(-alpha.mean(1), kind="stable")[:max_neighbours]
    homo = model.homo

    def label(node: int) -> str:
        kind = homo.node_types[homo.node_type_of(np.array([node]))[0]]
        local = int(node - homo.offsets[kind])
        if kind == "track":
            return labels[local] if labels is not None else f"track {local}"
        return (
            "self"
            if kind == "user"
            else (model.graph.genre_names[local] if kind == "genre" else f"{kind} {local}")
        )

    positive = np.clip(parts[:, top], 0, None)
    totals = np.clip(parts, 0, None).sum(1, keepdims=True)
    contributions = np.divide(positive, totals, out=np.zeros_like(positive), where=totals > 0)
    names = [labels[t] if labels is not None else f"track {t}" for t in track_ids.tolist()]
    return attention_heatmap(
        [label(int(n)) for n in neighbours[top]],
        alpha[top],
        names,
        contributions,
        out,
        title=f"{model.name}: user {user}",
    )


def playlist_heatmap(model, queries, row: int, track_ids, out: Path) -> Path:
    """The heatmap for a PlaylistGAT query: attention over its seeds and the score shares."""
    track_ids = np.asarray(track_ids, dtype=np.int64)
    seeds, alpha, parts = model.seed_parts(queries, row, track_ids)
    positive = np.clip(parts, 0, None)
    totals = positive.sum(1, keepdims=True)
    contributions = np.divide(positive, totals, out=np.zeros_like(positive), where=totals > 0)
    return attention_heatmap(
        model.track_labels(seeds),
        alpha,
        model.track_labels(track_ids),
        contributions,
        out,
        title=f"playlistgat: query {int(queries.pids[row])}",
    )
