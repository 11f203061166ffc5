"""Payloads, canned responses and recordings shared by the Katapult client tests."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from orchestrator.katapult import ApiRequest, ApiResponse, KatapultClient, MockTransport

API_URL = "https://api.katapult.io/core/v1/"
TOKEN = "kp-test-token-5ecr3t-Zq9"
RECORDINGS = Path(__file__).parent.parent / "fixtures" / "recordings"

Handler = Callable[[ApiRequest], "ApiResponse | Awaitable[ApiResponse]"]

# ---------------------------------------------------------------- payloads (hcloud style)


TASK: dict[str, Any] = {
    "id": "task_cl69PTf3pECcBv97",
    "name": "Build virtual machine",
    "status": "pending",
    "created_at": 1786739846,
    "started_at": None,
    "finished_at": None,
    "progress": 0,
}

BUILD_CREATED: dict[str, Any] = {
    "task": {"id": "task_cl69PTf3pECcBv97", "name": "Build virtual machine", "status": "pending"},
    "build": {"id": "vmbuild_syAXTRFgVAXvVhTq", "state": "pending"},
    "virtual_machine_build": {"id": "vmbuild_syAXTRFgVAXvVhTq", "state": "pending"},
    "hostname": "web-01",
    "annotations": [],
}

VM_SUMMARY: dict[str, Any] = {
    "id": "vm_qad98D0fW008fEB7",
    "name": "web-01",
    "hostname": "web-01",
    "fqdn": "web-01.acme.katapult.cloud",
    "created_at": 1787048193,
    "zone": {
        "id": "zone_7Uuz6wzE17ZShh8f",
        "name": "LON-1",
        "permalink": "lon-zone-1",
        "data_center": {"id": "loc_UUhPmoCbpic6UX0Y", "name": "London", "permalink": "uk-lon-01"},
    },
    "package": {"name": "ROCK-1"},
    "gpu_type": None,
    "ip_addresses": [{"address": "185.44.253.225"}],
}


def error_body(code: str, description: str = "", detail: Any = None) -> dict[str, Any]:
    """The API's error envelope."""
    return {"error": {"code": code, "description": description, "detail": detail or {}}}


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> ApiResponse:
    """An ApiResponse with a JSON body and the API's usual headers."""
    all_headers = {
        "content-type": "application/json",
        "x-ratelimit-permitted": "1000",
        "x-ratelimit-remaining": "999",
        "x-request-id": "req-0001",
    }
    all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    return ApiResponse(status=status, headers=all_headers, body=json.dumps(body).encode())


def page_body(
    key: str,
    items: list[dict[str, Any]],
    *,
    page: int,
    per_page: int,
    total_pages: int | None,
    total: int | None = None,
    large_set: bool = False,
) -> dict[str, Any]:
    """One page of a paginated list."""
    return {
        "pagination": {
            "current_page": page,
            "total_pages": total_pages,
            "total": total,
            "per_page": per_page,
            "large_set": large_set,
        },
        key: items,
    }


def load_recording(name: str) -> list[dict[str, Any]]:
    """The interactions of one recorded cassette."""
    with (RECORDINGS / name).open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    interactions: list[dict[str, Any]] = data["interactions"]
    return interactions


def make_client(handler: Handler, **kwargs: Any) -> tuple[KatapultClient, MockTransport]:
    """A client over a MockTransport answering with ``handler``."""
    transport = MockTransport(handler)
    kwargs.setdefault("token", TOKEN)
    client = KatapultClient(api_url=API_URL, transport=transport, **kwargs)
    return client, transport


# one minimal valid answer per endpoint the client uses (path -> body)
CATALOGUE_ANSWERS: dict[str, Any] = {
    "organizations/_/virtual_machines/build": BUILD_CREATED,
    "organizations/_/virtual_machines/build_from_spec": BUILD_CREATED,
    "virtual_machines/builds/_": {
        "virtual_machine_build": {
            "id": "vmbuild_syAXTRFgVAXvVhTq",
            "state": "building",
            "created_at": 1786739846,
            "spec_xml": "<VirtualMachineSpec/>",
            "virtual_machine": None,
        },
        "annotations": [],
    },
    "virtual_machines/_": {"virtual_machine": {**VM_SUMMARY, "state": "started"}},
    "organizations/_/virtual_machines": page_body(
        "virtual_machines", [VM_SUMMARY], page=1, per_page=100, total_pages=1, total=1
    ),
    "organizations/_": {
        "organization": {
            "id": "org_eodfyqFF3YWb2OFC",
            "name": "Acme",
            "sub_domain": "acme",
            "infrastructure_domain": "acme.katapult.cloud",
            "suspended": False,
        }
    },
    "organizations/_/policy_limits": {
        "policy_limits": {
            "maximum_virtual_machines": {"value": 50, "unlimited": False},
            "maximum_disk_size": {"value": None, "unlimited": True},
            "minimum_disk_size": {"value": 10},
            "flexible_virtual_machine_resources": True,
        }
    },
    "data_centers": {
        "data_centers": [{"id": "loc_UUhPmoCbpic6UX0Y", "name": "London", "permalink": "uk-lon-01"}]
    },
    "zones": {"zones": [VM_SUMMARY["zone"]]},
    "virtual_machine_packages": page_body(
        "virtual_machine_packages",
        [{"id": "vmpkg_Eh5LYVKScVHpj7sM", "name": "ROCK-3", "permalink": "rock-3", "cpu_cores": 1}],
        page=1,
        per_page=100,
        total_pages=1,
    ),
    "organizations/_/disk_templates": page_body(
        "disk_templates",
        [{"id": "dtpl_aaaa", "name": "Ubuntu 22.04", "permalink": "templates/ubuntu-22-04"}],
        page=1,
        per_page=100,
        total_pages=1,
    ),
    "organizations/_/ssh_keys": page_body(
        "ssh_keys",
        [{"id": "key_uk6wLQYdApzutwlL", "name": "alice", "fingerprint": "SHA256:abc"}],
        page=1,
        per_page=100,
        total_pages=1,
    ),
    "organizations/_/tags": page_body(
        "tags", [{"id": "tag_CqQyPRukJtTVa0tb", "name": "web"}], page=1, per_page=100, total_pages=1
    ),
    "organizations/_/available_networks": {
        "networks": [
            {
                "id": "netw_gVRkZdSKczfNg34P",
                "name": "Public Network",
                "permalink": "uk-lon-01-public",
                "default": True,
                "data_center": {"id": "loc_UUhPmoCbpic6UX0Y", "permalink": "uk-lon-01"},
            }
        ],
        "virtual_networks": [],
    },
}


def catalogue_handler(request: ApiRequest) -> ApiResponse:
    """Answer every endpoint the client uses with a minimal valid body."""
    if request.path.startswith("tasks/"):
        return json_response(200, {"task": TASK})
    status = 201 if request.method == "POST" else 200
    if request.method == "PATCH" and request.path == "virtual_machines/_":
        tag_names = request.json["properties"]["tag_names"]
        vm = {**VM_SUMMARY, "state": "started", "tag_names": tag_names}
        return json_response(status, {"virtual_machine": vm})
    return json_response(status, CATALOGUE_ANSWERS[request.path])
