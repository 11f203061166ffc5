"""What a simulator is told: the API's policy (:class:`SimulatorConfig`) and its faults.

Both are plain dataclasses so the CLI can build them from options and tests can
change ``config.faults`` while a server runs (every request reads it afresh).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

__all__ = [
    "PENDING_END",
    "PESSIMISTIC_READINGS",
    "VM_AT",
    "AnnotationFilter",
    "AnnotationsCopiedAt",
    "DuplicateHostnames",
    "FaultConfig",
    "HostnameTakenAt",
    "SimulatorConfig",
    "VmListPerPage",
    "XmlWithoutInterface",
]

_DEFAULT_FAULT_METHODS: frozenset[str] = frozenset({"GET", "POST", "DELETE"})

#: Fraction of a build's duration it stays ``pending``.
PENDING_END = 0.03
#: Fraction of a build's duration at which its VM record appears by default
#: (the recording: VM present 17 s into a ~40 s build).
VM_AT = 0.45

HostnameTakenAt = Literal["post", "vm_record"]
DuplicateHostnames = Literal["refuse", "accept"]
VmListPerPage = Literal["max_200", "max_100", "capped_100", "unlimited"]
AnnotationFilter = Literal["honoured", "ignored", "refused_400", "refused_422"]
AnnotationsCopiedAt = Literal["vm_record", "complete"]
XmlWithoutInterface = Literal["default_network", "no_address"]
XmlTags = Literal["applied", "ignored"]
#: the readings with named choices, each checked against its own ``Literal``
_READING_CHOICES: dict[str, Any] = {
    "hostname_taken_at": HostnameTakenAt,
    "duplicate_hostnames": DuplicateHostnames,
    "annotations_copied_at": AnnotationsCopiedAt,
    "annotation_filter": AnnotationFilter,
    "xml_without_interface": XmlWithoutInterface,
    "xml_tags": XmlTags,
    "vm_list_per_page": VmListPerPage,
}


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
        error_5xx_after_rate: handle the request (e.g. accept the build), THEN
            answer a JSON ``500``/``503`` as above instead of its real answer:
            the POST that "failed" but acted.
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
            ``failed``, build ``failed``). What it leaves behind is
            :attr:`SimulatorConfig.failed_build_leaves_vm`: by default no VM
            (it fails at 40% of its duration, before its VM record, and frees
            its hostname).
        build_hang_rate: a build accepted now never finishes (stays
            ``building`` with its VM ``stopped``; task ``running`` forever).
        burst_429_every: a schedule independent of the real budget: after every
            N API requests, the next ``burst_429_length`` requests are answered
            ``429 rate_limit_reached`` (as if another client drained the
            budget). ``None`` disables it. Counts every API request, whatever
            its method.
        burst_429_length: how many requests each burst refuses.
        methods: the HTTP methods the per-request faults apply to (default
            GET, POST and DELETE).
    """

    error_5xx_rate: float = 0.0
    error_5xx_after_rate: float = 0.0
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
            "error_5xx_after_rate": self.error_5xx_after_rate,
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
            + self.error_5xx_after_rate
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
        stop_seconds: simulated seconds a stop or shutdown task takes (pending
            for 85% of it, then running; the VM is ``stopping`` or
            ``shutting_down`` while it runs, ``stopped`` after). Recorded: 20 s.
        purge_seconds: simulated seconds a purge task takes; the trash object,
            the VM and its hold on the hostname go when it ends. Recorded:
            gone within 6 s.
        existing_vms: VMs organization ``acme`` holds from the start
            (``existing-00001`` ...; ``started``), as a shared organization
            would: what makes reading its whole VM list costly.
        existing_vms_fleet: the fleet those VMs carry in their
            ``orchestrator.spec`` annotation (another orchestrator fleet's);
            ``None`` (default): they carry no annotations.
        refused_tokens: tokens the authenticator knows but refuses, each with
            the code it answers: ``unauthorized_network_for_api_token`` (403,
            ``detail.ip_address``: the token may not be used from this
            network) or ``invalid_api_token``.

    The readings below play what nobody has confirmed about the real API
    (``shared/katapult/README.md``, "Unconfirmed, so build for every
    reading"). Each default is today's reading; :meth:`pessimistic` turns on
    the hardest combination for an exactly-once client.

    Attributes:
        hostname_taken_at: when a build's hostname becomes taken. Known: the
            API keeps hostnames unique in an organization, trash included.
            Guessed: the moment. ``"post"`` (default): from the accepted POST,
            so a second POST is refused at once. ``"vm_record"``: only once
            the build's VM record exists (the recording shows it 7-17 s after
            the POST); until then a second build with the hostname is
            accepted, and under ``duplicate_hostnames="refuse"`` the build
            whose VM record comes second fails at that moment (build and task
            ``failed``, no VM).
        vm_record_at: when a build's VM record appears, as a fraction of its
            duration drawn uniformly from ``[lo, hi]`` per build. Known: one
            recording (about 17 s into a 37 s build). Guessed: the spread.
            Default ``(0.45, 0.45)``, a fixed point (no draw).
        duplicate_hostnames: what a build whose hostname is taken gets. Known:
            hostnames are documented as unique. Guessed: that the API enforces
            it. ``"refuse"`` (default): ``422 validation_error`` with
            ``["Hostname has already been taken"]`` (the error itself is
            inferred). ``"accept"``: the build goes ahead and the organization
            ends with several VMs of that hostname; the VM list shows each;
            an fqdn lookup answers the oldest (its VM record first created)
            outside the trash, else the oldest in the trash (``406``).
        failed_build_leaves_vm: what a build that fails leaves. Known: builds
            can end ``failed``. Guessed: the rest. ``False`` (default): a
            failed build leaves nothing and frees its hostname (it fails at
            40% of its duration; a VM record that appeared earlier, see
            ``vm_record_at``, is removed). ``True``: a failing build fails at
            a point drawn uniformly between its VM record and its end, and
            leaves that VM in state ``failed`` with its hostname held.
        trash_holds_hostname: whether a VM in the trash keeps its hostname
            taken. Known: the API documents hostnames as unique "including VMs
            in the trash" (kept ~48 h), and the Terraform provider renames a
            VM before deleting it to free the name. Guessed: that this still
            holds. ``True`` (default): a build or rename onto a trashed VM's
            hostname is refused (or, with ``duplicate_hostnames="accept"``,
            accepted); ``False``: the trash holds nothing (an fqdn lookup
            prefers a VM outside the trash either way). :meth:`pessimistic` keeps it
            ``True`` (the harder reading for ``destroy``, which must purge or
            rename to free a name).
        copy_annotations: whether the ``annotations`` sent with a build
            (``/build`` and ``build_from_spec``) are copied onto its VM. Known:
            both build endpoints take ``annotations``, the build answer and
            the build object echo them, the VM object has ``annotations`` and
            the VM list filters on them (``annotations[][key]``/``[value]``).
            Guessed: the copy. ``True`` (default: the schema's most plausible
            reading, since builds are the only documented way to annotate a
            VM at creation). ``False``: the VM's annotations stay ``[]``; the
            build keeps its own.
        delete_running: what ``DELETE virtual_machines/_`` does with a VM that
            is not stopped (or failed). Known: both Terraform providers stop a
            VM first, and every recorded DELETE is of a stopped VM. Guessed:
            the rest. ``"accept"`` (default): it goes to the trash as it is.
            ``"refuse"`` (:meth:`pessimistic`): ``409 deletion_restricted``
            with ``detail.errors: ["Virtual machine must be stopped before it
            can be deleted"]``.
        annotations_copied_at: when copied annotations show on the VM.
            Guessed either way. ``"vm_record"`` (default): with its VM record;
            ``"complete"``: only once its build is complete (until then the
            VM shows ``[]`` and the list filter does not find it).
        annotation_filter: whether the VM list honours its
            ``annotations[][key]``/``annotations[][value]`` filter. Known: the
            OpenAPI file documents it. Guessed: that it works. ``"honoured"``
            (default): only the VMs carrying every pair are listed;
            ``"ignored"``: the filter is read and ignored, every VM is listed;
            ``"refused_400"``: a list given the filter is refused with Apia's
            ``400 invalid_argument`` (``detail.path == ["annotations"]``);
            ``"refused_422"``: refused with ``422 validation_error``
            (``detail.errors``). A list without the filter is answered
            either way. Both refusals are guesses.
        xml_without_interface: what a ``build_from_spec`` whose XML has no
            ``<NetworkInterface>`` gets. Known: every recorded and official XML
            build sends one. Guessed: the rest. ``"default_network"``
            (default, what the simulator always did): one interface on the
            data center's default network, with an address; ``"no_address"``:
            the VM comes up without any IP address. An interface that names a
            network gets an address whatever its ``IPAddressAllocation``.
        legacy_build_key: answer as an older server: the build POST and
            ``GET virtual_machines/builds/_`` carry the build only under the
            deprecated ``build`` key (no ``virtual_machine_build``). Known:
            go-katapult accepts either. ``False`` (default).
        xml_tags: whether an XML build applies the ``<Tags>`` it names to its VM.
            Known: the official clients set tags with a PATCH after the build.
            Guessed: the rest. ``"applied"`` (default, what the simulator always
            did) or ``"ignored"`` (the VM is built without them).
        vm_list_per_page: how wide a page of the VM list may be. Known: 100
            works; Apia, the API's framework, refuses ``per_page`` above an
            endpoint's maximum, 200 unless the endpoint sets another, with
            ``400 invalid_argument`` (``detail.path == ["per_page"]``).
            Guessed: Katapult's maximum. ``"max_200"`` (default, Apia's
            default), ``"max_100"`` (refused above 100), ``"capped_100"``
            (answered at 100, ``pagination.per_page`` saying so) or
            ``"unlimited"``.
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
    stop_seconds: float = 20.0
    purge_seconds: float = 4.0
    refused_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    existing_vms: int = 0
    existing_vms_fleet: str | None = None
    hostname_taken_at: HostnameTakenAt = "post"
    vm_record_at: tuple[float, float] = (VM_AT, VM_AT)
    duplicate_hostnames: DuplicateHostnames = "refuse"
    failed_build_leaves_vm: bool = False
    copy_annotations: bool = True
    trash_holds_hostname: bool = True
    delete_running: Literal["accept", "refuse"] = "accept"
    annotations_copied_at: AnnotationsCopiedAt = "vm_record"
    annotation_filter: AnnotationFilter = "honoured"
    xml_without_interface: XmlWithoutInterface = "default_network"
    legacy_build_key: bool = False
    xml_tags: XmlTags = "applied"
    vm_list_per_page: VmListPerPage = "max_200"

    @classmethod
    def pessimistic(cls, **overrides: Any) -> SimulatorConfig:
        """The readings hardest on an exactly-once client, with ``overrides`` on top.

        Hostnames taken only once the VM record exists, that record appearing
        anywhere between 30% and 95% of the build, duplicates accepted, failed
        builds leaving their VM, annotations not copied (and, were they, only
        at the build's end), the list's annotation filter ignored, an XML build
        without an interface left without an address, answers of an older
        server (the build under ``build`` only), VM list pages above 100 refused.
        """
        return cls(**{**PESSIMISTIC_READINGS, **overrides})

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
        if self.existing_vms < 0:
            raise ValueError("existing_vms must not be negative")
        if self.vm_limit is not None and self.vm_limit < 0:
            raise ValueError("vm_limit must not be negative")
        if self.per_page_default < 1:
            raise ValueError("per_page_default must be at least 1")
        if self.large_set_threshold < 0:
            raise ValueError("large_set_threshold must not be negative")
        if self.vm_start_seconds < 0:
            raise ValueError("vm_start_seconds must not be negative")
        if self.stop_seconds < 0 or self.purge_seconds < 0:
            raise ValueError("stop_seconds and purge_seconds must not be negative")
        for name, kind in _READING_CHOICES.items():
            choices = get_args(kind)
            if getattr(self, name) not in choices:
                quoted = [f"'{c}'" for c in choices]
                raise ValueError(f"{name} must be {', '.join(quoted[:-1])} or {quoted[-1]}")
        lo, hi = self.vm_record_at = (float(self.vm_record_at[0]), float(self.vm_record_at[1]))
        if not PENDING_END <= lo <= hi <= 1.0:
            raise ValueError(
                f"vm_record_at must be two fractions {PENDING_END} <= lo <= hi <= 1, got {lo}, {hi}"
            )
        refusals = {"unauthorized_network_for_api_token", "invalid_api_token"}
        if not set(self.refused_tokens.values()) <= refusals:
            raise ValueError(f"refused_tokens codes must be among {sorted(refusals)}")

    def readings(self) -> dict[str, Any]:
        """The readings of the unconfirmed API this config plays (JSON-ready)."""
        return {
            "hostname_taken_at": self.hostname_taken_at,
            "vm_record_at": list(self.vm_record_at),
            "duplicate_hostnames": self.duplicate_hostnames,
            "failed_build_leaves_vm": self.failed_build_leaves_vm,
            "copy_annotations": self.copy_annotations,
            "trash_holds_hostname": self.trash_holds_hostname,
            "delete_running": self.delete_running,
            "annotations_copied_at": self.annotations_copied_at,
            "annotation_filter": self.annotation_filter,
            "xml_without_interface": self.xml_without_interface,
            "legacy_build_key": self.legacy_build_key,
            "xml_tags": self.xml_tags,
            "vm_list_per_page": self.vm_list_per_page,
        }

    @property
    def permitted(self) -> int:
        """The ``X-Ratelimit-Permitted`` value (1000000 when unlimited)."""
        return self.rate_limit if self.rate_limit is not None else 1_000_000


#: The readings :meth:`SimulatorConfig.pessimistic` sets.
PESSIMISTIC_READINGS: dict[str, Any] = {
    "hostname_taken_at": "vm_record",
    "vm_record_at": (0.30, 0.95),
    "duplicate_hostnames": "accept",
    "failed_build_leaves_vm": True,
    "copy_annotations": False,
    "delete_running": "refuse",
    "annotations_copied_at": "complete",
    "annotation_filter": "ignored",
    "xml_without_interface": "no_address",
    "legacy_build_key": True,
    "xml_tags": "ignored",
    "vm_list_per_page": "max_100",
}
