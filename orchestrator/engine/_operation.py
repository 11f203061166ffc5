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

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from orchestrator.engine._ownership import Ownership
    from orchestrator.engine._track import OrgContext, Phase, Track
    from orchestrator.engine.events import EventKind
    from orchestrator.engine.state._model import JournalEntry
    from orchestrator.errors import ApiError, Category
    from orchestrator.katapult import KatapultClient, VirtualMachine
    from orchestrator.report import ErrorInfo, Outcome, VmResult
    from orchestrator.settings import EngineSettings

__all__ = ["Conductor", "Operation", "OperationKind", "Where"]

T = TypeVar("T")
#: where a VM is when looked up by id
Where = Literal["present", "trash", "gone"]

OperationKind = Literal["build", "delete"]


class Conductor(Protocol):
    """What an operation may ask of the conductor, and nothing more.

    No journal, scheduler or retry settings: the conductor journals, schedules
    and retries on the operation's behalf.
    """

    settings: EngineSettings
    #: structured logger of the run (run id bound)
    log: Any

    @property
    def api(self) -> KatapultClient:
        """The API client, paced by the run's rate budget."""

    def clock(self) -> float:
        """The run's time (seconds, monotonic)."""

    async def sleep(self, seconds: float) -> None:
        """Wait on the run's time."""

    async def retried(self, call: Callable[[], Awaitable[T]]) -> T:
        """A request that is safe to repeat, retried with the run's back-off."""

    # where a VM is and whose it is

    async def find_hostname(self, track: Track, *, quiet: bool = True) -> VirtualMachine | None:
        """The VM with ``track``'s hostname (with its annotations), or None."""

    async def where(self, track: Track, vm_id: str) -> tuple[Where, VirtualMachine | None] | None:
        """One look at a VM by id; None when the look failed and settled ``track``."""

    async def where_or_raise(
        self, vm_id: str, *, retried: bool
    ) -> tuple[Where, VirtualMachine | None]:
        """One look at a VM by id; errors other than gone / in the trash propagate."""

    def seen_vm(self, track: Track, vm: VirtualMachine) -> None:
        """Remember what a look at the VM told."""

    def adopt(self, track: Track, vm_id: str) -> None:
        """Take ``vm_id`` as ``track``'s VM and follow it."""

    # sending and following

    def refusal_for(self, track: Track) -> tuple[Category, ErrorInfo] | None:
        """Why ``track`` must fail unsent, if it must."""

    async def submit(self, track: Track) -> None:
        """Send the operation's request until it took exactly once (journaled first)."""

    async def record_submitted(self, track: Track, *, task_id: str, build_id: str | None) -> None:
        """Journal that the request for ``track`` was accepted."""

    def follow_build(self, track: Track) -> None:
        """Poll an accepted build when builds of its kind are expected done."""

    def learn_build_time(self, track: Track) -> None:
        """A build was seen done: learn how long its group takes."""

    def poll_soon(self, track: Track, *, delay: float | None = None) -> None:
        """Poll ``track`` soon."""

    def repoll(self, track: Track, *, progress: float | None = None, soon: bool = False) -> None:
        """Poll ``track`` again (later, or soon)."""

    def unschedule(self, track: Track) -> None:
        """No more polls of ``track``."""

    def set_phase(self, track: Track, phase: Phase) -> None:
        """Where ``track`` is in the run (for progress)."""

    def emit(
        self,
        kind: EventKind,
        track: Track,
        *,
        category: str | None = None,
        message: str | None = None,
    ) -> None:
        """An event of ``track`` for hooks and logs."""

    # results

    def note_error(self, track: Track, exc: Exception) -> None:
        """Remember ``exc`` as ``track``'s last error."""

    def doom_for(self, org: OrgContext, exc: ApiError, *, force_org: bool = False) -> None:
        """Remember a failure that stops every later request of the run or organization."""

    def settle(self, track: Track, result: VmResult) -> None:
        """Make ``result`` the VM's one result (no journal write, no event)."""

    async def finish(
        self,
        track: Track,
        outcome: Outcome,
        *,
        category: Category | None = None,
        error: ErrorInfo | None = None,
        reason: str | None = None,
        stopped_because: str | None = None,
        journal: bool = True,
    ) -> None:
        """The VM's one result: journaled (unless ``journal`` is false) and announced."""

    async def conflict(self, track: Track, exc: ApiError | None, why: str) -> None:
        """The hostname belongs to a VM this fleet did not build."""

    async def held_by_trash(self, track: Track, exc: ApiError | None = None) -> None:
        """A VM of this fleet in the trash holds the hostname."""


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
