"""orchestrator: exactly-once bulk provisioning of Katapult virtual machines.

The library in one screen::

    import anyio
    from orchestrator import Orchestrator, load_settings, load_spec

    async def main() -> None:
        settings = load_settings()                  # env + defaults, like the CLI
        spec = load_spec("specs/example.toml")
        async with Orchestrator(settings, hooks=[print]) as orch:
            report = await orch.run(spec, journal="fleet.journal")
        print(report.summary)

    anyio.run(main)

Everything a user needs is importable from here. Subpackages with more:
:mod:`orchestrator.simulator` (a local stand-in for the API, for tests and
demos), :mod:`orchestrator.report` (report files: write, load, diff),
:mod:`orchestrator.katapult` (the typed API client and its transports).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.engine import (
    EngineStatistics,
    EventKind,
    LookupProblem,
    Orchestrator,
    Plan,
    ProgressHook,
    ProvisionEvent,
    make_plan,
)
from orchestrator.errors import (
    ActionError,
    ActionFailed,
    ActionTimedOut,
    ApiConnectError,
    ApiError,
    ApiTimeout,
    ApiUnreachable,
    AuthenticationError,
    Category,
    ConfigError,
    ConnectionLost,
    InvalidRequest,
    JournalError,
    LimitError,
    NotFound,
    OrchestratorError,
    PermissionDenied,
    RateLimited,
    ReportError,
    ServerError,
    SpecError,
    SpecIssue,
    TransportError,
    UnexpectedResponse,
    ValidationFailed,
)
from orchestrator.katapult import KatapultClient
from orchestrator.report import Report, VmResult
from orchestrator.settings import (
    EngineSettings,
    KatapultSettings,
    OutputSettings,
    Settings,
    SettingsWarning,
    load_settings,
)
from orchestrator.spec import Spec, SpecDefaults, limit_vms, load_spec, parse_spec
from orchestrator.vm_request import Lookup, VmRequest

__all__ = [
    "ActionError",
    "ActionFailed",
    "ActionTimedOut",
    "ApiConnectError",
    "ApiError",
    "ApiTimeout",
    "ApiUnreachable",
    "AuthenticationError",
    "Category",
    "ConfigError",
    "ConnectionLost",
    "EngineSettings",
    "EngineStatistics",
    "EventKind",
    "InvalidRequest",
    "JournalError",
    "KatapultClient",
    "KatapultSettings",
    "LimitError",
    "Lookup",
    "LookupProblem",
    "NotFound",
    "Orchestrator",
    "OrchestratorError",
    "OutputSettings",
    "PermissionDenied",
    "Plan",
    "ProgressHook",
    "ProvisionEvent",
    "RateLimited",
    "Report",
    "ReportError",
    "ServerError",
    "Settings",
    "SettingsWarning",
    "Spec",
    "SpecDefaults",
    "SpecError",
    "SpecIssue",
    "TransportError",
    "UnexpectedResponse",
    "ValidationFailed",
    "VmRequest",
    "VmResult",
    "__version__",
    "limit_vms",
    "load_settings",
    "load_spec",
    "make_plan",
    "parse_spec",
]


if TYPE_CHECKING:
    #: The installed version, e.g. ``"0.1.0"``.
    __version__: str
else:

    def __getattr__(name: str) -> str:
        """``__version__`` is read from the installed metadata on first use."""
        if name == "__version__":
            from orchestrator._about import distribution_version

            return distribution_version()
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
