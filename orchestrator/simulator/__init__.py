"""A faithful stand-in for Katapult Core API v1, for tests, demos and benchmarks.

``run_simulator()`` starts it on a local port; ``create_app()`` gives the
``aiohttp.web`` application; ``serve()`` runs it for ``orchestrator simulate``.
Tune or break it on purpose with :class:`SimulatorConfig` and
:class:`FaultConfig`; ``GET /_simulator/state`` (or
``SimulatorState.snapshot()``) tells what was really created.

What it copies from the recordings and the server's schema: the routes the
orchestrator uses (Apia's route tree, placeholders or ids in the path),
argument merging (query < JSON body, path only for a missing lookup),
lookups (exactly one key), every error's status, code, description and
envelope with ``X-Api-Schema: json-error``, the rate-limit headers on every
answer, fixed rate windows, the build/task/VM life cycle, pagination with
``large_set``, the 201 build answer with ``build`` and
``virtual_machine_build``, ``PATCH`` of a VM (hostname, name, description,
tags, annotations; a new hostname frees the old one), and the end of a VM's
life: ``stop`` and
``shutdown`` (a task), ``DELETE`` to the trash (the hostname stays taken,
lookups give ``406 object_in_trash``), the trash objects and their purge (a
task; then the VM is gone and its hostname free).

Where the real API is unconfirmed and it matters to an exactly-once client,
it plays either reading, chosen by a field of :class:`SimulatorConfig`
(``hostname_taken_at``, ``vm_record_at``, ``duplicate_hostnames``,
``failed_build_leaves_vm``, ``copy_annotations``, ``trash_holds_hostname``,
``annotations_copied_at``, ``annotation_filter``, ``xml_without_interface``,
``legacy_build_key``, ``xml_tags``, ``vm_list_per_page``;
each documented there with what is known and what is guessed;
``SimulatorConfig.pessimistic()`` sets the hardest combination). By default:

- a taken hostname (trash included, case-insensitive, reserved from the moment
  the POST is accepted) is ``422 validation_error`` with
  ``["Hostname has already been taken"]``;
- a build's VM record appears at 45% of its duration;
- a failed build never gets a VM and frees its hostname when it fails;
- annotations given to a build stick to its VM, with its VM record;
- the VM list honours its annotation filter;
- an XML build without a network interface gets one on the default network;
- builds are answered under both build keys;
- a VM in the trash keeps its hostname taken.

Elsewhere it picks one reading (marked *inferred*):

- a bad hostname is ``422 validation_error`` (``Hostname is invalid`` /
  ``is too long``);
- without a hostname the server picks a random one (``amber-otter-x1y2z3``);
- ``DELETE`` trashes a VM whatever its power state (the schema documents no
  refusal for a running VM) and never answers ``task_queueing_error``; a stop
  takes ``stop_seconds`` (20, pending for 17 as recorded), a purge
  ``purge_seconds`` (4);
- authentication errors and unknown routes spend no rate budget; their
  headers show the token's window unchanged;
- a spec XML naming an unknown object, or no location, is
  ``400 invalid_spec_xml``; a zone or network outside the chosen data center
  is ``422 validation_error``;
- the seeded disk templates are universal: listed only with
  ``include_universal=true`` (as the real templates are).
"""

from __future__ import annotations

from orchestrator.simulator._command import (
    listening_line,
    simulate_argv,
    url_from_line,
)
from orchestrator.simulator._config import FaultConfig, SimulatorConfig
from orchestrator.simulator._server import RunningSimulator, create_app, run_simulator, serve
from orchestrator.simulator._state import Clock, ScaledClock, SimulatorState

__all__ = [
    "Clock",
    "FaultConfig",
    "RunningSimulator",
    "ScaledClock",
    "SimulatorConfig",
    "SimulatorState",
    "create_app",
    "listening_line",
    "run_simulator",
    "serve",
    "simulate_argv",
    "url_from_line",
]
