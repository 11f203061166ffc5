"""Benchmarks of the orchestrator against the simulator; run ``python -m benchmarks``.

Not part of the test suite (``tests/benchmarks/test_quick.py`` runs the quick
mode once as a smoke test). Scenarios live in ``benchmarks._scenarios``, the
Terraform-provider-like comparator in ``benchmarks._baseline``.
"""

from __future__ import annotations
