"""Writing files and folders so that a crash or a full disk never leaves a partial one in place.

Everything xner writes for a user (models, reports, result exports, perturbed test sets)
goes to a temporary name next to its final path and is renamed (``os.replace``, atomic on
one filesystem) only when complete: a reader sees the old version or the new one, never
half of one, and a failed write leaves the final path as it was. An ``OSError`` while
writing (``ENOSPC``: no space left on device) becomes one :class:`~xner.errors.XnerError`
line naming the path.

>>> with atomic_directory(tmp / "model") as folder:   # doctest: +SKIP
...     (folder / "weights.bin").write_bytes(data)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from xner.errors import XnerError

__all__ = ["atomic_directory", "atomic_file", "atomic_write", "write_errors"]

TEMP_PREFIX = ".tmp-"
"""Prefix of the temporary names (hidden, and recognisable as leftovers of a killed process)."""


@contextmanager
def write_errors(path: str | Path) -> Iterator[None]:
    """Turn an ``OSError`` of the block (full disk, no permission, read-only) into one line.

    >>> with write_errors("out/model"):   # doctest: +SKIP
    ...     raise OSError(28, "No space left on device")
    Traceback (most recent call last):
    XnerError: cannot write out/model: No space left on device
    """
    try:
        yield
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        raise XnerError(f"cannot write {path}: {reason}; nothing was left half-written there") from None


def _temp_sibling(path: Path) -> Path:
    return path.with_name(f"{TEMP_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}")


@contextmanager
def atomic_file(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to ``path``; it replaces ``path`` when the block succeeds.

    Raises:
        XnerError: the write failed (the temporary file is removed, ``path`` is untouched).
    """
    path = Path(path)
    temp = _temp_sibling(path)
    with write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(temp, mode, encoding=None if "b" in mode else encoding) as handle:
                yield handle
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write text or bytes to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)
    return Path(path)


@contextmanager
def atomic_directory(path: str | Path, *, replace: bool = False, merge: bool = False) -> Iterator[Path]:
    """A fresh temporary folder next to ``path``, moved into place when the block succeeds.

    Args:
        path: the final folder.
        replace: an existing ``path`` is replaced as a whole (the caller checked it may be).
        merge: move the new files into an existing ``path`` one by one (each replacing a
            file of the same name), keeping the other files there (a report folder).

    Without ``replace`` or ``merge``, ``path`` must not exist or be an empty folder.

    Raises:
        XnerError: writing failed (the temporary folder is removed, ``path`` is untouched).
    """
    path = Path(path)
    with write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{path.name}-", dir=path.parent))
        try:
            yield temp
            if merge and path.is_dir():
                _merge(temp, path)
            else:
                _move(temp, path, replace)
        finally:
            shutil.rmtree(temp, ignore_errors=True)


def _move(temp: Path, path: Path, replace: bool) -> None:
    if not (replace and path.exists()):
        os.replace(temp, path)  # onto a missing path or an empty folder
        return
    old = _temp_sibling(path)
    os.replace(path, old)
    try:
        os.replace(temp, path)
    except OSError:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _merge(temp: Path, path: Path) -> None:
    for source in sorted(temp.rglob("*")):
        if source.is_file():
            target = path / source.relative_to(temp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
