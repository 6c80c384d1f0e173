"""The one source of time: a ``Clock`` protocol, the system clock, and a simulated clock.

Nothing outside this module and the I/O edges reads the time. ``SimClock`` runs scheduled
callbacks in time order as it is advanced, so an hour of lab time replays in seconds.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the time in seconds since the epoch (or since a scenario start)."""

    def now(self) -> float: ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> float:
        return time.time()


@dataclass(order=True)
class _Timer:
    due: float
    order: int
    callback: Callable[[float], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


@dataclass
class SimClock:
    """Simulated time that moves only when advanced; callbacks fire in (time, order) order."""

    start: float = 0.0
    _now: float = field(init=False)
    _timers: list[_Timer] = field(default_factory=list, init=False)
    _order: itertools.count[int] = field(default_factory=itertools.count, init=False)

    def __post_init__(self) -> None:
        self._now = self.start

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[float], None]) -> _Timer:
        """Run ``callback(now)`` when the clock reaches ``when`` (at once on the next advance if past)."""
        timer = _Timer(when, next(self._order), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def call_later(self, delay_s: float, callback: Callable[[float], None]) -> _Timer:
        return self.call_at(self._now + delay_s, callback)

    @staticmethod
    def cancel(timer: _Timer) -> None:
        timer.cancelled = True

    def advance_to(self, when: float) -> None:
        """Move time forward to ``when``, firing due callbacks at their own times."""
        if when < self._now:
            raise ValueError(f"simulated time cannot go back from {self._now} to {when}")
        while self._timers and self._timers[0].due <= when:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, timer.due)
            timer.callback(self._now)
        self._now = when

    def advance(self, seconds: float) -> None:
        self.advance_to(self._now + seconds)
