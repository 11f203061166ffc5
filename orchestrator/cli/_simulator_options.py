"""The command-line options that configure the simulator: its fault rates and its readings.

``orchestrator simulate`` takes both; ``orchestrator run --simulate`` takes the
readings (how the simulated API behaves where the real one is unconfirmed).
Kept apart from the ``cli`` package so both commands share one table of each, and
light: the simulator itself is imported only when a config is built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from orchestrator.simulator import SimulatorConfig

__all__ = [
    "FAULT_RATES",
    "READING_OPTIONS",
    "fault_rate_options",
    "reading_options",
    "readings_given",
    "simulator_config",
]

#: (flag, FaultConfig field, help) of every ``--fault-*`` rate.
FAULT_RATES: tuple[tuple[str, str, str], ...] = (
    ("--fault-5xx", "error_5xx_rate", "Rate of JSON 500/503 answers (nothing done)."),
    (
        "--fault-5xx-after",
        "error_5xx_after_rate",
        "Rate of JSON 500/503 answers sent after acting (the build IS accepted).",
    ),
    ("--fault-html-502", "html_502_rate", "Rate of proxy-style HTML 502 pages (nothing done)."),
    (
        "--fault-slow",
        "slow_rate",
        "Rate of answers held for --slow-seconds (the request is acted on).",
    ),
    ("--fault-reset-before", "reset_before_rate", "Rate of connections dropped before acting."),
    (
        "--fault-reset-after",
        "reset_after_rate",
        "Rate of connections dropped after acting (the ambiguous POST).",
    ),
    ("--fault-truncated", "truncated_body_rate", "Rate of cut-off bodies after acting."),
    ("--fault-build-fail", "build_fail_rate", "Rate of builds that end failed."),
    ("--fault-build-hang", "build_hang_rate", "Rate of builds that never finish."),
)


def fault_rate_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """One ``--fault-*`` option per rate of ``FaultConfig`` (see :data:`FAULT_RATES`)."""
    for flag, field, text in reversed(FAULT_RATES):
        func = click.option(flag, field, type=click.FloatRange(0, 1), default=0.0, help=text)(func)
    return func


class _Fractions(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """``LO[,HI]``: one fraction (a fixed point) or two (a uniform range)."""

    name = "LO[,HI]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            self.fail(f"{value!r} is not LO or LO,HI (fractions of the build time)", param, ctx)
        if len(numbers) not in (1, 2):
            self.fail(f"{value!r}: give one fraction or two (LO,HI)", param, ctx)
        lo, hi = numbers[0], numbers[-1]
        if not 0 < lo <= hi <= 1:
            self.fail(f"{value!r}: need 0 < LO <= HI <= 1", param, ctx)
        return lo, hi


#: (option declarations, SimulatorConfig field, click keyword arguments) of every reading.
READING_OPTIONS: tuple[tuple[tuple[str, ...], str, dict[str, Any]], ...] = (
    (
        ("--hostname-taken-at",),
        "hostname_taken_at",
        {
            "type": click.Choice(["post", "vm-record"]),
            "help": "When a build's hostname becomes taken: at the accepted POST (default) or "
            "only once its VM record exists (unconfirmed on the real API).",
        },
    ),
    (
        ("--vm-record-at",),
        "vm_record_at",
        {
            "type": _Fractions(),
            "help": "When a build's VM record appears, as a fraction of the build time: "
            "LO (fixed) or LO,HI (drawn uniformly per build). Default 0.45.",
        },
    ),
    (
        ("--duplicate-hostnames",),
        "duplicate_hostnames",
        {
            "type": click.Choice(["refuse", "accept"]),
            "help": "A build whose hostname is taken is refused with 422 (default) or accepted, "
            "leaving two VMs with one hostname.",
        },
    ),
    (
        ("--failed-build-leaves-vm/--failed-build-leaves-nothing",),
        "failed_build_leaves_vm",
        {
            "default": None,
            "help": "A failed build leaves its VM (state failed, hostname held) instead of "
            "nothing (default: nothing).",
        },
    ),
    (
        ("--copy-annotations/--no-copy-annotations",),
        "copy_annotations",
        {
            "default": None,
            "help": "Whether a build's annotations are copied onto its VM (default: copied).",
        },
    ),
    (
        ("--trash-holds-hostname/--trash-frees-hostname",),
        "trash_holds_hostname",
        {
            "default": None,
            "help": "Whether a VM in the trash keeps its hostname taken (default: it does).",
        },
    ),
    (
        ("--delete-running",),
        "delete_running",
        {
            "type": click.Choice(["accept", "refuse"]),
            "help": "A DELETE of a VM that is not stopped goes to the trash (default) or is "
            "refused with 409 deletion_restricted (a guess: the official clients stop first).",
        },
    ),
    (
        ("--annotations-copied-at",),
        "annotations_copied_at",
        {
            "type": click.Choice(["vm-record", "complete"]),
            "help": "When copied annotations show on a VM: with its VM record (default) or only "
            "once its build is complete.",
        },
    ),
    (
        ("--annotation-filter",),
        "annotation_filter",
        {
            "type": click.Choice(["honoured", "ignored", "refused-400", "refused-422"]),
            "help": "Whether the VM list honours its annotations[][key]/[value] filter "
            "(default: honoured), ignores it (lists every VM), or refuses a list given it "
            "(400 invalid_argument or 422 validation_error: guesses).",
        },
    ),
    (
        ("--vm-list-per-page",),
        "vm_list_per_page",
        {
            "type": click.Choice(["max-200", "max-100", "capped-100", "unlimited"]),
            "help": "How wide a page of the VM list may be: per_page above 200 refused with "
            "400 invalid_argument, as Apia does by default (default), above 100 refused, "
            "answered at 100, or any.",
        },
    ),
    (
        ("--xml-without-interface",),
        "xml_without_interface",
        {
            "type": click.Choice(["default-network", "no-address"]),
            "help": "What an XML build without a NetworkInterface gets: an address on the "
            "default network (default) or none.",
        },
    ),
    (
        ("--xml-tags",),
        "xml_tags",
        {
            "type": click.Choice(["applied", "ignored"]),
            "help": "Whether an XML build applies the tags it names (default) or builds the "
            "VM without them (a guess; the official clients set tags with a PATCH after).",
        },
    ),
    (
        ("--legacy-build-key/--no-legacy-build-key",),
        "legacy_build_key",
        {
            "default": None,
            "help": "Answer builds as an older server: under the deprecated 'build' key only "
            "(default: both keys in a POST's answer, virtual_machine_build in a GET).",
        },
    ),
    (
        ("--pessimistic",),
        "pessimistic",
        {
            "is_flag": True,
            "default": False,
            "help": "Every reading at its hardest: hostname taken at the VM record, which appears "
            "at 0.30-0.95 of the build, duplicates accepted, failed builds leave their VM, "
            "annotations not copied (and only at the build's end), the list's annotation filter "
            "ignored, an XML build without an interface left without an address, an older "
            "server's build key. The options above override it.",
        },
    ),
)


def reading_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the reading options; the command receives them as one ``readings`` dict."""
    names = [field for _, field, _ in READING_OPTIONS]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        readings = {name: kwargs.pop(name) for name in names}
        return func(*args, readings=readings, **kwargs)

    command: Callable[..., Any] = wrapper
    for decls, field, extra in reversed(READING_OPTIONS):
        command = click.option(*decls, field, **extra)(command)
    return command


def readings_given(readings: dict[str, Any]) -> list[str]:
    """The reading options set on the command line (their flags), in table order."""
    unset: dict[str, Any] = {"pessimistic": False}
    return [
        decls[0].split("/")[0]
        for decls, field, _ in READING_OPTIONS
        if readings.get(field) is not unset.get(field)
    ]


def simulator_config(readings: dict[str, Any] | None, **fields: Any) -> SimulatorConfig:
    """A ``SimulatorConfig`` of ``fields`` plus the readings chosen (``ValueError`` if bad)."""
    from orchestrator.simulator import SimulatorConfig

    chosen = dict(readings or {})
    pessimistic = bool(chosen.pop("pessimistic", False))
    for field, value in chosen.items():
        if value is None:
            continue
        fields[field] = value.replace("-", "_") if isinstance(value, str) else value
    if pessimistic:
        return SimulatorConfig.pessimistic(**fields)
    return SimulatorConfig(**fields)
