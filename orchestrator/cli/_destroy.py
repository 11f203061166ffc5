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
from orchestrator.cli._group import _common_options, _limit_option, cli
from orchestrator.cli._prepare import _NO_CREDENTIALS, _limited, _load, _load_spec, _unwritable
from orchestrator.cli._runner import _handle_sigterm, _run_async
from orchestrator.cli._simulator_options import reading_options, readings_given

if TYPE_CHECKING:
    from orchestrator.report import Report
    from orchestrator.spec import Spec


_DESTROY_EPILOG = (
    "\b\nExamples:\n"
    "  orchestrator destroy fleet.toml                  # shows what it deletes, asks first\n"
    "  orchestrator destroy --yes --purge fleet.toml    # in a script; frees the hostnames\n"
    "  orchestrator destroy fleet.toml --limit 'web-*'  # only these hostnames\n"
    "\n"
    "Only VMs this fleet built are deleted: their annotations say so, or (where the API\n"
    "keeps no annotations) the build journal recorded them. Any other VM with a\n"
    "hostname of the spec is left untouched and reported failed/conflict (not_ours).\n"
    "\n"
    + _exit_codes(
        (EXIT_OK, "every VM of the spec that this fleet built is deleted (or was absent)"),
        (EXIT_FAILED, "some VMs were not deleted (the report says which and why)"),
        (EXIT_USAGE, "bad usage, spec or config; no --yes without a terminal"),
        (EXIT_AUTH, "the token or its permissions were refused"),
        (EXIT_CANCELLED, "not confirmed, or interrupted (the report is still written)"),
    )
)


@dataclass(frozen=True)
class _Destroy:
    """What ``destroy`` does where ``run`` builds: confirm, then delete through the engine."""

    build_journal: Path | None
    purge: bool
    yes: bool
    fleet: str | None
    #: ``--limit``: only these keys (None: every VM of the spec)
    only_keys: set[str] | None = None

    async def confirmed(self, orch: Any, spec: Spec) -> bool:
        """Show the selected hostnames that exist now; ask unless ``--yes``."""
        wanted = [vm for vm in spec.vms if self.only_keys is None or vm.key in self.only_keys]
        found: list[str] = []
        for org in {vm.organization for vm in wanted}:
            names = {vm.hostname.lower() async for vm in orch.client.list_vms(org) if vm.hostname}
            found += [vm.hostname for vm in wanted if vm.organization == org and vm.key in names]
        verb = "delete and purge" if self.purge else "delete (to the trash)"
        _err.print(
            f"{len(found)} of the {len(wanted)} hostnames selected exist; this will {verb} "
            "those this fleet built: " + (", ".join(sorted(found)) or "none"),
            markup=False,
        )
        if self.yes or not found:
            return True
        answer: bool = await anyio.to_thread.run_sync(
            lambda: click.confirm("Delete them?", default=False, err=True)
        )
        if not answer:
            _err.print("not confirmed: nothing was deleted", markup=False)
        return answer

    async def destroy(self, orch: Any, spec: Spec, journal: Path | None) -> Report:
        result: Report = await orch.destroy(
            spec,
            journal=journal,
            build_journal=self.build_journal,
            purge=self.purge,
            fleet=self.fleet,
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
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="This destroy's own journal, so an interrupted destroy resumes (default: the "
    "report's path + '.journal'; with --simulate, none unless given).",
)
@click.option(
    "--build-journal",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The journal of the runs that built the fleet (default report.json.journal when "
    "it exists), read only: it proves ownership where the API keeps no annotations.",
)
@click.option(
    "--purge",
    is_flag=True,
    help="Also purge each VM from the trash (frees its "
    "hostname at once; the trash otherwise keeps it for days).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts).")
@click.option(
    "--fleet",
    metavar="NAME",
    help="The fleet named in the VMs' orchestrator.spec annotation (default: the spec "
    "file's name without its suffix).",
)
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
    build_journal: Path | None,
    purge: bool,
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
            "output.progress": False if no_progress else None,
        },
    )
    loaded = _load_spec(spec, settings)
    only_keys: set[str] | None = None
    if limit:
        selected = _limited(loaded, limit)
        only_keys = {vm.key for vm in selected}  # the others: skipped/not_selected
    if not yes and not sys.stdin.isatty():
        return _fail("destroy asks before deleting: pass --yes when not at a terminal")
    if not simulate and settings.katapult.api_token is None:
        return _fail(_NO_CREDENTIALS)
    journal_path = settings.output.journal if simulate else settings.journal_path()
    if build_journal is None and Path("report.json.journal").exists():
        build_journal = Path("report.json.journal")
    if build_journal is not None and not build_journal.is_file():
        return _fail(f"--build-journal {build_journal}: no such file")
    _unwritable(("report", settings.output.report), ("journal", journal_path))
    destroying = _Destroy(
        build_journal=build_journal, purge=purge, yes=yes, fleet=fleet, only_keys=only_keys
    )
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
