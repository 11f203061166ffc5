"""``orchestrator destroy``: delete the VMs of a spec that this fleet built, and only those."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import click

from orchestrator.cli._console import _err, _fail
from orchestrator.cli._exit_codes import (
    EXIT_AUTH,
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    _exit_codes,
)
from orchestrator.cli._group import (
    _common_options,
    _fleet_option,
    _limit_option,
    _state_option,
    cli,
    state_flag,
)
from orchestrator.cli._prepare import _NO_CREDENTIALS, _limited, _load, _load_spec, _unwritable
from orchestrator.cli._runner import _handle_sigterm, _run_async
from orchestrator.cli._simulator_options import reading_options, readings_given

if TYPE_CHECKING:
    from orchestrator.engine.state.location import StateLocation
    from orchestrator.report import Report
    from orchestrator.spec import Spec


_DESTROY_EPILOG = (
    "\b\nExamples:\n"
    "  orchestrator destroy fleet.toml                  # shows what it deletes, asks first\n"
    "  orchestrator destroy --yes --purge fleet.toml    # in a script; frees the hostnames\n"
    "  orchestrator destroy fleet.toml --limit 'web-*'  # only these hostnames\n"
    "\n"
    "Only VMs of this fleet are deleted: their annotations carry the fleet's identity, or\n"
    "(where the API keeps no annotations) the fleet's journal recorded that its own build\n"
    "created them. Never on a hostname alone: any other VM with a hostname of the spec is\n"
    "left untouched and reported failed/conflict (not_ours). destroy uses the fleet's\n"
    "journal (the one run wrote, report.json.journal by default) and its lock: a destroy\n"
    "while a run of the fleet is in progress is refused; builds the journal has in\n"
    "flight are followed and deleted once their VM exists.\n"
    "\n"
    + _exit_codes(
        (EXIT_OK, "every VM of the spec that this fleet built is deleted (or was absent)"),
        (EXIT_FAILED, "some VMs were not deleted (the report says which and why)"),
        (EXIT_USAGE, "bad usage, spec or config; no --yes without a terminal"),
        (EXIT_AUTH, "the token or its permissions were refused"),
        (EXIT_CANCELLED, "not confirmed, or interrupted (the report is still written)"),
    )
)


#: destroy's decisions that delete something (at once, or once a build has ended)
_DELETING = frozenset({"delete", "wait", "follow_build", "reconcile"})
_LABELS = {
    "delete": "to delete",
    "wait": "being built: deleted once built",
    "follow_build": "being built: followed, then deleted",
    "reconcile": "a build may still appear: looked for, then deleted",
    "in_trash": "already in the trash",
    "not_ours": "not this fleet's: left untouched",
    "absent": "absent",
}


def _groups(fates: dict[str, str], *, purge: bool) -> list[tuple[str, list[str]]]:
    out = []
    for fate, label in _LABELS.items():
        keys = [key for key, f in fates.items() if f == fate]
        if keys:
            shown = f"{label} (purged with --purge)" if fate == "in_trash" and purge else label
            out.append((shown[:1].upper() + shown[1:], keys))
    return out


@dataclass(frozen=True)
class _Destroy:
    """What ``destroy`` does where ``run`` builds: confirm, then delete through the engine."""

    purge: bool
    yes: bool
    #: the fleet's journal (its build rows: which VMs its builds created)
    journal: StateLocation | None = None
    #: ``--limit``: only these keys (None: every VM of the spec)
    only_keys: set[str] | None = None

    async def confirmed(self, orch: Any, spec: Spec) -> bool:
        """Show what destroy would do with the selected VMs; ask unless ``--yes``.

        At a terminal, each VM found is looked at and shown with destroy's own
        decision (delete, follow then delete, in the trash, not this fleet's);
        with ``--yes`` only the organization's listing is read (no VM twice).
        """
        from orchestrator.cli._plan import _fleet_state
        from orchestrator.engine._fleet_listing import FleetFinder
        from orchestrator.engine._retry import retry_get
        from orchestrator.engine.state.fate import row_of

        wanted = [vm for vm in spec.vms if self.only_keys is None or vm.key in self.only_keys]
        fleet, rows = await anyio.to_thread.run_sync(_fleet_state, spec, self.journal)
        deadline = {"deadline_seconds": orch.settings.engine.retry_deadline_seconds}
        # as destroy's run finds them: the fleet's list, and lookups of the hostnames it lacks
        finder = FleetFinder(orch.client, fleet=fleet, retry=deadline)
        likely = {k for k, e in rows.items() if row_of(e).created or row_of(e).fact == "accepted"}
        existing: dict[Any, dict[str, str]] = {}
        looked: dict[str, Any] = {}
        for org in {vm.organization for vm in wanted}:
            info = await retry_get(functools.partial(orch.client.get_organization, org), **deadline)
            listing = await finder.list_org(
                org,
                [vm.key for vm in wanted if vm.organization == org],
                domain=info.infrastructure_domain,
                complete=True,
                likely=likely,
            )
            existing[org] = listing.existing
            looked.update(listing.looked)
        found = [vm.hostname for vm in wanted if vm.key in existing[vm.organization]]
        verb = "delete and purge" if self.purge else "delete (to the trash)"
        if self.yes:
            _err.print(
                f"{len(found)} of the {len(wanted)} hostnames selected exist; this will {verb} "
                "those provably this fleet's: " + (", ".join(sorted(found)) or "none"),
                markup=False,
            )
            return True
        fates = await self._preview(orch, wanted, existing, fleet, rows, looked)
        doing = [key for key, fate in fates.items() if fate in _DELETING]
        for label, keys in _groups(fates, purge=self.purge):
            _err.print(f"{label} ({len(keys)}): {', '.join(keys)}", markup=False)
        if not doing:
            _err.print("nothing of this fleet to delete", markup=False)
            return True
        answer: bool = await anyio.to_thread.run_sync(
            lambda: click.confirm(
                f"{verb[:1].upper()}{verb[1:]} these {len(doing)}?", default=False, err=True
            )
        )
        if not answer:
            _err.print("not confirmed: nothing was deleted", markup=False)
        return answer

    async def _preview(
        self,
        orch: Any,
        wanted: list[Any],
        existing: dict[Any, dict[str, str]],
        fleet: str | None,
        rows: dict[str, Any],
        looked: dict[str, Any],
    ) -> dict[str, str]:
        from orchestrator.engine._plan import preview_fates

        settings = orch.settings
        return await preview_fates(
            orch.client,
            wanted,
            existing=existing,
            rows=rows,
            fleet=fleet,
            deadline=settings.engine.retry_deadline_seconds,
            delete=True,
            looked=looked,
        )

    async def destroy(self, orch: Any, spec: Spec, journal: StateLocation | None) -> Report:
        result: Report = await orch.destroy(
            spec,
            journal=journal,
            purge=self.purge,
            only_keys=self.only_keys,
        )
        return result


@cli.command(epilog=_DESTROY_EPILOG)
@click.argument("spec", type=click.Path(dir_okay=False))
@_common_options
@click.option(
    "--report",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("destroy-report.json"),
    show_default=True,
    help="Where to write the JSON report (same schema as run's, operation 'delete').",
)
@click.option(
    "--journal",
    "--build-journal",
    "journal",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The fleet's journal: the one its runs wrote (default: report.json.journal, as "
    "run's; with --simulate, none unless given). It proves ownership where the API keeps "
    "no annotations, names an unnamed fleet, and is locked while destroy runs. Env: "
    "ORCHESTRATOR_JOURNAL.",
)
@_state_option
@click.option(
    "--purge",
    is_flag=True,
    help="Also purge each VM from the trash (frees its "
    "hostname at once; the trash otherwise keeps it for days).",
)
@click.option(
    "--html",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report as one self-contained HTML page. Env: ORCHESTRATOR_HTML.",
)
@click.option(
    "--budget-share",
    metavar="FRACTION",
    help="Use at most this share of the token's rate budget per window, e.g. 0.5 or 50% "
    "(default: no cap). Env: ORCHESTRATOR_BUDGET_SHARE.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts).")
@_fleet_option
@click.option("--no-progress", is_flag=True, help="No progress display.")
@_limit_option
@reading_options
def destroy(
    spec: str,
    config_file: Path | None,
    api_url: str | None,
    organization: str | None,
    simulate: bool,
    log_format: str | None,
    log_level: str | None,
    report: Path,
    journal: Path | None,
    state: str | None,
    purge: bool,
    html: Path | None,
    budget_share: str | None,
    yes: bool,
    fleet: str | None,
    no_progress: bool,
    limit: tuple[str, ...],
    readings: dict[str, Any],
) -> int:
    """Delete the VMs of SPEC that this fleet built, and only those; write the report.

    It shows what exists and asks before deleting (--yes for scripts). It uses
    the same rate budget, journal, report schema and exit codes as run, and is
    exactly-once too: a DELETE whose outcome is unknown is settled by looking
    the VM up. Deleted VMs go to the trash, which keeps their hostnames taken;
    --purge also purges them.
    """
    if not simulate and readings_given(readings):
        return _fail(f"{', '.join(readings_given(readings))}: only with --simulate")
    settings = _load(
        config_file,
        {
            "katapult.api_url": api_url,
            "katapult.organization": organization,
            "output.log_format": log_format,
            "output.log_level": log_level,
            "output.report": report,
            "output.journal": journal,
            "output.state": state,
            "output.progress": False if no_progress else None,
            "output.html": html,
            "engine.budget_share": budget_share,
        },
    )
    loaded = _load_spec(spec, settings, fleet)
    only_keys: set[str] | None = None
    if limit:
        selected = _limited(loaded, limit)
        only_keys = {vm.key for vm in selected}  # the others: skipped/not_selected
    if not yes and not sys.stdin.isatty():
        return _fail("destroy asks before deleting: pass --yes when not at a terminal")
    _unwritable(("HTML report", settings.output.html))
    if not simulate and settings.katapult.api_token is None:
        return _fail(_NO_CREDENTIALS)
    # the fleet's journal: run's (report.json.journal unless the settings name one)
    journal_path = settings.given_state()
    if journal_path is None and not simulate:
        journal_path = Path("report.json.journal")
    from orchestrator.engine.state.journal import journal_exists_at
    from orchestrator.errors import JournalError

    try:
        there = journal_path is not None and journal_exists_at(journal_path, loaded.fleet)
    except JournalError as exc:
        return _fail(str(exc))
    if journal_path is not None and (journal is not None or state is not None) and not there:
        return _fail(
            f"{state_flag(journal_path)} {journal_path}: no such journal "
            "(destroy uses the fleet's own)"
        )
    if loaded.fleet is None and not there:
        where = f"no journal at {journal_path}" if journal_path is not None else "no journal"
        return _fail(
            f"{spec} names no fleet and there is {where}: no VM could be proven this "
            "fleet's. Name the fleet (fleet = ... in the spec, or --fleet NAME), or give "
            "its journal (--journal PATH)"
        )
    _unwritable(("report", settings.output.report), ("journal", journal_path))
    destroying = _Destroy(purge=purge, yes=yes, only_keys=only_keys, journal=journal_path)
    try:
        return anyio.run(
            functools.partial(_run_async, destroying=destroying),
            settings,
            loaded,
            journal_path,
            None,
            simulate,
            readings,
        )
    finally:
        _handle_sigterm()  # asyncio put SIGTERM back to its default (death) on leaving
