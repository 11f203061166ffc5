"""docs/guarantees.md names only tests that exist, and names every test of tests/faults."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "guarantees.md"
_REF = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?")
_MORE = re.compile(r"`::(\w+)")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    return {n.name for n in tree.body if isinstance(n, functions) and n.name.startswith("test_")}


def _references() -> list[tuple[str, str | None]]:
    refs: list[tuple[str, str | None]] = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        last: str | None = None
        for match in _REF.finditer(line):
            last = match.group(1)
            refs.append((last, match.group(2)))
        # "`file::a`, `::b`": later names of the same file
        if last is not None:
            refs += [(last, name) for name in _MORE.findall(line)]
    return refs


def test_every_test_the_doc_names_exists() -> None:
    """Each ``file::test`` in docs/guarantees.md is a test function of that file."""
    refs = _references()
    assert len(refs) > 20
    for file, name in refs:
        path = ROOT / file
        assert path.is_file(), f"{file} does not exist"
        if name is not None:
            assert name in _tests_in(path), f"{file}::{name} does not exist"


def test_the_doc_names_every_fault_and_security_test() -> None:
    """Each test of tests/faults and tests/security is cited by docs/guarantees.md."""
    named = {(file, name) for file, name in _references()}
    files_cited_whole = {file for file, name in named if name is None}
    for directory in ("faults", "security"):
        for path in sorted((ROOT / "tests" / directory).glob("test_*.py")):
            file = path.relative_to(ROOT).as_posix()
            if path.name == Path(__file__).name or file in files_cited_whole:
                continue
            for test in _tests_in(path):
                assert (file, test) in named, f"{file}::{test} is not in docs/guarantees.md"
