"""Tasks that are not builds: stopping or shutting a VM down, purging a trash object.

Like builds, they are pure functions of the clock: a task is ``pending``
until ``running_at``, ``running`` until ``finished_at``, then ``completed``
(the recording: a stop task pending for 17 s, running for 3 s; a purge gone
within 6 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["PENDING_SHARE", "ActionTask", "PowerAction", "TaskStatus", "TaskView"]

TaskStatus = Literal["pending", "running", "completed", "failed"]

#: Share of a power or purge task's duration it stays ``pending`` (17 s of 20 s recorded).
PENDING_SHARE = 0.85


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task as the API shows it at one moment."""

    status: TaskStatus
    started_at: int | None
    finished_at: int | None
    progress: int


@dataclass(frozen=True, slots=True)
class ActionTask:
    """A task queued by a power action or a purge; it always completes."""

    task_id: str
    task_name: str
    created_at: float
    running_at: float
    finished_at: float

    @classmethod
    def queued(cls, task_id: str, name: str, now: float, seconds: float) -> ActionTask:
        """A task queued ``now`` that completes ``seconds`` later."""
        return cls(task_id, name, now, now + PENDING_SHARE * seconds, now + seconds)

    def task(self, now: float) -> TaskView:
        """The task at ``now``."""
        if now < self.running_at:
            return TaskView("pending", None, None, 0)
        if now < self.finished_at:
            span = self.finished_at - self.running_at
            done = (now - self.running_at) / span if span > 0 else 1.0
            return TaskView("running", int(self.running_at), None, max(1, min(99, int(100 * done))))
        return TaskView("completed", int(self.running_at), int(self.finished_at), 100)


@dataclass(frozen=True, slots=True)
class PowerAction:
    """A stop or shutdown of a VM: transitional while its task runs, then ``stopped``.

    ``stopped_at`` is when the VM is ``stopped``: the task's end, or at once
    for a VM that was already stopped when asked.
    """

    kind: Literal["stop", "shutdown"]
    task: ActionTask
    stopped_at: float

    def state(self, now: float) -> str | None:
        """The VM's state at ``now`` as this action decides it (``None``: not yet its say)."""
        if now >= self.stopped_at:
            return "stopped"
        if now >= self.task.running_at:
            return "stopping" if self.kind == "stop" else "shutting_down"
        return None
