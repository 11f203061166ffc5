"""Fewer garbage collections while a run is in progress.

CPython collects its youngest generation every 700 net allocations of
container objects, and the whole heap whenever enough objects have survived
into the oldest generation. A run keeps every VM's request, bookkeeping and
result alive to its end, while each request in flight allocates short-lived
objects that outlive a 700-allocation window: measured at 20,000 VMs with no
rate limit (``benchmarks``' overhead scenario), the default thresholds cost
15% more CPU per VM (1.15 against 0.99 ms), in collections that freed almost
nothing (about 2,000 objects over the whole run).

During a run the youngest generation's threshold is raised to
:data:`YOUNG_THRESHOLD` (the older generations keep theirs), so fewer
short-lived objects are promoted and the heap is examined less often. At
10,000 the collections still took 1.5 s of a 20,000-VM run's 25 s of CPU
(issue 25's profile; most of it in the middle generation, which each young
collection's survivors fill), at 50,000 they take 1.0 s. Cyclic
garbage is still collected, only in larger batches. The thresholds in force
before are restored when the last run of the process ends (runs may overlap:
the first one in saves them, the last one out restores them). A process that
disabled the collector, or set a larger threshold, is left as it is.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["YOUNG_THRESHOLD", "fewer_collections"]

#: the youngest generation's threshold during a run (CPython's default: 700)
YOUNG_THRESHOLD = 50_000

_lock = threading.Lock()
_runs = 0
_saved: tuple[int, int, int] | None = None


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the youngest generation's threshold while the block runs (see the module)."""
    global _runs, _saved
    with _lock:
        _runs += 1
        if _runs == 1:
            young, middle, old = gc.get_threshold()
            if gc.isenabled() and 0 < young < YOUNG_THRESHOLD:
                _saved = (young, middle, old)
                gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0 and _saved is not None:
                if gc.get_threshold()[0] == YOUNG_THRESHOLD:  # nobody changed it meanwhile
                    gc.set_threshold(*_saved)
                _saved = None
