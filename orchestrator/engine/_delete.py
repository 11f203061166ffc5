"""Deleting a fleet's VMs exactly once: every decision the delete operation makes, in one place.

The conductor (:class:`~orchestrator.engine._runner.Run`) paces, journals and
polls; this module carries out, for each VM of the spec, what
:func:`~orchestrator.engine.state.fate.delete_fate` decides from what the API
holds now and what the fleet's *build* rows remember (a delete's own rows are
never evidence of anything):

* **Is there one?** The hostname in the organization's VM list, or the VM this
  fleet's own build created (a VM in the trash is not listed): one GET. None,
  and no build of the fleet in flight: ``skipped``/``absent``. A build in
  flight is followed until it shows its VM (or ends without one); a POST whose
  outcome was unknown is looked for again past the time a VM takes to appear.
* **Is it ours?** Its annotations carry this fleet's identity, or (where the
  API keeps none) this fleet's accepted build created this very VM. Anything
  else is never touched: ``failed``/``conflict`` (``not_ours``).
* **Stop, then delete.** As the official clients do, a started VM gets one stop
  (an uncertain one is settled by looking at the VM) and is waited for until
  it is stopped; one still building, starting or stopping is waited for.
  ``DELETE virtual_machines/_`` by id moves it to the trash. By id it cannot
  touch another VM, so an uncertain DELETE is settled by looking the VM up
  (there: send again; in the trash or gone: done). A refusal that says the VM
  runs (read in its code, description and ``detail.errors``) is followed by a
  stop and a second DELETE.
* **Purge** (``--purge``): the trash keeps the hostname taken for days;
  ``DELETE trash_objects/_`` purges it for good and frees the name. A purge
  that finds nothing to purge means it is already gone.

Outcomes: ``succeeded`` (``deleted``: in the trash; ``purged``: gone; their
events are ``deleted``/``purged``, never ``succeeded``), ``skipped``
(``absent``, ``not_selected``, ``in_trash``), ``failed`` (``conflict``/
``not_ours``, or the API's error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from orchestrator.engine._appearance import AppearanceModel
from orchestrator.engine._ownership import FLEET_KEY, VM_KEY, Ownership
from orchestrator.engine._track import Track, error_info, sending, utcnow
from orchestrator.engine.state.fate import DeleteFate, Row, Seen, delete_fate, row_of, seen_of
from orchestrator.errors import ApiError, NotFound, RateLimited, TransportError, detail_messages
from orchestrator.report import ErrorInfo

if TYPE_CHECKING:
    from orchestrator.engine._operation import Conductor, OperationKind, Where
    from orchestrator.engine.state._model import JournalEntry
    from orchestrator.katapult import VirtualMachine

__all__ = ["DeleteOperation"]


#: VM states a DELETE is sent in at once
_DELETABLE = frozenset({"stopped", "failed", "orphaned"})
#: VM states a stop is sent in first (the Terraform provider stops a started VM)
_STOPPABLE = frozenset({"started"})
#: the most stops sent for one VM whose outcome stayed unknown
_MAX_STOPS = 4
#: a stop's duration before any was seen, in ``poll_min_seconds`` (so it follows the
#: run's clock): the recorded stop took 20 s, four times the default poll_min of 5 s
_STOP_PRIOR_POLLS = 4
#: a VM still ``started`` this many stop durations after a stop whose answer was lost:
#: that stop did not take (a pending stop shows the VM still started, so it cannot be
#: told by looking at once)
_STOP_SETTLE = 2.0


def must_stop_first(exc: ApiError) -> bool:
    """An answer refusing a DELETE because the VM is not stopped (not in the schema).

    Read in the code, the description and the ``detail`` (where a
    ``validation_error`` or ``deletion_restricted`` carries its ``errors``).
    """
    if exc.http_status not in (400, 406, 409, 422):
        return False
    texts = [exc.code or "", exc.description or "", *detail_messages(exc.detail)]
    return any("stop" in text.lower() or "running" in text.lower() for text in texts)


class DeleteOperation:
    """Deletes (and with ``purge``, purges) each VM of a run that this fleet built."""

    kind: OperationKind = "delete"
    request_name = "DELETE"

    def __init__(
        self,
        run: Conductor,
        *,
        fleet: str,
        purge: bool,
        only_keys: set[str] | None,
    ) -> None:
        self._run = run
        self._purge = purge
        self._only_keys = only_keys
        self.ownership = Ownership(fleet=fleet)
        self._appearance = AppearanceModel(
            expected_build_seconds=run.settings.expected_build_seconds
        )
        self._stopped: set[str] = set()
        #: key -> stops sent, and when the last one whose answer was lost was sent
        self._stops: dict[str, int] = {}
        self._stop_lost_at: dict[str, float] = {}
        #: key -> when its last stop was sent; the shortest time a stop was seen to take
        #: (each an upper bound: the poll that saw it stopped), once one was seen
        self._stop_sent_at: dict[str, float] = {}
        self._stop_took: float | None = None
        self.waited_seconds = 0.0  # an uncertain DELETE is looked up at once
        self._purge_polls: dict[str, int] = {}
        #: the reading delete_running, found out: a DELETE refused because its VM was not
        #: stopped (what the API said, for the report); None: never met
        self.delete_refused: str | None = None

    # ----------------------------------------------------------- where it starts

    def classify(self, track: Track, entry: JournalEntry | None) -> None:
        """Remember what the fleet's *build* row says (``entry``; a delete's own rows are
        never evidence), and whether the listing shows the hostname. Nothing is decided."""
        run = self._run
        if self._only_keys is not None and track.key not in self._only_keys:
            run.settle(track, track.make_result("skipped", reason="not_selected"))
            return
        row = track.row = row_of(entry)
        build_id = (
            entry.build_id or (entry.result.build_id if entry.result else None) if entry else None
        )
        if row.fact == "accepted" and build_id:
            track.build_id, track.poll_kind = build_id, "build"
        elif row.fact == "accepted":
            row = track.row = Row("sent", created=row.created)  # no build to follow: look
        if row.fact == "sent" and entry is not None:
            ago = max(0.0, (utcnow() - entry.updated_at).total_seconds())
            track.sends.last_uncertain_clock = run.clock() - ago
        track.existing_vm = track.org.existing.get(track.key) or row.created

    async def start(self, track: Track) -> None:
        """Look at what the API holds, then do what :func:`delete_fate` says."""
        run = self._run
        seen: Seen = "none"
        vm: VirtualMachine | None = None
        vm_id, track.existing_vm = track.existing_vm, None
        if vm_id is None and track.row.fact == "sent":
            vm = await self._look_again(track)
            if track.result is not None:
                return
            if vm is not None:
                seen = self._seen(track, vm)
        elif vm_id is not None:
            looked = await run.where(track, vm_id)
            if looked is None:
                return
            where, vm = looked
            if where == "trash":
                track.vm_id = vm_id
                seen = "trash_ours" if vm_id == track.row.created else "trash_theirs"
            elif vm is not None:
                seen = self._seen(track, vm)
        fate = delete_fate(
            seen, track.row, vm_id=vm.id if vm else None, vm_state=vm.state if vm else None
        )
        await self._carry_out(track, fate, vm)

    def _seen(self, track: Track, vm: VirtualMachine) -> Seen:
        self._run.seen_vm(track, vm)
        verdict = self.ownership.judge(track.key, vm.annotations)
        shown = vm.annotations or {}
        if verdict == "theirs" and FLEET_KEY not in shown and VM_KEY not in shown:
            # no annotations of any fleet: "theirs" only because some other VM showed
            # that annotations can be kept (another fleet's, set by hand perhaps); the
            # journal's proof that this fleet's build created this very VM still holds
            verdict = "unknown"
        return seen_of(verdict, vm.state)

    async def _look_again(self, track: Track) -> VirtualMachine | None:
        """A POST of ours may still create a VM: look once past the time a build takes to
        show its VM (as a build would before re-sending), never "absent" before."""
        run = self._run
        since = run.clock() - (track.sends.last_uncertain_clock or run.clock())
        wait = self._appearance.settle_seconds() - since
        if wait > 0:
            run.emit(
                "reconciling", track, message=f"a build may still appear: look in {wait:.0f} s"
            )
            self.waited_seconds += wait
            await run.sleep(wait)
        try:
            return await run.find_hostname(track, quiet=False)
        except (ApiError, TransportError) as exc:
            await run.finish(track, "failed", category=exc.category, error=error_info(exc))
            return None

    async def _carry_out(self, track: Track, fate: DeleteFate, vm: VirtualMachine | None) -> None:
        run = self._run
        if fate == "absent":
            await run.finish(track, "skipped", reason="absent")
        elif fate == "in_trash":
            if self._purge:
                await self._purge_it(track)
            else:
                track.vm_state = "in_trash"
                await run.finish(track, "skipped", reason="in_trash")
        elif fate == "not_ours":
            await self._not_ours(track, vm)
        elif fate in ("follow_build", "wait"):
            # a VM of ours may still appear, or is still being built: follow it first
            track.poll_kind = "wait" if fate == "wait" else track.poll_kind
            track.submitted_clock = track.submitted_clock or run.clock()
            run.set_phase(track, "building")
            run.emit("building", track, message="a build of this fleet is under way")
            run.poll_soon(track)
        else:
            assert vm is not None
            track.vm_id = vm.id
            track.submitted_at = track.submitted_at or utcnow()
            track.submitted_clock = track.submitted_clock or run.clock()
            await self._delete_when_stopped(track, vm.state)

    async def _delete_when_stopped(self, track: Track, state: str | None) -> None:
        """DELETE a stopped (or failed) VM; stop a started one first and wait for it, as
        the official clients do; wait for one starting, stopping or busy to settle."""
        run = self._run
        if state in _DELETABLE or state is None:
            await run.submit(track)
        elif state in _STOPPABLE and track.key not in self._stopped:
            await self._stop(track)
        else:
            track.poll_kind = "stopping"
            run.set_phase(track, "building")
            run.emit("building", track, message=f"waiting for it to settle (state {state})")
            self._poll_again_soon(track)

    async def _stop(self, track: Track) -> None:
        """One stop per VM, exactly once like the rest: a stop whose outcome is unknown is
        settled by looking at the VM (stopping or stopped: it took), never re-sent blindly.
        A stop still pending shows the VM ``started``: a VM that still looks started after
        a lost answer is looked at again a stop's time later (:meth:`_stop_again`)."""
        run = self._run
        vm_id = track.vm_id
        assert vm_id is not None
        for _ in range(_MAX_STOPS):
            self._stops[track.key] = self._stops.get(track.key, 0) + 1
            self._stop_sent_at[track.key] = run.clock()
            try:
                with sending(track):
                    await run.api.stop_vm(vm_id)
            except RateLimited as exc:
                run.note_error(track, exc)
                await run.sleep(run.settings.poll_min_seconds)
                continue
            except (ApiError, TransportError) as exc:
                run.note_error(track, exc)
                uncertain = (isinstance(exc, ApiError) and exc.outcome_uncertain) or (
                    isinstance(exc, TransportError) and exc.maybe_sent
                )
                where, vm = await run.where_or_raise(vm_id, retried=True)
                if where != "present" or vm is None:
                    await self._follow(track, where, vm)
                    return
                run.seen_vm(track, vm)
                if vm.state not in _STOPPABLE:
                    break  # it took (stopping, stopped), or the VM is busy: wait for it
                if uncertain:
                    # it may be pending: never sent again at once, looked at later
                    self._stop_lost_at[track.key] = run.clock()
                    break
                if isinstance(exc, ApiError):
                    await run.finish(track, "failed", category=exc.category, error=error_info(exc))
                    return
                continue  # surely never sent (the connection was refused): send it
            break
        self._stopped.add(track.key)
        run.emit("submitted", track, message="stopping it before the DELETE")
        track.poll_kind = "stopping"
        run.set_phase(track, "building")
        self._purge_polls.pop(track.key, None)
        # as long as stops take: one look, most often, sees it stopped; then from
        # poll_min, doubling
        run.poll_soon(track, delay=self._stop_seconds())

    def _stop_seconds(self) -> float:
        """How long a stop takes: the shortest seen in this run (before any was seen,
        the recorded one's time), within the poll bounds."""
        settings = self._run.settings
        took = self._stop_took
        if took is None:
            took = _STOP_PRIOR_POLLS * settings.poll_min_seconds
        return min(max(settings.poll_min_seconds, took), settings.poll_max_seconds)

    def _stop_again(self, track: Track) -> Literal["again", "give_up", "wait"]:
        """The last stop's answer was lost and the VM still looks started two stops' time
        later: that stop did not take; one more is sent (``again``), or, after
        :data:`_MAX_STOPS`, the VM is given up (``give_up``). Else ``wait``."""
        run = self._run
        lost_at = self._stop_lost_at.get(track.key)
        if lost_at is None:
            return "wait"
        if run.clock() - lost_at < _STOP_SETTLE * self._stop_seconds():
            return "wait"
        del self._stop_lost_at[track.key]
        if self._stops.get(track.key, 0) >= _MAX_STOPS:
            return "give_up"
        run.emit("retrying", track, message="the stop whose answer was lost did not take")
        return "again"

    async def _still_running(self, track: Track, state: str | None) -> None:
        """Every stop's answer was lost and the VM still runs: failed, never deleted."""
        stops = self._stops.get(track.key, 0)
        await self._run.finish(
            track,
            "failed",
            category=track.last_category or "network",
            error=ErrorInfo(
                code="not_stopped",
                description=f"virtual machine {track.vm_id} ({track.hostname}) is still "
                f"{state} after {stops} stops whose answers were lost: it was not deleted",
            ),
        )

    async def _not_ours(self, track: Track, vm: VirtualMachine | None) -> None:
        vm_id = vm.id if vm is not None else track.vm_id
        found = (vm.annotations or {}).get(FLEET_KEY) if vm is not None else None
        why = (
            f"its annotations name fleet {found!r}, this is fleet {self.ownership.fleet!r}"
            if found is not None
            else "it carries no annotations of this fleet and no build of this fleet "
            "created it (its journal names no such VM)"
            if vm is not None
            else "the trash holds it and no build of this fleet created it"
        )
        await self._run.finish(
            track,
            "failed",
            category="conflict",
            reason="not_ours",
            error=ErrorInfo(
                code="not_ours",
                description=f"virtual machine {vm_id} ({track.hostname}) was left untouched: {why}",
            ),
        )

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
        trash = await run.api.delete_vm(track.vm_id)
        await run.record_submitted(track, task_id=trash.id, build_id=None)
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
        if must_stop_first(exc) and self.delete_refused is None:
            said = "; ".join(detail_messages(exc.detail)) or exc.description or ""
            self.delete_refused = (
                f"DELETE of {track.vm_id} ({track.hostname}) answered {exc.http_status} "
                f"{exc.code}: {said}"
            )
        if must_stop_first(exc) and track.key not in self._stopped and track.vm_id:
            # refused while running (a reading of the API): stop, wait, then DELETE again
            self._run.emit("retrying", track, message=f"{exc}: stopping it first")
            await self._stop(track)
            return True
        return False

    async def reconcile(self, track: Track) -> bool:
        """After an uncertain DELETE: look. Still there: send again (safe by id)."""
        assert track.vm_id is not None
        try:
            where, vm = await self._run.where_or_raise(track.vm_id, retried=True)
        except (ApiError, TransportError):
            self.give_up(track)
            return True
        return await self._follow(track, where, vm)

    def give_up(self, track: Track) -> None:
        """The DELETE's outcome cannot be learned now: watch the VM until the timeout."""
        run = self._run
        track.sends.gave_up = True
        track.poll_kind = "vm"
        run.set_phase(track, "building")
        run.emit("reconciling", track, message="watching the VM until it is in the trash")
        run.poll_soon(track)

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
        if track.attempts or track.sends.uncertain or track.task_id:
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
            task = await run.retried(lambda: run.api.purge_trash_object(object_id=vm_id))
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
        self._poll_again_soon(track)

    def _poll_again_soon(self, track: Track) -> None:
        """Purges and stops take seconds, not a build's time: poll from ``poll_min``,
        doubling."""
        run = self._run
        n = self._purge_polls.get(track.key, 0)
        self._purge_polls[track.key] = n + 1
        delay = min(run.settings.poll_min_seconds * 2 ** min(n, 6), run.settings.poll_max_seconds)
        run.poll_soon(track, delay=delay)

    # ---------------------------------------------------------------- polling

    async def poll(self, track: Track) -> None:
        """The purge task, or (after uncertain DELETEs) the VM itself."""
        run = self._run
        if track.poll_kind == "task" and track.task_id:
            task = await run.api.get_task(track.task_id)
            track.poll_errors = 0
            if task.status == "completed":
                track.vm_state = None
                await run.finish(track, "succeeded", reason="purged")
            elif task.status == "failed":
                error = ErrorInfo(code="purge_failed", description=f"task {task.id} ended failed")
                await run.finish(track, "failed", category="server_error", error=error)
            else:
                self._poll_again_soon(track)
            return
        if track.poll_kind in ("build", "wait"):
            await self._poll_until_built(track)
            return
        if track.poll_kind == "stopping":
            assert track.vm_id is not None
            where, vm = await run.where_or_raise(track.vm_id, retried=False)
            track.poll_errors = 0
            if where != "present" or vm is None:
                await self._follow(track, where, vm)
                return
            run.seen_vm(track, vm)
            sent_at = self._stop_sent_at.pop(track.key, None) if vm.state in _DELETABLE else None
            if sent_at is not None and track.key not in self._stop_lost_at:
                took = run.clock() - sent_at
                self._stop_took = took if self._stop_took is None else min(self._stop_took, took)
            if vm.state in _DELETABLE or (
                vm.state in _STOPPABLE and track.key not in self._stopped
            ):
                run.unschedule(track)
                track.poll_kind = "vm"
                await self._delete_when_stopped(track, vm.state)
            elif vm.state in _STOPPABLE and (verdict := self._stop_again(track)) != "wait":
                run.unschedule(track)
                if verdict == "again":
                    await self._stop(track)
                else:
                    await self._still_running(track, vm.state)
            else:
                self._poll_again_soon(track)
            return
        assert track.vm_id is not None
        where, vm = await run.where_or_raise(track.vm_id, retried=False)
        if not await self._follow(track, where, vm):
            run.repoll(track)

    async def _poll_until_built(self, track: Track) -> None:
        """A build of ours is under way: once it shows its VM and that VM is no longer
        being built, decide again; a build that ends failed without one leaves nothing."""
        run = self._run
        vm_id = track.vm_id
        build_over = False
        if track.poll_kind == "build" and track.build_id:
            build = await run.api.get_build(track.build_id)
            track.poll_errors = 0
            build_over = build.state in ("complete", "failed")
            if build.virtual_machine is not None:
                vm_id = build.virtual_machine.id
                track.row = Row(track.row.fact, created=vm_id)  # our build names its VM
            elif build_over:
                # ended, naming no VM (it failed without one, or its VM is gone since)
                await run.finish(track, "skipped", reason="absent")
                return
        if vm_id is None:
            run.repoll(track)
            return
        where, vm = await run.where_or_raise(vm_id, retried=False)
        seen: Seen = "none"
        if where == "trash":
            seen = "trash_ours" if vm_id == track.row.created else "trash_theirs"
        elif vm is not None:
            seen = self._seen(track, vm)
        fate = delete_fate(
            seen,
            Row("created", created=track.row.created),
            vm_id=vm_id,
            vm_state=vm.state if vm else None,
        )
        if fate == "wait" or (where == "gone" and track.poll_kind == "build" and not build_over):
            # (a VM the build names may show its record a moment later)
            track.poll_kind = "wait"
            track.vm_id = vm_id
            run.repoll(track)
            return
        run.unschedule(track)
        await self._carry_out(track, fate, vm)
