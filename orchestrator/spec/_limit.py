"""``--limit PATTERN``: select VMs of a spec by hostname glob (``run``, ``plan``, ``destroy``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from orchestrator.errors import LimitError
from orchestrator.vm_request import VmRequest

__all__ = ["limit_patterns", "limit_vms"]


def limit_patterns(values: Iterable[str]) -> list[str]:
    """The patterns of repeated ``--limit`` values, each split at commas, lower-cased.

    Raises :class:`LimitError` for an empty pattern (``--limit ''``, ``a,,b``).
    """
    patterns: list[str] = []
    for value in values:
        for part in value.split(","):
            pattern = part.strip().lower()
            if not pattern:
                raise LimitError(f"--limit {value!r}: empty pattern")
            if pattern not in patterns:
                patterns.append(pattern)
    return patterns


def limit_vms(vms: Sequence[VmRequest], patterns: Iterable[str]) -> list[VmRequest]:
    """The VMs of ``vms`` whose hostname matches at least one of ``patterns``, in spec order.

    A pattern is a shell-style glob (``*``, ``?``, ``[seq]``, ``[!seq]``) matched
    against the whole lower-cased hostname; several can be given, or one with
    commas (``web-*,db-01``). No pattern selects every VM. A pattern that
    matches no VM raises :class:`LimitError` naming it, even when others match:
    a typo must not quietly shrink what a command acts on.
    """
    wanted = limit_patterns(patterns)
    if not wanted:
        return list(vms)
    excluding = [p for p in wanted if p.startswith("!")]
    if excluding:
        names = ", ".join(repr(p) for p in excluding)
        raise LimitError(
            f"--limit {names}: excluding VMs is not supported; name the VMs to act on "
            "(a leading '!' is no negation: [!...] inside brackets is)"
        )
    unmatched = [p for p in wanted if not any(fnmatchcase(vm.key, p) for vm in vms)]
    if unmatched:
        names = ", ".join(repr(p) for p in unmatched)
        noun = "pattern" if len(unmatched) == 1 else "patterns"
        raise LimitError(
            f"--limit {noun} {names} match{'es' if len(unmatched) == 1 else ''} no hostname "
            f"of the spec ({_sample(vms)})"
        )
    return [vm for vm in vms if any(fnmatchcase(vm.key, p) for p in wanted)]


def _sample(vms: Sequence[VmRequest], shown: int = 5) -> str:
    """A few of the spec's hostnames, to show what a pattern could have matched."""
    if not vms:
        return "it has no VMs"
    names = ", ".join(vm.key for vm in vms[:shown])
    more = f", ... ({len(vms)} in all)" if len(vms) > shown else ""
    return f"its hostnames: {names}{more}"
