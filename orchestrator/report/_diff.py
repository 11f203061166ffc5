"""What changed between two reports, keyed by :attr:`VmResult.key`."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.errors import ReportError
from orchestrator.report._model import Report, VmResult

__all__ = ["ReportDiff", "diff_reports", "failed_keys"]


@dataclass(frozen=True, slots=True)
class ReportDiff:
    """The difference between an OLD and a NEW report.

    "Failing" means an outcome of ``failed`` or ``cancelled``. The
    :class:`VmResult` lists hold the NEW report's results, in its order; the
    key lists follow the order of the report they come from. A VM new in NEW
    that fails is both in ``added`` and in ``newly_failed``.
    """

    newly_failed: list[VmResult]
    """Failing in NEW, and not failing (or absent) in OLD."""
    fixed: list[VmResult]
    """Failing in OLD, succeeded or skipped in NEW."""
    still_failing: list[VmResult]
    """Failing in both."""
    missing: list[str]
    """Keys in OLD and not in NEW."""
    added: list[str]
    """Keys in NEW and not in OLD."""

    @property
    def has_new_failures(self) -> bool:
        """True when some VM fails in NEW that did not fail in OLD."""
        return bool(self.newly_failed)

    @property
    def is_empty(self) -> bool:
        """True when nothing changed: no failure came or went, no VM came or went."""
        return not (self.newly_failed or self.fixed or self.missing or self.added)


def diff_reports(old: Report, new: Report) -> ReportDiff:
    """Compare ``old`` and ``new`` VM by VM (by key).

    Both must report the same operation: a build's "succeeded" and a destroy's
    mean opposite things (:class:`ReportError` otherwise).
    """
    if old.operation != new.operation:
        raise ReportError(
            f"cannot compare a {old.operation} report with a {new.operation} report: "
            "compare two runs' reports, or two destroys'"
        )
    old_by_key = {vm.key: vm for vm in old.vms}
    new_keys = {vm.key for vm in new.vms}
    newly_failed: list[VmResult] = []
    fixed: list[VmResult] = []
    still_failing: list[VmResult] = []
    added: list[str] = []
    for vm in new.vms:
        before = old_by_key.get(vm.key)
        if before is None:
            added.append(vm.key)
        was_failing = before is not None and before.is_failure
        if vm.is_failure:
            (still_failing if was_failing else newly_failed).append(vm)
        elif was_failing:
            fixed.append(vm)
    missing = [vm.key for vm in old.vms if vm.key not in new_keys]
    return ReportDiff(
        newly_failed=newly_failed,
        fixed=fixed,
        still_failing=still_failing,
        missing=missing,
        added=added,
    )


def failed_keys(report: Report) -> set[str]:
    """Keys of the VMs whose outcome is ``failed`` or ``cancelled`` (for ``--retry-failed``)."""
    return {vm.key for vm in report.vms if vm.is_failure}
