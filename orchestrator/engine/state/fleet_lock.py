"""One run of a fleet at a time on this machine, whichever journal each run keeps.

The journal's lock stops two runs of one journal; a named fleet may also be run
with two journals (two report paths, ``--no-journal``), and two such runs at once
could each build a VM the other is building. Every run and destroy of a fleet
also holds ``flock`` on a file named for the API, the organizations and the fleet,
in a folder of this user's under the temp directory. Like the journal's, the
lock dies with its process however it dies. It does not reach other machines:
a fleet run from several machines needs a shared state (see the issue on
PostgreSQL state).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from orchestrator.engine.state._db import acquire_lock, release_lock
from orchestrator.errors import JournalError

__all__ = ["FleetLock"]


class FleetLock:
    """The machine-wide lock of one fleet (see the module's docstring)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @staticmethod
    def path_for(api_url: str, organizations: Iterable[str], fleet: str) -> Path:
        """Where the lock of ``fleet`` (of these organizations, on this API) lives."""
        key = "\n".join([api_url, *sorted(organizations), fleet]).encode()
        digest = hashlib.sha256(key).hexdigest()[:24]
        folder = Path(tempfile.gettempdir()) / f"orchestrator-{os.getuid()}"
        return folder / f"fleet-{digest}"

    @classmethod
    def acquire(
        cls, api_url: str, organizations: Iterable[str], fleet: str, holder: dict[str, object]
    ) -> FleetLock:
        """Take it, or raise :class:`JournalError` naming who holds it (blocking: call it
        off the event loop)."""
        path = cls.path_for(api_url, organizations, fleet)
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot lock fleet {fleet!r}: {exc.strerror}") from exc
        try:
            fd, _ = acquire_lock(path, holder=holder)
        except JournalError as exc:
            held = str(exc).partition("in use by another run")[2].strip()
            if not held:
                raise
            raise JournalError(
                f"fleet {fleet!r} is being run or destroyed by another process of this "
                f"machine {held}: one operation of a fleet at a time"
            ) from None
        return cls(fd, path)

    def release(self) -> None:
        """Give it back (idempotent)."""
        if self._fd is not None:
            release_lock(self._fd)
            self._fd = None
