"""A scheduled run always leaves a verdict: with ``--metrics``/``--junit``, a run that
stops before it has a report (bad input, a refused token, an interruption, a bug)
still rewrites them, saying it failed, when, and why.

The dashboard then never keeps last night's green figures, and CI shows a red
test case naming the problem instead of "no test results".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.report._metrics import DEFAULT_METRICS_MODE

__all__ = ["Verdict"]


@dataclass(slots=True)
class Verdict:
    """Where the verdict of this run goes, as far as it is known yet."""

    fleet: str
    junit: Path | None = None
    metrics: Path | None = None
    metrics_mode: int = DEFAULT_METRICS_MODE
    #: set once the run's results (with their verdict) were written from its report
    written: bool = False

    def write_failure(self, problem: str, code: int) -> None:
        """Rewrite the JUnit and metrics files: the run failed with ``code`` because of
        ``problem``. A file that cannot be written is said on stderr, and skipped."""
        from orchestrator.cli._console import _err
        from orchestrator.report._junit import write_failure_junit
        from orchestrator.report._metrics import write_failure_metrics

        writers: list[tuple[str, Path | None, Callable[[Path], None]]] = [
            ("JUnit file", self.junit, lambda p: write_failure_junit(p, self.fleet, problem)),
            (
                "metrics file",
                self.metrics,
                lambda p: write_failure_metrics(
                    p, self.fleet, exit_code=code, mode=self.metrics_mode
                ),
            ),
        ]
        for label, path, write in writers:
            if path is None:
                continue
            try:
                write(path)
            except OSError as exc:
                why = exc.strerror or str(exc)
                _err.print(f"warning: cannot write the {label} {path}: {why}", markup=False)
