"""``run --prune``: after the run, delete the fleet's VMs that the spec no longer lists."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import click

from orchestrator.cli._console import _err

if TYPE_CHECKING:
    from orchestrator.engine import Orchestrator
    from orchestrator.engine.state.location import StateLocation
    from orchestrator.report import Report
    from orchestrator.settings import Settings
    from orchestrator.spec import Spec


def prune_report_path(report: Path) -> Path:
    """Where ``run --prune`` writes the report of its deletes: ``<report>`` with
    ``.prune`` before the suffix (``report.prune.json``)."""
    return report.with_name(f"{report.stem}.prune{report.suffix or '.json'}")


@dataclass(frozen=True)
class _Prune:
    """Deletes through :meth:`Orchestrator.prune`, under destroy's rules: only VMs of
    this fleet, shown first, asked unless ``--yes``."""

    yes: bool

    async def prune(
        self, orch: Orchestrator, spec: Spec, journal: StateLocation, built: Report
    ) -> Report | None:
        """The deletes' report, or None when nothing was removed or it was not confirmed."""
        removed = built.removed_from_spec
        if not removed:
            return None
        if built.interrupted:
            _err.print("--prune: the run was stopped, so nothing is pruned", markup=False)
            return None
        _err.print(
            f"{len(removed)} VM(s) of this fleet are no longer in the spec; --prune deletes "
            "those provably the fleet's: " + ", ".join(removed),
            markup=False,
        )
        if not self.yes:
            answer: bool = await anyio.to_thread.run_sync(
                lambda: click.confirm("Delete them?", default=False, err=True)
            )
            if not answer:
                _err.print("not confirmed: nothing was pruned", markup=False)
                return None
        fleet = built.ownership.fleet if built.ownership is not None else None
        report: Report | None = await orch.prune(spec, journal=journal, fleet=fleet)
        return report

    @staticmethod
    def settings_for(settings: Settings) -> Settings:
        """The run's settings for the prune's results: its own report, no other file."""
        output = settings.output.model_copy(
            update={
                "report": prune_report_path(settings.output.report),
                "junit": None,
                "metrics": None,
                "inventory": None,
                "html": None,
            }
        )
        return settings.model_copy(update={"output": output})
