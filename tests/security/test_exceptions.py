"""No exception the client can raise carries the token: not its str, repr, cause or traceback."""

from __future__ import annotations

import json
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import SecretStr

from orchestrator.errors import (
    ApiConnectError,
    ApiTimeout,
    AuthenticationError,
    ConfigError,
    ConnectionLost,
    InvalidRequest,
    NotFound,
    OrchestratorError,
    PermissionDenied,
    RateLimited,
    ServerError,
    UnexpectedResponse,
    ValidationFailed,
)
from orchestrator.katapult import (
    AiohttpTransport,
    ApiRequest,
    ApiResponse,
    KatapultClient,
    MockTransport,
    Timeouts,
)
from orchestrator.settings import describe_settings, load_settings
from orchestrator.simulator import FaultConfig, SimulatorConfig, run_simulator
from orchestrator.vm_request import Lookup

CANARY = "canary-exc-5d1c9e2b7a3f4e60"
WRONG = "canary-wrong-exc-8b7a6c5d4e3f2a10"

ACME = Lookup("sub_domain", "acme")


def assert_clean(exc: BaseException, secret: str = CANARY) -> None:
    """Neither the exception nor anything chained to it shows ``secret``."""
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), repr(vars(seen)) if hasattr(seen, "__dict__") else ""]
        seen = seen.__cause__ or seen.__context__
    for text in texts:
        assert secret not in text, f"{type(exc).__name__} shows the token: {text[:200]}"


async def _raised(call: Callable[[], Awaitable[Any]]) -> OrchestratorError:
    with pytest.raises(OrchestratorError) as caught:
        await call()
    return caught.value


def _build(client: KatapultClient, hostname: str, org: Lookup = ACME) -> Callable[[], Any]:
    return lambda: client.build_vm(
        organization=org,
        package=Lookup("permalink", "rock-1"),
        data_center=Lookup("permalink", "uk-lon-01"),
        disk_template=Lookup("permalink", "templates/ubuntu-22-04"),
        hostname=hostname,
    )


REQUEST_FAULTS = {
    "5xx": (FaultConfig(error_5xx_rate=1.0), ServerError),
    "502-html": (FaultConfig(html_502_rate=1.0), ServerError),
    "reset-before": (FaultConfig(reset_before_rate=1.0), ConnectionLost),
    "reset-after": (FaultConfig(reset_after_rate=1.0), ConnectionLost),
    "truncated": (FaultConfig(truncated_body_rate=1.0), ConnectionLost),
    "slow": (FaultConfig(slow_rate=1.0, slow_seconds=0.5), ApiTimeout),
    "429": (FaultConfig(burst_429_every=1, burst_429_length=10_000), RateLimited),
}


@pytest.mark.anyio
async def test_no_client_exception_shows_the_token() -> None:
    """Every error the real client raises against the simulator is free of the token."""
    errors: list[OrchestratorError] = []
    config = SimulatorConfig(token=CANARY, time_scale=400.0, retry_after=True)
    async with run_simulator(config) as sim:
        timeouts = Timeouts(connect=1.0, read=0.2, total=2.0)
        async with KatapultClient(api_url=sim.url, token=CANARY, timeouts=timeouts) as client:
            for faults, expected in REQUEST_FAULTS.values():
                sim.config.faults = faults
                for call in (lambda: client.get_organization(ACME), _build(client, "exc-fault")):
                    errors.append(await _raised(call))
                    assert isinstance(errors[-1], expected), repr(errors[-1])
            sim.config.faults = FaultConfig()
            await _build(client, "exc-taken")()
            refusals = {
                NotFound: lambda: client.get_vm(Lookup("id", "vm_doesnotexist")),
                ValidationFailed: _build(client, "exc-taken"),
                InvalidRequest: lambda: client.request(
                    "GET",
                    "organizations/_",
                    params={"organization": {"id": "x", "sub_domain": "y"}},
                ),
                PermissionDenied: _build(client, "exc-frozen", Lookup("sub_domain", "frozen")),
            }
            for expected, call in refusals.items():
                errors.append(await _raised(call))
                assert isinstance(errors[-1], expected), repr(errors[-1])
            assert CANARY not in repr(client)
        async with KatapultClient(api_url=sim.url, token=WRONG) as wrong:
            errors.append(await _raised(lambda: wrong.get_organization(ACME)))
            assert isinstance(errors[-1], AuthenticationError)
            assert_clean(errors[-1], WRONG)
        small = AiohttpTransport(sim.url, max_body_bytes=64)
        async with KatapultClient(api_url=sim.url, token=CANARY, transport=small) as client:
            errors.append(await _raised(lambda: client.get_organization(ACME)))
            assert isinstance(errors[-1], ConnectionLost)
        gone_url = sim.url
    async with KatapultClient(api_url=gone_url, token=CANARY) as client:
        errors.append(await _raised(lambda: client.get_organization(ACME)))
        assert isinstance(errors[-1], ApiConnectError)
    for exc in errors:
        assert_clean(exc)


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", b"[1, 2]", b'{"organization": "not an object"}', b"\xff\xfe"],
    ids=["html", "array", "wrong-shape", "not-utf8"],
)
@pytest.mark.anyio
async def test_unexpected_answers_do_not_show_the_token(body: bytes) -> None:
    """A 2xx that is not the API's answer raises UnexpectedResponse without the token."""
    seen: list[ApiRequest] = []

    def handler(request: ApiRequest) -> ApiResponse:
        seen.append(request)
        return ApiResponse(status=200, headers={"content-type": "text/html"}, body=body)

    async with KatapultClient(
        api_url="https://api.example.test/core/v1/", token=CANARY, transport=MockTransport(handler)
    ) as client:
        exc = await _raised(lambda: client.get_organization(ACME))
    assert isinstance(exc, UnexpectedResponse)
    assert_clean(exc)
    # the request carries the token (it must), but never shows it
    assert seen[0].headers["Authorization"] == f"Bearer {CANARY}"
    assert CANARY not in repr(seen[0])
    assert CANARY not in str(seen[0])


@pytest.mark.anyio
async def test_an_api_echoing_the_token_does_not_leak_it() -> None:
    """An error answer that quotes the token (a proxy echoing the request) hides it."""

    def handler(request: ApiRequest) -> ApiResponse:
        envelope = {
            "error": {
                "code": "invalid_api_token",
                "description": f"The token {CANARY} is not valid",
                "detail": {"token": CANARY},
            }
        }
        body = json.dumps(envelope).encode()
        return ApiResponse(status=403, headers={"content-type": "application/json"}, body=body)

    async with KatapultClient(
        api_url="https://api.example.test/core/v1/", token=CANARY, transport=MockTransport(handler)
    ) as client:
        exc = await _raised(lambda: client.get_organization(ACME))
    assert_clean(exc)


@pytest.mark.parametrize(
    ("env", "secret"),
    [
        ({"KATAPULT_API_KEY": f"{CANARY} with spaces"}, CANARY),
        ({"KATAPULT_API_KEY": f"{CANARY}\u00e9"}, CANARY),
        ({"KATAPULT_API_URL": f"https://user:{CANARY}@api.example.test/"}, CANARY),
        ({"KATAPULT_API_URL": f"https://api.example.test/?token={CANARY}"}, CANARY),
        ({"KATAPULT_API_URL": f"https://{CANARY}@api.example.test/"}, CANARY),
        ({"KATAPULT_API_KEY": CANARY, "ORCHESTRATOR_MAX_IN_FLIGHT": "-1"}, CANARY),
    ],
    ids=["token-space", "token-non-ascii", "url-password", "url-query", "url-user", "other-bad"],
)
def test_config_errors_never_echo_the_token(env: dict[str, str], secret: str) -> None:
    """A bad setting next to (or made of) the token is reported without showing it."""
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=env)
    assert_clean(caught.value, secret)


def test_settings_never_show_the_token() -> None:
    """repr, str, JSON dump and the settings table of loaded settings hide the token."""
    settings = load_settings(environ={"KATAPULT_API_KEY": CANARY})
    token = settings.katapult.api_token
    assert isinstance(token, SecretStr)
    assert token.get_secret_value() == CANARY
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(settings.model_dump()),
        repr(describe_settings(settings)),
    ]
    for text in shown:
        assert CANARY not in text
