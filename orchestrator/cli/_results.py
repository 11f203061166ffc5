"""The end of a run: write every result file, print the summary, and choose the
exit code by the VMs' outcome."""

from __future__ import annotations

import functools
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from orchestrator.cli._console import _err, _fail, _out
from orchestrator.cli._exit_codes import EXIT_AUTH, EXIT_CANCELLED, EXIT_FAILED, EXIT_OK
from orchestrator.errors import ReportError
from orchestrator.report._text import for_terminal

if TYPE_CHECKING:
    from orchestrator.cli._verdict import Verdict
    from orchestrator.engine import Orchestrator
    from orchestrator.engine._runner import Run
    from orchestrator.engine.state.location import StateLocation
    from orchestrator.report import ErrorInfo, Report
    from orchestrator.settings import Settings
    from orchestrator.spec import Spec


async def _finish_run(
    settings: Settings,
    orch: Orchestrator,
    result: Report,
    journal_path: StateLocation | None,
    simulate: bool,
    spec: Spec,
    verdict: Verdict | None = None,
    *,
    cancelled: bool = False,
) -> int:
    """Write every result file, then print the summary; the exit code by the VMs' outcome.

    ``cancelled``: a signal stopped the run, which exits 130 (the metrics say so).
    """
    from orchestrator.report import (
        render_summary,
        write_html,
        write_inventory,
        write_junit,
        write_metrics,
        write_report,
    )

    output = settings.output
    code = EXIT_OK
    report_path: Path | None = output.report
    run_info = orch.current_run
    outcome, problem = _outcome(run_info, result)
    fleet = verdict.fleet if verdict is not None else None
    metrics = functools.partial(
        write_metrics,
        mode=output.metrics_mode,
        fleet=fleet,
        exit_code=EXIT_CANCELLED if cancelled else outcome,
    )

    def inventory(report: Report, path: Path) -> None:
        write_inventory(report, spec.vms, path)

    with anyio.CancelScope(shield=True):
        written = await _write_result(write_report, result, output.report, "report")
        if written is None:
            report_path = await _write_fallback_report(result)
            code = EXIT_FAILED
        for write, path, label in (
            (functools.partial(write_junit, fleet=fleet), output.junit, "JUnit file"),
            (metrics, output.metrics, "metrics file"),
            (inventory, output.inventory, "inventory"),
            (write_html, output.html, "HTML report"),
        ):
            if path is not None and await _write_result(write, result, path, label) is None:
                code = EXIT_FAILED
    if verdict is not None:
        verdict.written = True
    if run_info is not None and run_info.journal_error is not None:
        _fail(
            f"{run_info.journal_error}; the run stopped submitting and the report says "
            "where each VM stands",
            EXIT_FAILED,
        )
    out = _out()
    render_summary(result, out, report_path=str(report_path) if report_path else None)
    if report_path is not None:
        out.print(f"report written to {report_path}", markup=False)
    if output.inventory is not None and code == EXIT_OK:
        out.print(f"inventory written to {output.inventory}", markup=False)
    if output.html is not None and code == EXIT_OK:
        out.print(f"HTML report written to {output.html}", markup=False)
    hint = None if simulate else _unfinished_hint(result, journal_path)
    if hint:
        out.print(hint, markup=False)
    if code != EXIT_OK:
        return code
    if problem is not None:
        return _fail(problem, outcome)
    return outcome


def _outcome(run_info: Run | None, result: Report) -> tuple[int, str | None]:
    """The exit code by the VMs' outcome, and the one line a whole-run stop needs."""
    if run_info is not None and run_info.doomed_run is not None:
        category, cause = run_info.doomed_run
        if category in ("auth", "permission"):
            return EXIT_AUTH, _refusal(cause)
        # the API URL cannot work, or the API did not answer before the first build
        # (an outage, a rate limit that never lifted): say why, once
        return EXIT_FAILED, for_terminal(cause.description or "the API cannot be reached")
    if result.summary.failed or result.summary.cancelled or result.interrupted:
        return EXIT_FAILED, None
    return EXIT_OK, None


async def _write_result(
    write: Callable[[Report, Path], None], report: Report, path: Path, label: str
) -> Path | None:
    """Write one result file; on failure say why (naming the user's path) and return None."""
    try:
        await anyio.to_thread.run_sync(write, report, path)
    except (OSError, ReportError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        _fail(f"cannot write the {label} {path}: {why}", EXIT_FAILED)
        return None
    return path


async def _write_fallback_report(report: Report) -> Path | None:
    """The report where it can be written when its own path cannot (a full disk)."""
    from orchestrator.report import write_report

    fallback = Path(tempfile.gettempdir()) / f"orchestrator-report-{report.run_id}.json"
    written = await _write_result(write_report, report, fallback, "report")
    if written is not None:
        _err.print(f"the report was written to {fallback} instead", markup=False)
    return written


def _unfinished_hint(report: Report, journal_path: StateLocation | None) -> str | None:
    """What to do about the VMs a stopped run left cancelled."""
    reasons = Counter(vm.reason or "" for vm in report.vms if vm.outcome == "cancelled")
    if not reasons:
        return None
    parts = []
    if reasons["build_in_progress"]:
        parts.append(f"{reasons['build_in_progress']} still building on Katapult")
    if reasons["submission_outcome_unknown"]:
        parts.append(
            f"{reasons['submission_outcome_unknown']} submitted with no answer yet (they may exist)"
        )
    if reasons["not_submitted"]:
        parts.append(f"{reasons['not_submitted']} not submitted")
    other = sum(reasons.values()) - sum(
        reasons[r] for r in ("build_in_progress", "submission_outcome_unknown", "not_submitted")
    )
    if other:
        parts.append(f"{other} stopped for another reason")
    text = f"{sum(reasons.values())} VMs were not finished: " + ", ".join(parts) + ". "
    if journal_path is not None:
        return text + (
            f"To finish them, run the same command again: with the journal {journal_path} "
            "it follows the builds in progress and looks up uncertain submissions by "
            "hostname, so nothing is built twice."
        )
    return text + (
        "This run kept no journal: a rerun skips every VM that exists by then and builds "
        "the rest, but a VM whose build is still running may be reported as a conflict."
    )


#: what to do about a refusal that stops the whole run, by the API's code
_WHAT_TO_DO = {
    "missing_api_token": "set KATAPULT_API_KEY (or katapult.api_token)",
    "invalid_api_token": "check KATAPULT_API_KEY (or katapult.api_token): the API does "
    "not know this token, or it has expired",
    "unauthorized_network_for_api_token": "the token may not be used from this network: "
    "allow this address for it in Katapult",
    "scope_not_granted": "give the token the scopes it lacks in Katapult",
}


def _refusal(cause: ErrorInfo, *, sent: bool = True) -> str:
    """One line: what the API refused, and what to do about it."""
    code = for_terminal(cause.code or "refused", 80)
    text = for_terminal(cause.description or "the API refused the token", 200)
    what = _WHAT_TO_DO.get(code, "check the token's permissions in Katapult")
    scopes = cause.detail.get("scopes") if isinstance(cause.detail, dict) else None
    if scopes:
        what += f" ({', '.join(map(str, scopes))})"
    if not sent:
        return f"{text} ({code}): {what}"
    return f"{text} ({code}): {what}; nothing more was sent, every VM left is reported"
