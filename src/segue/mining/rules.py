"""Association rules between tracks: FP-Growth in compiled code, measures computed exactly.

A playlist is a transaction and its distinct tracks are the items. :func:`find_rules` returns
every rule ``A → c`` where ``A`` is a set of 1 … ``max_len − 1`` tracks and ``c`` one track not
in ``A``, with (N = all playlists)::

    support     = count(A ∪ {c}) / N                         ≥ min_support
    confidence  = count(A ∪ {c}) / count(A)                  ≥ min_confidence
    lift        = confidence / support(c)                    ≥ min_lift
    leverage    = support(A ∪ {c}) − support(A) · support(c)
    conviction  = (1 − support(c)) / (1 − confidence)         (∞ when confidence is 1)

Support is the *original* definition, body and head together (as in mlxtend and the source
design), not the body-only support that Borgelt's programs use by default. Consequents are
single tracks: that is what a recommender asks ("which track follows these?"), and it is what
the miner produces.

The miner is ``fim.fpgrowth`` (Christian Borgelt's FP-growth in C, the ``pyfim`` package),
chosen by measurement: ``benchmarks/bench_mining.py`` compares it with the same library's Eclat
and Apriori and with mlxtend's FP-growth, and records the figures in ``benchmarks/RESULTS.md``.
Before the miner runs, every transaction is cut to the tracks that are frequent on their own
(a superset of an infrequent item set is infrequent), which at the default 0.1% support leaves a
few thousand of the 2.3M tracks of a full-size dataset. The miner reports three absolute counts
per rule (item set, body, head); the measures above are recomputed from them with the true N and
the thresholds applied exactly here, so the result does not depend on the miner's rounding.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from segue.data import schema
from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.io import atomic_dir, write_json
from segue.progress import rss_gib

log = logging.getLogger("segue")

RULES_FILE = "rules.parquet"
MARKDOWN_FILE = "rules.md"
SUMMARY_FILE = "summary.json"
_SLACK = 1 - 1e-9  # thresholds handed to the miner are loosened by this, then applied exactly


@dataclass(frozen=True)
class RuleThresholds:
    """What a rule must reach. ``min_support``: share of playlists holding the whole rule, in
    (0, 1]. ``min_confidence`` in [0, 1]. ``min_lift`` ≥ 0. ``max_len``: most tracks in a rule
    (antecedent + consequent), ≥ 2."""

    min_support: float = 0.001  # share of playlists holding the whole rule, in (0, 1]
    min_confidence: float = 0.1  # P(consequent | antecedent) a rule must reach, in [0, 1]
    min_lift: float = 1.2  # confidence over the consequent's own share of playlists, ≥ 0
    max_len: int = 3  # most tracks in a rule (antecedent + consequent), 2 to 10

    def check(self) -> RuleThresholds:
        """Raise :class:`SegueError` naming the first threshold out of range."""
        if not (isinstance(self.min_support, int | float) and 0 < self.min_support <= 1):
            raise SegueError(
                f"min_support must be a share of playlists in (0, 1], got {self.min_support}"
            )
        if not (isinstance(self.min_confidence, int | float) and 0 <= self.min_confidence <= 1):
            raise SegueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if not (isinstance(self.min_lift, int | float) and 0 <= self.min_lift < math.inf):
            raise SegueError(f"min_lift must be a finite number ≥ 0, got {self.min_lift}")
        if not (isinstance(self.max_len, int) and 2 <= self.max_len <= 10):
            raise SegueError(
                f"max_len must be an integer from 2 to 10 (tracks per rule), got {self.max_len}"
            )
        return self

    def min_count(self, n_transactions: int) -> int:
        """The support threshold in playlists: ``ceil(min_support · N)``, at least 2 — a set seen in
        one playlist is no pattern, and with a count of 1 every subset of every playlist is
        frequent (the default 0.1% on 1,000 playlists passed 8 GB within a minute).

        >>> RuleThresholds(min_support=0.001).min_count(1_000_000), RuleThresholds(0.001).min_count(300)
        (1000, 2)
        """
        return max(2, math.ceil(self.min_support * n_transactions - 1e-9))


@dataclass
class RuleSet:
    """Rules ``antecedent → consequent`` over track ids, sorted by lift, confidence, count.

    Attributes:
        antecedents: int32 [r, w], w = max_len − 1: each row's tracks ascending, padded with -1.
        consequents: int32 [r].
        count: int64 [r], playlists holding the antecedent and the consequent.
        antecedent_count: int64 [r], playlists holding the antecedent.
        consequent_count: int64 [r], playlists holding the consequent.
        n_transactions: N, the playlists mined (those without a frequent track included).
        n_frequent_items: tracks in at least ``min_count`` playlists.
        min_count: the support threshold in playlists.
    """

    antecedents: np.ndarray
    consequents: np.ndarray
    count: np.ndarray
    antecedent_count: np.ndarray
    consequent_count: np.ndarray
    n_transactions: int
    n_frequent_items: int
    min_count: int

    def __len__(self) -> int:
        return len(self.consequents)

    @property
    def antecedent_sizes(self) -> np.ndarray:
        """int64 [r]: tracks in each antecedent."""
        return (self.antecedents >= 0).sum(axis=1)

    @property
    def support(self) -> np.ndarray:
        return self.count / self.n_transactions

    @property
    def confidence(self) -> np.ndarray:
        return self.count / self.antecedent_count

    @property
    def lift(self) -> np.ndarray:
        # count·N / (count(A)·count(c)): symmetric in A and c, so A → c and c → A tie exactly.
        return (self.count * float(self.n_transactions)) / (
            self.antecedent_count * self.consequent_count.astype(np.float64)
        )

    @property
    def leverage(self) -> np.ndarray:
        n = self.n_transactions
        return self.support - (self.antecedent_count / n) * (self.consequent_count / n)

    @property
    def conviction(self) -> np.ndarray:
        """float64 [r]; ``inf`` where the confidence is 1 (the consequent never fails)."""
        miss = 1.0 - self.confidence
        prior_miss = 1.0 - self.consequent_count / self.n_transactions
        with np.errstate(divide="ignore", invalid="ignore"):
            out = prior_miss / miss
        return np.where(self.count >= self.antecedent_count, np.inf, out)

    def take(self, index: np.ndarray) -> RuleSet:
        return RuleSet(
            self.antecedents[index],
            self.consequents[index],
            self.count[index],
            self.antecedent_count[index],
            self.consequent_count[index],
            self.n_transactions,
            self.n_frequent_items,
            self.min_count,
        )


def _transactions(matrix: sp.csr_matrix, keep_items: np.ndarray) -> list[list[int]]:
    """Each row's items among ``keep_items`` (sorted ids), recoded to 0..len-1, as Python lists.

    The miner wants an iterable of lists; rows without any kept item stay as empty lists so the
    miner sees the true number of transactions.
    """
    code = np.full(matrix.shape[1], -1, dtype=np.int64)
    code[keep_items] = np.arange(len(keep_items))
    codes = code[matrix.indices]
    keep = codes >= 0
    bounds = np.concatenate(([0], np.cumsum(keep)))[matrix.indptr].tolist()
    flat = codes[keep].tolist()
    return [flat[a:b] for a, b in itertools.pairwise(bounds)]


def find_rules(matrix: sp.spmatrix, thresholds: RuleThresholds = RuleThresholds()) -> RuleSet:
    """All rules of ``matrix`` (playlists × tracks, nonzero = the playlist holds the track) that
    reach ``thresholds``; see the module docstring for the measures. Sorted by lift, then
    confidence, count, consequent and antecedent (so the order is the same on every run)."""
    import fim

    thresholds.check()
    width = thresholds.max_len - 1
    matrix = sp.csr_matrix(matrix, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    n, n_items = matrix.shape
    if n == 0:
        raise SegueError("the dataset has no playlists: there is nothing to mine")
    min_count = thresholds.min_count(n)
    item_counts = np.bincount(matrix.indices, minlength=n_items)
    frequent = np.flatnonzero(item_counts >= min_count)
    log.info(
        "mining rules: %s playlists, %s of %s tracks in ≥ %s playlists (RSS %.2f GiB)",
        f"{n:,}",
        f"{len(frequent):,}",
        f"{n_items:,}",
        f"{min_count:,}",
        rss_gib(),
    )
    empty = RuleSet(
        np.zeros((0, width), np.int32),
        np.zeros(0, np.int32),
        *(np.zeros(0, np.int64),) * 3,
        n,
        len(frequent),
        min_count,
    )
    if len(frequent) < 2:
        return empty
    transactions = _transactions(matrix, frequent)
    del matrix
    start = time.perf_counter()
    raw = fim.fpgrowth(
        transactions,
        target="r",
        supp=-min_count,
        zmin=2,
        zmax=thresholds.max_len,
        conf=100.0 * thresholds.min_confidence * _SLACK,
        report="abh",
        mode="o",
        eval="l",
        thresh=100.0 * thresholds.min_lift * _SLACK,
    )
    del transactions
    log.info(
        "fpgrowth: %s candidate rules in %.1f s (RSS %.2f GiB)",
        f"{len(raw):,}",
        time.perf_counter() - start,
        rss_gib(),
    )
    r = len(raw)
    if r == 0:
        return empty
    # One pass per column over the miner's list of tuples (per rule, not per playlist row).
    heads = np.fromiter((x[0] for x in raw), dtype=np.int64, count=r)
    sizes = np.fromiter((len(x[1]) for x in raw), dtype=np.int64, count=r)
    bodies = np.fromiter((i for x in raw for i in x[1]), dtype=np.int64, count=int(sizes.sum()))
    counts = [np.fromiter((x[k] for x in raw), dtype=np.int64, count=r) for k in (2, 3, 4)]
    del raw
    return rule_set(frequent[heads], sizes, frequent[bodies], *counts, n, len(frequent), thresholds)


def rule_set(
    consequents: np.ndarray,
    sizes: np.ndarray,
    antecedents_flat: np.ndarray,
    count: np.ndarray,
    antecedent_count: np.ndarray,
    consequent_count: np.ndarray,
    n_transactions: int,
    n_frequent_items: int,
    thresholds: RuleThresholds,
) -> RuleSet:
    """The :class:`RuleSet` of candidate rules a miner found (any miner: the local FP-growth or
    Spark's): ``consequents`` (track ids [r]), ``sizes`` (tracks in each antecedent [r]) and
    ``antecedents_flat`` (their track ids, rule after rule) with the three counts per rule; the
    thresholds applied exactly and the rules sorted by lift, confidence, count, consequent and
    antecedent, so two miners that find the same rules give the same RuleSet."""
    r = len(consequents)
    width = thresholds.max_len - 1
    min_count = thresholds.min_count(n_transactions)
    # Antecedents as a padded matrix of track ids, ascending per row (-1 padding sorts last).
    antecedents = np.full((r, width), np.iinfo(np.int64).max, dtype=np.int64)
    rows = np.repeat(np.arange(r), sizes)
    cols = np.arange(len(antecedents_flat)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    antecedents[rows, cols] = antecedents_flat
    antecedents.sort(axis=1)
    antecedents[antecedents == np.iinfo(np.int64).max] = -1
    rules = RuleSet(
        antecedents.astype(np.int32),
        np.asarray(consequents).astype(np.int32),
        np.asarray(count, dtype=np.int64),
        np.asarray(antecedent_count, dtype=np.int64),
        np.asarray(consequent_count, dtype=np.int64),
        n_transactions,
        n_frequent_items,
        min_count,
    )
    keep = (
        (rules.count >= min_count)
        & (rules.confidence >= thresholds.min_confidence)
        & (rules.lift >= thresholds.min_lift)
    )
    rules = rules.take(np.flatnonzero(keep))
    keys = [rules.antecedents[:, j] for j in range(width - 1, -1, -1)]
    order = np.lexsort((*keys, rules.consequents, -rules.count, -rules.confidence, -rules.lift))
    return rules.take(order)


# --- the `segue rules` stage ----------------------------------------------------------------------


def mine_rules(
    data_dir: Path,
    out_dir: Path,
    thresholds: RuleThresholds | None = None,
    *,
    top: int = 50,
    engine: str = "local",
    master: str | None = None,
) -> dict:
    """Mine the rules of an ingested dataset reaching ``thresholds`` (default: ``RuleThresholds()``,
    the one place the defaults live) and write them under ``out_dir``.

    Writes ``rules.parquet`` (one row per rule: ``antecedent_ids``/``antecedent_uris`` lists,
    ``consequent_id``/``consequent_uri``, the three counts and the five measures),
    ``rules.md`` (the ``top`` rules by lift, by confidence and by support, with track and artist
    names) and ``summary.json``; all or nothing. Returns the summary. ``engine="spark"``
    mines on Spark (:mod:`segue.spark.rules`; ``master``: where), with the same result.
    """
    thresholds = (thresholds or RuleThresholds()).check()
    if top < 1:
        raise SegueError(f"top must be at least 1, got {top}")
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    start = time.perf_counter()
    check_engine(engine, master)
    data = PlaylistData.load(data_dir)  # checked whole on either engine
    if data.n_playlists == 0:
        raise SegueError(f"{data_dir}: the dataset has no playlists: there is nothing to mine")
    n_playlists, n_tracks = data.n_playlists, data.n_tracks
    if engine == "spark":
        from segue.spark.rules import find_rules_spark
        from segue.spark.session import spark_errors

        del data
        with spark_errors("rules"):
            rules = find_rules_spark(data_dir, thresholds, master)
        miner = f"MLlib PrefixSpan as frequent sets (Spark {_spark_version()}) and segue's measures"
    else:
        rules = find_rules(data.matrix, thresholds)
        del data
        miner = f"fim.fpgrowth (pyfim {_fim_version()})"
    seconds = time.perf_counter() - start
    sizes = rules.antecedent_sizes
    summary = {
        "data": str(data_dir),
        "n_playlists": n_playlists,
        "n_tracks": n_tracks,
        "thresholds": asdict(thresholds),
        "min_count": rules.min_count,
        "n_frequent_tracks": rules.n_frequent_items,
        "n_rules": len(rules),
        "rules_by_antecedent_size": {
            str(s): int((sizes == s).sum()) for s in range(1, thresholds.max_len)
        },
        "miner": miner,
        "seconds": round(seconds, 2),
    }
    catalog = pq.read_table(
        data_dir / schema.TRACKS_FILE,
        columns=[schema.TRACK_URI, schema.TRACK_NAME, schema.ARTIST_NAME],
    )
    with atomic_dir(out_dir) as tmp:
        pq.write_table(_rules_table(rules, catalog), tmp / RULES_FILE, compression="zstd")
        (tmp / MARKDOWN_FILE).write_text(_markdown(rules, catalog, summary, top), encoding="utf-8")
        write_json(tmp / SUMMARY_FILE, summary)
    log.info("wrote %s rules to %s", f"{len(rules):,}", out_dir)
    return summary


def check_engine(engine: str, master: str | None = None) -> str:
    """``engine`` if segue has it (``local`` or ``spark``) and ``master`` fits it, else a
    :class:`SegueError` (before any work)."""
    from segue.models.config import RunOptions

    RunOptions(engine=engine, master=master)  # the one place engines and masters are checked
    return engine


def _spark_version() -> str:
    import pyspark

    return pyspark.__version__


def _fim_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyfim")
    except PackageNotFoundError:  # pragma: no cover - installed some other way
        return "unknown"


def _rules_table(rules: RuleSet, catalog: pa.Table) -> pa.Table:
    uris = catalog.column(schema.TRACK_URI)
    mask = rules.antecedents >= 0
    flat = rules.antecedents[mask]
    offsets = pa.array(np.concatenate(([0], np.cumsum(mask.sum(axis=1)))).astype(np.int32))
    return pa.table(
        {
            "antecedent_ids": pa.ListArray.from_arrays(offsets, pa.array(flat, pa.int32())),
            "antecedent_uris": pa.ListArray.from_arrays(
                offsets, uris.take(pa.array(flat)).combine_chunks()
            ),
            "consequent_id": pa.array(rules.consequents, pa.int32()),
            "consequent_uri": uris.take(pa.array(rules.consequents)).combine_chunks(),
            "antecedent_size": pa.array(rules.antecedent_sizes.astype(np.int8)),
            "count": pa.array(rules.count),
            "antecedent_count": pa.array(rules.antecedent_count),
            "consequent_count": pa.array(rules.consequent_count),
            "support": pa.array(rules.support),
            "confidence": pa.array(rules.confidence),
            "lift": pa.array(rules.lift),
            "leverage": pa.array(rules.leverage),
            "conviction": pa.array(rules.conviction),
        }
    )


def top_by_lift(rules, top: int) -> np.ndarray:
    """Indices of the ``top`` rules by lift; ties by support (count), then confidence. A rare
    pair seen together in its only few playlists has the largest lift there is, so many rules tie
    at the top: the better-supported come first.

    >>> from types import SimpleNamespace
    >>> rules = SimpleNamespace(
    ...     lift=np.array([1000.0, 1000.0, 5.0]),
    ...     count=np.array([3, 9, 50]),
    ...     confidence=np.array([1.0, 1.0, 0.5]),
    ... )
    >>> top_by_lift(rules, 2).tolist()
    [1, 0]
    """
    order = np.lexsort((np.arange(len(rules.lift)), -rules.confidence, -rules.count, -rules.lift))
    return order[:top]


def _markdown(rules: RuleSet, catalog: pa.Table, summary: dict, top: int) -> str:
    t = summary["thresholds"]
    lines = [
        "# Association rules",
        "",
        f"{summary['n_playlists']:,} playlists, {summary['n_tracks']:,} tracks; "
        f"{summary['n_frequent_tracks']:,} tracks are in at least {summary['min_count']:,} playlists "
        f"(min support {t['min_support']:g}). {summary['n_rules']:,} rules with confidence ≥ "
        f"{t['min_confidence']:g}, lift ≥ {t['min_lift']:g} and at most {t['max_len']} tracks "
        f"({', '.join(f'{v:,} with {k} antecedent track(s)' for k, v in summary['rules_by_antecedent_size'].items())}). "
        f"Mined with {summary['miner']} in {summary['seconds']:.1f} s.",
        "",
        "Support: share of playlists holding every track of the rule. Confidence: share of the "
        "playlists holding the antecedent that also hold the consequent. Lift: confidence over the "
        "consequent's own share (1 = independent). Leverage: support minus what independence "
        "predicts. Conviction: (1 − consequent's share) / (1 − confidence), ∞ for rules that never fail.",
        "",
    ]
    if len(rules) == 0:
        lines += [
            "No rule reaches these thresholds: lower `--min-support`, `--min-confidence` or `--min-lift`.",
            "",
        ]
        return "\n".join(lines)
    names = catalog.column(schema.TRACK_NAME)
    artists = catalog.column(schema.ARTIST_NAME)
    sections = (
        ("Highest lift", "; ties: more playlists first", top_by_lift(rules, top)),
        (
            "Highest confidence",
            "; ties: more playlists first",
            np.lexsort((np.arange(len(rules)), -rules.lift, -rules.count, -rules.confidence))[:top],
        ),
        (
            "Most supported",
            "",
            np.lexsort((np.arange(len(rules)), -rules.lift, -rules.count))[:top],
        ),
    )
    shown = np.unique(
        np.concatenate(
            [
                np.concatenate((rules.antecedents[i].ravel(), rules.consequents[i]))
                for _, _, i in sections
            ]
        )
    )
    shown = shown[shown >= 0]
    label = dict(
        zip(
            shown.tolist(),
            (
                f"{_md(n)} — {_md(a)}"
                for n, a in zip(
                    names.take(pa.array(shown)).to_pylist(),
                    artists.take(pa.array(shown)).to_pylist(),
                    strict=True,
                )
            ),
            strict=True,
        )
    )
    support, confidence, lift = rules.support, rules.confidence, rules.lift
    leverage, conviction = rules.leverage, rules.conviction
    for title, note, index in sections:
        lines += [
            f"## {title} (top {len(index)}{note})",
            "",
            "| # | if the playlist has | then it often has | playlists | support | confidence | lift | leverage | conviction |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for rank, i in enumerate(index.tolist(), 1):
            body = " + ".join(label[a] for a in rules.antecedents[i].tolist() if a >= 0)
            lines.append(
                f"| {rank} | {body} | {label[int(rules.consequents[i])]} | {int(rules.count[i]):,} | "
                f"{support[i]:.4f} | {confidence[i]:.3f} | {lift[i]:.2f} | {leverage[i]:.5f} | "
                f"{'∞' if math.isinf(conviction[i]) else f'{conviction[i]:.3f}'} |"
            )
        lines.append("")
    return "\n".join(lines)


def _md(text: str | None) -> str:
    return (text or "?").replace("|", "\\|").replace("\n", " ")
