"""Fixtures for the controller tests (the helpers live in elb_helpers.py)."""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from elb_helpers import NODES, START, ElbLab, SwarmLabBridge

from sflowlab.agent_sim.simulation import Lab, LabSpec
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.agent_sim.workload import ServiceSpec
from sflowlab.clock import SimClock
from sflowlab.lab.doubles.swarm_api import SwarmApi
from sflowlab.lab.doubles.swarm_model import Swarm


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[Callable[..., ElbLab]]:
    """``make_lab(start_delay_s=1.0, stop_delay_s=0.5, nodes=NODES)`` -> an ElbLab (its API
    stopped after the test)."""
    apis: list[SwarmApi] = []

    def make(start_delay_s: float = 1.0, stop_delay_s: float = 0.5,
             nodes: dict[str, str] = NODES) -> ElbLab:
        clock = SimClock(start=START)
        swarm = Swarm(clock, random.Random(1), nodes, start_delay_s=start_delay_s,
                      stop_delay_s=stop_delay_s)
        api = SwarmApi(swarm).start()
        apis.append(api)
        return ElbLab(clock, swarm, api, tmp_path / "state")

    yield make
    for api in apis:
        api.stop()


@pytest.fixture
def workload_lab(make_lab: Callable[..., ElbLab]) -> tuple[ElbLab, Lab]:
    """An ElbLab whose containers are agent_sim containers on two hsflowd hosts (polling 10 s
    and sampling 1-in-400 as in the seed's hsflowd.conf) serving ``apache`` to 4 concurrent
    clients (like ``ab -c 4``); the hosts' datagrams go to the engine each second."""
    sink = MemorySink()
    service = ServiceSpec(name="apache", replicas=0, clients=4, response_bytes=5_000,
                          cpu_us_per_request=500, capacity_rps=200.0, latency_s=0.05)
    lab = Lab(LabSpec(seed=3, hosts=2, services=[service], polling_s=10.0, sampling=400,
                      host_subnet="10.0.0.0/24"), sink, start=START)
    elb_lab = make_lab(start_delay_s=2.0, stop_delay_s=1.0,
                       nodes={name: h.spec.address for name, h in lab.hosts.items()})
    SwarmLabBridge(lab, elb_lab.swarm)

    def send(now: float) -> None:
        lab.tick(now)
        for at, agent, data in sink.drain():
            elb_lab.engine.ingest(data, (agent, 6343), at)

    elb_lab.sources = [send]
    return elb_lab, lab


@pytest.fixture
def elb_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="sflowlab.controller.elb")
    return caplog
