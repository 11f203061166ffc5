"""Deleting a fleet's VMs exactly once: every decision the delete operation makes, in one place.

The conductor (:class:`~orchestrator.engine._runner.Run`) paces, journals and
polls; this module decides, for each VM of the spec:

* **Is there one?** The hostname in the organization's VM list, or the VM id
  this fleet's build journal recorded (a VM in the trash is not listed). None:
  ``skipped``/``absent``.
* **Is it ours?** One GET: its annotations decide (``orchestrator.vm`` and
  ``orchestrator.spec``, see :mod:`~orchestrator.engine._ownership`). Where the
  API keeps no annotations, the VM is ours only if the build journal recorded
  this very VM id for this key. Another fleet's VM, or one whose owner cannot
  be told, is never touched: ``failed``/``conflict`` (``not_ours``).
* **Delete.** ``DELETE virtual_machines/_`` by id moves it to the trash. By id
  it cannot touch another VM, so an uncertain DELETE is settled by looking the
  VM up (there: send again; in the trash or gone: done), never by guessing. The
  schema documents no refusal for a running VM; an answer that says it must be
  stopped first is followed by a stop and a second DELETE.
* **Purge** (``--purge``): the trash keeps the hostname taken for days;
  ``DELETE trash_objects/_`` purges it for good and frees the name. A purge
  that finds nothing to purge means it is already gone.

Outcomes: ``succeeded`` (``deleted``: in the trash; ``purged``: gone),
``skipped`` (``absent``, ``not_selected``, ``already_deleted``), ``failed``
(``conflict``/``not_ours``, or the API's error).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from orchestrator.engine._ownership import Ownership
from orchestrator.engine._retry import retry_get
from orchestrator.engine._track import Track, error_info, utcnow
from orchestrator.errors import ApiError, NotFound, TransportError
from orchestrator.report import ErrorInfo
from orchestrator.vm_request import Lookup

if TYPE_CHECKING:
    from orchestrator.engine._operation import OperationKind
    from orchestrator.engine._runner import Run
    from orchestrator.engine.state._model import JournalEntry
    from orchestrator.katapult import VirtualMachine

__all__ = ["DeleteOperation"]

Where = Literal["present", "trash", "gone"]
#: reasons of a finished delete that leave nothing to purge
_GONE = ("purged", "absent")


def _must_stop_first(exc: ApiError) -> bool:
    """An answer saying the VM must be stopped before it can be deleted (not in the schema)."""
    text = f"{exc.code} {exc.description or ''}".lower()
    return "stop" in text and exc.http_status in (400, 406, 409, 422)


class DeleteOperation:
    """Deletes (and with ``purge``, purges) each VM of a run that this fleet built."""

    kind: OperationKind = "delete"
    request_name = "DELETE"

    def __init__(
        self,
        run: Run,
        *,
        fleet: str,
        purge: bool,
        known: Mapping[str, str],
        only_keys: set[str] | None,
    ) -> None:
        self._run = run
        self._purge = purge
        self._known = dict(known)
        self._only_keys = only_keys
        self.ownership = Ownership(fleet=fleet)
        self._stopped: set[str] = set()
        self.waited_seconds = 0.0  # an uncertain DELETE is looked up at once
        self._purge_polls: dict[str, int] = {}

    # ----------------------------------------------------------- where it starts

    def classify(self, track: Track, entry: JournalEntry | None) -> None:
        """Done already (journal), an uncertain DELETE to settle, or a VM to look at."""
        run = self._run
        if entry is not None:
            track.attempts = entry.attempts
            final = entry.result if entry.state == "finished" else None
            done = final is not None and final.outcome in ("succeeded", "skipped")
            if done and final is not None and (not self._purge or final.reason in _GONE):
                run.settle(track, final)
                return
            if entry.state in ("intent", "uncertain"):
                track.uncertain = True
            if entry.state == "submitted":
                track.uncertain = True  # it is in the trash: the look settles it
            if entry.vm_id:
                self._known.setdefault(track.key, entry.vm_id)
        if self._only_keys is not None and track.key not in self._only_keys:
            run.settle(track, track.make_result("skipped", reason="not_selected"))
            return
        track.existing_vm = track.org.existing.get(track.key) or self._known.get(track.key)

    async def start(self, track: Track) -> None:
        """Look at the VM once, judge whose it is, then delete (and purge) it."""
        run = self._run
        vm_id, track.existing_vm = track.existing_vm, None
        if vm_id is None:
            await run.finish(track, "skipped", reason="absent")
            return
        track.vm_id = vm_id
        looked = await self._look(track, vm_id)
        if looked is None:
            return
        where, vm = looked
        if where == "gone":
            await self._gone(track)
            return
        if where == "trash":
            # only a VM this fleet's journal named is looked up by id: it is ours
            if self._purge:
                await self._purge_it(track)
            else:
                await run.finish(track, "skipped", reason="already_deleted")
            return
        assert vm is not None
        run.seen_vm(track, vm)
        verdict = self.ownership.judge(track.key, vm.annotations)
        if verdict == "unknown" and self._known.get(track.key) == vm.id:
            verdict = "ours"
        if verdict != "ours":
            why = (
                "its annotations name another VM or fleet"
                if verdict == "theirs"
                else "the API keeps no annotations and no journal of this fleet names this VM"
            )
            await run.finish(
                track,
                "failed",
                category="conflict",
                reason="not_ours",
                error=ErrorInfo(
                    code="not_ours",
                    description=f"virtual machine {vm.id} ({track.hostname}) was left "
                    f"untouched: {why}",
                ),
            )
            return
        track.submitted_at = utcnow()
        track.submitted_clock = run.clock()
        await run.submit(track)

    async def _look(self, track: Track, vm_id: str) -> tuple[Where, VirtualMachine | None] | None:
        """Where the VM is (see :meth:`_where`); None when the look failed for good and
        the VM's fate was settled by it."""
        run = self._run
        try:
            return await self._where(vm_id, retried=True)
        except (ApiError, TransportError) as exc:
            run.note_error(track, exc)
            if isinstance(exc, ApiError):
                run.doom_for(track.org, exc)
            await run.finish(track, "failed", category=exc.category, error=error_info(exc))
            return None

    async def _where(self, vm_id: str, *, retried: bool) -> tuple[Where, VirtualMachine | None]:
        """Present (with its annotations), in the trash, or gone; other errors propagate."""
        run = self._run

        async def get() -> VirtualMachine:
            return await run.client.get_vm(Lookup("id", vm_id))

        try:
            vm = await (retry_get(get, **run.retry) if retried else get())
        except NotFound:
            return "gone", None
        except ApiError as exc:
            if exc.code != "object_in_trash":
                raise
            return "trash", None
        return "present", vm

    async def _follow(self, track: Track, where: Where, vm: VirtualMachine | None) -> bool:
        """After a DELETE: gone or in the trash settles the VM (True); present does not."""
        if where == "gone":
            await self._gone(track)
        elif where == "trash":
            await self._in_trash(track)
        else:
            assert vm is not None
            self._run.seen_vm(track, vm)
            return False
        return True

    # ---------------------------------------------------------------- sending

    async def send(self, track: Track) -> None:
        """One DELETE by id; on a 200 the VM is in the trash."""
        run = self._run
        assert track.vm_id is not None
        trash = await run.client.delete_vm(track.vm_id)
        if run.journal is not None:
            await run.journal.record_submitted(
                track.key, task_id=trash.id, build_id=None, submitted_at=utcnow()
            )
        run.emit("submitted", track)
        await self._in_trash(track)

    async def refused(self, track: Track, exc: ApiError) -> bool:
        """In the trash already or gone: done. Must be stopped first: stop, then again."""
        if exc.code == "object_in_trash":
            await self._in_trash(track)
            return True
        if isinstance(exc, NotFound):
            await self._gone(track)
            return True
        if _must_stop_first(exc) and track.key not in self._stopped and track.vm_id:
            # not in the schema, but a reading to be ready for: stop, then delete again
            self._stopped.add(track.key)
            run = self._run
            run.emit("retrying", track, message=f"{exc}: stopping it first")
            vm_id = track.vm_id
            try:
                await retry_get(lambda: run.client.stop_vm(vm_id), **run.retry)
                await self._until_stopped(track, vm_id)
            except (ApiError, TransportError) as stop_exc:
                run.note_error(track, stop_exc)
                return False
            await run.submit(track)
            return True
        return False

    async def _until_stopped(self, track: Track, vm_id: str) -> None:
        run = self._run
        deadline = run.clock() + run.settings.build_timeout_seconds
        while run.clock() < deadline:
            vm = await retry_get(lambda: run.client.get_vm(Lookup("id", vm_id)), **run.retry)
            run.seen_vm(track, vm)
            if vm.state == "stopped":
                return
            await run.sleep(run.settings.poll_min_seconds)

    async def reconcile(self, track: Track) -> bool:
        """After an uncertain DELETE: look. Still there: send again (safe by id)."""
        assert track.vm_id is not None
        try:
            where, vm = await self._where(track.vm_id, retried=True)
        except (ApiError, TransportError):
            self.give_up(track)
            return True
        return await self._follow(track, where, vm)

    def give_up(self, track: Track) -> None:
        """The DELETE's outcome cannot be learned now: watch the VM until the timeout."""
        run = self._run
        track.gave_up = True
        track.poll_kind = "vm"
        run.set_phase(track, "building")
        run.emit("reconciling", track, message="watching the VM until it is in the trash")
        run.scheduler.poll_soon(track.key, group=track.group)

    # ---------------------------------------------------------------- results

    async def _in_trash(self, track: Track) -> None:
        if self._purge:
            await self._purge_it(track)
        else:
            track.vm_state = "in_trash"
            await self._run.finish(track, "succeeded", reason="deleted")

    async def _gone(self, track: Track) -> None:
        """Neither there nor in the trash: our DELETE (or purge) took, or none was needed."""
        track.vm_state = None
        if track.attempts or track.uncertain or track.task_id:
            reason = "purged" if self._purge else "deleted"
            await self._run.finish(track, "succeeded", reason=reason)
        else:
            await self._run.finish(track, "skipped", reason="absent")

    async def _purge_it(self, track: Track) -> None:
        """Purge the VM from the trash (idempotent: a purge of nothing means it is gone)."""
        run = self._run
        assert track.vm_id is not None
        vm_id = track.vm_id
        try:
            task = await retry_get(
                lambda: run.client.purge_trash_object(object_id=vm_id), **run.retry
            )
        except NotFound:
            await self._gone(track)
            return
        except (ApiError, TransportError) as exc:
            run.note_error(track, exc)
            if isinstance(exc, ApiError):
                run.doom_for(track.org, exc)
            category = exc.category
            await run.finish(track, "failed", category=category, error=error_info(exc))
            return
        track.task_id = task.id
        track.poll_kind = "task"
        track.submitted_clock = track.submitted_clock or run.clock()
        run.set_phase(track, "building")
        run.emit("submitted", track, message="purging from the trash")
        self._poll_purge_soon(track)

    def _poll_purge_soon(self, track: Track) -> None:
        """Purges take seconds, not a build's time: poll from ``poll_min``, doubling."""
        run = self._run
        n = self._purge_polls.get(track.key, 0)
        self._purge_polls[track.key] = n + 1
        delay = min(run.settings.poll_min_seconds * 2 ** min(n, 6), run.settings.poll_max_seconds)
        run.scheduler.poll_soon(track.key, group=track.group, delay=delay)

    # ---------------------------------------------------------------- polling

    async def poll(self, track: Track) -> None:
        """The purge task, or (after uncertain DELETEs) the VM itself."""
        run = self._run
        if track.poll_kind == "task" and track.task_id:
            task = await run.client.get_task(track.task_id)
            track.poll_errors = 0
            if task.status == "completed":
                track.vm_state = None
                await run.finish(track, "succeeded", reason="purged")
            elif task.status == "failed":
                error = ErrorInfo(code="purge_failed", description=f"task {task.id} ended failed")
                await run.finish(track, "failed", category="server_error", error=error)
            else:
                self._poll_purge_soon(track)
            return
        assert track.vm_id is not None
        where, vm = await self._where(track.vm_id, retried=False)
        if not await self._follow(track, where, vm):
            run.repoll(track)
