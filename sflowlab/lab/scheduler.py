"""Timers for the lab doubles: the ``Scheduler`` protocol and a real-time implementation.

A double schedules its delayed work (a task starting, an ACL being applied) through a
``Scheduler``. ``SimClock`` is one (tests advance it; callbacks run in the advancing thread);
``RealTimeScheduler`` runs callbacks at wall-clock times from one worker thread, for the
doubles started standalone.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sflowlab.clock import SystemClock

_log = logging.getLogger(__name__)

__all__ = ["RealTimeScheduler", "Scheduler"]


class Scheduler(Protocol):
    """Tells the time and runs ``callback(now)`` after a delay; ``cancel`` drops a pending one."""

    def now(self) -> float: ...

    def call_later(self, delay_s: float, callback: Callable[[float], None]) -> Any: ...

    def cancel(self, timer: Any) -> None: ...


@dataclass(order=True)
class _Timer:
    due: float
    order: int
    callback: Callable[[float], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class RealTimeScheduler:
    """Wall-clock timers served by one daemon thread; a callback that raises is logged."""

    def __init__(self, clock: SystemClock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._timers: list[_Timer] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lab-scheduler", daemon=True)
        self._thread.start()

    def now(self) -> float:
        return self._clock.now()

    def call_later(self, delay_s: float, callback: Callable[[float], None]) -> _Timer:
        timer = _Timer(self.now() + max(0.0, delay_s), next(self._order), callback)
        with self._wake:
            heapq.heappush(self._timers, timer)
            self._wake.notify()
        return timer

    def cancel(self, timer: _Timer) -> None:
        timer.cancelled = True

    def close(self) -> None:
        """Stop the worker; pending timers never fire."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._closed:
                    if self._timers and self._timers[0].cancelled:
                        heapq.heappop(self._timers)
                        continue
                    wait = self._timers[0].due - self.now() if self._timers else None
                    if wait is not None and wait <= 0:
                        break
                    self._wake.wait(wait)
                if self._closed:
                    return
                timer = heapq.heappop(self._timers)
            try:
                timer.callback(self.now())
            except Exception:
                _log.exception("scheduled callback failed")
