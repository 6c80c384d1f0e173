"""Network topology (``PUT /topology/json``), as sFlow-RT takes it, and what it selects.

A topology is ``{"nodes": {name: {"agent": address, "ports": {port: {"ifindex": "3"}}}},
"links": {name: {"node1", "port1", "node2", "port2"}}}``. A node without ``agent`` is the
agent whose ``host_name`` (host_descr) is the node's name; a port without ``ifindex`` is the
agent's interface whose ``ifname`` (port_name) is the port's name: the mapping is learned from
the counters, as sFlow-RT does.

What it selects (agent tokens of queries, ``aggMode`` of top flows):

- ``TOPOLOGY``: every data source of the nodes' agents;
- ``CORE``: the interfaces at either end of a link (inter-switch ports);
- ``EDGE``: the other interfaces of the nodes' agents (ports facing hosts).

``aggMode=edge`` sums a flow over edge ports only: a packet enters the fabric through one edge
port, so nothing is counted twice. ``aggMode=core`` takes a flow's largest value on any core
port (the busiest inter-switch link it crosses).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .query import QueryError, Scope

Metrics = Iterable[tuple[str, str, Mapping[str, Any]]]
"""(agent, data source, metric values) of every live data source."""


@dataclass(frozen=True)
class Link:
    node1: str
    port1: str
    node2: str
    port2: str


@dataclass(frozen=True)
class Topology:
    """A validated topology, kept in its JSON shape for ``GET /topology/json``."""

    spec: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Any) -> Topology:
        """Validate ``{"nodes": {...}, "links": {...}}``; ``ValueError`` says what is wrong."""
        if not isinstance(obj, Mapping):
            raise ValueError('a topology is {"nodes": {...}, "links": {...}}')
        unknown = sorted(set(obj) - {"nodes", "links", "version"})
        if unknown:
            raise ValueError(f"unsupported topology attribute(s) {', '.join(unknown)}")
        nodes, links = obj.get("nodes") or {}, obj.get("links") or {}
        if not isinstance(nodes, Mapping) or not isinstance(links, Mapping):
            raise ValueError("topology nodes and links are objects keyed by name")
        for name, node in nodes.items():
            if not isinstance(node, Mapping):
                raise ValueError(f"topology node {name!r} must be an object")
            ports = node.get("ports") or {}
            if not isinstance(ports, Mapping) or not all(
                    isinstance(p, Mapping) for p in ports.values()):
                raise ValueError(f"topology node {name!r}: ports are objects keyed by name")
        for name, link in links.items():
            if not isinstance(link, Mapping) or not all(
                    isinstance(link.get(k), str) for k in ("node1", "port1", "node2", "port2")):
                raise ValueError(f"topology link {name!r} needs node1, port1, node2, port2")
        return cls({part: {str(n): dict(v) for n, v in obj[part].items()}
                    for part in ("nodes", "links") if obj.get(part)})

    def to_json(self) -> dict[str, Any]:
        return dict(self.spec)

    @property
    def defined(self) -> bool:
        return bool(self.spec.get("nodes") or self.spec.get("links"))

    def links(self) -> list[Link]:
        return [Link(v["node1"], v["port1"], v["node2"], v["port2"])
                for v in (self.spec.get("links") or {}).values()]

    def resolve(self, metrics: Metrics) -> TopologyView:
        """Map nodes to agents and ports to ifIndexes with what the counters tell."""
        by_host: dict[str, str] = {}
        if_names: dict[tuple[str, str], str] = {}
        for agent, ds, values in metrics:
            host = values.get("host_name")
            if isinstance(host, str) and host:
                by_host.setdefault(host, agent)
            ifname = values.get("ifname")
            if isinstance(ifname, str) and ifname:
                if_names[(agent, ifname)] = ds
        nodes: dict[str, Any] = self.spec.get("nodes") or {}
        names = set(nodes) | {n for link in self.links() for n in (link.node1, link.node2)}
        agents: dict[str, str] = {}
        for name in names:
            found = (nodes.get(name) or {}).get("agent") or by_host.get(name)
            if found:
                agents[name] = str(found)

        def port(node: str, name: str) -> tuple[str, str] | None:
            agent = agents.get(node)
            if agent is None:
                return None
            declared = ((nodes.get(node) or {}).get("ports") or {}).get(name) or {}
            index = declared.get("ifindex")
            if index is not None:
                return agent, str(index)
            ds = if_names.get((agent, name))
            return None if ds is None else (agent, ds)

        core = {p for link in self.links()
                for p in (port(link.node1, link.port1), port(link.node2, link.port2)) if p}
        return TopologyView(frozenset(agents.values()), frozenset(core))


@dataclass(frozen=True)
class TopologyView:
    """A topology resolved to agents and core ports."""

    agents: frozenset[str]
    core: frozenset[tuple[str, str]]

    def is_core(self, agent: str, ds: str) -> bool:
        return (agent, ds) in self.core

    def is_edge(self, agent: str, ds: str) -> bool:
        return agent in self.agents and ds.isdigit() and (agent, ds) not in self.core

    def scope(self, tokens: Iterable[str]) -> Scope:
        """The data sources ``TOPOLOGY``, ``EDGE`` and ``CORE`` select (united)."""
        tokens = set(tokens)
        tests = [t for t, on in ((self.is_edge, "EDGE" in tokens),
                                 (self.is_core, "CORE" in tokens)) if on]
        agents = self.agents if "TOPOLOGY" in tokens else frozenset()
        if not tests:
            return Scope(agents=agents)
        if len(tests) == 1:
            return Scope(agents=agents, ports=tests[0])
        return Scope(agents=agents, ports=lambda a, d: any(t(a, d) for t in tests))


def require(topology: Topology, what: str) -> None:
    if not topology.defined:
        raise QueryError(f"{what} needs a topology: PUT /topology/json first")
