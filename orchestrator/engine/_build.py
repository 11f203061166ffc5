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
* every VM the API holds for a hostname of the spec (or that this fleet's build
  created) is looked at once, every run, and
  :func:`~orchestrator.engine.state.fate.build_fate` decides from what it shows
  and what the journal remembers (a hint, never a fact): this fleet's and
  healthy is ``skipped`` (``already_exists``, missing tags added as a union);
  this fleet's and ``failed`` ends ``failed``/``build_failed`` and is never
  rebuilt over; another fleet's is a ``conflict`` naming both identities; one
  no build of this fleet created is ``skipped`` (``not_ours``); a VM of the
  fleet that is gone is built again; one in the trash is ``held_by_trash``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.engine._appearance import AppearanceModel
from orchestrator.engine._default_network import DefaultNetworks
from orchestrator.engine._ownership import FLEET_KEY, Ownership, Verdict, ownership_annotations
from orchestrator.engine._tagging import apply_tags
from orchestrator.engine._track import Track, error_info, utcnow
from orchestrator.engine.state.fate import BuildFate, Seen, build_fate, row_of, seen_of
from orchestrator.errors import ApiError, TransportError, detail_messages
from orchestrator.katapult import build_spec_xml
from orchestrator.report import ErrorInfo
from orchestrator.vm_request import Lookup, VmRequest

if TYPE_CHECKING:
    from collections.abc import Sequence

    from orchestrator.engine._operation import Conductor, OperationKind
    from orchestrator.engine.state._model import JournalEntry
    from orchestrator.katapult import CreatedBuild, VirtualMachine

__all__ = ["BuildOperation", "is_hostname_taken"]

_VM_SETTLED = frozenset({"started", "starting"})

#: Error codes taken to mean "hostname taken". **Guesses, all three**: neither
#: the OpenAPI file nor the server's schema lists any of them (a taken hostname
#: is inferred to be 422 ``validation_error`` with a message, which the text
#: match below reads). They cost nothing if the API never sends them.
GUESSED_TAKEN_CODES = frozenset({"hostname_taken", "hostname_already_taken", "hostname_in_use"})


def is_hostname_taken(exc: ApiError) -> bool:
    """True when the API refused a build because the hostname is in use.

    The exact error is unconfirmed on the real API; the simulator answers 422
    ``validation_error`` with ``detail.errors: ["Hostname has already been
    taken"]``. Any code whose messages speak of a taken/existing hostname counts,
    and so do the codes of :data:`GUESSED_TAKEN_CODES` (guesses, never seen).
    """
    if exc.code in GUESSED_TAKEN_CODES:
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

    def __init__(self, run: Conductor, *, fleet: str, only_keys: set[str] | None) -> None:
        self._run = run
        self._only_keys = only_keys
        self.ownership = Ownership(fleet=fleet)
        self._appearance = AppearanceModel(
            expected_build_seconds=run.settings.expected_build_seconds
        )
        self._probing_ownership = False
        self._xml: dict[str, str] = {}
        self._networks = DefaultNetworks(run)
        #: how long uncertain POSTs waited for their hostname to stay free (simulated s)
        self.waited_seconds = 0.0

    # ----------------------------------------------------------- where it starts

    def classify(self, track: Track, entry: JournalEntry | None) -> None:
        """Remember what the journal says of the VM (a hint, never a fact), and whether
        the fleet's listing shows its hostname; nothing is decided or sent here.

        What the API holds decides, in :meth:`start` (:func:`build_fate`).
        """
        run = self._run
        row = track.row = row_of(entry)
        if entry is not None:
            track.attempts = entry.attempts
        if row.fact == "accepted" and entry is not None:
            # our build was accepted: its ids let it be followed, never sent again
            result = entry.result
            track.task_id = entry.task_id or (result.task_id if result else None)
            track.build_id = entry.build_id or (result.build_id if result else None)
            track.submitted_at = entry.submitted_at or (result.submitted_at if result else None)
            track.submitted_clock = run.clock()
            track.poll_kind = "build" if track.build_id else "task"
        elif row.fact == "sent" and entry is not None:
            track.sends.uncertain = True
            # the POST went out at the latest when the entry was written
            ago = max(0.0, (utcnow() - entry.updated_at).total_seconds())
            track.sends.last_uncertain_clock = run.clock() - ago
        elif self._only_keys is not None and track.key not in self._only_keys:
            run.settle(track, track.make_result("skipped", reason="not_selected"))
            return
        # a VM our build created but the listing does not show (e.g. in the trash) is
        # looked up by its id: the hostname may be held
        track.existing_vm = track.org.existing.get(track.key) or row.created

    async def start(self, track: Track) -> None:
        """Look at what the API holds for the hostname, then do what :func:`build_fate` says."""
        run = self._run
        seen: Seen = "none"
        vm: VirtualMachine | None = None
        if track.existing_vm is not None:
            looked = await run.where(track, track.existing_vm)
            if looked is None:
                return  # the look failed for good: the VM's fate was settled by it
            where, vm = looked
            if where == "trash":
                seen = "trash_ours" if track.row.created == track.existing_vm else "trash_theirs"
            elif vm is not None:
                run.seen_vm(track, vm)
                seen = seen_of(self.ownership.judge(track.key, vm.annotations), vm.state)
        track.existing_vm = None
        fate = build_fate(
            seen,
            track.row,
            vm_id=vm.id if vm else None,
            copies=self.ownership.copied,
            vm_state=vm.state if vm else None,
        )
        await self._carry_out(track, fate, vm)

    async def _carry_out(
        self, track: Track, fate: BuildFate, vm: VirtualMachine | None, *, journal: bool = False
    ) -> None:
        """Do what ``fate`` says. ``journal``: a ``not_ours`` or ``broken`` ending is
        journaled (after a refused POST, whose intent row must not be read as sent)."""
        run = self._run
        if (
            fate in ("follow_build", "follow_vm")
            and vm is not None
            and track.row.fact != "accepted"
        ):
            run.adopt(track, vm.id)
        if fate in ("follow_build", "follow_vm"):
            run.set_phase(track, "building")
            run.poll_soon(track)
        elif fate == "ours":
            assert vm is not None
            if await self._tagged(track, vm.tag_names):
                await run.finish(track, "skipped", reason="already_exists", journal=False)
        elif fate == "not_ours":
            await run.finish(track, "skipped", reason="not_ours", journal=journal)
        elif fate == "conflict":
            await run.conflict(track, None, self._whose(vm))
        elif fate == "broken":
            assert vm is not None
            await self._broken(track, vm, journal=journal)
        elif fate == "held_by_trash":
            await run.held_by_trash(track)
        elif fate in ("submit", "reconcile"):
            await self._submit(track)

    async def _broken(self, track: Track, vm: VirtualMachine, *, journal: bool = False) -> None:
        """A failed VM holds the hostname: nothing is sent; the message says how to free it."""
        ours = (
            self.ownership.judge(track.key, vm.annotations) == "ours" or track.row.created == vm.id
        )
        how = (
            f"(orchestrator destroy --limit {track.hostname})"
            if ours
            else "by hand: it is not provably this fleet's (no annotations of it, and no "
            "build of this fleet created it), so destroy leaves it"
        )
        await self._run.finish(
            track,
            "failed",
            category="build_failed",
            error=ErrorInfo(
                code="build_failed",
                description=(
                    f"virtual machine {vm.id} ({track.hostname}) is in state "
                    f"{vm.state or 'unknown'}: delete it before it can be rebuilt {how}"
                ),
            ),
            reason="failed_vm_exists",
            journal=journal,
        )

    def _whose(self, vm: VirtualMachine | None) -> str:
        """Why a VM found for a hostname is not this fleet's: both identities, and how to adopt."""
        expected = self.ownership.fleet
        found = (vm.annotations or {}).get(FLEET_KEY) if vm is not None else None
        if found is None:
            return f"it carries no annotations of fleet {expected!r}"
        return (
            f"it carries fleet {found!r}, this is fleet {expected!r}; to adopt it, name "
            f'this fleet {found!r} (fleet = "{found}" in the spec, or --fleet {found})'
        )

    async def _submit(self, track: Track) -> None:
        run = self._run
        if (refusal := run.refusal_for(track)) is not None:
            await run.finish(track, "failed", category=refusal[0], error=refusal[1])
            return
        if track.request.uses_spec_xml:
            default_network: str | None = None
            if track.request.network is None:
                try:
                    default_network = await self._networks.default_for(track.request)
                except (ApiError, TransportError) as exc:
                    run.note_error(track, exc)
                    if isinstance(exc, ApiError):
                        run.doom_for(track.org, exc)
                    await run.finish(track, "failed", category=exc.category, error=error_info(exc))
                    return
            try:
                # once, for every attempt
                self._xml[track.key] = self._spec_xml(track.request, default_network)
            except ValueError as exc:
                # a library caller's request the API could not read: fail it unsent
                error = ErrorInfo(code="invalid_spec", description=str(exc))
                await run.finish(track, "failed", category="invalid_spec", error=error)
                return
        await run.submit(track)

    # ---------------------------------------------------------------- sending

    async def send(self, track: Track) -> None:
        """One POST; on a 201 the ids are journaled and the build is polled."""
        created = await self._post(track, self._xml.get(track.key))
        await self._submitted(track, created)

    @staticmethod
    def _spec_xml(req: VmRequest, default_network: str | None = None) -> str:
        """The build_from_spec XML of ``req`` (``default_network``: the id of its data
        center's default network, for a spec that names none); ``ValueError`` for values
        it cannot carry."""
        return build_spec_xml(
            hostname=req.hostname,
            package=req.package,
            zone=req.zone,
            data_center=req.data_center,
            disk_template=req.disk_template,
            disk_template_options=req.disk_template_options,
            network=req.network,
            default_network=default_network,
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
        client = self._run.api
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
        await run.record_submitted(track, task_id=track.task_id, build_id=track.build_id)
        run.set_phase(track, "building")
        run.emit("submitted", track)
        run.follow_build(track)

    async def refused(self, track: Track, exc: ApiError) -> bool:
        """A taken hostname: adopt it when it is ours (or may be); a VM that is not
        provably ours (no annotations: :func:`build_fate`) ends as it would had it been
        seen before the POST; anything else is a ``conflict``."""
        if not is_hostname_taken(exc):
            return False
        run = self._run
        vm = await run.find_hostname(track)
        if track.result is not None:
            return True
        verdict: Verdict = (
            self.ownership.judge(track.key, vm.annotations) if vm is not None else "unknown"
        )
        if vm is not None and verdict != "theirs" and (verdict == "ours" or track.sends.uncertain):
            self._take(track, vm)
            return True
        if vm is not None and verdict == "unknown":
            # The refusal is the API's definite answer: nothing was built. So the row is
            # what the run began with, and the VM is judged as a look would have.
            fate = build_fate(
                seen_of(verdict, vm.state),
                track.row,
                vm_id=vm.id,
                copies=self.ownership.copied,
                vm_state=vm.state,
            )
            # (journaled, unlike a VM seen first: the intent row written before the POST
            # must not be read by a rerun as a POST of ours that may have created it)
            if fate in ("not_ours", "broken"):
                run.seen_vm(track, vm)
                await self._carry_out(track, fate, vm, journal=True)
                return True
        if vm is None and track.sends.uncertain:
            # our earlier POST most likely took: wait for its VM to appear
            run.set_phase(track, "building")
            track.poll_kind = "hostname"
            track.submitted_clock = track.submitted_clock or run.clock()
            run.emit("reconciling", track, message="hostname taken after an uncertain POST")
            run.poll_soon(track)
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
        if vm is None and track.result is None and not track.sends.gave_up:
            settle = self._appearance.settle_seconds()
            since = run.clock() - (track.sends.last_uncertain_clock or run.clock())
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
        if track.result is not None or track.sends.gave_up:
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
                since = run.clock() - (track.sends.last_uncertain_clock or run.clock())
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
        run.poll_soon(track)

    def give_up(self, track: Track) -> None:
        """An earlier POST may still take: never fail a VM that may exist; watch its hostname.

        After :data:`~orchestrator.engine._runner.MAX_SUBMIT_ATTEMPTS` uncertain
        POSTs, or when the lookups that would tell whether the hostname is
        free got no answer.
        """
        run = self._run
        track.sends.gave_up = True
        track.poll_kind = "hostname"
        run.set_phase(track, "building")
        run.emit(
            "reconciling",
            track,
            message=(
                f"{track.sends.uncertain_count} uncertain POSTs: "
                "watching the hostname until the timeout"
            ),
        )
        run.poll_soon(track)

    # ---------------------------------------------------------------- polling

    async def poll(self, track: Track) -> None:
        """One poll: the build, its task, the adopted VM, or the watched hostname."""
        run = self._run
        client = run.api
        kind = track.poll_kind
        if kind == "build" and track.build_id:
            build = await client.get_build(track.build_id)
            track.poll_errors = 0
            vm = build.virtual_machine
            if vm is not None:
                run.seen_vm(track, vm)
                await self._vm_appeared(track)
            if build.state == "complete" and vm is not None:
                await self._learn_copying(track)
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
        """A build of this run showed its VM: learn when."""
        if track.vm_seen:
            return
        track.vm_seen = True
        run = self._run
        if track.submitted_clock is not None and not track.adopted:
            self._appearance.observe(run.clock() - track.submitted_clock)

    async def _learn_copying(self, track: Track) -> None:
        """A build of this run is complete: (once) whether its annotations are on its VM.

        Judged at the build's end, never at the VM's first sighting: an API may
        copy them only once the build has finished (a VM record shows early,
        7-17 s into a 40 s build, in the recordings).
        """
        run = self._run
        if self.ownership.copied is not None or self._probing_ownership or track.vm_id is None:
            return
        self._probing_ownership = True
        vm_id = track.vm_id
        try:
            vm = await run.retried(lambda: run.api.get_vm(Lookup("id", vm_id)))
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
        run.learn_build_time(track)
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
        rerun meeting our VM whose tags could not be set sets them then). The
        PATCH sets the list, so it sends what the VM has plus what is wanted:
        tags someone added by hand stay. False when setting them failed: the VM
        is then finished ``failed``.
        """
        run, wanted = self._run, track.request.tags
        if not wanted or all(tag in has for tag in wanted):
            track.tags = tuple(has) if wanted else None
            return True
        fqdn = track.fqdn or track.org.fqdn(track.key)
        union = tuple(dict.fromkeys([*has, *wanted]))
        track.tags, failed = await apply_tags(run, track.vm_id, fqdn, union)
        if failed is None:
            return True
        category, error = failed
        stopped = "the VM was built; setting its tags failed"
        await run.finish(track, "failed", category=category, error=error, stopped_because=stopped)
        return False

    async def _build_failed(self, track: Track, description: str) -> None:
        error = ErrorInfo(code="build_failed", description=description)
        await self._run.finish(track, "failed", category="build_failed", error=error)
