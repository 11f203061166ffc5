"""Fewer garbage collections during a run, and the process's thresholds restored after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from orchestrator.engine._gc import YOUNG_THRESHOLD, fewer_collections


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[tuple[int, int, int]]:
    """The test's own thresholds (700, 10, 10), whatever the process had; put back after."""
    saved, enabled = gc.get_threshold(), gc.isenabled()
    gc.set_threshold(700, 10, 10)
    gc.enable()
    try:
        yield (700, 10, 10)
    finally:
        gc.set_threshold(*saved)
        if enabled:  # a test may have disabled it: the process gets its own state back
            gc.enable()
        else:
            gc.disable()


def test_the_young_threshold_is_raised_for_the_block_and_restored_after() -> None:
    with fewer_collections():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_runs_restore_only_when_the_last_one_ends() -> None:
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD  # the second run still goes on
    second.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)


def test_restored_when_the_block_raises() -> None:
    with pytest.raises(KeyError), fewer_collections():
        raise KeyError("boom")
    assert gc.get_threshold() == (700, 10, 10)


def test_a_larger_threshold_or_a_disabled_collector_is_left_alone() -> None:
    gc.set_threshold(50_000, 10, 10)
    with fewer_collections():
        assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_threshold() == (50_000, 10, 10)
    gc.set_threshold(700, 10, 10)
    gc.disable()
    with fewer_collections():
        assert gc.get_threshold() == (700, 10, 10)
    assert not gc.isenabled()


def test_a_threshold_the_application_set_meanwhile_is_kept() -> None:
    with fewer_collections():
        gc.set_threshold(2_000, 10, 10)
    assert gc.get_threshold() == (2_000, 10, 10)
