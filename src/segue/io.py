"""Writing outputs whole or not at all.

Every output goes to a temporary name beside its destination and is renamed into place only when
complete, so an interrupted run never leaves a half-made file or directory behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson

from segue.errors import SegueError


class OutputPathError(SegueError):
    """An output path that cannot be what it is asked to be (a file where a directory goes, a
    path under a file, a directory where a file goes): refused before anything is written."""


def check_output_dir(path: Path) -> Path:
    """``path`` if it can become an output directory: absent (its parents absent or
    directories) or an existing directory, which the output replaces. An existing file, device,
    link to one, or a path under a file is refused with :class:`OutputPathError`.

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
    be absent or a directory (:func:`check_output_dir`): a file is never replaced.
    """
    dest = check_output_dir(Path(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not overwrite:
        raise FileExistsError(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs follow the umask like any file
    try:
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
