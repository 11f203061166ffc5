"""What a simulator is told: the API's policy (:class:`SimulatorConfig`) and its faults.

Both are plain dataclasses so the CLI can build them from options and tests can
change ``config.faults`` while a server runs (every request reads it afresh).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FaultConfig", "SimulatorConfig"]

_DEFAULT_FAULT_METHODS: frozenset[str] = frozenset({"GET", "POST"})


@dataclass
class FaultConfig:
    """Failures injected into API requests (``/core/v1/...``), all off by default.

    Every ``*_rate`` is a probability in [0, 1] drawn per request from a RNG
    seeded by :attr:`SimulatorConfig.seed`. The per-request faults exclude one
    another (one draw decides at most one of them), so their rates must add up
    to at most 1. They apply only to requests whose method is in ``methods``.

    Attributes:
        error_5xx_rate: answer a JSON ``500 unhandled_exception`` or
            ``503 service_unavailable`` (half each) after authentication and
            rate limiting; the action is NOT taken.
        html_502_rate: answer a proxy-style ``502 Bad Gateway`` HTML page
            (``text/html``, no rate-limit headers); the request never reached
            the API, so nothing is counted against the budget or done.
        slow_rate: handle the request normally (the action IS taken), then hold
            the response for ``slow_seconds`` real seconds - to push a client
            past its read timeout.
        slow_seconds: the delay of a slow response, in real seconds.
        reset_before_rate: drop the connection without handling the request
            (no effect, nothing counted against the budget).
        reset_after_rate: handle the request (e.g. create the VM), THEN drop the
            connection without a response: the ambiguous POST.
        truncated_body_rate: handle the request, then send the status line, a
            ``Content-Length`` larger than what follows and half of the body,
            and close the connection.
        build_fail_rate: a build accepted now will end ``failed`` (task
            ``failed``, build ``failed``, no VM, its hostname freed again).
        build_hang_rate: a build accepted now never finishes (stays
            ``building`` with its VM ``stopped``; task ``running`` forever).
        burst_429_every: a schedule independent of the real budget: after every
            N API requests, the next ``burst_429_length`` requests are answered
            ``429 rate_limit_reached`` (as if another client drained the
            budget). ``None`` disables it. Counts every API request, whatever
            its method.
        burst_429_length: how many requests each burst refuses.
        methods: the HTTP methods the per-request faults apply to.
    """

    error_5xx_rate: float = 0.0
    html_502_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 5.0
    reset_before_rate: float = 0.0
    reset_after_rate: float = 0.0
    truncated_body_rate: float = 0.0
    build_fail_rate: float = 0.0
    build_hang_rate: float = 0.0
    burst_429_every: int | None = None
    burst_429_length: int = 0
    methods: frozenset[str] = field(default_factory=lambda: _DEFAULT_FAULT_METHODS)

    def __post_init__(self) -> None:
        rates = {
            "error_5xx_rate": self.error_5xx_rate,
            "html_502_rate": self.html_502_rate,
            "slow_rate": self.slow_rate,
            "reset_before_rate": self.reset_before_rate,
            "reset_after_rate": self.reset_after_rate,
            "truncated_body_rate": self.truncated_body_rate,
            "build_fail_rate": self.build_fail_rate,
            "build_hang_rate": self.build_hang_rate,
        }
        for name, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.request_fault_total() > 1.0 + 1e-9:
            raise ValueError("the per-request fault rates must add up to at most 1")
        if self.build_fail_rate + self.build_hang_rate > 1.0 + 1e-9:
            raise ValueError("build_fail_rate + build_hang_rate must be at most 1")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must not be negative")
        if self.burst_429_every is not None and self.burst_429_every < 1:
            raise ValueError("burst_429_every must be at least 1 (or None)")
        if self.burst_429_length < 0:
            raise ValueError("burst_429_length must not be negative")
        self.methods = frozenset(m.upper() for m in self.methods)

    def request_fault_total(self) -> float:
        """The summed probability that one request meets a per-request fault."""
        return (
            self.error_5xx_rate
            + self.html_502_rate
            + self.slow_rate
            + self.reset_before_rate
            + self.reset_after_rate
            + self.truncated_body_rate
        )


@dataclass
class SimulatorConfig:
    """How the simulated Katapult API behaves.

    Attributes:
        token: the one API token accepted (``Authorization: Bearer <token>``).
        rate_limit: requests permitted per window per token; ``None`` means
            unlimited (the headers then say ``1000000``).
        window_seconds: length of the fixed rate window in simulated seconds;
            windows are aligned to multiples of it (like wall-clock minutes).
        retry_after: add ``Retry-After`` (real seconds to the window's end,
            rounded up) to rate-limit answers; the real API never sends it.
        time_scale: simulated seconds per real second (100 makes a 40 s build
            take 0.4 s and a 60 s window last 0.6 s).
        build_seconds: mean build duration in simulated seconds.
        build_spread: relative spread of build durations: each build draws its
            duration uniformly from ``build_seconds * (1 +/- build_spread)``.
        seed: seeds the catalogue ids, the build draws and the fault draws.
        faults: the failures to inject (mutable while the server runs).
        hostname_taken_error: how a hostname already taken in the organization
            is refused. The real answer is unconfirmed; the one reading
            implemented is ``422 validation_error`` with
            ``detail.errors == ["Hostname has already been taken"]``.
        vm_limit: the organizations' policy limit of virtual machines (builds
            in progress count); reaching it gives ``403
            resource_creation_restricted``. ``None`` means unlimited.
        per_page_default: page size of list endpoints when ``per_page`` is not
            given (30 on the real API).
        large_set_threshold: a VM list longer than this is a "large set":
            ``pagination.large_set`` is true and ``total``/``total_pages`` are
            null (1000 on the real API).
        vm_start_seconds: simulated seconds a VM stays ``starting`` after its
            build completed, before it is ``started``.
    """

    token: str = field(default="sim-token", repr=False)
    rate_limit: int | None = 1000
    window_seconds: float = 60.0
    retry_after: bool = False
    time_scale: float = 1.0
    build_seconds: float = 40.0
    build_spread: float = 0.25
    seed: int = 0
    faults: FaultConfig = field(default_factory=FaultConfig)
    hostname_taken_error: Literal["validation_error"] = "validation_error"
    vm_limit: int | None = None
    per_page_default: int = 30
    large_set_threshold: int = 1000
    vm_start_seconds: float = 4.0

    def __post_init__(self) -> None:
        if self.rate_limit is not None and self.rate_limit < 1:
            raise ValueError("rate_limit must be at least 1 (or None for unlimited)")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if self.build_seconds <= 0:
            raise ValueError("build_seconds must be positive")
        if not 0.0 <= self.build_spread < 1.0:
            raise ValueError("build_spread must be within [0, 1)")
        if self.vm_limit is not None and self.vm_limit < 0:
            raise ValueError("vm_limit must not be negative")
        if self.per_page_default < 1:
            raise ValueError("per_page_default must be at least 1")
        if self.large_set_threshold < 0:
            raise ValueError("large_set_threshold must not be negative")
        if self.vm_start_seconds < 0:
            raise ValueError("vm_start_seconds must not be negative")

    @property
    def permitted(self) -> int:
        """The ``X-Ratelimit-Permitted`` value (1000000 when unlimited)."""
        return self.rate_limit if self.rate_limit is not None else 1_000_000
