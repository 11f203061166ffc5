"""What a command does before anything is sent: load the settings, the spec and
the ``--limit`` selection, and check that every output path can be written."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator._logging import configure_logging, get_logger
from orchestrator.cli._console import CliExit, _err
from orchestrator.errors import ConfigError, JournalError, LimitError, SpecError

if TYPE_CHECKING:
    from orchestrator.settings import Settings
    from orchestrator.spec import Spec
    from orchestrator.vm_request import VmRequest


def _load(config_file: Path | None, overrides: dict[str, Any]) -> Settings:
    """The settings (flags over env over file over defaults), logging set up by them."""
    from orchestrator.settings import SettingsWarning, load_settings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SettingsWarning)
        try:
            settings = load_settings(config_file=config_file, overrides=overrides)
        except ConfigError as exc:
            settings = None
            error = str(exc)
    for warning in caught:
        if issubclass(warning.category, SettingsWarning):
            _err.print(f"warning: {warning.message}", markup=False)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if settings is None:
        raise CliExit(error)
    token = settings.katapult.api_token
    configure_logging(
        fmt=settings.output.log_format,
        level=settings.output.log_level,
        secrets=[token.get_secret_value()] if token is not None else [],
    )
    _log_config_file(settings)
    return settings


def _load_spec(path: str, settings: Settings, fleet: str | None = None) -> Spec:
    """The spec at ``path``; ``fleet`` (``--fleet``) names its fleet over the spec's own."""
    import dataclasses

    from orchestrator.spec import SpecDefaults, load_spec
    from orchestrator.spec._validate import fleet_problem

    if fleet is not None and (problem := fleet_problem(fleet)) is not None:
        raise CliExit(f"--fleet: {problem}")
    try:
        spec = load_spec(
            path,
            defaults=SpecDefaults(
                organization=settings.katapult.organization,
                data_center=settings.katapult.data_center,
            ),
        )
    except SpecError as exc:
        raise CliExit(str(exc)) from None
    if fleet is not None:
        spec = dataclasses.replace(spec, fleet=fleet)
    state = settings.given_state()
    if spec.fleet is None and state is not None and not isinstance(state, Path):
        from orchestrator.engine.state._pg import need_fleet

        try:
            need_fleet(state, None)
        except JournalError as exc:
            raise CliExit(str(exc)) from None
    return spec


def _limited(spec: Spec, limit: tuple[str, ...]) -> list[VmRequest]:
    """The VMs of ``spec`` selected by ``--limit`` (all of them when there is none)."""
    from orchestrator.spec import limit_vms

    try:
        return limit_vms(spec.vms, limit)
    except LimitError as exc:
        raise CliExit(f"{spec.path}: {exc}") from None


def _unwritable(*outputs: tuple[str, object]) -> None:
    """Exit 2 naming the first output file that cannot be written (others are let be).

    Found now, before anything is sent, not after every VM was built.
    """
    from orchestrator.report._atomic import check_writable

    for label, path in outputs:
        problem = check_writable(path) if isinstance(path, Path) else None
        if problem is not None:
            raise CliExit(f"cannot write the {label} {path}: {problem}")


_NO_CREDENTIALS = (
    "no API token: set KATAPULT_API_KEY (or katapult.api_token in the --config file), "
    "or add --simulate to try the built-in simulator"
)


def _log_config_file(settings: Settings) -> None:
    """At ``debug``: which config file was read (``orchestrator.config.file``)."""
    path = settings.config_file
    get_logger("orchestrator.cli").debug(
        "orchestrator.config.file",
        path=None if path is None else str(path),
        found_by=settings.config_file_found_by,
    )
