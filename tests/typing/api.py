"""The public API as users call it, checked by mypy (``mypy tests/typing``) and never run.

Each function is a small usage a user might write; ``assert_type`` pins the
types they get back, so a change of signature or return type fails type-checking.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, assert_type

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from pydantic import SecretStr

import orchestrator
from orchestrator import (
    ApiError,
    AuthenticationError,
    Category,
    ConfigError,
    EngineSettings,
    EngineStatistics,
    EventKind,
    KatapultClient,
    KatapultSettings,
    LimitError,
    Lookup,
    LookupProblem,
    Orchestrator,
    OrchestratorError,
    OutputSettings,
    Plan,
    ProgressHook,
    ProvisionEvent,
    Report,
    Settings,
    Spec,
    SpecDefaults,
    SpecError,
    SpecIssue,
    VmRequest,
    VmResult,
    limit_vms,
    load_settings,
    load_spec,
    make_plan,
    parse_spec,
)
from orchestrator.engine.state.location import PostgresState


def settings_like_the_cli() -> Settings:
    """Defaults < config file < environment < overrides."""
    settings = load_settings(
        config_file=Path("config.toml"),
        overrides={"engine.max_in_flight": 10},
        environ={"KATAPULT_API_KEY": "token"},
    )
    assert_type(settings.engine.max_in_flight, int | None)
    assert_type(settings.output.report, Path)
    assert_type(settings.journal_path(), Path | PostgresState)
    assert_type(settings.source_of("engine.max_in_flight"), str)
    return settings


def settings_from_code() -> Settings:
    """Typed sections: only the fields set count; the environment fills the rest."""
    settings = load_settings(
        environ={},
        katapult=KatapultSettings(api_url="http://127.0.0.1:8080/core/v1/"),
        engine=EngineSettings(max_in_flight=10),
    )
    assert_type(settings.katapult.api_token, SecretStr | None)
    assert_type(Settings(output=OutputSettings(log_level="debug")).output.progress, bool)
    return settings


def specs() -> Sequence[Spec]:
    """Specs from a file and from text; their VMs are ``VmRequest``s."""
    from_file = load_spec("specs/example.toml", defaults=SpecDefaults(organization="acme"))
    from_text = parse_spec('[[vms]]\nhostname = "a"', source="inline", fmt="toml")
    assert_type(from_file.vms, tuple[VmRequest, ...])
    assert_type(from_text.sha256, str)
    assert_type(from_file.by_key(), dict[str, VmRequest])
    return [from_file, from_text]


def handmade_requests() -> list[VmRequest]:
    """A library user may build ``VmRequest``s without a spec file."""
    return [
        VmRequest(
            key="web-01",
            hostname="web-01",
            organization=Lookup("sub_domain", "acme"),
            package=Lookup("permalink", "rock-1"),
            data_center=Lookup("permalink", "uk-lon-01"),
        )
    ]


def plain_hook(event: ProvisionEvent) -> None:
    """A hook is any callable taking one event."""
    assert_type(event.kind, EventKind)
    assert_type(event.hostname, str)
    assert_type(event.build_id, str | None)


hooks: list[ProgressHook] = [plain_hook, print]


async def run_a_spec(settings: Settings, spec: Spec) -> Report:
    """The README's example, with events and statistics."""
    async with Orchestrator(settings, hooks=hooks) as orch:
        assert_type(orch, Orchestrator)
        assert_type(orch.client, KatapultClient)
        stats = orch.statistics()
        assert_type(stats, EngineStatistics | None)
        if stats is not None:
            assert_type(stats.done, int)
            assert_type(stats.permitted, int | None)
        report = await orch.run(spec, journal="fleet.journal")
        again = await orch.run(handmade_requests(), journal=None, only_keys={"web-01"})
        assert_type(again, Report)
        orch.request_stop()
        orch.request_stop("deadline")
    return report


async def follow_events(settings: Settings, spec: Spec) -> list[str]:
    """``events()`` and ``run_events()`` are async streams of ``ProvisionEvent``."""
    seen: list[str] = []
    async with Orchestrator(settings) as orch:
        events = orch.events()
        assert_type(orch.run_events(), MemoryObjectReceiveStream[ProvisionEvent])
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async with events:
                    async for event in events:
                        assert_type(event, ProvisionEvent)
                        seen.append(event.key)

            tg.start_soon(consume)
            await orch.run(spec)
            await events.aclose()
    return seen


def limited(spec: Spec) -> list[VmRequest]:
    """``--limit`` as a function: hostname globs, a pattern matching nothing raises."""
    try:
        return limit_vms(spec.vms, ["web-*", "db-01,db-02"])
    except LimitError:
        return []


def addresses_and_inventory(report: Report, spec: Spec) -> list[str]:
    """Each VM's addresses are in the report; the inventory is written from report and spec."""
    from orchestrator.report import inventory_of, write_inventory

    write_inventory(report, spec.vms, Path("inventory.yml"))
    assert_type(inventory_of(report, spec.vms), dict[str, Any])
    return [ip for vm in report.vms if vm.virtual_machine for ip in vm.virtual_machine.ip_addresses]


def read_a_report(report: Report) -> list[str]:
    """A report's summary and rows are typed."""
    assert_type(report.summary.failed, int)
    assert_type(report.summary.by_category, dict[Category, int])
    assert_type(report.vms, list[VmResult])
    failed: list[str] = []
    for vm in report.vms:
        if vm.outcome in ("failed", "cancelled"):
            failed.append(vm.hostname)
        assert_type(vm.category, Category | None)
        if vm.error is not None:
            assert_type(vm.error.code, str | None)
    return failed


def html_of_a_report(report: Report, settings: Settings) -> str:
    """The HTML page of a report, the budget per window, and which config file was read."""
    from orchestrator.report import BudgetWindow, render_html, write_html

    write_html(report, Path("run.html"))
    if report.budget is not None:
        assert_type(report.budget.windows, list[BudgetWindow])
        assert_type(report.budget.windows[0].others, int | None)
    for vm in report.vms:
        assert_type(vm.first_seen_at, datetime | None)
    assert_type(settings.config_file, Path | None)
    return render_html(report)


async def dry_run(settings: Settings, spec: Spec) -> bool:
    """``make_plan`` on the orchestrator's client."""
    async with Orchestrator(settings) as orch:
        plan = await make_plan(orch.client, spec.vms, window_seconds=60.0)
    assert_type(plan, Plan)
    problems: list[LookupProblem] = plan.problems
    return plan.has_changes and not problems


def handle_errors(path: str) -> int:
    """Errors carry what a user needs to report them."""
    try:
        load_spec(path)
        load_settings()
    except SpecError as exc:
        issues = exc.issues
        assert_type(issues, tuple[SpecIssue, ...])
        return len(issues)
    except ConfigError as exc:
        return len(str(exc))
    except AuthenticationError as exc:
        assert_type(exc.code, str | None)
        return exc.http_status
    except ApiError as exc:
        assert_type(exc.category, Category)
        return 1
    except OrchestratorError:
        return 2
    return 0


def version() -> str:
    """``__version__`` is a string."""
    return orchestrator.__version__
