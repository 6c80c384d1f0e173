"""A simulated lab: Docker hosts running hsflowd, services with load, an optional fabric.

``LabSpec`` describes it (from options or a JSON/TOML/YAML file, see ``load_lab_spec``);
``Lab(spec, sink)`` builds it and ``tick(now)`` advances everything: scheduled changes, the
services' load, the hosts' samples and polls, and the fabric's traffic. One seeded
``random.Random`` drives everything, so the same spec and ticks give the same bytes.

Placement follows swarm: replicas spread over the hosts with the fewest containers, named
``<service>.<slot>.<task id>``. With a fabric, host ``i`` is the fabric's ``host<i>`` (its
address becomes the hsflowd agent address) and each service's client traffic crosses the
fabric from the external clients to the hosts and back, at the rates the replicas serve.
"""

from __future__ import annotations

import heapq
import ipaddress
import json
import random
import string
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .agent import Agent
from .fabric import Fabric
from .host import HostAgent, HostSpec
from .sinks import Sink
from .topology import FabricSpec
from .traffic import TrafficFlow
from .workload import Service, ServiceSpec

_TASK_ID = string.ascii_lowercase + string.digits


@dataclass
class Change:
    """A scheduled change to a service at ``at`` seconds from the lab's start."""

    at: float
    service: str
    rps: float | None = None
    clients: int | None = None
    replicas: int | None = None


@dataclass
class LabSpec:
    """What to simulate. ``switches`` >= 3 builds a leaf-spine (one border leaf, spines
    ``max(1, (switches-1)//3)``, the rest leaves); ``fabric`` gives the shape explicitly."""

    seed: int = 1
    hosts: int = 2
    containers: int = 2
    """Replicas per host of the default service (used when ``services`` is empty)."""
    sampling: int = 400
    polling_s: float = 10.0
    switches: int = 0
    fabric: FabricSpec | None = None
    services: list[ServiceSpec] = field(default_factory=list)
    schedule: list[Change] = field(default_factory=list)
    host_subnet: str = "10.0.0.0/16"
    """Host agent addresses when there is no fabric (host i gets the i-th address)."""
    header_bytes: int = 128
    max_datagram: int = 1400

    def __post_init__(self) -> None:
        if self.hosts < 1:
            raise ValueError("a lab needs at least one host")
        if self.containers < 0:
            raise ValueError("containers must be >= 0")
        if self.switches and self.switches < 3 and self.fabric is None:
            raise ValueError("--switches needs at least 3 (leaf, spine, border)")
        if not self.services and self.containers:
            self.services = [ServiceSpec(replicas=self.hosts * self.containers)]
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError(f"service names repeat: {names}")
        unknown = {c.service for c in self.schedule} - set(names)
        if unknown:
            raise ValueError(f"schedule names unknown services {sorted(unknown)}")

    def fabric_spec(self) -> FabricSpec | None:
        if self.fabric is not None:
            return self.fabric
        if not self.switches:
            return None
        spines = max(1, (self.switches - 1) // 3)
        leaves = self.switches - spines - 1
        return FabricSpec(leaves=leaves, spines=spines, hosts_per_leaf=-(-self.hosts // leaves),
                          external_peers=1, polling_s=self.polling_s,
                          header_bytes=self.header_bytes, max_datagram=self.max_datagram)


class Lab:
    """The running lab: ``hosts`` (hsflowd agents), ``services``, ``fabric`` (or None)."""

    def __init__(self, spec: LabSpec, sink: Sink, start: float = 0.0) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.start = self.now = start
        fabric_spec = spec.fabric_spec()
        self.fabric = (Fabric(fabric_spec, sink, random.Random(self.rng.getrandbits(64)), start)
                       if fabric_spec else None)
        self.hosts: dict[str, HostAgent] = {}
        for i in range(spec.hosts):
            hs = self._host_spec(i)
            self.hosts[hs.name] = HostAgent(hs, sink, random.Random(self.rng.getrandbits(64)),
                                            start)
        self.services: dict[str, Service] = {}
        self.placement: dict[str, str] = {}
        """Container id -> host name, for every replica started."""
        self._slots: dict[str, dict[int, str]] = {}
        self._flows: dict[tuple[str, str, str, bool], int] = {}
        self._pending = sorted(spec.schedule, key=lambda c: c.at)
        self._order = {name: i for i, name in enumerate(self.hosts)}
        self._load = [(0, i, name) for i, name in enumerate(self.hosts)]
        for s in spec.services:
            self.services[s.name] = Service(replace(s))  # its load changes: keep spec intact
            self._slots[s.name] = {}
            self.scale(s.name, s.replicas, start)

    def _host_spec(self, i: int) -> HostSpec:
        if self.fabric is not None:
            port = self.fabric.hosts.get(f"host{i + 1}")
            if port is None:
                raise ValueError(f"the fabric has {len(self.fabric.hosts)} host ports, "
                                 f"fewer than the lab's {self.spec.hosts} hosts")
            name, ip, mac = port.name, port.ip, port.mac
        else:
            net = ipaddress.IPv4Network(self.spec.host_subnet)
            if i + 1 >= net.num_addresses - 1:
                raise ValueError(f"host_subnet {net} has no room for {self.spec.hosts} hosts")
            addr = net.network_address + i + 1
            name, ip = f"host{i + 1}", str(addr)
            mac = "52:54:00:" + ":".join(f"{b:02x}" for b in addr.packed[1:])
        s = self.spec
        return HostSpec(name, ip, mac, sampling=s.sampling, polling_s=s.polling_s,
                        header_bytes=s.header_bytes, max_datagram=s.max_datagram)

    # ------------------------------------------------------------------ agents

    def agents(self) -> list[Agent]:
        """Every sFlow agent in the lab: hosts, then switches."""
        out = [h.agent for h in self.hosts.values()]
        if self.fabric is not None:
            out += [sw.agent for sw in self.fabric.switches.values()]
        return out

    # ------------------------------------------------------------------ services

    def scale(self, service: str, replicas: int, now: float) -> None:
        """Start or stop replicas (highest slots stop first; new ones go to the emptiest host)."""
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        svc, slots = self.services[service], self._slots[service]
        while len(slots) > replicas:
            slot = max(slots)
            cid = slots.pop(slot)
            svc.remove_replica(cid)
            host = self.hosts[self.placement[cid]]
            host.stop_container(cid, now, "exited")
            heapq.heappush(self._load, (len(host.containers), self._order[host.spec.name],
                                        host.spec.name))
        slot = 1
        while len(slots) < replicas:
            while slot in slots:
                slot += 1
            host = self._emptiest_host()
            task = "".join(self.rng.choice(_TASK_ID) for _ in range(25))
            c = host.start_container(f"{service}.{slot}.{task}", now, svc)
            slots[slot] = c.id
            svc.add_replica(c.id)
            self.placement[c.id] = host.spec.name

    def start_replica(self, service: str, name: str, host: str, now: float,
                      container_id: str | None = None) -> str:
        """Start a replica an orchestrator placed: ``name`` on ``host`` (a swarm task's
        container); returns the container id."""
        svc, h = self.services[service], self.hosts[host]
        c = h.start_container(name, now, svc, container_id)
        svc.add_replica(c.id)
        self.placement[c.id] = host
        heapq.heappush(self._load, (len(h.containers), self._order[host], host))
        return c.id

    def stop_replica(self, container_id: str, now: float, state: str = "exited") -> None:
        """Stop a replica started by ``start_replica`` (its final sample carries ``state``)."""
        host = self.hosts[self.placement[container_id]]
        service = host.containers[container_id].service
        if service is not None:
            service.remove_replica(container_id)
        host.stop_container(container_id, now, state)
        heapq.heappush(self._load, (len(host.containers), self._order[host.spec.name],
                                    host.spec.name))

    def _emptiest_host(self) -> HostAgent:
        """The host with the fewest running containers (the first such), via a lazy heap."""
        while True:
            count, _, name = self._load[0]
            host = self.hosts[name]
            if count == len(host.containers):
                heapq.heapreplace(self._load, (count + 1, self._order[name], name))
                return host
            heapq.heappop(self._load)  # stale entry: a fresher one is in the heap

    def _apply(self, change: Change, now: float) -> None:
        """Apply a change at the first tick at or after its time (the tick's load is served
        with the settings before it)."""
        svc = self.services[change.service]
        if change.rps is not None or change.clients is not None:
            svc.set_load(change.rps, change.clients)
        if change.replicas is not None:
            self.scale(change.service, change.replicas, now)

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> None:
        """Advance the whole lab to ``now``."""
        if now < self.now:
            raise ValueError(f"tick({now}) is before the lab's time {self.now}")
        dt, self.now = now - self.now, now
        rates: dict[tuple[str, str], int] = {}
        for name, svc in self.services.items():
            for cid, n, first in svc.step(dt):
                where = self.placement[cid]
                self.hosts[where].serve(cid, n, first, now)
                rates[(name, where)] = rates.get((name, where), 0) + n
        if self.fabric is not None:
            self._drive_fabric(rates, dt)
            self.fabric.tick(now)
        while self._pending and self.start + self._pending[0].at <= now:
            self._apply(self._pending.pop(0), now)
        for host in self.hosts.values():
            host.tick(now)

    def _drive_fabric(self, served: dict[tuple[str, str], int], dt: float) -> None:
        """Set the client<->host flows to the packet rates the replicas served this tick."""
        assert self.fabric is not None
        for (name, host, _, _), known in self._flows.items():
            if (name, host) not in served:
                self.fabric.set_rate(known, 0.0)
        for (name, host), n in served.items():
            svc = self.services[name]
            ex, clients = svc.exchange, svc.spec.client_addresses
            for inbound in (True, False):
                pkts = ex.pkts_in if inbound else ex.pkts_out
                size = (ex.bytes_in if inbound else ex.bytes_out) // pkts
                rate = n * pkts / dt / len(clients) if dt > 0 else 0.0
                for client in clients:
                    key = (name, host, client, inbound)
                    flow_id = self._flows.get(key)
                    if flow_id is None:
                        src, dst = (client, host) if inbound else (host, client)
                        ports = (40000, svc.spec.port) if inbound else (svc.spec.port, 40000)
                        flow_id = self._flows[key] = self.fabric.add_flow(TrafficFlow(
                            src, dst, "tcp", *ports, rate_pps=0.0, packet_bytes=max(size, 64)))
                    self.fabric.set_rate(flow_id, rate)

    def summary(self) -> dict[str, Any]:
        """Counts across every agent: agents, datagrams, samples by kind."""
        kinds: dict[str, int] = {}
        for a in self.agents():
            for k, v in a.samples_by_kind.items():
                kinds[k] = kinds.get(k, 0) + v
        return {"agents": len(self.agents()), "hosts": len(self.hosts),
                "switches": len(self.fabric.switches) if self.fabric else 0,
                "containers": sum(len(h.containers) for h in self.hosts.values()),
                "datagrams": sum(a.datagrams_sent for a in self.agents()),
                "samples": kinds}


# ---------------------------------------------------------------------- lab files


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    try:
        return cls(**data)
    except TypeError as e:
        raise ValueError(f"{where}: {e}") from None


def lab_spec_from_dict(data: dict[str, Any], **overrides: Any) -> LabSpec:
    """A ``LabSpec`` from a parsed lab file; ``overrides`` (not None) win over the file."""
    data = dict(data)
    if isinstance(data.get("fabric"), dict):
        data["fabric"] = _build(FabricSpec, data["fabric"], "fabric")
    services = []
    for i, s in enumerate(data.get("services") or []):
        s = dict(s)
        if "client_addresses" in s:
            s["client_addresses"] = tuple(s["client_addresses"])
        services.append(_build(ServiceSpec, s, f"services[{i}]"))
    data["services"] = services
    data["schedule"] = [_build(Change, c, f"schedule[{i}]")
                        for i, c in enumerate(data.get("schedule") or [])]
    data.update({k: v for k, v in overrides.items() if v is not None})
    return _build(LabSpec, data, "lab")  # type: ignore[no-any-return]


def load_lab_spec(path: str | Path, **overrides: Any) -> LabSpec:
    """Read a lab file: ``.json``, ``.toml``, or ``.yaml``/``.yml`` (needs PyYAML)."""
    p = Path(path)
    text = p.read_text()
    try:
        if p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            import yaml  # optional: the lab extra

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{p}: cannot parse: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping at the top level")
    return lab_spec_from_dict(data, **overrides)

