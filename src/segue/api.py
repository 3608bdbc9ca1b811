"""The Python API: trained models addressed by track URIs, results as records or frames.

Generate and ingest a small dataset, train a model, then use it by URI::

    >>> import tempfile
    >>> from pathlib import Path
    >>> import segue
    >>> from segue.data.dataset import PlaylistData
    >>> from segue.data.ingest import ingest_mpd
    >>> from segue.data.synthetic.mpd import generate_mpd
    >>> from segue.models.registry import get_model_class
    >>> work = Path(tempfile.mkdtemp())
    >>> _ = generate_mpd(work / "mpd", 1000, seed=0, workers=1)
    >>> _ = ingest_mpd(work / "mpd", work / "data", workers=1)
    >>> get_model_class("itemknn")().fit(PlaylistData.load(work / "data")).save(work / "itemknn")
    >>> model = segue.load(work / "itemknn")
    >>> hit = model.search("love", n=1).items[0]           # find a track's URI by its name
    >>> recs = model.recommend(tracks=[hit["uri"]], title="summer", n=5, explain=True)
    >>> len(recs), recs[0].rank, hit["uri"] in recs.uris(), recs[0].because is not None
    (5, 1, False, True)
    >>> recs.to_frame().columns
    ['rank', 'uri', 'name', 'artist', 'score', 'because']
    >>> model.recommend(tracks=["spotify:track:elsewhere"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    segue.api.UnknownTracksError: 1 of 1 tracks are not in the catalog of model itemknn (...
    >>> model.recommend(tracks=[17])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    segue.errors.SegueError: tracks are URIs (str), got int 17: internal ids differ ...

``segue.evaluate(models, split)`` scores saved models on a held-out split (see
``docs/python.md``).

A model's internal track ids are positions in the catalog it was trained on, so they differ
between datasets (a model trained on ``split/train`` and the full data share almost none).
This API therefore takes and returns URIs only, looked up in the model's own
``catalog.parquet``: a URI the catalog lacks is refused by name (or dropped, with
``unknown="ignore"``), and an integer where a URI belongs is refused rather than taken as an id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from segue.catalog import Catalog
from segue.errors import SegueError
from segue.models.base import Explanation, Queries, Recommender


class UnknownTracksError(SegueError):
    """Track URIs that are not in the model's catalog (``uris`` lists them)."""

    def __init__(self, message: str, uris: list[str]):
        super().__init__(message)
        self.uris = uris


@dataclass(frozen=True)
class Recommendation:
    """One recommended track. ``score`` is None where the model had nothing and the list was
    back-filled with popular tracks; ``because`` and ``evidence`` are set when explained
    (evidence items name tracks by ``track_uri``; their ``share`` values add up to 1)."""

    rank: int
    uri: str
    name: str | None
    artist: str | None
    score: float | None
    because: str | None = None
    evidence: list[dict] | None = None


class Recommendations(list):
    """A list of :class:`Recommendation`, best first, with ``model`` (its name) and
    ``unknown`` (query URIs dropped with ``unknown="ignore"``)."""

    def __init__(self, items: Iterable[Recommendation], model: str, unknown: list[str]):
        super().__init__(items)
        self.model = model
        self.unknown = unknown

    def uris(self) -> list[str]:
        return [r.uri for r in self]

    def to_json(self) -> dict:
        """Plain types for JSON: ``{"model", "unknown", "items": [record as a dict, …]}``."""
        return {"model": self.model, "unknown": self.unknown, "items": [asdict(r) for r in self]}

    def to_frame(self):
        """A polars DataFrame: rank, uri, name, artist, score, because (evidence left out)."""
        import polars as pl

        rows = [{k: v for k, v in asdict(r).items() if k != "evidence"} for r in self]
        schema = {
            "rank": pl.Int32,
            "uri": pl.String,
            "name": pl.String,
            "artist": pl.String,
            "score": pl.Float64,
            "because": pl.String,
        }
        return pl.DataFrame(rows, schema=schema, orient="row")

    def to_pandas(self):
        """:meth:`to_frame` as a pandas DataFrame (needs pandas and pyarrow)."""
        return self.to_frame().to_pandas()


@dataclass
class SearchHits:
    """Tracks whose name or artist holds every word of a query (the last as a prefix), most
    popular first: ``items`` (dicts: uri, name, artist, playlists), ``total`` matched, and
    ``corrections`` (a misspelt word → the catalog words searched instead)."""

    items: list[dict]
    total: int
    corrections: dict[str, list[str]]

    def to_frame(self):
        import polars as pl

        schema = {"uri": pl.String, "name": pl.String, "artist": pl.String, "playlists": pl.Int64}
        return pl.DataFrame(self.items, schema=schema, orient="row")


def search_catalog(catalog: Catalog, popularity, query: str, n: int = 10, offset: int = 0):
    """:class:`SearchHits` for ``query`` in ``catalog`` (``popularity``: playlists per track)."""
    if not isinstance(query, str) or not query.strip():
        raise SegueError("the search query is empty")
    result = catalog.search_index.search(query, offset, n)
    rows = catalog.rows(result.ids)
    items = [
        {"uri": r["track_uri"], "name": r["track_name"], "artist": r["artist_name"], "playlists": c}
        for r, c in zip(rows, np.asarray(popularity)[result.ids].astype(int).tolist(), strict=True)
    ]
    return SearchHits(items, result.total, result.corrections)


@dataclass
class Model:
    """A trained model and its catalog; see :func:`load`."""

    recommender: Recommender
    path: Path | None = None
    _catalog: Catalog | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The model's kind, e.g. ``"itemknn"``."""
        return self.recommender.name

    @property
    def n_tracks(self) -> int:
        return self.recommender.n_tracks

    @property
    def config(self) -> Any:
        """The frozen config it was trained with (a dataclass)."""
        return self.recommender.config

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog(self.recommender.catalog(), self.recommender.popularity)
            if len(self._catalog) != self.n_tracks:
                raise SegueError(
                    f"{self.path}: the catalog has {len(self._catalog):,} tracks but the model "
                    f"scores {self.n_tracks:,}: retrain it with `segue train`"
                )
        return self._catalog

    def ids(self, uris: Sequence[str], *, unknown: Literal["raise", "ignore"] = "raise"):
        """(int64 ids of the known URIs in order, the unknown URIs)."""
        if isinstance(uris, str):
            raise SegueError("tracks must be a list of URIs, not one string")
        bad = [u for u in uris if not isinstance(u, str)]
        if bad:
            raise SegueError(
                f"tracks are URIs (str), got {type(bad[0]).__name__} {bad[0]!r}: internal ids "
                "differ between datasets, so this API takes only URIs"
            )
        if unknown not in ("raise", "ignore"):
            raise SegueError(f"unknown must be 'raise' or 'ignore', got {unknown!r}")
        ids = self.catalog.lookup(list(uris))
        missing = [u for u, i in zip(uris, ids.tolist(), strict=True) if i < 0]
        if missing and unknown == "raise":
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            raise UnknownTracksError(
                f"{len(missing)} of {len(uris)} tracks are not in the catalog of model "
                f"{self.name} ({self.n_tracks:,} tracks): {shown}; pass unknown='ignore' to "
                "recommend from the others",
                missing,
            )
        return ids[ids >= 0], missing

    def recommend(
        self,
        tracks: Sequence[str] = (),
        title: str | None = None,
        n: int = 10,
        *,
        explain: bool = False,
        unknown: Literal["raise", "ignore"] = "raise",
    ) -> Recommendations:
        """The ``n`` best tracks to continue a playlist of ``tracks`` (URIs) titled ``title``.

        Never a seed track, each track once; exactly ``n`` unless the catalog has fewer tracks
        besides the seeds. ``explain`` adds each track's ``because`` line and evidence.
        """
        _check_n(n)
        ids, missing = self.ids(tracks, unknown=unknown)
        n = min(n, self.n_tracks - len(np.unique(ids)))
        if n < 1:
            return Recommendations([], self.name, missing)
        queries = Queries.from_lists([ids.tolist()], [title or ""])
        ranking = self.recommender.recommend(queries, n)
        explanations = self.recommender.explain(queries, 0, ranking.ids[0]) if explain else None
        return self._records(ranking.ids[0], ranking.scores[0], explanations, missing)

    def similar(self, uri: str, n: int = 10, *, explain: bool = False) -> Recommendations:
        """The ``n`` tracks that go best with ``uri``: the model's continuation of a one-track
        playlist (the track itself excluded)."""
        if not isinstance(uri, str):
            raise SegueError(f"uri must be a track URI (str), got {uri!r}")
        _check_n(n)
        ids, _ = self.ids([uri])
        ranking = self.recommender.similar(ids, min(n, self.n_tracks - 1))
        explanations = (
            self.recommender.explain(Queries.from_lists([ids.tolist()]), 0, ranking.ids[0])
            if explain
            else None
        )
        return self._records(ranking.ids[0], ranking.scores[0], explanations, [])

    def search(self, query: str, n: int = 10, offset: int = 0) -> SearchHits:
        """Find tracks in the model's catalog by track or artist name (typo-tolerant), to get
        the URIs that :meth:`recommend` takes."""
        return search_catalog(self.catalog, self.recommender.popularity, query, n, offset)

    def _records(
        self,
        ids: np.ndarray,
        scores: np.ndarray,
        explanations: list[Explanation] | None,
        missing: list[str],
    ) -> Recommendations:
        rows = self.catalog.rows(ids)
        if explanations is not None:
            explanations = with_uris(self.catalog, explanations)
        out = []
        for k, (row, score) in enumerate(zip(rows, scores.tolist(), strict=True)):
            why = explanations[k] if explanations is not None else None
            out.append(
                Recommendation(
                    rank=k + 1,
                    uri=row["track_uri"],
                    name=row["track_name"],
                    artist=row["artist_name"],
                    score=None if score != score else score,
                    because=why.text if why is not None else None,
                    evidence=why.evidence if why is not None else None,
                )
            )
        return Recommendations(out, self.name, missing)


def _check_n(n) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise SegueError(f"n must be a positive integer, got {n!r}")


def with_uris(catalog: Catalog, explanations: list[Explanation]) -> list[Explanation]:
    """The explanations with evidence naming tracks by ``track_uri`` instead of internal
    ``track_id`` (clients know URIs); the evidence dicts are renamed in place."""
    referenced = [e["track_id"] for x in explanations for e in x.evidence if "track_id" in e]
    if referenced:
        uris = dict(
            zip(
                referenced,
                catalog.uris.take(np.asarray(referenced, dtype=np.int64)).to_pylist(),
                strict=True,
            )
        )
        for explanation in explanations:
            for e in explanation.evidence:
                if "track_id" in e:
                    e["track_uri"] = uris[e.pop("track_id")]
    return explanations


def load(path: str | Path) -> Model:
    """The trained model in directory ``path`` (written by ``segue train``), any kind.

    Raises :class:`~segue.errors.InputFileError` naming the file when the directory is not a
    model or is damaged; nothing is unpickled.
    """
    from segue.models.registry import load_model

    return Model(load_model(Path(path)), Path(path))


def evaluate(
    models: Sequence[str | Path],
    split: str | Path,
    *,
    part: str = "test",
    n_bootstrap: int = 1000,
    seed: int = 0,
    engine: str = "local",
    master: str | None = None,
):
    """Score saved models on a held-out split (``segue split``'s output): a polars DataFrame
    with one row per model × category (``group``: ``all`` and each challenge category) ×
    metric, and the mean with its 95% bootstrap interval (``ci_low``, ``ci_high``).

    Each model must have been trained on ``SPLIT/train`` (checked by the data's digest); seed
    tracks are excluded from the rankings and only the held-out tracks count. ``engine="spark"``
    answers and scores the queries in Spark tasks on ``master`` (the same figures).
    """
    from segue.evaluation.rankings import evaluate_part
    from segue.evaluation.task import load_part
    from segue.models.config import RunOptions

    RunOptions(engine=engine, master=master)  # checks both
    loaded = load_part(Path(split), part)
    result, _ = evaluate_part(
        loaded,
        [Path(m) for m in models],
        n_bootstrap=n_bootstrap,
        seed=seed,
        engine=engine,
        master=master,
    )
    return _frame(result.table)


def read_evaluation(path: str | Path):
    """An ``evaluation.json`` written by ``segue evaluate`` (or the pipeline) as the frame
    :func:`evaluate` returns."""
    import orjson

    from segue.errors import InputFileError

    path = Path(path)
    try:
        document = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InputFileError(path, "missing (write one with `segue evaluate`)") from None
    except orjson.JSONDecodeError as exc:
        raise InputFileError(path, f"not valid JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("table"), dict):
        raise InputFileError(path, "field 'table' missing: not an evaluation.json")
    return _frame(document["table"])


def _frame(table: dict):
    """model × group × metric rows of an evaluation table (``EvaluationResult.table``)."""
    import polars as pl

    rows = [
        (
            model,
            group,
            metric,
            cell.get("mean"),
            cell.get("ci_low"),
            cell.get("ci_high"),
            cell.get("n"),
        )
        for model, groups in table.items()
        for group, metrics in groups.items()
        for metric, cell in metrics.items()
        if isinstance(cell, dict)
    ]
    schema = {
        "model": pl.String,
        "group": pl.String,
        "metric": pl.String,
        "mean": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
        "n": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")
