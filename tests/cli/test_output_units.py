"""Units of the CLI's output: log set-up and redaction, and the plan rendering."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from typing import Literal

import pytest
from rich.console import Console

from orchestrator._logging import REDACTED, Redactor, configure_logging, get_logger
from orchestrator.cli._render import render_plan
from orchestrator.engine import LookupProblem, Plan
from orchestrator.vm_request import Lookup, VmRequest

SECRET = "s3cr3t-token-value"


@dataclass
class _Carrier:
    note: str

    def __str__(self) -> str:
        return f"carrier({self.note})"


def test_redactor_replaces_the_secret_everywhere_and_drops_nones() -> None:
    """Every value is scrubbed: nested dicts, lists, tuples, objects; token-named keys hidden."""
    redact = Redactor([SECRET, ""])
    event = redact(
        None,
        "info",
        {
            "event": f"saw {SECRET}",
            "nested": {"inner": [SECRET, (1, f"x{SECRET}x")]},
            "obj": _Carrier(SECRET),
            "Authorization": "Bearer whatever",
            "api_key": "anything",
            "count": 3,
            "missing": None,
        },
    )
    assert SECRET not in repr(event)
    assert event["event"] == f"saw {REDACTED}"
    assert event["nested"] == {"inner": [REDACTED, (1, f"x{REDACTED}x")]}
    assert event["obj"] == f"carrier({REDACTED})"
    assert event["Authorization"] == event["api_key"] == REDACTED
    assert event["count"] == 3
    assert "missing" not in event


@pytest.mark.parametrize("secret", ["a", "x7", "tok"])
def test_a_short_secret_is_redacted_only_where_it_stands_alone(secret: str) -> None:
    """A one-character (or short) token does not mangle words that contain it."""
    text = f"organization acme has 3 VMs; token {secret} refused; x{secret}y"
    event = Redactor([secret])(None, "info", {"event": text})
    assert event["event"] == f"organization acme has 3 VMs; token {REDACTED} refused; x{secret}y"


def test_configured_logging_keeps_words_intact_with_a_one_character_token() -> None:
    """A one-character token leaves log lines readable (issue 16: the redactor mangled them)."""
    stream = io.StringIO()
    configure_logging(fmt="console", level="info", secrets=["a"], stream=stream)
    get_logger().info("orchestrator.vm.failed", hostname="web-01", message="data center not found")
    assert "data center not found" in stream.getvalue()
    assert "web-01" in stream.getvalue()


def test_redactor_without_secrets_leaves_objects_alone() -> None:
    """With no secret known, values pass through untouched (objects are not stringified)."""
    carrier = _Carrier("x")
    assert Redactor()(None, "info", {"obj": carrier})["obj"] is carrier


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_configured_logging_redacts_and_filters_by_level(fmt: Literal["json", "console"]) -> None:
    """Lines below the level are dropped; the secret never reaches the stream; JSON is JSON."""
    stream = io.StringIO()
    configure_logging(fmt=fmt, level="warning", secrets=[SECRET], stream=stream)
    log = get_logger("orchestrator.engine", run_id="r1")
    log.info("orchestrator.quiet", value=SECRET)
    log.warning("orchestrator.loud", value=SECRET, hostname="web-01")
    text = stream.getvalue()
    assert "orchestrator.quiet" not in text
    assert "orchestrator.loud" in text
    assert SECRET not in text
    if fmt == "json":
        (line,) = text.splitlines()
        record = json.loads(line)
        assert record["run_id"] == "r1"
        assert record["hostname"] == "web-01"
        assert record["level"] == "warning"


def test_logging_writes_to_stderr_as_it_is_at_each_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a stream, each line goes to the current ``sys.stderr`` (a live display's proxy)."""
    configure_logging(fmt="json", level="info")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    get_logger().info("orchestrator.one")
    monkeypatch.setattr(sys, "stderr", second)
    get_logger().info("orchestrator.two")
    assert "orchestrator.one" in first.getvalue()
    assert "orchestrator.two" in second.getvalue()
    assert "orchestrator.one" not in second.getvalue()


def _request(hostname: str) -> VmRequest:
    return VmRequest(
        key=hostname,
        hostname=hostname,
        organization=Lookup("sub_domain", "acme"),
        package=Lookup("permalink", "rock-1"),
        data_center=Lookup("permalink", "uk-lon-01"),
    )


def _render(plan: Plan) -> str:
    file = io.StringIO()
    render_plan(plan, Console(file=file, width=200, force_terminal=False))
    return file.getvalue()


def test_plan_rendering_shortens_long_lists_and_says_how_long() -> None:
    """Problems show five VMs then a count; ten names per list then a count; hours in the ETA."""
    plan = Plan(
        to_build=[_request(f"new-{i:02d}") for i in range(12)],
        existing=[(_request(f"old-{i:02d}"), f"vm_{i}") for i in range(11)],
        problems=[
            LookupProblem(
                "package",
                "rock-99",
                "no package 'rock-99'",
                tuple(f"new-{i:02d}" for i in range(7)),
            )
        ],
        permitted=1,
        window_seconds=3600.0,
        requests_spent=8,
        fates={
            **{f"new-{i:02d}": "submit" for i in range(12)},
            **{f"old-{i:02d}": "ours" for i in range(11)},
        },
    )
    text = _render(plan)
    assert "Plan: 12 to build, 11 already exist, 1 problem(s)." in text
    assert "new-04 … (+2)" in text
    assert "Up to date (11): old-00, old-01" in text
    assert "old-09 … (+1)" in text
    assert "To build (12): new-00" in text
    assert "new-09 … (+2)" in text
    # the checks this plan made (8) again before the first build, 2 per VM to build,
    # 2 for the organization, 1 page of its VM list for the addresses
    assert "Estimate: about 35 requests, at least 35h00m" in text
    assert "In flight: up to 4 builds at once (sized from the rate budget" in text
    assert "Requests spent by this plan: 8" in text


@pytest.mark.parametrize(
    ("max_in_flight", "shown"),
    [
        (None, "In flight: up to 563 builds at once (sized from the rate budget"),
        (100, "In flight: up to 100 builds at once (max_in_flight = 100)"),
        (1000, "In flight: up to 563 builds at once (sized from the rate budget"),
    ],
)
def test_plan_rendering_shows_the_in_flight_limit(max_in_flight: int | None, shown: str) -> None:
    """1000 requests a minute and 45 s builds: 563 in flight (Little's law), unless capped lower."""
    to_build = [_request(f"a-{i}") for i in range(1, 1001)]
    plan = Plan(to_build=to_build, permitted=1000, max_in_flight=max_in_flight)
    assert shown in _render(plan)


def test_plan_never_shows_more_in_flight_than_vms_to_build() -> None:
    """5 VMs to build: all 5 at once, not "up to 563 builds at once"."""
    plan = Plan(to_build=[_request(f"a-{i}") for i in range(1, 6)], permitted=1000)
    text = _render(plan)
    assert "In flight: all 5 at once (the limit is 563)" in text
    assert "up to 563" not in text


def test_plan_rendering_with_an_unknown_budget() -> None:
    """Without a known rate budget the estimate counts requests only."""
    text = _render(Plan(to_build=[_request("a-1")], permitted=None))
    assert "rate budget unknown" in text


@pytest.mark.parametrize("secret", ["succeeded", "production", "web-servers"])
def test_a_token_that_is_a_word_is_starred_only_where_it_stands_alone(secret: str) -> None:
    """A token that equals a word leaves event names, hostnames and longer words intact
    (it starred them: orchestrator.vm.***); where it stands alone it is still starred."""
    stream = io.StringIO()
    configure_logging(fmt="console", level="info", secrets=[secret], stream=stream)
    get_logger().info(
        "orchestrator.vm.succeeded", hostname=f"{secret}-01", message=f"token {secret} refused"
    )
    text = stream.getvalue()
    assert "orchestrator.vm.succeeded" in text
    assert f"{secret}-01" in text
    assert f"token {REDACTED} refused" in text


def test_console_log_lines_show_control_characters_as_escapes() -> None:
    """An API's error text with a line break and a terminal escape stays on its line, shown:
    it can neither forge a log line nor drive the terminal."""
    stream = io.StringIO()
    configure_logging(fmt="console", level="info", stream=stream)
    get_logger().warning(
        "orchestrator.vm.failed", hostname="web-01", message="gone\n2026 [error] forged\x1b[2J"
    )
    text = stream.getvalue()
    assert "\x1b[2J" not in text
    assert "\\x1b[2J" in text
    assert len(text.splitlines()) == 1


def test_plan_problems_are_shown_as_text_not_markup() -> None:
    """An API's description with rich markup or a terminal escape is shown as it is, made
    printable: no style applied, no markup error, no escape reaching the terminal."""
    problem = LookupProblem("organization", "acme", "suspended [/] [bold]now\x1b[2J", ("web-01",))
    text = _render(Plan(to_build=[_request("a-1")], problems=[problem], permitted=1000))
    assert "suspended [/] [bold]now\\x1b[2J" in text
    assert "\x1b" not in text
