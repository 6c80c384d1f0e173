"""The leaf-spine fabric's shape: switches, ports, hosts, external peers, addresses and routes.

Pure data, no traffic and no sFlow: ``Topology(spec)`` names every node, numbers every port
and routes a flow along a shortest path, choosing among equal-cost next hops by a hash of the
flow's 5-tuple salted with the switch's name (ECMP without polarisation).

Naming and numbering (stable for a given spec):

- switches ``leaf1..leafL``, ``spine1..spineS`` and, when ``external_peers > 0``, one border
  leaf ``border1`` connected to every spine and to the external routers ``ext1..extE``;
- leaf ports: host downlinks ``swp1..swpH`` (ifIndex 1..H), spine uplinks from ifIndex 49
  (``max(48, H) + 1``), like a 48-port top-of-rack switch; the border leaf numbers its external
  ports 1..E and its spine uplinks the same way;
- spine ports: leaves at ifIndex 1..L, the border leaf at L+1;
- hosts ``host1..hostN`` numbered leaf by leaf; host j on leaf i is 10.0.i.j and fd00::i:j (hex)
  (from ``host_subnet`` / ``host_subnet6``);
- agents take consecutive addresses of ``agent_subnet`` (``agent_subnet6`` with
  ``ipv6_agents``) in the order leaves, spines, border.

Everything that is not a host or switch address is external: it lives behind the ``internet``
node, which every external router reaches.
"""

from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

INTERNAL = 0x3FFFFFFF
"""Output ifIndex for traffic delivered to the switch itself."""

INTERNET = "internet"
DOWNLINK_PORTS = 48


def sampling_rate_for(speed_bps: int) -> int:
    """The customary 1-in-N by link speed: 1 per Mbit/s (1G: 1000, 10G: 10000, 100G: 100000)."""
    return max(1, speed_bps // 1_000_000)


@dataclass(frozen=True)
class FabricSpec:
    """What fabric to build and which of a real network's quirks to produce.

    Quirks on request: ``raw_ip_headers`` (header_protocol 11/12, no MAC header),
    ``counter_only`` switches (no sampling), very large ``sampling_rate``, ``ipv6_agents``,
    ``expanded`` samples, ``max_samples_per_s`` (a switch CPU budget: samples over it are
    counted as drops). Traffic to a switch's own address leaves with output ifIndex 0x3FFFFFFF.
    """

    leaves: int = 2
    spines: int = 2
    hosts_per_leaf: int = 4
    external_peers: int = 1
    leaf_uplink_bps: int = 40_000_000_000
    host_link_bps: int = 10_000_000_000
    external_link_bps: int = 10_000_000_000
    sampling_rate: int | None = None  # None: by link speed (sampling_rate_for)
    polling_s: float = 30.0
    agent_subnet: str = "10.255.0.0/24"
    agent_subnet6: str = "fd00:ff::/64"
    ipv6_agents: bool = False
    host_subnet: str = "10.0.0.0/16"
    host_subnet6: str = "fd00::/48"
    header_bytes: int = 128
    raw_ip_headers: bool = False
    expanded: bool = False
    counter_only: tuple[str, ...] = ()
    max_samples_per_s: float | None = None
    max_datagram: int = 1400

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.leaves <= 250, "leaves must be 1..250"),
            (1 <= self.spines <= 250, "spines must be 1..250"),
            (0 <= self.hosts_per_leaf <= 250, "hosts_per_leaf must be 0..250"),
            (0 <= self.external_peers <= 250, "external_peers must be 0..250"),
            (min(self.leaf_uplink_bps, self.host_link_bps, self.external_link_bps) > 0,
             "link speeds must be positive"),
            (self.sampling_rate is None or 1 <= self.sampling_rate < 2**32,
             "sampling_rate must be 1..2**32-1 (or None: by link speed)"),
            (self.polling_s >= 0, "polling_s must be >= 0 (0 disables counter polling)"),
            (14 <= self.header_bytes <= 1024, "header_bytes must be 14..1024"),
            (self.max_samples_per_s is None or self.max_samples_per_s >= 0,
             "max_samples_per_s must be >= 0"),
            (200 <= self.max_datagram <= 8192, "max_datagram must be 200..8192"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"FabricSpec: {message}")
        for text in (self.agent_subnet, self.agent_subnet6, self.host_subnet, self.host_subnet6):
            ipaddress.ip_network(text)  # raises ValueError naming the bad subnet

    @property
    def switch_names(self) -> list[str]:
        names = [f"leaf{i}" for i in range(1, self.leaves + 1)]
        names += [f"spine{i}" for i in range(1, self.spines + 1)]
        return names + (["border1"] if self.external_peers else [])


@dataclass(frozen=True)
class HostPort:
    """A host attached to a leaf: its addresses and the leaf port it hangs on."""

    name: str
    ip: str
    ip6: str
    mac: str
    leaf: str
    if_index: int


@dataclass(frozen=True)
class PortSpec:
    """One switch port: ifIndex, name, speed and the node at the other end."""

    if_index: int
    name: str
    speed_bps: int
    peer: str


@dataclass
class SwitchSpec:
    """A switch's identity and ports (``port_to`` maps a neighbour to the ifIndex facing it)."""

    name: str
    role: str  # "leaf" | "spine" | "border"
    ip: str
    ip6: str
    mac: str
    address: str  # the agent address: ip, or ip6 with ipv6_agents
    ports: dict[int, PortSpec] = field(default_factory=dict)
    port_to: dict[str, int] = field(default_factory=dict)

    def add_port(self, if_index: int, speed_bps: int, peer: str) -> None:
        self.ports[if_index] = PortSpec(if_index, f"swp{if_index}", speed_bps, peer)
        self.port_to[peer] = if_index


class Hop(NamedTuple):
    """A switch on a flow's path with the ports the flow enters and leaves by."""

    switch: str
    in_if: int
    out_if: int  # INTERNAL when the switch itself is the destination


def _mac(*parts: int) -> str:
    return ":".join(f"{p:02x}" for p in parts)


def _nth(subnet: str, n: int) -> str:
    net = ipaddress.ip_network(subnet)
    if n >= net.num_addresses - (net.version == 4):
        raise ValueError(f"subnet {subnet} too small for address number {n}")
    return str(net.network_address + n)


class Topology:
    """Nodes, ports, addresses and ECMP routing of a leaf-spine fabric built from a spec."""

    def __init__(self, spec: FabricSpec) -> None:
        self.spec = spec
        self.switches: dict[str, SwitchSpec] = {}
        self.hosts: dict[str, HostPort] = {}
        self.macs: dict[str, str] = {}
        self._adjacent: dict[str, list[str]] = {}
        self._by_ip: dict[str, str] = {}
        self._distances: dict[str, dict[str, int]] = {}
        self._build()

    # ------------------------------------------------------------------ construction

    def _link(self, a: str, b: str) -> None:
        self._adjacent.setdefault(a, []).append(b)
        self._adjacent.setdefault(b, []).append(a)

    def _build(self) -> None:
        spec = self.spec
        for n, name in enumerate(spec.switch_names, start=1):
            role = name.rstrip("0123456789")
            ip, ip6 = _nth(spec.agent_subnet, n), _nth(spec.agent_subnet6, n)
            sw = SwitchSpec(name, role, ip, ip6, _mac(0x02, 0xFA, 0, 0, n >> 8, n & 0xFF),
                            ip6 if spec.ipv6_agents else ip)
            self.switches[name] = sw
            self.macs[name] = sw.mac
            self._by_ip[sw.ip] = self._by_ip[sw.ip6] = name
            self._adjacent[name] = []
        uplink_base = max(DOWNLINK_PORTS, spec.hosts_per_leaf, spec.external_peers) + 1
        spines = [s for s in self.switches.values() if s.role == "spine"]
        for i, leaf in enumerate((s for s in self.switches.values() if s.role == "leaf"), 1):
            for j in range(1, spec.hosts_per_leaf + 1):
                self._add_host(leaf, i, j)
        border = self.switches.get("border1")
        if border is not None:
            for e in range(1, spec.external_peers + 1):
                peer = f"ext{e}"
                self.macs[peer] = _mac(0x02, 0xEE, 0, 0, 0, e)
                border.add_port(e, spec.external_link_bps, peer)
                self._link(border.name, peer)
                self._link(peer, INTERNET)
        for sw in self.switches.values():
            if sw.role == "spine":
                continue
            for k, spine in enumerate(spines):
                sw.add_port(uplink_base + k, spec.leaf_uplink_bps, spine.name)
                spine.add_port(len(spine.ports) + 1, spec.leaf_uplink_bps, sw.name)
                self._link(sw.name, spine.name)

    def _add_host(self, leaf: SwitchSpec, i: int, j: int) -> None:
        name = f"host{len(self.hosts) + 1}"
        host = HostPort(name, _nth(self.spec.host_subnet, (i << 8) + j),
                        _nth(self.spec.host_subnet6, (i << 16) + j),
                        _mac(0x02, 0, 0x0A, 0, i, j), leaf.name, j)
        leaf.add_port(j, self.spec.host_link_bps, name)
        self.hosts[name] = host
        self.macs[name] = host.mac
        self._by_ip[host.ip] = self._by_ip[host.ip6] = name
        self._link(leaf.name, name)

    # ------------------------------------------------------------------ endpoints

    def node_of(self, endpoint: str) -> str:
        """The node an endpoint names: a host or switch (by name or address) or ``internet``.

        Raises ValueError for a name that is neither a node nor an IP address.
        """
        if endpoint in self.hosts or endpoint in self.switches:
            return endpoint
        try:
            addr = str(ipaddress.ip_address(endpoint))
        except ValueError:
            raise ValueError(f"unknown endpoint {endpoint!r}: not a host, switch or address"
                             ) from None
        return self._by_ip.get(addr, INTERNET)

    def address_of(self, endpoint: str, ipv6: bool) -> str:
        """The IP address an endpoint uses for a flow of the given family."""
        node = self.node_of(endpoint)
        if node == INTERNET:
            return str(ipaddress.ip_address(endpoint))
        entry = self.hosts.get(node) or self.switches[node]
        return entry.ip6 if ipv6 else entry.ip

    # ------------------------------------------------------------------ routing

    def _distance_to(self, dst: str) -> dict[str, int]:
        dist = self._distances.get(dst)
        if dist is None:
            dist = {dst: 0}
            frontier = [dst]
            while frontier:
                nxt = []
                for u in frontier:
                    for v in self._adjacent[u]:
                        if v not in dist:
                            dist[v] = dist[u] + 1
                            nxt.append(v)
                frontier = nxt
            self._distances[dst] = dist
        return dist

    def route(self, src: str, dst: str, flow_key: str) -> list[str]:
        """The nodes from ``src`` to ``dst``; at each node, ECMP by crc32(node + flow key)."""
        dist = self._distance_to(dst)
        if src not in dist:
            raise ValueError(f"no route from {src} to {dst}")
        nodes = [src]
        while nodes[-1] != dst:
            u = nodes[-1]
            choices = [v for v in self._adjacent[u] if dist.get(v, -1) == dist[u] - 1]
            nodes.append(choices[zlib.crc32(f"{u}|{flow_key}".encode()) % len(choices)])
        return nodes

    def hops(self, nodes: list[str]) -> list[Hop]:
        """The switch hops of a node route (hosts, routers and ``internet`` are not agents)."""
        out = []
        for k, node in enumerate(nodes):
            sw = self.switches.get(node)
            if sw is None:
                continue
            if k == 0:
                raise ValueError(f"a flow cannot start at switch {node}")
            out_if = sw.port_to[nodes[k + 1]] if k + 1 < len(nodes) else INTERNAL
            out.append(Hop(node, sw.port_to[nodes[k - 1]], out_if))
        return out

    # ------------------------------------------------------------------ export

    def sflow_rt_topology(self) -> dict[str, Any]:
        """The fabric in sFlow-RT's topology JSON (``PUT /topology/json``): switch-to-switch
        links by node and port name, and each switch's agent address and port ifIndexes."""
        nodes = {name: {"agent": sw.address,
                        "ports": {p.name: {"ifindex": str(i)} for i, p in sw.ports.items()}}
                 for name, sw in self.switches.items()}
        links = {}
        for name, sw in self.switches.items():
            for port in sw.ports.values():
                peer = self.switches.get(port.peer)
                if peer is not None and f"{peer.name}-{name}" not in links:
                    links[f"{name}-{peer.name}"] = {
                        "node1": name, "port1": port.name,
                        "node2": peer.name, "port2": peer.ports[peer.port_to[name]].name}
        return {"nodes": nodes, "links": links}
