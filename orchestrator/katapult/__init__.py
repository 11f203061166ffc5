"""The typed async client of the Katapult Core API v1.

:class:`KatapultClient` sends every request through one seam
(:meth:`KatapultClient.request`) over a :class:`Transport`
(:class:`AiohttpTransport` for real, :class:`MockTransport` in tests), passes
each one through an optional :class:`RequestGate`, and returns pydantic models.
"""

from __future__ import annotations

from orchestrator.katapult._client import DEFAULT_API_URL, KatapultClient, VmPage, check_api_url
from orchestrator.katapult._encoding import flatten_params
from orchestrator.katapult._gate import RateLimitInfo, RequestGate, parse_retry_after
from orchestrator.katapult._lookups import LOOKUP_KEYS, LookupKind, lookup_arg
from orchestrator.katapult._models import (
    BUILD_STATES,
    TASK_STATUSES,
    VM_STATES,
    BuildState,
    CreatedBuild,
    DataCenter,
    DiskTemplate,
    IpAddress,
    Limit,
    Network,
    Organization,
    Package,
    PackageRef,
    Pagination,
    PolicyLimits,
    SshKey,
    Tag,
    Task,
    TaskRef,
    TaskStatus,
    TrashObject,
    VirtualMachine,
    VirtualMachineBuild,
    VirtualMachineSummary,
    VmState,
    Zone,
)
from orchestrator.katapult._spec_xml import build_spec_xml
from orchestrator.katapult._transport import (
    DEFAULT_MAX_BODY_BYTES,
    AiohttpTransport,
    ApiRequest,
    ApiResponse,
    MockTransport,
    Timeouts,
    Transport,
)

__all__ = [
    "BUILD_STATES",
    "DEFAULT_API_URL",
    "DEFAULT_MAX_BODY_BYTES",
    "LOOKUP_KEYS",
    "TASK_STATUSES",
    "VM_STATES",
    "AiohttpTransport",
    "ApiRequest",
    "ApiResponse",
    "BuildState",
    "CreatedBuild",
    "DataCenter",
    "DiskTemplate",
    "IpAddress",
    "KatapultClient",
    "Limit",
    "LookupKind",
    "MockTransport",
    "Network",
    "Organization",
    "Package",
    "PackageRef",
    "Pagination",
    "PolicyLimits",
    "RateLimitInfo",
    "RequestGate",
    "SshKey",
    "Tag",
    "Task",
    "TaskRef",
    "TaskStatus",
    "Timeouts",
    "Transport",
    "TrashObject",
    "VirtualMachine",
    "VirtualMachineBuild",
    "VirtualMachineSummary",
    "VmPage",
    "VmState",
    "Zone",
    "build_spec_xml",
    "check_api_url",
    "flatten_params",
    "lookup_arg",
    "parse_retry_after",
]
