"""The benchmark's output: a plain-text table for the terminal and ``docs/benchmarks.md``."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmarks._results import ScenarioResult

__all__ = ["machine", "render_markdown", "render_table"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram() -> str:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _commit(root: Path) -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def machine(root: Path) -> dict[str, str]:
    """Where and with what the benchmark ran."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count() or "unknown"),
        "cpu model": _cpu_model(),
        "ram": _ram(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "aiohttp": _version("aiohttp"),
        "orchestrator": f"{_version('orchestrator')} (commit {_commit(root)})",
    }


def _columns(results: Sequence[ScenarioResult]) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    for result in results:
        for i, row in enumerate(result.rows):
            verdict = row.verdict + (f" ({row.miss})" if row.miss else "")
            rows.append((result.name if i == 0 else "", row.metric, row.value, row.target, verdict))
    return rows


_HEADER = ("scenario", "metric", "measured", "target", "result")


def render_table(results: Sequence[ScenarioResult]) -> str:
    """Every scenario's rows as an aligned text table, then the correctness checks."""
    rows = [_HEADER, *_columns(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    # the measured column can be long: cap it so the table stays readable
    widths[2] = min(widths[2], 70)
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    failed = [
        f"{result.name}: {check}"
        for result in results
        for check, ok in result.checks.items()
        if not ok
    ]
    lines.append("")
    if failed:
        lines.append("CORRECTNESS FAILED: " + "; ".join(failed))
    else:
        checks = sum(len(result.checks) for result in results)
        lines.append(f"correctness: all {checks} checks held (no duplicate, no lost VM)")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(
    results: Sequence[ScenarioResult],
    *,
    info: dict[str, str],
    command: str,
    elapsed: float,
    intro: str,
) -> str:
    """``docs/benchmarks.md``: machine, versions, command, the table, targets, diagnosis."""
    out = ["# Benchmarks", "", intro.strip(), ""]
    out += ["## Machine and run", ""]
    out += [f"- **{key}**: {value}" for key, value in info.items()]
    out += [f"- **command**: `{command}`", f"- **benchmark wall time**: {elapsed:.0f} s", ""]
    out += ["## Scenarios", ""]
    out += [f"- **{r.name}**: {r.setup}." for r in results]
    out += ["", "## Targets", ""]
    for result in results:
        for item in result.rows:
            if item.ok is None:
                continue
            mark = "pass" if item.ok else f"**MISS** by {item.miss}" if item.miss else "**MISS**"
            why = f". Why: {item.why}" if item.why and not item.ok else ""
            out.append(
                f"- {result.name} / {item.metric}: {item.value} (target {item.target}): {mark}{why}"
            )
    out += ["", "## Results", ""]
    out += ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for row in _columns(results):
        out.append("| " + " | ".join(_md(cell) for cell in row) + " |")
    out += ["", "## Correctness checks", ""]
    for result in results:
        for check, ok in result.checks.items():
            out.append(f"- {result.name}: {check}: {'held' if ok else '**FAILED**'}")
    out += ["", "## Notes and diagnosis", ""]
    for result in results:
        if result.notes:
            out += [f"### {result.name}", ""]
            # a note starting with "- " belongs under the note before it
            out += [f"  {note}" if note.startswith("- ") else f"- {note}" for note in result.notes]
            out.append("")
    return "\n".join(out).rstrip() + "\n"
