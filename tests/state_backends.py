"""The two state backends, for tests that must hold for both: an SQLite file and PostgreSQL.

``state`` (a fixture in ``tests/conftest.py``, parametrized ``sqlite`` and
``postgresql``) gives a :class:`StateRef`: where one fleet's state lives, in
the form each interface takes (the library's ``journal=`` and ``fleet=``, the
command line's flags) and read back as the journal's snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from orchestrator.engine.state.journal import JournalSnapshot, read_journal

__all__ = ["BACKENDS", "StateRef"]

Backend = Literal["sqlite", "postgresql"]
BACKENDS: tuple[Backend, ...] = ("sqlite", "postgresql")


@dataclass(frozen=True)
class StateRef:
    """One fleet's state: a journal file, or a database URL and the fleet's name."""

    backend: Backend
    #: the journal's path, or the database's URL (password included: kept out of the
    #: repr, which pytest prints beside a failure)
    location: Path | str = field(repr=False)
    #: the fleet's name (a PostgreSQL state keeps fleets by name; a file needs none)
    fleet: str | None

    @property
    def journal(self) -> Path | str:
        """What the library's ``journal=`` takes."""
        return self.location

    def cli_args(self) -> list[str]:
        """The flags that name this state (and the fleet, where it must be named)."""
        if self.backend == "sqlite":
            return ["--journal", str(self.location)]
        assert self.fleet is not None
        return ["--state", str(self.location), "--fleet", self.fleet]

    def library(self) -> dict[str, Any]:
        """The keyword arguments of ``Orchestrator.run``/``destroy`` that name it."""
        return {"journal": self.location, "fleet": self.fleet}

    def read(self) -> JournalSnapshot:
        """Everything the journal holds now (without its lock)."""
        return read_journal(self.location, fleet=self.fleet)

    def with_fleet(self, fleet: str) -> StateRef:
        """The same place, for another fleet (a file: the same file)."""
        return StateRef(self.backend, self.location, fleet)
