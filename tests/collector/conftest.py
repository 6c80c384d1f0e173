"""Fixtures for the collector core tests (helpers live in collector_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from collector_helpers import Feeder
from elb_lab import collector, swarm  # noqa: F401 - fixtures: the daemon with the ELB

from sflowlab.clock import SimClock
from sflowlab.collector.engine import Engine


@pytest.fixture
def clock() -> SimClock:
    return SimClock(start=1000.0)


@pytest.fixture
def engine(clock: SimClock) -> Engine:
    return Engine(clock, metric_timeout_s=60.0)


@pytest.fixture
def feed(engine: Engine, clock: SimClock) -> Feeder:
    return Feeder(engine, clock)
