"""A fleet's state: its identity, what its journal remembers, and how each VM's fate is decided.

* :mod:`~orchestrator.engine.state.journal`: the write-ahead journal (SQLite), one
  per fleet, shared by ``run``, ``plan`` and ``destroy`` and locked by whichever
  operation holds it; build and delete rows are kept apart.
* :mod:`~orchestrator.engine.state.identity`: what names a fleet and what its
  VMs' annotations must carry to be its own.
* :mod:`~orchestrator.engine.state.fate`: the pure functions that decide, from
  what the API holds now and what the journal remembers, where each VM starts.
"""
