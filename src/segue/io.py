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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(dest: Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``dest`` when the block succeeds.

    On an exception the temporary directory is removed and ``dest`` is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not overwrite:
        raise FileExistsError(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs follow the umask like any file
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
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
    """Open a temporary file beside ``dest``; rename it to ``dest`` when the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.tmp-", dir=dest.parent)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
