"""The invariants every run must keep, checked against what the simulator really did.

Used by the fault matrix, the SIGKILL tests and the security tests:

* nothing doubled: no hostname was created twice on the server;
* nothing lost: every VM of the spec is in the report exactly once, and every
  VM the run created on the server is accounted for by the report (succeeded,
  skipped, or failed/timeout with its build id);
* the report is valid against its schema, owner-only, token-free;
* the journal agrees: every spec key present, finished entries match the
  report, nothing left ``intent``/``uncertain`` after a completed run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.engine.state.journal import JournalSnapshot, read_journal
from orchestrator.report import Report, write_report
from orchestrator.report._validate import validate_report_file
from orchestrator.vm_request import Lookup, VmRequest

__all__ = [
    "Expect",
    "check_journal",
    "check_report_file",
    "check_server",
    "expected_from_server",
    "spec_requests",
    "write_and_check",
]

#: (outcome, category) a VM is expected to end with
Expect = tuple[str, str | None]


def spec_requests(n: int, *, prefix: str = "vm", organization: str = "acme") -> list[VmRequest]:
    """``n`` plain VM requests ``prefix-001`` ... in one organization, data center uk-lon-01."""
    return [
        VmRequest(
            key=f"{prefix}-{i:03d}",
            hostname=f"{prefix}-{i:03d}",
            organization=Lookup("sub_domain", organization),
            package=Lookup("permalink", "rock-1"),
            data_center=Lookup("permalink", "uk-lon-01"),
            disk_template=Lookup("permalink", "templates/ubuntu-22-04"),
            entry_index=i - 1,
        )
        for i in range(1, n + 1)
    ]


def _ours(snapshot: Mapping[str, Any], keys: set[str]) -> list[dict[str, Any]]:
    return [
        vm
        for vm in snapshot["virtual_machines"]
        if not vm.get("preexisting") and vm["hostname"].lower() in keys
    ]


def check_server(
    report: Report,
    keys: Iterable[str],
    snapshot: Mapping[str, Any],
    *,
    expect: Mapping[str, Expect] | None = None,
    default: Expect | None = ("succeeded", None),
    rerun: bool = False,
) -> None:
    """Nothing doubled, nothing lost: the report against ``/_simulator/state``.

    ``expect`` maps keys to the (outcome, category) they must end with; the
    others must end with ``default`` (None: any outcome). ``rerun``: the report is
    of a rerun, where a VM built before (by a killed run) is ``skipped``
    (``already_exists``) where it would otherwise be ``succeeded``: the API, not the
    journal, says it is there.
    """
    wanted = set(keys)
    seen = Counter(vm.key for vm in report.vms)
    assert set(seen) == wanted, f"report keys differ: {set(seen) ^ wanted}"
    assert max(seen.values(), default=1) == 1, f"keys twice in the report: {seen.most_common(3)}"
    assert report.summary.total == len(wanted)

    assert snapshot["duplicates"] == [], f"hostnames created twice: {snapshot['duplicates']}"
    live = _ours(snapshot, wanted)
    created = Counter(vm["hostname"].lower() for vm in live)
    assert max(created.values(), default=1) == 1, f"created twice: {created.most_common(3)}"
    live_by_key = {vm["hostname"].lower(): vm for vm in live}
    preexisting = {
        vm["hostname"].lower(): vm for vm in snapshot["virtual_machines"] if vm.get("preexisting")
    }

    by_key = {vm.key: vm for vm in report.vms}
    for key, vm in by_key.items():
        want = (expect or {}).get(key, default)
        if want is not None:
            got = (vm.outcome, vm.category)
            if rerun and want == ("succeeded", None) and vm.reason == "already_exists":
                got = want if live_by_key.get(key) is not None else got
            assert got == want, f"{key}: {got} != {want} ({vm.error}, {vm.reason})"
        server = live_by_key.get(key)
        if vm.outcome == "succeeded":
            assert server is not None, f"{key} succeeded but the server has no such VM"
            assert vm.virtual_machine is not None
            assert vm.virtual_machine.id == server["id"], f"{key}: wrong VM id"
        elif vm.outcome == "skipped" and vm.reason == "already_exists":
            assert key in preexisting or server is not None
        elif vm.category == "build_failed":
            # a failed build leaves nothing, or (on APIs that keep it) a VM in state failed
            assert server is None or server.get("vm_state") == "failed", (
                f"{key} failed to build but a working VM exists"
            )
        # every VM the run created is accounted for (nothing leaked)
        if server is not None:
            same = vm.build_id == server["build_id"] or (
                vm.virtual_machine is not None and vm.virtual_machine.id == server["id"]
            )
            accounted = (
                vm.outcome in ("succeeded", "skipped")
                or (vm.category == "timeout" and same)
                or (vm.category == "build_failed" and server.get("vm_state") == "failed")
            )
            assert accounted, f"{key} exists on the server but ended {vm.outcome}/{vm.category}"


def check_report_file(report: Report, path: Path, *, forbidden: Sequence[str] = ()) -> Report:
    """Write ``report`` to ``path`` and validate it (schema, mode 0o600, no ``forbidden``)."""
    write_report(report, path)
    return validate_report_file(path, forbidden=forbidden)


def check_journal(
    journal: Path | JournalSnapshot, report: Report, *, completed: bool = True
) -> None:
    """The journal agrees with the report.

    Every report key has an entry; a ``finished`` entry holds the report's
    outcome; after a completed run nothing is left ``intent`` or
    ``uncertain`` (a POST whose outcome the run never learned).
    """
    snapshot = journal if isinstance(journal, JournalSnapshot) else read_journal(journal)
    entries = {e.key: e for e in snapshot.entries}
    by_key = {vm.key: vm for vm in report.vms}
    missing = set(by_key) - set(entries)
    assert not missing, f"not in the journal: {sorted(missing)}"
    for key, vm in by_key.items():
        entry = entries[key]
        if entry.state == "finished":
            assert entry.result is not None
            if vm.outcome == "skipped" and vm.reason == "already_exists":
                # found there by a rerun: the journal keeps what its build ended with
                assert entry.result.outcome == "succeeded", f"{key}: {entry.result.outcome}"
                continue
            assert entry.result.outcome == vm.outcome, f"{key}: journal {entry.result.outcome}"
            assert entry.result.category == vm.category
        if completed:
            assert entry.state not in ("intent", "uncertain"), f"{key} left {entry.state}"
            if vm.outcome in ("succeeded", "failed") and vm.reason != "not_submitted":
                assert entry.state == "finished", f"{key} ended {vm.outcome}, journal {entry.state}"


def expected_from_server(
    snapshot: Mapping[str, Any], keys: Iterable[str], *, hung: str | None = "timeout"
) -> dict[str, Expect]:
    """What the simulator says each VM must end with: its failed builds and hung builds.

    A build the simulator failed must be ``failed/build_failed``; one that
    never finishes ``failed/timeout``; every other ``succeeded``.
    """
    wanted = set(keys)
    live = _ours(snapshot, wanted)
    live_keys = {vm["hostname"].lower() for vm in live}
    out: dict[str, Expect] = {}
    for vm in snapshot["failed_builds"]:
        key = vm["hostname"].lower()
        # a failed build frees its hostname: a VM built later under it decides
        if key in wanted and key not in live_keys:
            out[key] = ("failed", "build_failed")
    for vm in live:
        # a failed build that left its VM (state failed) holds the hostname
        if vm.get("vm_state") == "failed":
            out[vm["hostname"].lower()] = ("failed", "build_failed")
    for vm in live:
        if vm["build_state"] == "building" and hung is not None:
            out[vm["hostname"].lower()] = ("failed", hung)
    return out


def write_and_check(report: Report, tmp_path: Path, *, forbidden: Sequence[str] = ()) -> None:
    """Write the report beside the test and validate it against the shipped schema."""
    check_report_file(report, tmp_path / "report.json", forbidden=forbidden)
