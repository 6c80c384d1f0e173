"""Drive anything with ``tick(now)`` from a clock: simulated time as fast as possible, or real time.

Simulated runs advance a ``SimClock`` step by step and never sleep; real-time runs read the
``SystemClock`` and sleep until each step is due (the one place agents wait for the wall).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sflowlab.clock import Clock, SimClock, SystemClock

SIMULATED_EPOCH = 1_700_000_000.0
"""Default start of simulated runs (a fixed epoch, so pcap timestamps look like real ones)."""


class Tickable(Protocol):
    def tick(self, now: float) -> None: ...


@dataclass
class RunStats:
    """How a run went: ticks, simulated seconds, wall and CPU seconds it took."""

    ticks: int = 0
    simulated_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0


def tick_times(start: float, duration_s: float, step_s: float) -> list[float]:
    """Tick times after ``start`` up to ``start + duration_s`` (the last step may be short)."""
    if step_s <= 0 or duration_s < 0:
        raise ValueError("step_s must be > 0 and duration_s >= 0")
    n = math.ceil(duration_s / step_s - 1e-9)
    return [start + min((i + 1) * step_s, duration_s) for i in range(n)]


def run_simulated(target: Tickable, clock: SimClock, duration_s: float, step_s: float = 1.0,
                  progress: Callable[[float], None] | None = None) -> RunStats:
    """Advance ``clock`` and ``target`` ``duration_s`` seconds in ``step_s`` steps, at full speed."""
    stats = RunStats()
    wall0, cpu0, start = time.perf_counter(), time.process_time(), clock.now()
    for when in tick_times(start, duration_s, step_s):
        clock.advance_to(when)
        target.tick(when)
        stats.ticks += 1
        if progress is not None:
            progress(when)
    stats.simulated_s = clock.now() - start
    stats.wall_s, stats.cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
    return stats


def run_realtime(target: Tickable, duration_s: float | None, step_s: float = 1.0,
                 clock: Clock | None = None,
                 progress: Callable[[float], None] | None = None) -> RunStats:
    """Tick ``target`` every ``step_s`` of wall time until ``duration_s`` (None: until Ctrl-C).

    A tick that runs late is not repeated: the next one covers the time that passed.
    """
    clock = clock or SystemClock()
    stats = RunStats()
    wall0, cpu0, start = time.perf_counter(), time.process_time(), clock.now()
    end = math.inf if duration_s is None else start + duration_s
    due = start
    try:
        while due < end:
            due = min(due + step_s, end)
            delay = due - clock.now()
            if delay > 0:
                time.sleep(delay)
            now = min(clock.now(), end)
            target.tick(now)
            stats.ticks += 1
            if progress is not None:
                progress(now)
            due = max(due, now)
    except KeyboardInterrupt:
        pass
    stats.simulated_s = clock.now() - start
    stats.wall_s, stats.cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
    return stats
