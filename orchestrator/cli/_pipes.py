"""stdout and stderr that survive a reader going away (``orchestrator run ... | head -1``).

Python ignores SIGPIPE, so a write to a pipe whose reader has exited raises
``BrokenPipeError``. For the command that must not cost the run: the report and
the other result files are what matter, and a log line or a summary row nobody
reads any more is not worth a lost report. :func:`pipe_safe_streams` wraps both
streams so that the first broken pipe silently turns that stream into a sink
(its file descriptor is pointed at ``/dev/null``, so that the interpreter's own
flush at exit does not complain either).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["PipeSafe", "pipe_safe_streams"]


class PipeSafe:
    """A text stream that drops what it is given once its reader is gone."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        #: True once a write or flush met a broken pipe
        self.broken = False

    def _broke(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._stream.fileno())
            finally:
                os.close(devnull)

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._broke()
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._broke()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def pipe_safe_streams() -> Iterator[None]:
    """Within the block, ``sys.stdout`` and ``sys.stderr`` survive a broken pipe."""
    saved = sys.stdout, sys.stderr
    sys.stdout = PipeSafe(saved[0])
    sys.stderr = PipeSafe(saved[1])
    try:
        yield
    finally:
        for wrapper in (sys.stdout, sys.stderr):
            if isinstance(wrapper, PipeSafe):
                wrapper.flush()
        sys.stdout, sys.stderr = saved
