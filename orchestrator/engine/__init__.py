"""The provisioning engine: rate budget, poll scheduler, journal, runs."""

from __future__ import annotations

from orchestrator.engine._build import is_hostname_taken
from orchestrator.engine._orchestrator import Orchestrator
from orchestrator.engine._plan import LookupProblem, Plan, make_plan
from orchestrator.engine._runner import Run
from orchestrator.engine.events import EngineStatistics, EventKind, ProgressHook, ProvisionEvent

__all__ = [
    "EngineStatistics",
    "EventKind",
    "LookupProblem",
    "Orchestrator",
    "Plan",
    "ProgressHook",
    "ProvisionEvent",
    "Run",
    "is_hostname_taken",
    "make_plan",
]
