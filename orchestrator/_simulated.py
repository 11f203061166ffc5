"""Settings for a run against the in-process simulator (``--simulate``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from orchestrator.settings import Settings

__all__ = ["SIMULATED_TIME_SCALE", "simulated_settings"]

#: simulated seconds per real second: a 40 s build takes 2 s, a 60 s window 3 s
SIMULATED_TIME_SCALE = 20.0


def simulated_settings(settings: Settings, url: str, token: str, scale: float) -> Settings:
    """``settings`` pointed at the simulator, with every duration scaled like its clock."""
    engine = settings.engine
    return settings.model_copy(
        update={
            "katapult": settings.katapult.model_copy(
                update={"api_url": url, "api_token": SecretStr(token)}
            ),
            "engine": engine.model_copy(
                update={
                    "rate_window_seconds": engine.rate_window_seconds / scale,
                    "poll_min_seconds": engine.poll_min_seconds / scale,
                    "poll_max_seconds": engine.poll_max_seconds / scale,
                    "expected_build_seconds": engine.expected_build_seconds / scale,
                    "build_timeout_seconds": engine.build_timeout_seconds / scale,
                    "retry_deadline_seconds": engine.retry_deadline_seconds / scale,
                }
            ),
        }
    )
