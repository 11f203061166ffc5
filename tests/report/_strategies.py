"""Hypothesis strategies: any VmResult and Report the model accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

from hypothesis import strategies as st

from orchestrator.errors import Category
from orchestrator.report import (
    ApiInfo,
    ApiReading,
    BudgetUse,
    BudgetWindow,
    ErrorInfo,
    Outcome,
    Report,
    RequestCounts,
    SpecInfo,
    VmRef,
    VmResult,
)

CATEGORIES: tuple[str, ...] = get_args(Category)
OUTCOMES: tuple[str, ...] = get_args(Outcome)

_text = st.text(max_size=20)
_opt_text = st.none() | _text

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=8,
)

_zones = st.just(UTC) | st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=_zones
)

error_infos = st.builds(
    ErrorInfo,
    code=_opt_text,
    description=_opt_text,
    detail=json_values,
    http_status=st.none() | st.integers(100, 599),
)


@st.composite
def vm_results(draw: st.DrawFn, key: str | None = None) -> VmResult:
    """A VmResult of any outcome, obeying the model's rules (failed has a category, ...)."""
    outcome = draw(st.sampled_from(OUTCOMES))
    categories = st.sampled_from(CATEGORIES)
    return VmResult(
        key=key if key is not None else draw(st.text(min_size=1, max_size=20)),
        hostname=draw(st.text(min_size=1, max_size=63)),
        outcome=outcome,
        category=draw(categories if outcome == "failed" else st.none() | categories),
        reason=draw(_text if outcome == "skipped" else _opt_text),
        error=draw(st.none() | error_infos),
        virtual_machine=draw(
            st.none()
            | st.builds(
                VmRef,
                id=_text,
                fqdn=_opt_text,
                ip_addresses=st.lists(st.text(min_size=1, max_size=20), max_size=3),
                data_center=_opt_text,
            )
        ),
        task_id=draw(_opt_text),
        build_id=draw(_opt_text),
        attempts=draw(st.integers(0, 100)),
        stopped_because=draw(_opt_text),
        submitted_at=draw(st.none() | aware_datetimes),
        first_seen_at=draw(st.none() | aware_datetimes),
        finished_at=draw(st.none() | aware_datetimes),
        duration_seconds=draw(
            st.none() | st.floats(min_value=0, allow_nan=False, allow_infinity=False)
        ),
        package=draw(_opt_text),
        location=draw(_opt_text),
    )


_opt_count = st.none() | st.integers(0, 10**6)

budget_uses = st.builds(
    BudgetUse,
    window_seconds=st.floats(min_value=0.001, max_value=3600, allow_nan=False),
    windows=st.lists(
        st.builds(
            BudgetWindow,
            started_at=aware_datetimes,
            requests=st.integers(0, 10**6),
            rate_limited=st.integers(0, 10**6),
            permitted=_opt_count,
            used=_opt_count,
            others=_opt_count,
        ),
        max_size=4,
    ),
)


api_readings = st.lists(
    st.builds(
        ApiReading,
        name=st.sampled_from(get_args(ApiReading.model_fields["name"].annotation)),
        value=st.sampled_from(get_args(ApiReading.model_fields["value"].annotation)),
        evidence=st.none() | st.text(max_size=40),
    ),
    max_size=3,
)


@st.composite
def reports(draw: st.DrawFn, max_vms: int = 8) -> Report:
    """A consistent Report (summary built from its VMs, keys unique)."""
    keys = draw(st.lists(st.text(min_size=1, max_size=20), unique=True, max_size=max_vms))
    vms = [draw(vm_results(key=key)) for key in keys]
    started = draw(aware_datetimes)
    return Report.build(
        run_id=draw(st.text(min_size=1, max_size=30)),
        started_at=started,
        finished_at=started + draw(st.timedeltas(timedelta(0), timedelta(days=2))),
        spec=SpecInfo(path=draw(_text), sha256=draw(_text)),
        api=ApiInfo(url=draw(_text), organization=draw(_opt_text)),
        vms=vms,
        requests=draw(
            st.builds(RequestCounts, total=st.integers(0, 10**6), rate_limited=st.integers(0, 99))
        ),
        interrupted=draw(st.booleans()),
        budget=draw(st.none() | budget_uses),
        readings=draw(api_readings),
    )
