"""Results that a run of 100,000 VMs can hold: one set of field names shared by many models.

Pydantic keeps, on every model, the set of the field names it was given
(``model_fields_set``). A run's results are all made the same way, so those
sets hold the same few names over and over, and a set of 5 to 18 names takes
728 bytes: for a :class:`~orchestrator.report.VmResult` and its
:class:`~orchestrator.report.VmRef`, about 1.5 KB of each VM's 5 KB. They are
the only per-model state pydantic keeps beside the fields, so :func:`compact`
points a result (and its VM reference) at one set per distinct content. Both
models are frozen, which is what makes the sharing safe: pydantic changes a
model's set only in ``__setattr__`` (refused on a frozen model) and in
``model_copy(update=...)``, which copies the set first.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from orchestrator.report import VmResult

__all__ = ["compact"]

_M = TypeVar("_M", bound=BaseModel)

#: one set per distinct content (a handful: the fields a result is made with)
_SHARED: dict[frozenset[str], set[str]] = {}


def _shared(model: _M) -> _M:
    names: Any = model.__pydantic_fields_set__
    key = frozenset(names)
    shared = _SHARED.get(key)
    if shared is None:
        if len(_SHARED) >= 256:  # never reached by the engine's results; a bound all the same
            return model
        shared = _SHARED[key] = set(key)
    if names is not shared:
        object.__setattr__(model, "__pydantic_fields_set__", shared)
    return model


def compact(result: VmResult) -> VmResult:
    """``result`` (and its VM reference) sharing their field-name sets; returned."""
    if result.virtual_machine is not None:
        _shared(result.virtual_machine)
    return _shared(result)
