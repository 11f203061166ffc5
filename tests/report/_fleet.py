"""A made-up report of a big run (any size): three data centers, two packages, a slow
data center, retries, failures of several kinds, and the budget per window. Seeded:
the same ``n`` gives the same report."""

from __future__ import annotations

import random
from datetime import timedelta

from orchestrator.report import (
    ApiInfo,
    BudgetUse,
    BudgetWindow,
    ErrorInfo,
    OwnershipInfo,
    Report,
    RequestCounts,
    SpecInfo,
    VmRef,
    VmResult,
)

from ._helpers import SHA, T0

#: data center -> how much slower its builds are than the base 40 s
DATA_CENTERS = {"uk-lon-01": 1.0, "nl-ams-01": 1.1, "us-nyc-01": 2.5}
PACKAGES = ("rock-1", "rock-3")
_FAILURES = [
    ("build_failed", ErrorInfo(code="build_failed", description="build vmbuild_x ended failed")),
    ("quota", ErrorInfo(code="quota_exceeded", description="VM quota reached", http_status=422)),
    ("server_error", ErrorInfo(code="unhandled_exception", description="<b>500</b> & co")),
]


def fleet_report(
    n: int,
    *,
    seed: int = 1,
    permitted: int = 1000,
    window: float = 60.0,
    failed: float = 0.03,
) -> Report:
    """A report of ``n`` VMs submitted at the pace ``permitted`` allows (two requests each);
    a share ``failed`` of them fail, and 0.5% more are cancelled."""
    rng = random.Random(seed)
    per_second = permitted / window / 2
    vms = []
    requests_at: list[float] = []
    for i in range(n):
        dc = list(DATA_CENTERS)[i % 3]
        package = PACKAGES[(i // 3) % 2]
        submitted = i / per_second
        build = 40 * DATA_CENTERS[dc] * rng.uniform(0.75, 1.25)
        seen = submitted + build * rng.uniform(0.3, 0.6)
        end = submitted + build + rng.uniform(0, 3)
        attempts = 2 if rng.random() < 0.02 else 1
        hostname = f"vm-{i + 1:05d}"
        common = {
            "key": hostname,
            "hostname": hostname,
            "package": package,
            "location": dc,
            "attempts": attempts,
            "task_id": f"task_{i:016d}",
            "build_id": f"vmbuild_{i:016d}",
            "submitted_at": T0 + timedelta(seconds=submitted),
            "finished_at": T0 + timedelta(seconds=end),
            "duration_seconds": round(end - submitted, 3),
        }
        requests_at += [submitted, end]
        roll = rng.random()
        if roll < failed:
            category, error = _FAILURES[i % len(_FAILURES)]
            vms.append(VmResult(outcome="failed", category=category, error=error, **common))
        elif roll < failed + 0.005:
            vms.append(
                VmResult(outcome="cancelled", category="cancelled", reason="build_in_progress",
                         stopped_because="deadline", **common)
            )  # fmt: skip
        else:
            vms.append(
                VmResult(
                    outcome="succeeded",
                    virtual_machine=VmRef(id=f"vm_{i:016d}", fqdn=f"{hostname}.acme.katapult.cloud",
                                          data_center=dc),
                    first_seen_at=T0 + timedelta(seconds=seen),
                    **common,
                )
            )  # fmt: skip
    finished = T0 + timedelta(seconds=max(requests_at, default=0.0) + 1)
    windows: dict[int, int] = {}
    for at in requests_at:
        windows[int(at // window)] = windows.get(int(at // window), 0) + 1
    budget = BudgetUse(
        window_seconds=window,
        windows=[
            BudgetWindow(
                started_at=T0 + timedelta(seconds=index * window),
                requests=count,
                rate_limited=1 if index == 3 else 0,
                permitted=permitted,
                used=count + 25,
                others=25,
            )
            for index, count in sorted(windows.items())
        ],
    )
    return Report.build(
        run_id="fleet-run",
        started_at=T0,
        finished_at=finished,
        spec=SpecInfo(path="fleet.toml", sha256=SHA),
        api=ApiInfo(url="https://api.katapult.io/core/v1/", organization="acme"),
        vms=vms,
        requests=RequestCounts(total=len(requests_at), rate_limited=1),
        ownership=OwnershipInfo(fleet="fleet", verifiable=True, evidence="annotations copied"),
        budget=budget,
    )
