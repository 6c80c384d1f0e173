"""Helpers for the controller tests: one SimClock drives a swarm double (served over HTTP to
the real docker SDK), a collector engine and a controller runtime.

- ``ContainerFeed``: exact counters for the swarm's running containers at loads the test sets;
- ``SwarmLabBridge``: swarm task starts/stops become agent_sim containers on the lab's hsflowd
  host agents, whose datagrams reach the engine in-process (the scenario runner's idea);
- ``ElbLab``: the wiring and a ``step_to(t)`` that advances everything second by second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflowlab.agent_sim.simulation import Lab
from sflowlab.clock import SimClock
from sflowlab.codec import CountersSample, Datagram, HostDescr, VirtCpu, VirtNetIo, encode_datagram
from sflowlab.collector.engine import Engine
from sflowlab.collector.runtime import HttpRequest, Runtime
from sflowlab.controllers.elb import ElasticLoadBalancer
from sflowlab.lab.doubles.swarm_api import SwarmApi
from sflowlab.lab.doubles.swarm_model import ContainerStarted, ContainerStopped, Swarm, SwarmEvent

START = 1000.0
NODES = {"node1": "10.0.0.1", "node2": "10.0.0.2"}
SHUTOFF = 5  # virDomainState: the engine drops a container reporting it


def spec(name: str = "apache", replicas: int = 1) -> dict[str, Any]:
    return {"Name": name, "TaskTemplate": {"ContainerSpec": {"Image": "httpd:2.4"}},
            "Mode": {"Replicated": {"Replicas": replicas}},
            "EndpointSpec": {"Ports": [{"TargetPort": 80}]}}


@dataclass
class Load:
    """What each container of a service does per second: CPU percent, bytes in and out."""

    util: float
    bytes_in: float = 0.0
    bytes_out: float = 0.0


@dataclass
class _Fed:
    agent: str
    index: int
    name: str
    service: str
    seq: int = 0
    cpu_ms: float = 0.0
    bytes_in: float = 0.0
    bytes_out: float = 0.0
    last: float | None = None
    state: int = 1


class ContainerFeed:
    """Counter samples for the swarm's containers, each second, at ``loads[service]``.

    A container's first sample carries no rates (as in the engine); a stopped container sends
    one final sample with state shutoff, so metricN follows the running population.
    """

    def __init__(self, swarm: Swarm, engine: Engine) -> None:
        self.engine = engine
        self._agents = {n.hostname: n.addr for n in swarm.nodes}
        self.loads: dict[str, Load] = {}
        self._fed: dict[str, _Fed] = {}
        self._seq: dict[str, int] = {}
        self._next_index = 1
        swarm.subscribe(self._on_event)

    def _on_event(self, event: SwarmEvent) -> None:
        if isinstance(event, ContainerStarted):
            self._fed[event.container_id] = _Fed(self._agents[event.node], self._next_index,
                                                 event.name, event.service)
            self._next_index += 1
        elif isinstance(event, ContainerStopped):
            self._fed[event.container_id].state = SHUTOFF

    def send(self, now: float) -> None:
        for cid, c in list(self._fed.items()):
            load = self.loads.get(c.service, Load(0.0))
            if c.last is not None:
                dt = now - c.last
                c.cpu_ms += load.util * 10.0 * dt
                c.bytes_in += load.bytes_in * dt
                c.bytes_out += load.bytes_out * dt
            c.last, c.seq = now, c.seq + 1
            sample = CountersSample(c.seq, (3 << 24) | c.index, (
                HostDescr(hostname=c.name),
                VirtCpu(state=c.state, cpu_time_ms=round(c.cpu_ms), nr_virt_cpu=1),
                VirtNetIo(bytes_in=round(c.bytes_in), bytes_out=round(c.bytes_out))))
            seq = self._seq[c.agent] = self._seq.get(c.agent, 0) + 1
            data = encode_datagram(Datagram(5, c.agent, 0, seq, round(now * 1000), (sample,)))
            assert self.engine.ingest(data, (c.agent, 6343), now)
            if c.state == SHUTOFF:
                del self._fed[cid]


class SwarmLabBridge:
    """Swarm containers as agent_sim containers: the lab's host agents follow the swarm.

    The lab's hosts are the swarm's nodes (same names and addresses); a ContainerStarted
    starts the task's container (its name and id) on that host serving the lab's service of
    the same name, a ContainerStopped stops it (hsflowd's final sample, state exited).
    """

    def __init__(self, lab: Lab, swarm: Swarm) -> None:
        self.lab = lab
        swarm.subscribe(self._on_event)

    def _on_event(self, event: SwarmEvent) -> None:
        if isinstance(event, ContainerStarted):
            self.lab.start_replica(event.service, event.name, event.node, event.at,
                                   event.container_id)
        elif isinstance(event, ContainerStopped):
            self.lab.stop_replica(event.container_id, event.at)


@dataclass
class ElbLab:
    """A swarm double on a SimClock, served over HTTP; an engine and a runtime on that clock.

    ``sources`` send each second's datagrams to ``engine`` (by default the ContainerFeed)."""

    clock: SimClock
    swarm: Swarm
    api: SwarmApi
    state_dir: Path
    engine: Engine = field(init=False)
    runtime: Runtime = field(init=False)
    feed: ContainerFeed = field(init=False)
    sources: list[Callable[[float], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = Engine(self.clock)
        self.runtime = Runtime(self.engine, self.clock, self.state_dir)
        self.feed = ContainerFeed(self.swarm, self.engine)
        self.sources = [self.feed.send]

    @property
    def url(self) -> str:
        return self.api.url.replace("http://", "tcp://")

    def elb(self, services: Any = ("apache",), **params: Any) -> ElasticLoadBalancer:
        """An ELB on this lab's Docker API, started in the runtime as ``elb``."""
        params.setdefault("docker_url", self.url)
        elb = ElasticLoadBalancer(services, **params)
        self.runtime.add("elb", elb)
        return elb

    def service(self, name: str = "apache", replicas: int = 1, load: Load | None = None) -> None:
        """Create a swarm service whose containers (once running) report ``load`` each."""
        self.swarm.create_service(spec(name, replicas))
        if load is not None:
            self.feed.loads[name] = load

    def restart_runtime(self) -> None:
        """A new runtime on the same engine, clock and state dir: the controller restarts."""
        self.runtime = Runtime(self.engine, self.clock, self.state_dir)

    def step_to(self, t: float) -> None:
        """Each whole second up to ``t``: swarm timers, agents' samples, engine and runtime."""
        now = self.clock.now()
        while now + 1 <= t + 1e-9:
            now += 1
            self.clock.advance_to(now)
            for send in self.sources:
                send(now)
            self.runtime.tick(now, self.engine.tick(now))

    def http(self, method: str = "GET", path: tuple[str, ...] = (),
             body: Any = None, **query: str) -> Any:
        return self.runtime.http("elb", HttpRequest(method, path,
                                                    {k: [v] for k, v in query.items()}, body))

    def replicas(self, name: str = "apache") -> int:
        return self.swarm.service(name).replicas

    def running(self, name: str = "apache") -> int:
        return len(self.swarm.running(name))
