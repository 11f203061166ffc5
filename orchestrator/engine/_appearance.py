"""How long after its POST a build's VM record may still appear: learned, then used to wait.

A POST whose outcome is unknown may have created a build; on some readings of
the API its hostname is taken only once the build has created its VM record,
which happens somewhere inside the build (7-17 s into a 40 s build in the
recordings, anywhere from 30% to 95% in a pessimistic stand-in). Re-sending
the POST before that time has passed, while the hostname still looks free, is
how duplicates are made on an API that accepts a duplicate hostname.

So the run learns, from the builds it polls, how long after the POST the
build object first carried its ``virtual_machine``. Every sample is an upper
bound (the record appeared at or before the poll that saw it), so the
estimate errs on the safe side. :meth:`AppearanceModel.settle_seconds` is the
time an uncertain POST's hostname must have stayed free before the POST may be
sent again: a high quantile of what was learned times a margin, and never less
than the conservative default until enough has been learned.
"""

from __future__ import annotations

import bisect
import math

__all__ = ["AppearanceModel"]

#: how many samples before the learned quantile replaces the default
MIN_SAMPLES = 8
#: the quantile of learned appearance times waited past
QUANTILE = 0.95
#: the learned quantile is multiplied by this
MARGIN = 1.25
#: before anything is learned: this many expected build times (a build three
#: times slower than expected still shows its VM before the wait ends)
DEFAULT_BUILD_MULTIPLE = 3.0
#: samples kept (the most recent; enough for a stable 95th percentile)
_KEEP = 512


class AppearanceModel:
    """Learned time from a build POST to its VM record's first sighting."""

    def __init__(self, *, expected_build_seconds: float) -> None:
        self._default = DEFAULT_BUILD_MULTIPLE * expected_build_seconds
        self._sorted: list[float] = []
        self._recent: list[float] = []

    @property
    def samples(self) -> int:
        """How many sightings have been learned."""
        return len(self._sorted)

    def observe(self, seconds: float) -> None:
        """A build's VM record was first seen ``seconds`` after its POST."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        self._recent.append(seconds)
        bisect.insort(self._sorted, seconds)
        if len(self._recent) > _KEEP:
            oldest = self._recent.pop(0)
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]

    def quantile(self) -> float | None:
        """The learned :data:`QUANTILE` of appearance times (None before enough samples)."""
        if len(self._sorted) < MIN_SAMPLES:
            return None
        index = min(len(self._sorted) - 1, math.ceil(QUANTILE * len(self._sorted)) - 1)
        return self._sorted[index]

    def settle_seconds(self) -> float:
        """How long an uncertain POST's hostname must stay free before the POST is re-sent."""
        learned = self.quantile()
        if learned is None:
            return self._default
        return learned * MARGIN
