"""Signals during a command: a first SIGINT/SIGTERM stops new work, a second exits at
once (130), except while the results are written (they are finished first).

The disposition of SIGINT and SIGTERM is never the default while the command
runs (the default kills with the signal's own code, -2 or -15): the run's
handlers are swapped for the ones outside the loop in one step, and
:func:`console_main` keeps them handled until the process has exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from orchestrator._logging import get_logger
from orchestrator.cli._console import _err
from orchestrator.cli._exit_codes import EXIT_CANCELLED

if TYPE_CHECKING:
    from orchestrator.engine import Orchestrator
    from orchestrator.settings import Settings

__all__ = ["Signals", "cancelled_exit", "handle_sigterm"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Signals:
    """What the signals said so far, and the watcher that hears them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.interrupted = False
        self.finishing = False  # the run is over: the results are being written
        self.orch: Orchestrator | None = None

    async def watch(self) -> None:
        """Hear SIGINT and SIGTERM until cancelled (only the main thread can)."""
        if threading.current_thread() is not threading.main_thread():
            await anyio.sleep_forever()
        loop = asyncio.get_running_loop()
        send, receive = anyio.create_memory_object_stream[str](math.inf)

        def deliver(name: str) -> None:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                send.send_nowait(name)

        def handler(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(deliver, signal.Signals(signum).name)

        # a signal that lands in another thread still wakes the loop
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        loop.add_reader(reader.fileno(), _drain, reader)
        old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        for signum in _SIGNALS:
            signal.signal(signum, handler)
        try:
            async with receive:
                async for name in receive:
                    self._received(name)
        finally:
            # from our handler straight to the ones outside the loop: never the default
            signal.signal(signal.SIGINT, signal.default_int_handler)
            handle_sigterm()
            signal.set_wakeup_fd(old_fd)
            loop.remove_reader(reader.fileno())
            reader.close()
            writer.close()
            send.close()

    def _received(self, name: str) -> None:
        if self.finishing:
            # a report cut short helps nobody: it takes a moment
            self.interrupted = True
            _err.print(f"{name}: the results are being written", markup=False)
            return
        if self.interrupted:
            _exit_at_once()
        self.interrupted = True
        if self.settings.output.log_format == "json":
            get_logger("orchestrator.cli").warning("orchestrator.run.stopping", signal=name)
        else:
            _err.print(
                f"{name}: stopping - no new builds; builds in flight are recorded "
                "and the report is written (Ctrl-C again exits at once)",
                markup=False,
            )
        if self.orch is not None:
            self.orch.request_stop("interrupted")

    def current_run_id(self) -> str | None:
        run = self.orch.current_run if self.orch is not None else None
        return run.run_id if run is not None else None


def _drain(reader: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while reader.recv(512):
            pass


def _exit_at_once() -> NoReturn:
    _err.print("second interrupt: exiting at once", markup=False)
    _err.show_cursor(True)  # a live progress line had hidden it
    os._exit(EXIT_CANCELLED)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def handle_sigterm() -> signal.Handlers | Callable[..., Any] | int | None:
    """Make SIGTERM raise KeyboardInterrupt like SIGINT (in the main thread only); return
    the handler it had (None: not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _terminate)


def cancelled_exit(signum: int, frame: object) -> NoReturn:
    """A signal once the command has ended (while the process exits): exit 130."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    raise SystemExit(EXIT_CANCELLED)
