"""Where the host's time goes: seconds and calls per pipeline stage (words, windows, retrieval, tokenize, rows,
pad, device wait, decode, merge), accumulated with two `perf_counter` reads per stage call.

    t = time.perf_counter()
    ...                                  # the stage
    t = times.add("rows", t)             # returns now, to time the next stage

`benchmarks/host_overhead.py` reads it per window; every `Reader` and `Relik` carries one (`.times`).
"""

from __future__ import annotations

import time
from collections import defaultdict

__all__ = ["StageTimes"]


class StageTimes:
    """Accumulated wall seconds and call counts per stage name."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)

    def add(self, stage: str, since: float) -> float:
        """Charge `stage` with the time since `since` (a `perf_counter` value); returns the current time."""
        now = time.perf_counter()
        self.seconds[stage] += now - since
        self.calls[stage] += 1
        return now

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def snapshot(self) -> dict[str, float]:
        return dict(self.seconds)
