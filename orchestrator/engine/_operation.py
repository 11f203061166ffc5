"""What the conductor (:class:`~orchestrator.engine._runner.Run`) asks of an operation.

The conductor owns everything that is the same whatever is done to a VM: the
rate budget, the concurrency caps, the journal, the one poll loop, lookups by
hostname, the send-until-it-took-exactly-once loop for a request that is not
idempotent, timeouts, dooms, and the one result per VM. An operation (build,
delete) owns the decisions that make it exactly-once: where each VM starts,
what one attempt sends, what a refusal or an uncertain outcome means, and what
a poll says. Each operation's decisions are in one module:
:mod:`~orchestrator.engine._build` and :mod:`~orchestrator.engine._delete`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from orchestrator.engine._ownership import Ownership
    from orchestrator.engine._track import Track
    from orchestrator.engine.state._model import JournalEntry
    from orchestrator.errors import ApiError

__all__ = ["Operation", "OperationKind"]

OperationKind = Literal["build", "delete"]


class Operation(Protocol):
    """One kind of change the conductor drives every VM of a run through."""

    kind: OperationKind
    #: what one attempt is called in messages ("POST", "DELETE")
    request_name: str
    ownership: Ownership
    #: how long uncertain attempts waited before being reconciled (seconds of run time)
    waited_seconds: float

    def classify(self, track: Track, entry: JournalEntry | None) -> None:
        """Where ``track`` starts, from the journal and what existed (no request)."""

    async def start(self, track: Track) -> None:
        """Take ``track`` from where :meth:`classify` left it (under the concurrency cap).

        Either settles it, schedules polls, or calls ``Run.submit`` to send.
        """

    async def send(self, track: Track) -> None:
        """One attempt of the non-idempotent request; raises the API's refusal or
        a transport error, records and schedules what follows on success."""

    async def reconcile(self, track: Track) -> bool:
        """After an uncertain attempt: True when the VM's fate is settled without re-sending."""

    async def refused(self, track: Track, exc: ApiError) -> bool:
        """An error answer to :meth:`send`: True when handled (else the conductor's rules)."""

    def give_up(self, track: Track) -> None:
        """Too many uncertain attempts: watch the outcome until the timeout instead."""

    async def poll(self, track: Track) -> None:
        """One poll of ``track``; API and transport errors propagate to the conductor."""
