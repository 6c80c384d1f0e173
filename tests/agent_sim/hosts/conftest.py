"""Helpers for the host, workload and lab tests: run a host over a service, decode its output."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sflowlab.agent_sim.host import HostAgent, HostSpec
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.agent_sim.workload import Service, ServiceSpec
from sflowlab.codec import Datagram, decode_datagram


def decoded(sink: MemorySink) -> list[tuple[float, str, Datagram]]:
    """Every datagram in ``sink`` (drained), decoded; the codec must accept each one."""
    return [(now, agent, decode_datagram(data)) for now, agent, data in sink.drain()]


def samples(datagrams: list[tuple[float, str, Datagram]],
            kinds: tuple[type, ...]) -> Iterator[tuple[float, Any]]:
    for now, _, dg in datagrams:
        for s in dg.samples:
            if isinstance(s, kinds):
                yield now, s


@dataclass
class HostRun:
    """One host serving one service, advanced tick by tick."""

    host: HostAgent
    service: Service
    sink: MemorySink
    now: float = 0.0

    def advance(self, seconds: float, step: float = 0.5) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            dt = min(step, end - self.now)
            self.now = round(self.now + dt, 9)
            for cid, n, first in self.service.step(dt):
                self.host.serve(cid, n, first, self.now)
            self.host.tick(self.now)


def host_run(replicas: int = 2, sampling: int = 50, polling_s: float = 10.0, seed: int = 7,
             **service: Any) -> HostRun:
    sink = MemorySink()
    host = HostAgent(HostSpec("docker1", "10.0.0.5", sampling=sampling, polling_s=polling_s),
                     sink, random.Random(seed))
    svc = Service(ServiceSpec(replicas=replicas, **service))
    for slot in range(1, replicas + 1):
        c = host.start_container(f"apache.{slot}.task{slot}", 0.0, svc)
        svc.add_replica(c.id)
    return HostRun(host, svc, sink)


class Helpers:
    """The helpers above, handed to tests by the ``sim`` fixture (conftest is not importable)."""

    decoded = staticmethod(decoded)
    samples = staticmethod(samples)
    host_run = staticmethod(host_run)


@pytest.fixture(scope="session")
def sim() -> Helpers:
    return Helpers()
