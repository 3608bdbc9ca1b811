"""Writing outputs whole or not at all, and never over what segue did not write.

Every output goes to a temporary name beside its destination and is renamed into place only when
complete, so an interrupted run never leaves a half-made file or directory behind.

One rule for every output directory: it is created, or it replaces an empty directory or one
segue wrote (every output directory holds an ``.segue-output`` mark). Any other directory is
refused: ``--out ~/Music`` must never move a user's folder aside and delete it. A pipeline run
owns its run directory (:func:`owned`), so it also replaces its stage outputs written by a segue
from before the mark.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson

from segue.errors import SegueError

OUTPUT_MARK = ".segue-output"
_MARK_TEXT = b"written by segue: segue may replace this directory when asked to write here again\n"
_owned: list[Path] = []  # run directories whose contents a running pipeline owns
_owned_lock = threading.Lock()


@contextlib.contextmanager
def owned(root: Path) -> Iterator[None]:
    """While the block runs, output directories under ``root`` may be replaced even without the
    mark (a pipeline run owns its run directory; stage lanes run in threads, so this is
    process-wide, not a context variable)."""
    root = Path(root).absolute()
    with _owned_lock:
        _owned.append(root)
    try:
        yield
    finally:
        with _owned_lock:
            _owned.remove(root)


def _check_replaceable(dest: Path) -> None:
    """``dest`` (an existing directory) may be replaced: empty, marked, or under an owned root."""
    if (dest / OUTPUT_MARK).exists() or next(dest.iterdir(), None) is None:
        return
    absolute = dest.absolute()
    with _owned_lock:
        if any(absolute.is_relative_to(root) and absolute != root for root in _owned):
            return
    raise OutputPathError(
        f"{dest}: holds files segue did not write (no {OUTPUT_MARK}; or a segue before 0.3 "
        "wrote them); segue replaces only its own outputs and empty directories: choose another "
        "--out, or remove it first"
    )


class OutputPathError(SegueError):
    """An output path that cannot be what it is asked to be (a file where a directory goes, a
    path under a file, a directory where a file goes): refused before anything is written."""


def check_output_dir(path: Path, *, replace: bool = False) -> Path:
    """``path`` if it can become an output directory: absent (its parents absent or
    directories) or an existing directory, which the output replaces. An existing file, device,
    link to one, or a path under a file is refused with :class:`OutputPathError`; with
    ``replace``, so is a directory that segue may not replace (see the module docstring), so a
    command can refuse before its work rather than after.

    >>> check_output_dir(Path("/dev/null"))
    Traceback (most recent call last):
    ...
    segue.io.OutputPathError: /dev/null: exists and is not a directory (an output directory is new or a directory to replace)
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise OutputPathError(
                f"{path}: exists and is not a directory (an output directory is new or a "
                "directory to replace)"
            )
        if replace:
            _check_replaceable(path)
        return path
    _check_parents(path)
    return path


def check_output_file(path: Path) -> Path:
    """``path`` if it can become an output file: absent, or a regular file it replaces; a
    directory, a device or a path under a file is refused with :class:`OutputPathError`."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_file() or path.is_symlink():
            raise OutputPathError(f"{path}: exists and is not a regular file")
        return path
    _check_parents(path)
    return path


def _check_parents(path: Path) -> None:
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{path}: {parent} is a file, not a directory")
            return


def _name_the_output(exc: BaseException, dest: Path) -> None:
    """An OS error while writing (a full disk says only "No space left on device") gets the
    output it was writing as its file name, so the one-line error says where."""
    if isinstance(exc, OSError) and exc.filename is None:
        exc.filename = str(dest)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(dest: Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``dest`` when the block succeeds.

    On an exception the temporary directory is removed and ``dest`` is untouched. ``dest`` must
    be absent or a directory (:func:`check_output_dir`): a file is never replaced, and a
    directory only if it is empty or segue's (see the module docstring). ``overwrite=False``
    refuses any existing ``dest``.
    """
    dest = check_output_dir(Path(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not overwrite:
        raise FileExistsError(dest)
    if dest.exists():
        _check_replaceable(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs follow the umask like any file
    try:
        (tmp / OUTPUT_MARK).write_bytes(_MARK_TEXT)
        yield tmp
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _name_the_output(exc, dest)
        raise
    old = None
    if dest.exists():
        # Move the old one aside first so the swap is two renames, never a half-deleted tree.
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(dest: Path, mode: str = "wb") -> Iterator:
    """Open a temporary file beside ``dest``; rename it to ``dest`` when the block succeeds.
    ``dest`` must be absent or a regular file (:func:`check_output_file`)."""
    dest = check_output_file(Path(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.tmp-", dir=dest.parent)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, dest)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        _name_the_output(exc, dest)
        raise


def write_json(dest: Path, obj: object) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_file(dest) as handle:
        handle.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        handle.write(b"\n")


def write_text(dest: Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_file(dest, "w") as handle:
        handle.write(text)
