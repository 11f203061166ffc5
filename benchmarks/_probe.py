"""A transport wrapper that records every exchange, to explain where the requests went."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field

from orchestrator.errors import TransportError
from orchestrator.katapult import ApiRequest, ApiResponse, Transport

__all__ = ["Exchange", "RecordingTransport", "Traffic", "classify"]

#: build states after which a build needs no more polls
_FINAL_BUILD_STATES = frozenset({"complete", "failed"})


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and what came of it (times on ``time.monotonic``).

    ``build_id`` names the build a POST created (on a 201) or a poll asked about.
    """

    sent: float
    done: float
    kind: str
    status: int | None
    remaining: int | None
    build_id: str | None = None


def _build_id(request: ApiRequest, response: ApiResponse | None) -> str | None:
    if request.method == "POST":
        if response is None or response.status != 201:
            return None
        try:
            data = json.loads(response.body)
            build = data.get("virtual_machine_build") or data["build"]
            return str(build["id"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
    if request.path.startswith("virtual_machines/builds"):
        return dict(request.params).get("virtual_machine_build[id]")
    return None


def classify(request: ApiRequest, response: ApiResponse | None) -> str:
    """What a request was for: ``post``, ``poll_building``, ``poll_done``, ``setup``, ...

    ``poll_building`` is a build poll that saw the build unfinished (a
    request the lower bound does not count); ``poll_done`` one that saw it
    complete or failed; ``vm_lookup`` a VM fetched by id or fqdn (reconciliation
    after an uncertain POST, or watching an adopted VM); ``vm_list`` a page of
    the organization's VM list (existing hostnames at the start, the built VMs'
    addresses at the end); ``setup`` the organization itself.
    """
    path = request.path
    if request.method == "POST":
        return "post"
    if path.startswith("virtual_machines/builds"):
        if response is None or response.status != 200:
            return "poll_error"
        try:
            state = json.loads(response.body)["virtual_machine_build"]["state"]
        except (ValueError, KeyError, TypeError):
            return "poll_error"
        return "poll_done" if state in _FINAL_BUILD_STATES else "poll_building"
    if path.startswith("tasks/"):
        return "poll_task"
    if path.startswith("virtual_machines/"):
        return "vm_lookup"
    if path == "organizations/_/virtual_machines":
        return "vm_list"
    if path.startswith("organizations/"):
        return "setup"
    return "other"


class RecordingTransport:
    """Passes every request to ``inner`` and keeps an :class:`Exchange` for each."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self.exchanges: list[Exchange] = []

    async def send(self, request: ApiRequest) -> ApiResponse:
        """Send through the inner transport, recording the outcome."""
        sent = time.monotonic()
        try:
            response = await self._inner.send(request)
        except TransportError:
            self.exchanges.append(
                Exchange(
                    sent,
                    time.monotonic(),
                    classify(request, None),
                    None,
                    None,
                    _build_id(request, None),
                )
            )
            raise
        remaining = response.header("x-ratelimit-remaining")
        self.exchanges.append(
            Exchange(
                sent,
                time.monotonic(),
                classify(request, response),
                response.status,
                int(remaining) if remaining is not None and remaining.isdigit() else None,
                _build_id(request, response),
            )
        )
        return response

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()


@dataclass(slots=True)
class Traffic:
    """What the recorded exchanges say about how the rate budget was used.

    Times are seconds from the first request sent. ``idle_slots`` sums, over
    the rate windows that ended before the last build POST went out, the
    budget the server still had when the window reset (the lowest
    ``X-Ratelimit-Remaining`` of the window): requests that could have been
    sent while there was still work to submit, and were not. Windows are told
    apart the way the engine does it: ``Remaining`` only falls within a
    window, so a rise (beyond what reordered responses explain) or the
    window's length passing marks a reset; a window with no request at all
    counts as wholly idle. ``sparse_windows`` counts the stretches of one
    window's length, before the last POST, in which fewer than half the
    permitted requests were sent (stalls). ``first_poll_lags`` holds, per
    build, the seconds from its POST's answer to its first poll.
    """

    by_kind: Counter[str] = field(default_factory=Counter)
    rate_limited_by_kind: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    transport_errors: int = 0
    windows_before_last_post: int = 0
    idle_slots: int = 0
    first_post: float = 0.0
    last_post: float = 0.0
    last_done: float = 0.0
    sparse_windows: int = 0
    first_poll_lags: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, exchanges: list[Exchange], *, permitted: int, window: float) -> Traffic:
        """Summarize ``exchanges``; ``window`` is the rate window in real seconds."""
        traffic = cls()
        if not exchanges:
            return traffic
        start = min(e.sent for e in exchanges)
        posts = [e.sent - start for e in exchanges if e.kind == "post"]
        traffic.first_post = min(posts, default=0.0)
        traffic.last_post = max(posts, default=0.0)
        traffic.last_done = max(e.done for e in exchanges) - start
        for e in exchanges:
            traffic.by_kind[e.kind] += 1
            if e.status == 429:
                traffic.rate_limited_by_kind[e.kind] += 1
            elif e.status is not None and e.status >= 500:
                traffic.server_errors += 1
            elif e.status is None:
                traffic.transport_errors += 1
        traffic._windows(exchanges, start, permitted, window)
        bins = Counter(int((e.sent - start) / window) for e in exchanges)
        last_bin = int(traffic.last_post / window)
        traffic.sparse_windows = sum(1 for b in range(last_bin) if bins[b] < permitted / 2)
        posted: dict[str, float] = {}
        first_poll: dict[str, float] = {}
        for e in exchanges:
            if e.build_id is None:
                continue
            if e.kind == "post":
                posted[e.build_id] = e.done
            elif e.kind.startswith("poll"):
                first_poll[e.build_id] = min(e.sent, first_poll.get(e.build_id, e.sent))
        traffic.first_poll_lags = [first_poll[b] - t for b, t in posted.items() if b in first_poll]
        return traffic

    def _windows(
        self, exchanges: list[Exchange], start: float, permitted: int, window: float
    ) -> None:
        answered = sorted(
            ((e.done - start, e.remaining) for e in exchanges if e.remaining is not None),
        )
        if not answered:
            return
        reorder = 8  # responses overtaking one another explain a rise this small
        opened, lowest = answered[0]
        for done, remaining in answered[1:]:
            if done > self.last_post:
                break
            rise = remaining - lowest
            if rise > reorder or (rise > 0 and done - opened > window * 1.02):
                self.windows_before_last_post += 1
                self.idle_slots += lowest
                skipped = max(0, int((done - opened) / window) - 1)
                self.windows_before_last_post += skipped
                self.idle_slots += skipped * permitted
                opened, lowest = done, remaining
            else:
                lowest = min(lowest, remaining)

    @property
    def total(self) -> int:
        """Every request sent."""
        return sum(self.by_kind.values())

    @property
    def rate_limited(self) -> int:
        """Every 429 received."""
        return sum(self.rate_limited_by_kind.values())
