"""Every log record of the package goes through its own logging (``orchestrator._logging``).

A module that made its own structlog logger, printed, or logged to a standard
logger outside ``orchestrator`` would bypass the library's silence, the CLI's
stderr and JSON format, and its token redaction.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "orchestrator"

#: the one module that may make loggers; the simulator's server prints its own lines
_ALLOWED = {"_logging.py"}


def _calls(tree: ast.AST) -> list[tuple[int, str, ast.Call]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                found.append((node.lineno, f"{func.value.id}.{func.attr}", node))
            elif isinstance(func, ast.Name):
                found.append((node.lineno, func.id, node))
    return found


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for line, name, call in _calls(tree):
        where = f"{path.relative_to(PACKAGE.parent)}:{line}"
        if name in ("structlog.get_logger", "structlog.getLogger", "structlog.wrap_logger"):
            out.append(f"{where}: {name} (use orchestrator._logging.get_logger)")
        elif name == "logging.getLogger":
            first = call.args[0] if call.args else None
            named = isinstance(first, ast.Constant) and isinstance(first.value, str)
            if not named or not str(first.value).startswith("orchestrator"):  # type: ignore[union-attr]
                out.append(f"{where}: logging.getLogger outside the 'orchestrator' logger")
        elif name == "print":
            out.append(f"{where}: print() (log, or write through the CLI's consoles)")
    return out


def test_no_module_logs_around_the_package_logging() -> None:
    """No module makes a logger of its own, prints, or logs outside 'orchestrator'."""
    offences = [
        offence
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name not in _ALLOWED
        for offence in _offences(path)
    ]
    assert offences == []
