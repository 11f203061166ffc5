"""Atomic, owner-only file writes: temp file in the same directory, fsync, rename.

Readers (a human, ``report diff``, node-exporter's textfile collector) see
either the old file or the new one, never a torn one, even when the process is
interrupted mid-write.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["atomic_write", "check_writable", "temp_pattern"]


def temp_pattern(path: str | os.PathLike[str]) -> str:
    """The glob matching the temp files :func:`atomic_write` makes for ``path``."""
    return f".{Path(path).name}.*.tmp"


def atomic_write(
    path: str | os.PathLike[str], data: bytes | Iterable[bytes], *, mode: int = 0o600
) -> None:
    """Replace ``path`` with ``data`` atomically; the file gets exactly ``mode``.

    ``data`` may come in pieces (an iterable of bytes), written as they come.

    The temp file is created owner-only (``mkstemp``), so the content is never
    readable by others even briefly, whatever the umask; ``mode`` is applied
    with ``fchmod``, which the umask does not touch. On any failure (including
    ``KeyboardInterrupt``) the temp file is removed and the old file is left
    as it was. The temp name ends in ``.tmp`` so collectors that read ``*.prom``
    or ``*.json`` never pick it up. An ``OSError`` names ``path``, never the
    temp file (which the user never asked for).
    """
    target = Path(path)
    try:
        _write(target, data, mode)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from None


def _write(target: Path, data: bytes | Iterable[bytes], mode: int) -> None:
    directory = target.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            if isinstance(data, bytes):
                file.write(data)
            else:
                file.writelines(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; best effort (not every platform can fsync a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def check_writable(path: str | os.PathLike[str]) -> str | None:
    """Why :func:`atomic_write` could not write ``path``, found without touching it; None if
    it can.

    Tried for real (a temp file is created in the directory and removed), so a
    read-only file system or directory is found whoever the user is.
    """
    target = Path(path)
    directory = target.parent
    if target.is_dir():
        return f"{target} is a directory"
    if not directory.is_dir():
        return f"no directory {directory}"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        return f"directory {directory}: {exc.strerror or exc}"
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    return None
