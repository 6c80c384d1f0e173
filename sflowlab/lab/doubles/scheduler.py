"""Timers for the lab doubles: the ``Scheduler`` protocol and a real-time implementation.

A double schedules its delayed work (a task starting, an ACL being applied) through a
``Scheduler``. ``SimClock`` is one (tests advance it; callbacks run in the advancing thread);
``RealTimeScheduler`` runs callbacks at wall-clock times from one worker thread, for the
doubles started standalone.

A double guards its state with its own lock, so HTTP threads and the real-time worker may run
at once. ``SimClock`` is not thread-safe: advance it from one thread, between requests (as
the tests and the lab's runner do).
"""

from __future__ import annotations

import contextlib
import logging
import sched
import threading
from collections.abc import Callable
from typing import Any, Protocol

from sflowlab.clock import SystemClock

_log = logging.getLogger(__name__)

__all__ = ["RealTimeScheduler", "Scheduler"]


class Scheduler(Protocol):
    """Tells the time and runs ``callback(now)`` after a delay; ``cancel`` drops a pending one."""

    def now(self) -> float: ...

    def call_later(self, delay_s: float, callback: Callable[[float], None]) -> Any: ...

    def cancel(self, timer: Any) -> None: ...


class RealTimeScheduler:
    """Wall-clock timers (stdlib ``sched``) served by one daemon thread; a callback that raises
    is logged."""

    def __init__(self, clock: SystemClock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._wake = threading.Event()
        self._closed = False
        self._sched = sched.scheduler(self._clock.now, self._sleep)
        self._thread = threading.Thread(target=self._run, name="lab-scheduler", daemon=True)
        self._thread.start()

    def now(self) -> float:
        return self._clock.now()

    def call_later(self, delay_s: float, callback: Callable[[float], None]) -> sched.Event:
        timer = self._sched.enter(max(0.0, delay_s), 0, self._fire, (callback,))
        self._wake.set()
        return timer

    def cancel(self, timer: sched.Event) -> None:
        with contextlib.suppress(ValueError):  # already run or cancelled
            self._sched.cancel(timer)

    def close(self) -> None:
        """Stop the worker; pending timers never fire."""
        self._closed = True
        for timer in self._sched.queue:
            self.cancel(timer)
        self._wake.set()
        self._thread.join()

    def _sleep(self, seconds: float | None) -> None:
        """``sched``'s delay: ends early when a timer is added (``sched`` then re-reads its queue)."""
        self._wake.wait(seconds)
        self._wake.clear()

    def _fire(self, callback: Callable[[float], None]) -> None:
        if self._closed:
            return
        try:
            callback(self.now())
        except Exception:
            _log.exception("scheduled callback failed")

    def _run(self) -> None:
        while not self._closed:
            self._sched.run()
            if not self._closed and self._sched.empty():
                self._sleep(None)
