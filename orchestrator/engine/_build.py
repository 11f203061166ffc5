"""Building VMs exactly once: every decision the build operation makes, in one place.

The conductor (:class:`~orchestrator.engine._runner.Run`) sends, polls,
journals and paces; this module decides. In short (each rule holds on every
reading of the API listed as unconfirmed in ``docs/guarantees.md``):

* every build carries annotations naming the VM and its fleet
  (:mod:`orchestrator.engine._ownership`); a VM found by hostname is judged by
  them: ours, someone else's, or unknown (the API does not copy annotations);
* the journal records the intent before a POST goes out, the ids as soon as
  the 201 arrives;
* a POST whose outcome is unknown (timeout, reset, 5xx, a body that is not the
  API's) is never sent again blindly: the hostname is looked up at once and
  again once it has stayed free past the learned time a build takes to show
  its VM record (:mod:`orchestrator.engine._appearance`); only a hostname still
  free then is submitted again;
* a taken hostname (refusal or lookup) is adopted when the VM is ours, or when
  ownership cannot be told and an earlier POST of this VM was uncertain; it is
  a ``conflict`` when the VM is someone else's;
* a VM whose hostname existed before the run is looked at once: in state
  ``failed`` (or when the journal recorded its build as failed) it ends
  ``failed``/``build_failed`` and is never rebuilt over; someone else's is a
  ``conflict``; otherwise it is ``skipped`` (``already_exists``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.engine._appearance import AppearanceModel
from orchestrator.engine._ownership import Ownership, Verdict, ownership_annotations
from orchestrator.engine._retry import retry_get
from orchestrator.engine._tagging import apply_tags
from orchestrator.engine._track import Track, utcnow
from orchestrator.errors import ApiError, TransportError, detail_messages
from orchestrator.katapult import build_spec_xml
from orchestrator.report import ErrorInfo
from orchestrator.vm_request import Lookup, VmRequest

if TYPE_CHECKING:
    from collections.abc import Sequence

    from orchestrator.engine._journal_model import JournalEntry
    from orchestrator.engine._operation import OperationKind
    from orchestrator.engine._runner import Run
    from orchestrator.katapult import CreatedBuild, VirtualMachine

__all__ = ["BuildOperation", "is_hostname_taken"]

_VM_SETTLED = frozenset({"started", "starting"})
#: VM states of a build still under way: an existing VM of ours in one is followed, not skipped
_VM_BUILDING = frozenset({"allocating", "allocated"})
#: VM states that make an existing VM unusable: it must be deleted before it can be rebuilt
_VM_BROKEN = frozenset({"failed", "orphaned"})


def is_hostname_taken(exc: ApiError) -> bool:
    """True when the API refused a build because the hostname is in use.

    The exact error is unconfirmed on the real API; the simulator answers 422
    ``validation_error`` with ``detail.errors: ["Hostname has already been
    taken"]``. Any code whose messages speak of a taken/existing hostname counts.
    """
    if exc.code in ("hostname_taken", "hostname_already_taken", "hostname_in_use"):
        return True
    if exc.http_status not in (400, 409, 422):
        return False
    for message in [*detail_messages(exc.detail), exc.description or ""]:
        text = message.lower()
        if "hostname" in text and any(w in text for w in ("taken", "already", "in use", "exists")):
            return True
    return False


class BuildOperation:
    """Builds each VM of a run once (see the module's docstring for the rules)."""

    kind: OperationKind = "build"
    request_name = "POST"

    def __init__(self, run: Run, *, fleet: str, only_keys: set[str] | None) -> None:
        self._run = run
        self._only_keys = only_keys
        self.ownership = Ownership(fleet=fleet)
        self._appearance = AppearanceModel(
            expected_build_seconds=run.settings.expected_build_seconds
        )
        self._probing_ownership = False
        self._xml: dict[str, str] = {}
        #: how long uncertain POSTs waited for their hostname to stay free (simulated s)
        self.waited_seconds = 0.0

    # ----------------------------------------------------------- where it starts

    def classify(self, track: Track, entry: JournalEntry | None) -> None:
        """Decide where a VM starts: done, poll, judge an existing VM, reconcile or submit.

        Nothing here sends a request; a VM whose hostname exists is judged by
        :meth:`_judge_existing` when its turn comes.
        """
        run = self._run
        existing = track.org.existing.get(track.key)
        if entry is not None:
            track.attempts = entry.attempts
            final = entry.result if entry.state == "finished" else None
            selected = self._only_keys is not None and track.key in self._only_keys
            if final is not None and final.outcome in ("succeeded", "skipped"):
                # selected (--limit), it is looked at again, unless it is still there
                built = final.virtual_machine.id if final.virtual_machine else None
                if not selected or (built is not None and built == existing):
                    run.settle(track, final)
                    return
            if entry.state == "submitted" and (entry.build_id or entry.task_id):
                track.task_id, track.build_id = entry.task_id, entry.build_id
                track.submitted_at = entry.submitted_at
                track.submitted_clock = run.clock()
                track.poll_kind = "build" if entry.build_id else "task"
                return
            if entry.state in ("intent", "uncertain"):
                track.uncertain = True
                # the POST went out at the latest when the entry was written
                ago = max(0.0, (utcnow() - entry.updated_at).total_seconds())
                track.last_post_clock = run.clock() - ago
                track.existing_vm = existing
                return
            if final is not None and final.category == "timeout" and final.build_id:
                # a build that timed out may still finish: follow it, never re-send
                track.task_id, track.build_id = final.task_id, final.build_id
                track.submitted_at = final.submitted_at
                track.submitted_clock = run.clock()
                track.poll_kind = "build"
                return
            if final is not None and final.category == "build_failed":
                track.prior_build_failed = True
                if final.virtual_machine is not None and existing is None:
                    # its VM may be hidden from the list (e.g. in the trash): look it up
                    existing = final.virtual_machine.id
        if self._only_keys is not None and track.key not in self._only_keys:
            run.settle(track, track.make_result("skipped", reason="not_selected"))
            return
        track.existing_vm = existing

    async def start(self, track: Track) -> None:
        """Judge an existing VM, follow a known build, or submit."""
        run = self._run
        if track.existing_vm is not None and not (track.task_id or track.build_id):
            await self._judge_existing(track)
            if track.result is not None:
                return
        if track.task_id or track.build_id or track.adopted:
            # resumed from the journal, or adopted: it may be done already
            run.set_phase(track, "building")
            run.scheduler.poll_soon(track.key, group=track.group)
            return
        if (refusal := run.refused_unsent.get(track.key)) is not None:
            await run.finish(track, "failed", category=refusal[0], error=refusal[1])
            return
        if track.request.uses_spec_xml:
            try:
                self._xml[track.key] = self._spec_xml(track.request)  # once, for every attempt
            except ValueError as exc:
                # a library caller's request the API could not read: fail it unsent
                error = ErrorInfo(code="invalid_spec", description=str(exc))
                await run.finish(track, "failed", category="invalid_spec", error=error)
                return
        await run.submit(track)

    async def _judge_existing(self, track: Track) -> None:
        """A VM with this hostname existed before the run: look at it once and decide.

        The decisions, in order: someone else's VM (by its annotations) is a
        ``conflict``; a VM in state ``failed``/``orphaned``, or one whose build
        the journal recorded as failed, ends ``failed``/``build_failed`` and is
        never built over; after an uncertain POST of ours, or while it is still
        being built and is ours, it is adopted and followed; otherwise it is
        ``skipped``/``already_exists``.
        """
        run = self._run
        vm_id = track.existing_vm
        track.existing_vm = None
        if vm_id is None:
            return
        vm = await run.look_up(track, Lookup("id", vm_id))
        if track.result is not None:
            return
        if vm is None:
            if track.uncertain or track.prior_build_failed:
                return  # gone meanwhile: reconcile / submit as if it never was
            # could not look (or it vanished): keep the rule that needs no look, it exists
            track.vm_id, track.fqdn = vm_id, track.org.fqdn(track.key)
            await run.finish(track, "skipped", reason="already_exists")
            return
        verdict = self.ownership.judge(track.key, vm.annotations)
        run.seen_vm(track, vm)
        if verdict == "theirs":
            await run.conflict(track, None, "its annotations name another VM or fleet")
        elif vm.state in _VM_BROKEN or track.prior_build_failed:
            await run.finish(
                track,
                "failed",
                category="build_failed",
                error=ErrorInfo(
                    code="build_failed",
                    description=(
                        f"virtual machine {vm.id} ({track.hostname}) is in state "
                        f"{vm.state or 'unknown'} after a failed build; delete it before "
                        "it can be rebuilt"
                    ),
                ),
                reason="failed_vm_exists",
            )
        elif track.uncertain or (verdict == "ours" and vm.state in _VM_BUILDING):
            run.adopt(track, vm.id)
        elif verdict != "ours" or await self._tagged(track, vm.tag_names):
            await run.finish(track, "skipped", reason="already_exists")

    # ---------------------------------------------------------------- sending

    async def send(self, track: Track) -> None:
        """One POST; on a 201 the ids are journaled and the build is polled."""
        created = await self._post(track, self._xml.get(track.key))
        await self._submitted(track, created)

    @staticmethod
    def _spec_xml(req: VmRequest) -> str:
        """The build_from_spec XML of ``req``; ``ValueError`` for values it cannot carry."""
        return build_spec_xml(
            hostname=req.hostname,
            package=req.package,
            zone=req.zone,
            data_center=req.data_center,
            disk_template=req.disk_template,
            disk_template_options=req.disk_template_options,
            network=req.network,
            cpu_cores=req.cpu_cores,
            memory_gb=req.memory_gb,
            system_disk_gb=req.system_disk_gb,
            ssh_keys=req.ssh_keys,
            tags=req.tags,
            name=req.name,
            description=req.description,
            group=req.group,
        )

    async def _post(self, track: Track, xml: str | None) -> CreatedBuild:
        req = track.request
        client = self._run.client
        annotations = {**req.annotations, **ownership_annotations(req.key, self.ownership.fleet)}
        if xml is not None:
            return await client.build_vm_from_spec(
                organization=req.organization, xml=xml, annotations=annotations
            )
        return await client.build_vm(
            organization=req.organization,
            package=req.package,
            hostname=req.hostname,
            zone=req.zone,
            data_center=req.data_center,
            disk_template=req.disk_template,
            disk_template_options=req.disk_template_options or None,
            network=req.network,
            annotations=annotations,
        )

    async def _submitted(self, track: Track, created: CreatedBuild) -> None:
        run = self._run
        track.task_id = created.task.id
        track.build_id = created.build_id
        track.submitted_at = utcnow()
        track.submitted_clock = run.clock()
        track.poll_kind = "build" if track.build_id else "task"
        if run.journal is not None:
            await run.journal.record_submitted(
                track.key,
                task_id=track.task_id,
                build_id=track.build_id,
                submitted_at=track.submitted_at,
            )
        run.set_phase(track, "building")
        run.emit("submitted", track)
        run.scheduler.stretch(run.poll_stretch())
        run.scheduler.add(track.key, group=track.group, submitted_at=track.submitted_clock)

    async def refused(self, track: Track, exc: ApiError) -> bool:
        """A taken hostname: adopt it when it is ours (or may be), else ``conflict``."""
        if not is_hostname_taken(exc):
            return False
        run = self._run
        vm = await run.find_hostname(track)
        if track.result is not None:
            return True
        verdict: Verdict = (
            self.ownership.judge(track.key, vm.annotations) if vm is not None else "unknown"
        )
        if vm is not None and verdict != "theirs" and (verdict == "ours" or track.uncertain):
            self._take(track, vm)
            return True
        if vm is None and track.uncertain:
            # our earlier POST most likely took: wait for its VM to appear
            run.set_phase(track, "building")
            track.poll_kind = "hostname"
            track.submitted_clock = track.submitted_clock or run.clock()
            run.emit("reconciling", track, message="hostname taken after an uncertain POST")
            run.scheduler.poll_soon(track.key, group=track.group)
            return True
        await run.conflict(track, exc, "the API refused it as taken")
        return True

    async def reconcile(self, track: Track) -> bool:
        """After an uncertain POST: adopt the VM if it is there. True when adopted/settled.

        A hostname that is free now may still be taken by that POST's build
        later (on an API that takes it only with the VM record): it is looked
        up again once it has stayed free past the learned time builds take to
        show their VM, and only then is the POST sent again.
        """
        run = self._run
        vm = await self._look_until_answered(track)
        if vm is None and track.result is None and not track.gave_up:
            settle = self._appearance.settle_seconds()
            since = run.clock() - (track.last_post_clock or run.clock())
            if since < settle:
                wait = settle - since
                run.emit(
                    "reconciling",
                    track,
                    message=f"hostname free; look again in {wait:.0f} s, then re-send",
                )
                self.waited_seconds += wait
                await run.sleep(wait)
            vm = await self._look_until_answered(track)
        if track.result is not None or track.gave_up:
            return True
        if vm is None:
            return False
        if self.ownership.judge(track.key, vm.annotations) == "theirs":
            await run.conflict(track, None, "found by hostname after an uncertain POST")
            return True
        self._take(track, vm)
        return True

    async def _look_until_answered(self, track: Track) -> VirtualMachine | None:
        """Look the hostname up until the API answers; "free" is never assumed.

        Lookups that get no answer (after their own retries: an outage) are
        tried again with back-off, and nothing is re-sent meanwhile. Once the
        build timeout has passed since the uncertain POST, the hostname is
        watched instead (:meth:`give_up`).
        """
        run = self._run
        pause = run.settings.poll_min_seconds
        while True:
            try:
                return await run.find_hostname(track, quiet=False)
            except (ApiError, TransportError):
                if track.result is not None:
                    return None
                since = run.clock() - (track.last_post_clock or run.clock())
                if since > run.settings.build_timeout_seconds:
                    self.give_up(track)
                    return None
                run.emit("reconciling", track, message="the lookup got no answer: again later")
                await run.sleep(pause)
                pause = min(pause * 2, run.settings.poll_max_seconds)

    def _take(self, track: Track, vm: VirtualMachine) -> None:
        """Adopt ``vm`` as this VM's and follow it until it has settled."""
        run = self._run
        run.seen_vm(track, vm)
        run.adopt(track, vm.id)
        run.set_phase(track, "building")
        run.scheduler.poll_soon(track.key, group=track.group)

    def give_up(self, track: Track) -> None:
        """An earlier POST may still take: never fail a VM that may exist; watch its hostname.

        After :data:`~orchestrator.engine._runner.MAX_SUBMIT_ATTEMPTS` uncertain
        POSTs, or when the lookups that would tell whether the hostname is
        free got no answer.
        """
        run = self._run
        track.gave_up = True
        track.poll_kind = "hostname"
        run.set_phase(track, "building")
        run.emit(
            "reconciling",
            track,
            message=f"{track.tries} uncertain POSTs: watching the hostname until the timeout",
        )
        run.scheduler.poll_soon(track.key, group=track.group)

    # ---------------------------------------------------------------- polling

    async def poll(self, track: Track) -> None:
        """One poll: the build, its task, the adopted VM, or the watched hostname."""
        run = self._run
        client = run.client
        kind = track.poll_kind
        if kind == "build" and track.build_id:
            build = await client.get_build(track.build_id)
            track.poll_errors = 0
            vm = build.virtual_machine
            if vm is not None:
                run.seen_vm(track, vm)
                await self._vm_appeared(track)
            if build.state == "complete" and vm is not None:
                await self._built(track, vm.state)
            elif build.state == "failed":
                left = (
                    f"; it left virtual machine {vm.id} in state {vm.state or 'unknown'}: "
                    "delete it before it can be rebuilt"
                    if vm is not None
                    else ""
                )
                await self._build_failed(track, f"build {track.build_id} ended failed{left}")
            else:
                run.emit("building", track)
                run.repoll(track)
        elif kind in ("build", "task") and track.task_id:
            task = await client.get_task(track.task_id)
            track.poll_errors = 0
            if task.status == "completed":
                if track.build_id:
                    track.poll_kind = "build"
                    run.repoll(track, soon=True)
                else:
                    await self._succeed(track)
            elif task.status == "failed":
                await self._build_failed(track, f"task {track.task_id} ended failed")
            else:
                run.emit("building", track)
                progress = task.progress / 100 if task.progress is not None else None
                run.repoll(track, progress=progress)
        elif kind == "vm" and track.vm_id:
            vm = await client.get_vm(Lookup("id", track.vm_id))
            track.poll_errors = 0
            run.seen_vm(track, vm)
            if vm.state == "failed":
                await self._build_failed(track, f"virtual machine {vm.id} is in state failed")
            elif vm.state in self._settled_states():
                await self._succeed(track)
            else:
                run.emit("building", track)
                run.repoll(track)
        elif kind == "hostname":
            found = await run.find_hostname(track, quiet=False)
            if track.result is not None:
                return
            if found is None:
                run.repoll(track)
            elif self.ownership.judge(track.key, found.annotations) == "theirs":
                await run.conflict(track, None, "it appeared while its hostname was watched")
            else:
                run.seen_vm(track, found)
                run.adopt(track, found.id)
                run.repoll(track, soon=True)
        else:  # pragma: no cover - every track that polls has an id
            raise AssertionError("unreachable")

    async def _vm_appeared(self, track: Track) -> None:
        """A build of this run showed its VM: learn when, and (once) whether annotations stick."""
        if track.vm_seen:
            return
        track.vm_seen = True
        run = self._run
        if track.submitted_clock is not None and not track.adopted:
            self._appearance.observe(run.clock() - track.submitted_clock)
        if self.ownership.copied is not None or self._probing_ownership or track.vm_id is None:
            return
        self._probing_ownership = True
        vm_id = track.vm_id
        try:
            vm = await retry_get(lambda: run.client.get_vm(Lookup("id", vm_id)), **run.retry)
        except (ApiError, TransportError) as exc:
            run.log.info("orchestrator.ownership.unknown", error=str(exc))
            self._probing_ownership = False  # another VM will tell
            return
        self.ownership.learn_from_own_build(track.key, vm.annotations)
        run.log.info(
            "orchestrator.ownership.learned",
            verifiable=self.ownership.copied,
            evidence=self.ownership.evidence,
        )

    def _settled_states(self) -> frozenset[str]:
        return frozenset({"started"}) if self._run.settings.wait_until_started else _VM_SETTLED

    async def _built(self, track: Track, vm_state: str | None) -> None:
        run = self._run
        scheduler = run.scheduler
        if track.submitted_clock is not None:
            duration = run.clock() - track.submitted_clock
            if track.key in scheduler and scheduler.polls(track.key) == 0:
                # Seen done at its first poll: the build took *at most* this long,
                # and the poll itself may have waited for the budget. Learning the
                # full span would feed every wait back into later first polls
                # (polls later, builds seen later, durations longer...).
                duration = min(duration, scheduler.durations.expected(track.group))
            scheduler.completed(track.key, group=track.group, duration=duration)
        if run.settings.wait_until_started and vm_state != "started":
            track.poll_kind = "vm"
            run.repoll(track, soon=True)
            return
        await self._succeed(track)

    async def _succeed(self, track: Track) -> None:
        if await self._tagged(track):
            await self._run.finish(track, "succeeded", reason="adopted" if track.adopted else None)

    async def _tagged(self, track: Track, has: Sequence[str] = ()) -> bool:
        """Give our built VM the spec's tags, as the Terraform provider does (a PATCH).

        ``has`` are the tags it has already: none missing, nothing is sent (a
        rerun meeting our VM whose tags could not be set sets them then).
        False when setting them failed: the VM is then finished ``failed``.
        """
        run, wanted = self._run, track.request.tags
        if not wanted or all(tag in has for tag in wanted):
            track.tags = tuple(has) if wanted else None
            return True
        fqdn = track.fqdn or track.org.fqdn(track.key)
        track.tags, failed = await apply_tags(
            run.client, track.vm_id, fqdn, wanted, retry=run.retry
        )
        if failed is None:
            return True
        category, error = failed
        stopped = "the VM was built; setting its tags failed"
        await run.finish(track, "failed", category=category, error=error, stopped_because=stopped)
        return False

    async def _build_failed(self, track: Track, description: str) -> None:
        error = ErrorInfo(code="build_failed", description=description)
        await self._run.finish(track, "failed", category="build_failed", error=error)
