"""pytest plugin shipped with sflowlab: fixtures for users' own lab tests.

Installed with the package (entry point ``pytest11``), so any test can ask for
``sim_clock`` (a fresh ``SimClock`` at t=0) or ``engine`` (a collector engine on that clock,
fed in-process with ``engine.ingest(data, source, received_at)``).
"""

from __future__ import annotations

import pytest

from sflowlab.clock import SimClock
from sflowlab.collector.engine import Engine


@pytest.fixture
def sim_clock() -> SimClock:
    """Simulated time starting at 0; advance it with ``advance_to``/``advance``."""
    return SimClock()


@pytest.fixture
def engine(sim_clock: SimClock) -> Engine:
    """A collector engine whose clock is ``sim_clock``."""
    return Engine(sim_clock)
