"""What the service knows and computes, without HTTP: loaded models, catalogs, live logs.

:meth:`Service.load` loads each model directory once (``Recommender.load``: JSON + plain arrays,
no pickle), builds one :class:`~segue.catalog.Catalog` per distinct track catalog (models
trained on the same data share it) and replays each model's log of live additions. The methods
answer the endpoints with plain dicts (``app.py`` turns them into HTTP) and raise
:class:`ApiError` with the HTTP status for anything the client got wrong.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from segue import __version__
from segue.api import with_uris
from segue.catalog import Catalog
from segue.errors import InputFileError, SegueError
from segue.evaluation.rankings import unique_name
from segue.models.base import PARAMS_FILE, LiveUpdateUnsupported, Queries, Recommender
from segue.serve.live import LiveLog, LiveLogReplaced, LiveLogUnwritable

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.parquet"


class ApiError(Exception):
    """A request the service refuses: HTTP ``status`` and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ServedModel:
    """One loaded model and what the service keeps beside it."""

    name: str  # the directory's name (made unique), as clients ask for it
    path: Path
    model: Recommender
    catalog: Catalog
    info: dict
    live: LiveLog | None = None
    metrics: dict | None = None
    identity: tuple = ()  # of the directory as loaded (see _identity): a retrain changes it

    @property
    def explains(self) -> bool:
        return type(self.model).explain is not Recommender.explain


@dataclass
class Service:
    models: dict[str, ServedModel]
    started: float = field(default_factory=time.time)
    writes_refused: str = ""  # why POST /v1/playlists is off ("" when it is on)

    @property
    def default(self) -> ServedModel:
        return next(iter(self.models.values()))

    # --- loading ---------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        model_dirs: list[Path],
        *,
        state_dir: Path | None = None,
        evaluation: Path | None = None,
    ) -> Service:
        """Load every model directory once; replay each one's live log (see ``live.py``).

        ``state_dir``: where the logs go (``STATE/<name>/playlists.jsonl``); default: beside each
        model directory, ``MODEL.live/`` (:func:`default_state_dir`), outside it so that
        retraining the model in place (``segue train … --out MODEL`` replaces the directory)
        keeps the additions: the next start replays them into the new model. ``evaluation``: an
        ``evaluation.json`` from ``segue evaluate`` whose table rows named like a served model
        become its metrics.
        """
        if not model_dirs:
            raise SegueError(
                "give at least one model directory to serve (train one with `segue train`)"
            )
        table = _evaluation_table(evaluation) if evaluation is not None else {}
        catalogs: dict[str, Catalog] = {}
        models: dict[str, ServedModel] = {}
        for number, directory in enumerate(map(Path, model_dirs), start=1):
            start = time.perf_counter()
            # a large model takes seconds to load and index: say what is happening
            log.info("loading %s (%d of %d)…", directory.name, number, len(model_dirs))
            model = Recommender.load(directory)
            name = unique_name(directory.resolve().name or model.name, models)
            catalog_path = directory / CATALOG_FILE
            if not catalog_path.exists():
                raise InputFileError(
                    catalog_path, "missing: the service needs the model's track catalog"
                )
            key = hashlib.sha256(catalog_path.read_bytes()).hexdigest()
            if key not in catalogs:
                catalogs[key] = Catalog(model.catalog(), model.popularity)
                catalogs[key].search_index  # noqa: B018 - built before workers fork, shared
            if len(catalogs[key]) != model.n_tracks:
                raise InputFileError(
                    catalog_path,
                    f"has {len(catalogs[key]):,} tracks but the model scores {model.n_tracks:,}",
                )
            params_bytes = (directory / PARAMS_FILE).read_bytes()
            params = orjson.loads(params_bytes)
            info = {
                "name": name,
                "kind": model.name,
                "description": type(model).description,
                "directory": directory.name,  # not the absolute path: clients need not know it
                "segue_version": params.get("segue_version"),
                "fingerprint": hashlib.sha256(params_bytes).hexdigest()[:16],
                "config": params.get("config", {}),
                # sizes and the data's digest; its path stays on the server
                "trained_on": {k: v for k, v in model.trained_on.items() if k != "path"},
                "n_tracks": model.n_tracks,
            }
            served = ServedModel(
                name,
                directory,
                model,
                catalogs[key],
                info,
                metrics=_metrics_for(table, name, evaluation),
            )
            served.identity = _identity(directory)
            if model.learns_live:
                live_dir = (
                    (state_dir / name) if state_dir is not None else default_state_dir(directory)
                )
                served.live = LiveLog(live_dir, lambda records, s=served: _learn(s, records))
                served.live.check_writable()
                replayed = served.live.replay()
                if replayed:
                    log.info("%s: learned %d playlists from %s", name, replayed, served.live.path)
            _warm_up(served)
            models[name] = served
            log.info(
                "loaded %s (%s, %s tracks) in %.1f s",
                name,
                model.name,
                f"{model.n_tracks:,}",
                time.perf_counter() - start,
            )
        return cls(models)

    def get(self, name: str | None) -> ServedModel:
        """The model a request names (the first one served when it names none)."""
        if name is None:
            served = self.default
        elif name in self.models:
            served = self.models[name]
        else:
            raise ApiError(
                404, f"model {_shown(name)} is not loaded; loaded: {', '.join(self.models)}"
            )
        if served.live is not None:
            served.live.sync()  # other workers' additions (one stat when there are none)
        return served

    # --- endpoints -----------------------------------------------------------------------------
    def recommend(
        self, *, tracks: list[str], title: str | None, n: int, model: str | None, explain: bool
    ) -> dict:
        served = self.get(model)
        title = (title or "").strip()
        ids = served.catalog.lookup(tracks)
        unknown = [uri for uri, i in zip(tracks, ids.tolist(), strict=True) if i < 0]
        seeds = ids[ids >= 0]
        queries = Queries.from_lists([seeds.tolist()], [title])
        # A small catalog cannot fill a long list: answer with what there is, and say so.
        available = max(0, served.model.n_tracks - len(seeds))
        asked, n = n, min(n, available)
        if n:
            try:
                ranking = served.model.recommend(queries, n)
            except SegueError as exc:
                raise ApiError(422, str(exc)) from None
            top, scores = ranking.ids[0], ranking.scores[0]
        else:
            top, scores = np.zeros(0, np.int32), np.zeros(0, np.float32)
        items = served.catalog.rows(top)
        backfilled = np.isnan(scores)
        for rank, (item, score) in enumerate(zip(items, scores.tolist(), strict=True), start=1):
            item["rank"] = rank
            item["score"] = None if score != score else score
        notes = _notes(served, tracks, title, unknown, int(backfilled.sum()), n)
        if n < asked:
            notes.append(
                f"the catalog has {served.model.n_tracks:,} tracks: {n} of the {asked} asked for "
                f"are left besides the {len(seeds)} seed tracks"
            )
        if explain and n:
            if served.explains:
                self._explain(served, queries, top, items)
            else:
                notes.append(
                    f"model {served.name!r} ({served.model.name}) cannot explain its recommendations"
                )
        return {
            "model": served.name,
            "title": title,
            "n": n,
            "seed_tracks": len(seeds),
            "unknown_tracks": unknown,
            "notes": notes,
            "items": items,
        }

    def _explain(
        self, served: ServedModel, queries: Queries, top: np.ndarray, items: list[dict]
    ) -> None:
        explanations = with_uris(served.catalog, served.model.explain(queries, 0, top))
        for item, explanation in zip(items, explanations, strict=True):
            item["because"] = explanation.text
            item["evidence"] = explanation.evidence

    def similar(self, uri: str, n: int, model: str | None) -> dict:
        served = self.get(model)
        track = int(served.catalog.lookup([uri])[0])
        if track < 0:
            raise ApiError(
                404, f"track {_shown(uri)} is not in the catalog of model {served.name!r}"
            )
        try:
            ranking = served.model.similar([track], n)
        except SegueError as exc:
            raise ApiError(422, str(exc)) from None
        items = served.catalog.rows(ranking.ids[0])
        for rank, (item, score) in enumerate(
            zip(items, ranking.scores[0].tolist(), strict=True), start=1
        ):
            item["rank"] = rank
            item["score"] = None if score != score else score
        return {"model": served.name, "track": served.catalog.rows([track])[0], "items": items}

    def search(self, query: str, offset: int, limit: int, model: str | None) -> dict:
        served = self.get(model)
        result = served.catalog.search_index.search(query, offset, limit)
        items = served.catalog.rows(result.ids)
        for item, count in zip(items, served.model.popularity[result.ids].tolist(), strict=True):
            item["playlists"] = count
        return {
            "query": query,
            "total": result.total,
            "offset": offset,
            "limit": limit,
            "corrections": result.corrections,
            "items": items,
        }

    def add_playlist(self, *, tracks: list[str], title: str | None, model: str | None) -> dict:
        """Teach one new playlist to the named model, or to every loaded model that learns live."""
        if self.writes_refused:
            raise ApiError(403, self.writes_refused)
        targets = (
            [self.get(model)] if model is not None else [self.get(name) for name in self.models]
        )
        learners = [s for s in targets if s.live is not None]
        if not learners:
            reasons = "; ".join(f"{s.name} ({s.model.name})" for s in targets)
            raise ApiError(
                409,
                f"no loaded model can learn new playlists live: {reasons}. "
                "popular, itemknn (cosine) and playlistknn can; retrain the others",
            )
        title = (title or "").strip()
        known_by_model = {}
        for served in learners:
            ids = served.catalog.lookup(tracks)
            known_by_model[served.name] = [
                u for u, i in zip(tracks, ids.tolist(), strict=True) if i >= 0
            ]
        if not any(known_by_model.values()):
            # 404, not 422: the request is well formed; the tracks it names are not here.
            raise ApiError(
                404, f"none of the {len(tracks)} tracks is in the catalog: nothing to learn"
            )
        for served in learners:
            if _identity(served.path) != served.identity:
                raise ApiError(
                    503,
                    f"the model directory of {served.name} was replaced while the service runs "
                    f"(retrained in place?); restart `segue serve` to serve the new model: the "
                    f"{served.live.count} playlists added so far are kept in {served.live.path} "
                    "and will be learned by it",
                )
        updated, unknown_everywhere = [], set(tracks)
        for served in learners:
            known = known_by_model[served.name]
            unknown_everywhere -= set(known)
            if not known:
                continue
            try:
                record = served.live.append(title, known)
            except LiveLogReplaced as exc:
                raise ApiError(503, str(exc)) from None
            except LiveLogUnwritable as exc:  # 507: the storage is full; 503: otherwise refused
                full = exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
                raise ApiError(507 if full else 503, str(exc)) from None
            updated.append(
                {
                    "name": served.name,
                    "seq": record["seq"],
                    "tracks": len(known),
                    "live_playlists": served.live.count,
                }
            )
        skipped = [
            {"name": s.name, "reason": f"{s.model.name} cannot learn new playlists live"}
            for s in targets
            if s.live is None
        ]
        return {
            "title": title,
            "models": updated,
            "skipped": skipped,
            "unknown_tracks": [u for u in tracks if u in unknown_everywhere],
        }

    def describe(self) -> list[dict]:
        out = []
        for served in self.models.values():
            if served.live is not None:
                served.live.sync()
            out.append(
                {
                    **served.info,
                    "learns_live": served.live is not None,
                    "explains": served.explains,
                    "live_playlists": served.live.count if served.live is not None else 0,
                    "metrics": served.metrics,
                }
            )
        return out

    def health(self) -> dict:
        return {
            "status": "ok",
            "segue_version": __version__,
            "models": list(self.models),
            "uptime_s": round(time.time() - self.started, 1),
            "worker": worker_id(),
        }


_worker: tuple[int, str] = (0, "")


def worker_id() -> str:
    """An opaque name for this worker process, new in each process (workers fork from one
    parent): it tells which worker answered without telling clients a process id.

    >>> worker_id() == worker_id() and len(worker_id()) == 8
    True
    """
    global _worker
    if _worker[0] != os.getpid():
        _worker = (os.getpid(), secrets.token_hex(4))
    return _worker[1]


def _warm_up(served: ServedModel) -> None:
    """One request through the model, so what it builds on first use (e.g. the labels that
    explanations name tracks by) is built before the first client, and before the heap is frozen."""
    queries = Queries.from_lists([[0]])
    try:
        ranking = served.model.recommend(queries, 1)
        if served.explains:
            served.model.explain(queries, 0, ranking.ids[0])
    except SegueError:  # e.g. a catalog too small for even one recommendation: requests will say so
        pass


def _shown(text: str, limit: int = 120) -> str:
    """``text`` quoted for an error message, cut to ``limit`` characters (a client's 10 KB
    URI is not echoed back whole).

    >>> _shown("x" * 200, 5)
    "'xxxxx…' (200 characters)"
    """
    return (
        repr(text)
        if len(text) <= limit
        else f"{text[:limit]!r}"[:-1] + f"…' ({len(text)} characters)"
    )


def default_state_dir(model_dir: Path) -> Path:
    """Where a served model's live log goes unless ``--state`` says otherwise: ``MODEL.live``
    beside the model directory. A log left inside the directory by segue 0.1 (``MODEL/live``)
    is moved there first, so it survives the next retrain.

    >>> default_state_dir(Path("models/itemknn"))
    PosixPath('models/itemknn.live')
    """
    model_dir = Path(model_dir)
    state = model_dir.parent / f"{model_dir.name}.live"
    old = model_dir / "live"
    if (old / "playlists.jsonl").exists() and not state.exists():
        os.replace(old, state)
        log.warning("moved the live log %s to %s (outside the model directory)", old, state)
    return state


def _identity(model_dir: Path) -> tuple[int, int, int]:
    """What changes when a model directory is replaced: its ``params.json``'s device, inode and
    modification time (a retrain writes a new directory and renames it into place)."""
    stat = os.stat(Path(model_dir) / PARAMS_FILE)
    return stat.st_dev, stat.st_ino, stat.st_mtime_ns


def _learn(served: ServedModel, records: list[dict]) -> None:
    """Teach logged playlists to a model (URIs no longer in its catalog are skipped)."""
    seeds = []
    for record in records:
        ids = served.catalog.lookup(record["tracks"])
        seeds.append(ids[ids >= 0].tolist())
    try:
        served.model.add_playlists(Queries.from_lists(seeds, [r.get("title", "") for r in records]))
    except LiveUpdateUnsupported as exc:  # a log beside a model retrained as another kind
        raise SegueError(f"{served.live.path}: {exc}") from None


def _notes(
    served: ServedModel,
    tracks: list[str],
    title: str,
    unknown: list[str],
    n_backfilled: int,
    n: int,
) -> list[str]:
    notes = []
    if not tracks and not title:
        return [
            f"empty playlist: these are the most popular tracks (model {served.name!r}); "
            "add tracks or a title to personalise"
        ]
    if tracks and len(unknown) == len(tracks):
        notes.append(
            f"none of the {len(tracks)} tracks is in the catalog of model {served.name!r} "
            "(see unknown_tracks)"
        )
    elif unknown:
        notes.append(
            f"{len(unknown)} of the {len(tracks)} tracks are not in the catalog and were ignored "
            "(see unknown_tracks)"
        )
    if n_backfilled == n:
        notes.append(
            f"model {served.name!r} ({served.model.name}) found no evidence in this playlist: "
            "these are the most popular tracks"
        )
    elif n_backfilled:
        notes.append(
            f"the last {n_backfilled} recommendations are popular tracks filling the list "
            f"(the model had {n - n_backfilled} candidates)"
        )
    return notes


def _evaluation_table(path: Path) -> dict:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise InputFileError(path, "missing (write one with `segue evaluate`)") from None
    except orjson.JSONDecodeError as exc:
        raise InputFileError(path, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("table"), dict):
        raise InputFileError(
            path, "field 'table' missing: not an evaluation.json from `segue evaluate`"
        )
    return data["table"]


def _metrics_for(table: dict, name: str, source: Path | None) -> dict | None:
    """The model's overall row of an evaluation table: metric → {mean, ci_low, ci_high}."""
    overall = table.get(name, {}).get("all") if isinstance(table.get(name), dict) else None
    if not isinstance(overall, dict):
        return None
    values = {
        metric: {k: cell.get(k) for k in ("mean", "ci_low", "ci_high")}
        for metric, cell in overall.items()
        if isinstance(cell, dict)
    }
    # the file's name, not its path on the server
    return {"source": Path(source).name if source else None, "group": "all", "values": values}
