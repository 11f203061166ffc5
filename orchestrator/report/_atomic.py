"""Atomic, owner-only file writes: temp file in the same directory, fsync, rename.

Readers (a human, ``report diff``, node-exporter's textfile collector) see
either the old file or the new one, never a torn one, even when the process is
interrupted mid-write.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "temp_pattern"]


def temp_pattern(path: str | os.PathLike[str]) -> str:
    """The glob matching the temp files :func:`atomic_write` makes for ``path``."""
    return f".{Path(path).name}.*.tmp"


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically; the file gets exactly ``mode``.

    The temp file is created owner-only (``mkstemp``), so the content is never
    readable by others even briefly, whatever the umask; ``mode`` is applied
    with ``fchmod``, which the umask does not touch. On any failure (including
    ``KeyboardInterrupt``) the temp file is removed and the old file is left
    as it was. The temp name ends in ``.tmp`` so collectors that read ``*.prom``
    or ``*.json`` never pick it up.
    """
    target = Path(path)
    directory = target.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
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
