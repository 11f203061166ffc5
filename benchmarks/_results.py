"""What a scenario hands back: rows measured against targets, correctness checks, notes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Row", "ScenarioResult"]


@dataclass(slots=True)
class Row:
    """One figure of a scenario.

    ``ok`` is ``True``/``False`` when the figure has a target, ``None`` when it
    is for information. ``miss`` says by how much a target was missed, ``why``
    the diagnosis.
    """

    metric: str
    value: str
    target: str = ""
    ok: bool | None = None
    miss: str = ""
    why: str = ""

    @property
    def verdict(self) -> str:
        """``pass``, ``MISS`` or empty (no target)."""
        if self.ok is None:
            return ""
        return "pass" if self.ok else "MISS"


@dataclass(slots=True)
class ScenarioResult:
    """The outcome of one scenario.

    ``checks`` are correctness conditions (no duplicate, every VM accounted);
    a failed check makes the benchmark exit 1, a missed target does not.
    ``notes`` explain the figures (the diagnosis of a miss among them);
    ``data`` keeps the raw numbers for ``--json``.
    """

    name: str
    setup: str
    rows: list[Row] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(
        self,
        metric: str,
        value: str,
        target: str = "",
        ok: bool | None = None,
        miss: str = "",
    ) -> Row:
        """Append a row and return it."""
        row = Row(metric, value, target, ok, miss)
        self.rows.append(row)
        return row

    @property
    def correct(self) -> bool:
        """Whether every correctness check held."""
        return all(self.checks.values())

    def as_json(self) -> dict[str, Any]:
        """Everything, as plain JSON-able data."""
        return {
            "name": self.name,
            "setup": self.setup,
            "rows": [{**asdict(row), "verdict": row.verdict} for row in self.rows],
            "checks": dict(self.checks),
            "correct": self.correct,
            "notes": list(self.notes),
            "data": self.data,
        }
