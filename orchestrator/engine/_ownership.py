"""Ownership you can check: the annotations every build carries, and what a VM's say.

Every build this engine sends carries two annotations beside the user's own:

* ``orchestrator.vm``: the VM's key (its lower-cased hostname);
* ``orchestrator.spec``: the fleet it belongs to (by default the spec file's
  name without its suffix; ``--fleet`` / ``run(fleet=...)`` sets it).

Whether the API copies a build's annotations onto the VM it creates is
unconfirmed, and so is when (with the VM record, or only once the build is
complete). :class:`Ownership` finds out during a run (the first VM that this
run built, looked at once its build is complete, tells; or a VM the fleet's
filtered listing found) and until then, or when the API does not
copy them, answers ``unknown`` so that the engine falls back to the rules that
need no annotations (see ``docs/guarantees.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal

__all__ = [
    "FLEET_KEY",
    "VM_KEY",
    "Ownership",
    "Verdict",
    "default_fleet",
    "ownership_annotations",
]

VM_KEY = "orchestrator.vm"
FLEET_KEY = "orchestrator.spec"

Verdict = Literal["ours", "theirs", "unknown"]
"""What a VM's annotations say about who built it."""


def default_fleet(spec_path: str | None) -> str:
    """The fleet name of a spec file: its file name without the suffix."""
    if not spec_path or spec_path.startswith("<"):
        return "default"
    return PurePath(spec_path).stem or "default"


def ownership_annotations(key: str, fleet: str) -> dict[str, str]:
    """The annotations that name a VM as this fleet's."""
    return {VM_KEY: key, FLEET_KEY: fleet}


@dataclass(slots=True)
class Ownership:
    """What a run knows of whether, and whose, annotations the API keeps on VMs."""

    fleet: str
    #: True: the API copies build annotations onto VMs; False: it does not;
    #: None: not known yet
    copied: bool | None = None
    #: how ``copied`` was learned (for the report)
    evidence: str | None = None

    def learn_from_own_build(self, key: str, annotations: Mapping[str, str] | None) -> None:
        """A VM that this run's build created: its annotations tell whether they are copied."""
        if self.copied is not None:
            return
        ours = annotations is not None and annotations.get(VM_KEY) == key
        self.copied = ours
        self.evidence = (
            f"the VM built for {key} carries its build's annotations once the build is complete"
            if ours
            else f"the VM built for {key} does not carry its build's annotations once the "
            "build is complete"
        )

    def judge(self, key: str, annotations: Mapping[str, str] | None) -> Verdict:
        """Whose VM is this, for the VM of ``key``'s hostname?

        A VM carrying our annotation keys proves that the API copies them
        (whoever sent them). Without them, a VM is someone else's only once it
        is known that the API copies annotations.
        """
        found = dict(annotations or {})
        if VM_KEY in found or FLEET_KEY in found:
            if self.copied is None:
                self.copied = True
                self.evidence = "a VM found by hostname carries orchestrator annotations"
            if found.get(VM_KEY) == key and found.get(FLEET_KEY) == self.fleet:
                return "ours"
            return "theirs"
        return "theirs" if self.copied else "unknown"

    @property
    def verifiable(self) -> bool | None:
        """Whether ownership could be verified by annotations (None: never found out)."""
        return self.copied
