"""The three sections of the settings: ``[katapult]``, ``[engine]``, ``[output]``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from orchestrator.katapult._url import api_url_problem, normalize_api_url
from orchestrator.settings._sources import env_names
from orchestrator.settings._validators import (
    MAX_TEXT,
    Count,
    Mode,
    PathSetting,
    Seconds,
    Share,
    StateSetting,
    err,
    lower,
)
from orchestrator.spec._model import LOOKUP_KINDS, parse_lookup

#: The real API.
DEFAULT_API_URL = "https://api.katapult.io/core/v1/"


class Section(BaseModel):
    # hide_input_in_errors: a ValidationError never echoes a value (the token among them)
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, hide_input_in_errors=True
    )


# ---------------------------------------------------------------------- models


class KatapultSettings(Section):
    """``[katapult]``: how to reach the API, and defaults for specs."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    #: bearer token (KATAPULT_API_KEY); never shown
    api_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("KATAPULT_API_KEY", "KATAPULT_API_TOKEN")
    )
    #: base URL of Core API v1; always ends with "/"
    api_url: str = DEFAULT_API_URL
    #: sub_domain or org_ id used by spec entries that name none
    organization: str | None = None
    #: permalink or loc_ id used by spec entries that name no zone or data center
    data_center: str | None = None

    @field_validator("api_token", mode="before")
    @classmethod
    def _token(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None:
            return None
        if not isinstance(value, str):
            raise err("must be a string")
        value = value.strip()
        if not value:
            return None
        if len(value) > MAX_TEXT or not all("!" <= char <= "~" for char in value):
            # never echo the value: it is (or contains) a secret
            raise err("must be printable ASCII without spaces (the value is not shown)")
        return value

    @field_validator("api_url", mode="before")
    @classmethod
    def _url(cls, value: Any) -> Any:
        return _check_api_url(value) if isinstance(value, str) else value

    @field_validator("organization", mode="before")
    @classmethod
    def _organization(cls, value: Any) -> Any:
        if isinstance(value, str):
            parse_lookup(LOOKUP_KINDS["organization"], value.strip())
            return value.strip()
        return value

    @field_validator("data_center", mode="before")
    @classmethod
    def _data_center(cls, value: Any) -> Any:
        if isinstance(value, str):
            parse_lookup(LOOKUP_KINDS["data_center"], value.strip())
            return value.strip()
        return value


def _check_api_url(url: str) -> str:
    problem = api_url_problem(url)
    if problem is not None:
        raise err(problem)
    return normalize_api_url(url)


class EngineSettings(Section):
    """``[engine]``: pacing, concurrency, polling and timeouts of a run."""

    #: length of the API's fixed rate window (60 on the real API)
    rate_window_seconds: Seconds = 60
    #: cap on builds submitted and not finished (None: as many as it takes to
    #: spend the rate budget, sized from the budget and the build time learned)
    max_in_flight: Count | None = None
    #: optional cap per data center (or zone)
    max_in_flight_per_data_center: Count | None = None
    #: cap on this run's share of the token's rate budget per window, in (0, 1]
    #: (None: no cap; what other clients of the token spend is left to them anyway)
    budget_share: Share | None = None
    #: lower bound of the adaptive poll interval
    poll_min_seconds: Seconds = 5
    #: upper bound of the adaptive poll interval
    poll_max_seconds: Seconds = 60
    #: per VM: give up waiting for its build after this long
    build_timeout_seconds: Seconds = 1200
    #: first guess of a build's duration, before any build was seen
    expected_build_seconds: Seconds = 45
    #: stop submitting new builds after this many failures (None: never)
    max_failures: Count | None = None
    #: also wait for each VM to reach "started" after its build completes
    wait_until_started: bool = False
    #: stop the whole run after this long (None: no deadline)
    deadline_seconds: Seconds | None = None
    #: TCP/TLS connect timeout of one request
    connect_timeout_seconds: Seconds = 10
    #: timeout of one request's answer
    read_timeout_seconds: Seconds = 30
    #: keep retrying one retryable request for at most this long
    retry_deadline_seconds: Seconds = 120

    @field_validator("wait_until_started", mode="before")
    @classmethod
    def _bool(cls, value: Any) -> Any:
        return lower(value)

    @model_validator(mode="after")
    def _poll_bounds(self) -> EngineSettings:
        if self.poll_min_seconds > self.poll_max_seconds:
            raise PydanticCustomError("poll_bounds", "poll_min_seconds must be <= poll_max_seconds")
        return self


class OutputSettings(Section):
    """``[output]``: where results go and how the run talks to the terminal."""

    #: the JSON report
    report: PathSetting = Path("report.json")
    #: the journal (None: beside the report, "<report>.journal")
    journal: PathSetting | None = None
    #: the fleet's state: a journal's path, or a postgresql:// URL of a database that
    #: keeps every named fleet's journal and lock (None: ``journal``, as above)
    state: StateSetting | None = None
    #: also write a JUnit XML file here
    junit: PathSetting | None = None
    #: also write Prometheus text-format metrics here
    metrics: PathSetting | None = None
    #: permissions of the metrics file (it holds no secret; node-exporter may run as another user)
    metrics_mode: Mode = 0o644
    #: also write an Ansible inventory (YAML) of the VMs in place here
    inventory: PathSetting | None = None
    #: also write the report as one self-contained HTML page here
    html: PathSetting | None = None
    #: log lines as "console" text or "json" objects
    log_format: Annotated[Literal["console", "json"], BeforeValidator(lower)] = "console"
    #: least severe log level shown
    log_level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(lower)] = (
        "info"
    )
    #: show the live progress display
    progress: Annotated[bool, BeforeValidator(lower)] = True

    @model_validator(mode="after")
    def _one_state(self) -> OutputSettings:
        if (
            self.state is not None
            and self.journal is not None
            and str(self.state) != str(self.journal)
        ):
            raise PydanticCustomError(
                "one_state",
                "state and journal both name the fleet's state, and differ: give one",
            )
        return self


SECTIONS: dict[str, type[Section]] = {
    "katapult": KatapultSettings,
    "engine": EngineSettings,
    "output": OutputSettings,
}

#: dotted setting -> its environment variables, first one winning.
ENV_VARS: Mapping[str, tuple[str, ...]] = {
    f"{section}.{name}": env_names(section, name, model)
    for section, model in SECTIONS.items()
    for name in model.model_fields
}
