"""Stages that can be re-run alone, skipped when nothing changed, and logged to their own files.

A :class:`Stage` is a named step with the paths it reads (``inputs``), the paths it writes
(``outputs``), the parameters that shape its result (``params``) and the stages it builds on
(``after``). :class:`Runner` runs stages in order:

* **Skipping.** A stage's *fingerprint* is a hash of its parameters, of its inputs as they are on
  disk (a dataset directory by its ``manifest.json``; another directory by the names, sizes and
  modification times of its files; a file by its size and modification time) and of the
  fingerprints of the stages it builds on, and of segue's version. A stage whose record (``.pipeline/<slug>.json``, its name with dashes for spaces) holds
  the same fingerprint, and whose outputs all exist, is skipped and reports what it produced last
  time. Change a parameter or an input and that stage, and every stage after it, runs again.
* **Logs.** While a stage runs, everything the ``segue`` logger says (progress lines with rate,
  ETA and memory included) also goes to ``logs/<stage>_<UTC time>.log``, which ends with the
  stage's wall time, peak memory and a summary of its outputs (files, sizes, counts).
* **Faults.** A stage that fails (bad input, a check that finds its outputs invalid) raises
  :class:`StageError` naming the stage and its log; the records of the stages already done stay,
  so the next run resumes at the failed stage. Each stage writes its outputs whole or not at
  all (the library functions write to temporary names), so an interrupted run leaves nothing
  half-made; a record is written only after the stage succeeded.
* **Memory.** A thread samples the resident memory of the process and its children every 0.2 s;
  each record keeps the stage's peak.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from segue import __version__
from segue.data import schema
from segue.errors import SegueError
from segue.io import write_json
from segue.progress import rss_gib

log = logging.getLogger("segue")

RECORDS = ".pipeline"
LOGS = "logs"


class StageError(SegueError):
    """A stage failed; the message names it, the cause and its log file."""


@dataclass
class Stage:
    """One step. ``run`` returns a JSON-serialisable summary (counts, figures, paths)."""

    name: str
    run: Callable[[], dict]
    inputs: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    after: list[str] = field(default_factory=list)
    check: Callable[[dict], None] | None = None  # raises SegueError when the outputs are not valid
    phase: str = ""
    lane: str = ""  # stages of different lanes may run side by side (see Runner.run_lanes)

    @property
    def slug(self) -> str:
        """The name as a file name: "train als" → "train-als" (records and logs)."""
        return _slug(self.name)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", name).strip("-")


@dataclass
class StageResult:
    name: str
    phase: str
    status: str  # "ran", "skipped"
    seconds: float
    peak_rss_gib: float
    summary: dict
    outputs: list[dict]
    log: str | None


class Runner:
    """Runs stages under ``out`` (records in ``out/.pipeline``, logs in ``out/logs``)."""

    def __init__(self, out: Path, echo: Callable[[str], None] = print, force: bool = False):
        self.out = Path(out)
        self.echo = echo
        self.force = force
        self.results: dict[str, StageResult] = {}
        self._fingerprints: dict[str, str] = {}
        self._numbers = 0
        self._lock = threading.Lock()

    def fingerprint(self, stage: Stage) -> str:
        parts = {
            "segue": __version__,  # a new version may compute a stage differently: run it again
            "params": stage.params,
            "inputs": [_describe_path(p) for p in stage.inputs],
            "after": [self._upstream(name) for name in stage.after],
        }
        return hashlib.sha256(
            orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)
        ).hexdigest()

    def _upstream(self, name: str) -> str:
        """The fingerprint of a stage this one builds on: from this run, or from its record when
        this run does not include it (``segue pipeline phase2`` after ``phase1``), so a stage's
        fingerprint does not depend on which phases one command asked for."""
        if name not in self._fingerprints:
            record = _read_record(self.out / RECORDS / f"{_slug(name)}.json")
            self._fingerprints[name] = record.get("fingerprint", name)
        return self._fingerprints[name]

    def run_lanes(self, stages: list[Stage], jobs: int = 2) -> None:
        """Run ``stages`` grouped by their ``lane``: each lane's stages in order, up to ``jobs``
        lanes side by side in threads (the heavy work — torch, BLAS, implicit, numba — runs
        outside the GIL, and a single-threaded graph trainer leaves a core idle otherwise). A
        stage may build only on stages of its own lane or on stages run before this call. Each
        stage's log gets only its own thread's messages; its peak memory is the process's while
        it ran (lanes share it). When a stage fails, its lane stops, the other lanes finish what
        they run, then the first failure is raised."""
        lanes: dict[str, list[Stage]] = {}
        for stage in stages:
            lanes.setdefault(stage.lane, []).append(stage)
        if jobs <= 1 or len(lanes) <= 1:
            for stage in stages:
                self.run(stage)
            return
        errors: list[BaseException] = []
        pending = list(lanes.values())

        def work() -> None:
            while True:
                with self._lock:
                    if not pending:
                        return
                    lane = pending.pop(0)
                try:
                    for stage in lane:
                        self.run(stage, own_thread_log=True)
                except BaseException as exc:  # re-raised below, in the main thread
                    errors.append(exc)

        before = _thread_settings()
        threads = [
            threading.Thread(target=work, name=f"segue-lane-{i}", daemon=True)
            for i in range(min(jobs, len(lanes)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():  # a timed join, so Ctrl-C reaches this thread at once
                thread.join(0.2)
        _restore_thread_settings(before)
        if errors:
            raise next((e for e in errors if isinstance(e, StageError)), errors[0])

    def run(self, stage: Stage, *, own_thread_log: bool = False) -> StageResult:
        with self._lock:
            self._numbers += 1
            number = self._numbers
        fingerprint = self.fingerprint(stage)
        self._fingerprints[stage.name] = fingerprint
        record_path = self.out / RECORDS / f"{stage.slug}.json"
        record = _read_record(record_path)
        if (
            not self.force
            and record.get("fingerprint") == fingerprint
            and all(Path(p).exists() for p in stage.outputs)
        ):
            result = StageResult(
                stage.name,
                stage.phase,
                "skipped",
                record.get("seconds", 0.0),
                record.get("peak_rss_gib", 0.0),
                record.get("summary", {}),
                record.get("outputs", []),
                record.get("log"),
            )
            self.results[stage.name] = result
            self.echo(
                f"[{number:>2}] {stage.name:<34} unchanged, skipped (took {result.seconds:.1f} s)"
            )
            return result
        self.echo(f"[{number:>2}] {stage.name:<34} …")
        # The old record goes first: a run that fails or is interrupted part-way may already have
        # replaced some of the outputs, so none of them counts as done until the stage succeeds.
        record_path.unlink(missing_ok=True)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        log_path = self.out / LOGS / f"{stage.slug}_{stamp}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, encoding="utf-8")
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
        )
        detach = _attach(handler, thread=threading.get_ident() if own_thread_log else None)
        sampler = _PeakSampler()
        start = time.perf_counter()
        try:
            log.info(
                "stage %s: start (inputs: %s; parameters: %s)",
                stage.name,
                ", ".join(str(p) for p in stage.inputs) or "none",
                stage.params or "none",
            )
            with sampler:
                summary = stage.run() or {}
                missing = [str(p) for p in stage.outputs if not Path(p).exists()]
                if missing:
                    raise SegueError(f"it did not write {', '.join(missing)}")
                if stage.check is not None:
                    stage.check(summary)
            seconds = time.perf_counter() - start
            outputs = [_output_entry(Path(p)) for p in stage.outputs]
            log.info(
                "stage %s: done in %.1f s, peak RSS %.2f GiB", stage.name, seconds, sampler.peak
            )
            for entry in outputs:
                log.info("  output %s: %s", entry["path"], _format_entry(entry))
        except KeyboardInterrupt:
            log.error("stage %s: interrupted; nothing of it was kept", stage.name)
            raise
        except SegueError as exc:
            log.error("stage %s failed: %s", stage.name, exc)
            raise StageError(
                f"stage {stage.name!r} failed: {exc} (log: {log_path}); the stages before it "
                f"are kept, and the next run resumes here"
            ) from None
        except Exception:
            # A bug, not bad input: the traceback reaches the terminal as it is; the log keeps it too.
            handler.handle(
                log.makeRecord(
                    log.name,
                    logging.ERROR,
                    __file__,
                    0,
                    "stage %s failed",
                    (stage.name,),
                    sys.exc_info(),
                )
            )
            raise
        finally:
            detach()
        result = StageResult(
            stage.name,
            stage.phase,
            "ran",
            seconds,
            sampler.peak,
            _plain(summary),
            outputs,
            str(log_path),
        )
        write_json(
            record_path,
            {
                "fingerprint": fingerprint,
                **result.__dict__,
                "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            },
        )
        self.results[stage.name] = result
        self.echo(f"     {stage.name:<34} {seconds:6.1f} s, peak {sampler.peak:.2f} GiB")
        return result


_attached: dict = {"count": 0, "saved": None}
_attach_lock = threading.Lock()


def _attach(handler: logging.Handler, thread: int | None = None) -> Callable[[], None]:
    """Send what the ``segue`` logger says at INFO and above to ``handler`` too, whatever the
    logger's level (``segue -q``, or a library caller that never set one): the handlers already
    there keep the threshold the logger had. ``thread``: only that thread's messages (stages
    running side by side). Returns the function that undoes it. The levels are changed by the
    first handler attached and restored by the last one detached (stages may overlap)."""
    handler.setLevel(logging.INFO)
    if thread is not None:
        handler.addFilter(lambda record: record.thread == thread)
    with _attach_lock:
        if _attached["count"] == 0:
            threshold, level = log.getEffectiveLevel(), log.level
            others = [(h, h.level) for h in log.handlers]
            for h, h_level in others:
                h.setLevel(max(h_level, threshold))
            log.setLevel(min(threshold, logging.INFO))
            _attached["saved"] = (level, others)
        _attached["count"] += 1
        log.addHandler(handler)

    def detach() -> None:
        with _attach_lock:
            log.removeHandler(handler)
            handler.close()
            _attached["count"] -= 1
            if _attached["count"] == 0:
                level, others = _attached["saved"]
                log.setLevel(level)
                for h, h_level in others:
                    h.setLevel(h_level)

    return detach


def _thread_settings() -> dict:
    """Thread-pool sizes that stages change while they run (threadpoolctl's BLAS limit, torch's
    intra-op threads, numba's): stages in parallel lanes can restore each other's values in the
    wrong order, so the lanes' caller puts these back afterwards."""
    import numba
    from threadpoolctl import threadpool_info

    saved = {
        "blas": [(i["filepath"], i["num_threads"]) for i in threadpool_info()],
        "numba": numba.get_num_threads(),
    }
    if "torch" in sys.modules:
        saved["torch"] = sys.modules["torch"].get_num_threads()
    return saved


def _restore_thread_settings(saved: dict) -> None:
    import numba
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    for filepath, threads in saved["blas"]:
        for pool in controller.lib_controllers:
            if pool.filepath == filepath and pool.num_threads != threads:
                pool.set_num_threads(threads)
    numba.set_num_threads(saved["numba"])
    if "torch" in saved and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(saved["torch"])


def _read_record(path: Path) -> dict:
    try:
        record = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def _describe_path(path: Path) -> object:
    """What a fingerprint sees of an input (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        return [str(path), "missing"]
    if path.is_file():
        stat = path.stat()
        return [str(path), stat.st_size, stat.st_mtime_ns]
    if (path / schema.MANIFEST_FILE).exists():
        return [str(path), schema.manifest_digest(path)]
    entries = []
    for child in sorted(path.rglob("*")):
        if child.is_file() and not any(
            part.startswith(".") for part in child.relative_to(path).parts
        ):
            stat = child.stat()
            entries.append([str(child.relative_to(path)), stat.st_size, stat.st_mtime_ns])
    return [str(path), hashlib.sha256(orjson.dumps(entries)).hexdigest()]


def _output_entry(path: Path) -> dict:
    if path.is_file():
        return {"path": str(path), "files": 1, "bytes": path.stat().st_size}
    files = [  # the output's own files: not segue's mark or other hidden bookkeeping
        p
        for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    ]
    return {"path": str(path), "files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def _format_entry(entry: dict) -> str:
    size = entry["bytes"]
    unit = next(
        u for u, s in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1)) if size >= s or s == 1
    )
    scale = {"GB": 1e9, "MB": 1e6, "kB": 1e3, "B": 1}[unit]
    return f"{entry['files']} file{'s' if entry['files'] != 1 else ''}, {size / scale:.1f} {unit}"


def _plain(obj):
    """A summary made JSON-safe (paths and numpy scalars as plain values)."""
    return orjson.loads(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY, default=str))


class _PeakSampler:
    """Peak resident memory of this process tree while the ``with`` block runs (GiB)."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()

    def __enter__(self):
        self.peak = rss_gib()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_gib())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_gib())
