"""Switch sFlow agents of a leaf-spine fabric, driven by the traffic model one tick at a time.

Choices, as real switches make them:

- Sampling at ingress: every port has a ``Sampler`` over the packets it receives (source id =
  that ifIndex, input = that port, output = the port the packet leaves by, ``0x3FFFFFFF`` when
  the switch itself is the destination). ``sample_pool`` counts every packet received (the
  samples of one flow's batch in a tick carry the pool after that batch). With
  ``max_samples_per_s`` a switch sends at most that many samples a second (a CPU policer);
  the rest count in the sampler's ``drops``.
- Records: ``sampled_header`` (Ethernet: the first ``header_bytes`` of the frame,
  ``frame_length`` = frame + 4-byte FCS, ``stripped`` = 4; raw IP with ``raw_ip_headers``:
  protocol 11/12, the IP packet, ``frame_length`` = IP length, ``stripped`` = 0) and
  ``extended_switch`` (the flow's VLAN, or native VLAN 1). The fabric is routed: each link
  has its own MACs and the TTL drops by one per switch; a flow's 802.1Q tag, if any, is kept
  on every link (trunk ports) so a port's counters see one frame size per flow.
- Counters, per port and exact: ``ifInOctets``/``ifOutOctets`` count frames with FCS
  (``packet_bytes + 4``), ``ifIn/OutUcastPkts`` the packets delivered/sent; one counters
  sample (if_counters, ethernet_counters, port_name) per port per ``polling_s``, first poll
  randomised. Like switches running hsflowd (Cumulus, SONiC), each also reports its
  ``host_descr`` (hostname = switch name) from data source 2.1, so a collector can map
  topology node and port names to agent and ifIndex.
- ACL rules (``install_rule``) act at ingress after sampling: a dropped packet counts in
  ``ifInOctets`` and ``ifInDiscards`` (not ``ifInUcastPkts``, RFC 2863) and goes no further;
  its samples say output format 1 (discarded), reason 258 (acl). Every matching rule acts:
  mirrors see the packet (capped per rule per tick), any drop rule drops it.

Traffic runs in aggregate: per tick each flow sends a whole number of packets, each hop adds
them to its counters and asks the port's sampler how many are sampled; only those samples are
made, from bytes encoded once per flow and hop with the sequence number, pool and drops
patched in. Headers are therefore identical across a flow's samples at one hop.
"""

from __future__ import annotations

import random
import struct
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from sflowlab.codec import (
    CountersSample,
    CountersSampleExpanded,
    EthernetCounters,
    ExtendedSwitch,
    FlowSample,
    FlowSampleExpanded,
    HostDescr,
    IfCounters,
    PortName,
    SampledHeader,
    encode_sample,
)
from sflowlab.codec.counter_records import MACHINE_TYPES, OS_NAMES

from .agent import Agent, Poller, Sampler
from .packets import Packet
from .sinks import Sink
from .topology import (
    INTERNET,
    FabricSpec,
    Hop,
    HostPort,
    PortSpec,
    SwitchSpec,
    Topology,
    sampling_rate_for,
)
from .traffic import FlowState, PacketRule, TrafficFlow

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1
ACL_DISCARD = (1 << 30) | 258  # compact output: format 1 (discarded), reason 258 (acl)
NATIVE_VLAN = 1
OS_RELEASE = "5.10.0-cl-1-amd64"  # a Cumulus Linux kernel: switches running hsflowd

_U32 = struct.Struct(">I")
_RATE_POOL_DROPS = struct.Struct(">III")


def _offset(sample_type: type, name: str) -> int:
    """Byte offset of a leading u32 field in an encoded sample (after format and length)."""
    fields: tuple[str, ...] = sample_type._fields  # type: ignore[attr-defined]
    return 8 + 4 * fields.index(name)


@dataclass
class Interface:
    """A switch port with its true traffic counters, its sampler (None: counters only) and
    its counter poller."""

    port: PortSpec
    poller: Poller
    sampler: Sampler | None = None
    in_octets: int = 0
    in_ucast_pkts: int = 0
    in_discards: int = 0
    out_octets: int = 0
    out_ucast_pkts: int = 0

    @property
    def if_index(self) -> int:
        return self.port.if_index

    def if_counters(self) -> IfCounters:
        p = self.port
        return IfCounters(
            p.if_index, 6, p.speed_bps, 1, 3, self.in_octets & M64, self.in_ucast_pkts & M32,
            0, 0, self.in_discards & M32, 0, 0, self.out_octets & M64,
            self.out_ucast_pkts & M32, 0, 0, 0, 0, 0,
        )


class SwitchAgent:
    """One switch: its sFlow ``Agent``, ports (``interfaces`` by ifIndex) and ACL rules."""

    def __init__(self, spec: SwitchSpec, fabric: FabricSpec, sink: Sink, rng: random.Random,
                 start: float) -> None:
        self.name, self.role, self.mac = spec.name, spec.role, spec.mac
        self.address = spec.address
        self.expanded = fabric.expanded
        self.agent = Agent(spec.address, sink, boot_time=start, max_datagram=fabric.max_datagram)
        self.descr = HostDescr(spec.name, str(uuid.uuid5(uuid.NAMESPACE_DNS, spec.name)),
                               MACHINE_TYPES.index("x86_64"), OS_NAMES.index("linux"),
                               OS_RELEASE)
        self.device = Poller(2, 1, fabric.polling_s, rng, start)
        self.agent.pollers.append(self.device)
        self.rules: dict[str, PacketRule] = {}
        self.interfaces: dict[int, Interface] = {}
        sampling = spec.name not in fabric.counter_only
        for if_index in sorted(spec.ports):
            port = spec.ports[if_index]
            poller = Poller(0, if_index, fabric.polling_s, rng, start)
            self.agent.pollers.append(poller)
            sampler = None
            if sampling:
                rate = fabric.sampling_rate or sampling_rate_for(port.speed_bps)
                sampler = Sampler(0, if_index, rate, random.Random(rng.getrandbits(64)))
                self.agent.samplers.append(sampler)
            self.interfaces[if_index] = Interface(port, poller, sampler)
        self._budget_rate = fabric.max_samples_per_s
        self._tokens = fabric.max_samples_per_s or 0.0
        self._mirror_left: dict[str, int] = {}

    def begin_tick(self, dt: float) -> None:
        """Refill the sample budget (at most one second's worth) and the mirror caps."""
        if self._budget_rate is not None:
            self._tokens = min(self._budget_rate, self._tokens + self._budget_rate * dt)
        for rule_id, rule in self.rules.items():
            self._mirror_left[rule_id] = rule.mirror_limit

    def emit_flow_samples(self, hop: _HopState, count: int, now: float) -> None:
        """Send ``count`` samples just taken at ``hop``'s input port (or count them as drops)."""
        sampler = hop.inp.sampler
        assert sampler is not None
        if self._budget_rate is not None:
            allowed = min(count, int(self._tokens))
            self._tokens -= allowed
            sampler.drops = (sampler.drops + count - allowed) & M32
            count = allowed
        seq_at, rate_at = hop.offsets
        for _ in range(count):
            buf = bytearray(hop.template)
            _U32.pack_into(buf, seq_at, sampler.next_sequence())
            _RATE_POOL_DROPS.pack_into(buf, rate_at, sampler.sampling_rate, sampler.sample_pool,
                                       sampler.drops)
            self.agent.emit(bytes(buf), now)

    def mirror(self, hop: _HopState, first_seq: int, count: int, now: float) -> None:
        """Hand up to each mirror rule's remaining cap of ``count`` packets to its callback."""
        for rule_id, rule in hop.mirrors:
            callback = rule.mirror
            assert callback is not None
            m = min(count, self._mirror_left[rule_id])
            self._mirror_left[rule_id] -= m
            for i in range(m):
                callback(replace(hop.packet, seq=(first_seq + i) & M32), self.name, now)

    def poll(self, now: float) -> None:
        """Emit a counters sample for the device and every port whose poll is due."""
        if self.device.due(now):
            self._emit_counters(self.device, (self.descr,), now)
        for iface in self.interfaces.values():
            if iface.poller.due(now):
                records = (iface.if_counters(), EthernetCounters(), PortName(iface.port.name))
                self._emit_counters(iface.poller, records, now)

    def _emit_counters(self, poller: Poller, records: tuple[Any, ...], now: float) -> None:
        seq = poller.next_sequence(now)
        kind, index = poller.source_id_type, poller.source_id_index
        self.agent.emit(CountersSampleExpanded(seq, kind, index, records) if self.expanded
                        else CountersSample(seq, (kind << 24) | index, records), now)


@dataclass
class _HopState:
    """A flow at one switch: ports, the packet as seen there, the sample template, verdicts."""

    hop: Hop
    switch: SwitchAgent
    inp: Interface
    out: Interface | None
    packet: Packet
    template: bytes = b""
    offsets: tuple[int, int] = (0, 0)
    drop: bool = False
    mirrors: list[tuple[str, PacketRule]] = field(default_factory=list)


@dataclass
class _Route:
    state: FlowState
    src_ip: str
    dst_ip: str
    hops: list[_HopState]


class Fabric:
    """A leaf-spine fabric of switch agents carrying ``TrafficFlow``s; advance with ``tick``.

    ``hosts`` and ``switches`` are keyed by name; ``flows`` holds each flow's ``FlowState``
    (packets sent and dropped: the ground truth).
    """

    def __init__(self, spec: FabricSpec, sink: Sink, rng: random.Random,
                 start: float = 0.0) -> None:
        self.spec = spec
        self.topology = Topology(spec)
        self.hosts: dict[str, HostPort] = self.topology.hosts
        unknown = set(spec.counter_only) - set(self.topology.switches)
        if unknown:
            raise ValueError(f"FabricSpec.counter_only names unknown switches {sorted(unknown)}")
        self.switches = {name: SwitchAgent(s, spec, sink, rng, start)
                         for name, s in self.topology.switches.items()}
        self.flows: dict[int, FlowState] = {}
        self._routes: dict[int, _Route] = {}
        self._next_id = 1
        self.now = start

    # ------------------------------------------------------------------ flows

    def _resolve(self, flow: TrafficFlow) -> tuple[str, str, list[str]]:
        ipv6 = flow.inferred_ipv6()
        if flow.packet_bytes < flow.min_packet_bytes(ipv6):
            raise ValueError(f"TrafficFlow {flow.src}->{flow.dst}: packet_bytes must be >= "
                             f"{flow.min_packet_bytes(ipv6)} for its headers")
        src, dst = self.topology.node_of(flow.src), self.topology.node_of(flow.dst)
        if src == dst:
            raise ValueError(f"TrafficFlow {flow.src}->{flow.dst}: both ends are {src}")
        if INTERNET in (src, dst) and not self.spec.external_peers:
            raise ValueError(f"TrafficFlow {flow.src}->{flow.dst}: external address but the "
                             "fabric has no external peers")
        src_ip = self.topology.address_of(flow.src, ipv6)
        dst_ip = self.topology.address_of(flow.dst, ipv6)
        key = f"{src_ip}|{dst_ip}|{flow.protocol}|{flow.src_port}|{flow.dst_port}"
        return src_ip, dst_ip, self.topology.route(src, dst, key)

    def path(self, flow: TrafficFlow) -> list[Hop]:
        """The switches a flow crosses, with its input and output ifIndex at each."""
        return self.topology.hops(self._resolve(flow)[2])

    def add_flow(self, flow: TrafficFlow) -> int:
        """Start carrying a flow (from its ``start_s``); returns its id."""
        src_ip, dst_ip, nodes = self._resolve(flow)
        hops = self.topology.hops(nodes)
        flow_id = self._next_id
        self._next_id += 1
        states = []
        for k, hop in enumerate(hops):
            sw = self.switches[hop.switch]
            prev = nodes[nodes.index(hop.switch) - 1]
            packet = flow.packet(src_ip, dst_ip, self.topology.macs[prev], sw.mac, 64 - k,
                                 flow_id)
            states.append(_HopState(hop, sw, sw.interfaces[hop.in_if],
                                    sw.interfaces.get(hop.out_if), packet))
        route = _Route(FlowState(flow, flow.rate_pps), src_ip, dst_ip, states)
        for hs in states:
            self._apply_rules(route, hs)
        self.flows[flow_id] = route.state
        self._routes[flow_id] = route
        return flow_id

    def remove_flow(self, flow_id: int) -> None:
        """Stop carrying a flow (KeyError if unknown)."""
        del self._routes[flow_id]
        del self.flows[flow_id]

    def set_rate(self, flow_id: int, rate_pps: float) -> None:
        """Change a flow's rate from the next tick on."""
        if not rate_pps >= 0:
            raise ValueError("rate_pps must be >= 0")
        self.flows[flow_id].rate_pps = rate_pps

    # ------------------------------------------------------------------ ACL rules

    def install_rule(self, switch: str, rule_id: str, rule: PacketRule) -> None:
        """Add (or replace) an ACL rule on a switch; it acts from the next tick."""
        self.switches[switch].rules[rule_id] = rule
        self._refresh(switch)

    def remove_rule(self, switch: str, rule_id: str) -> None:
        """Remove an ACL rule (KeyError if the switch has no such rule)."""
        del self.switches[switch].rules[rule_id]
        self.switches[switch]._mirror_left.pop(rule_id, None)
        self._refresh(switch)

    def _refresh(self, switch: str) -> None:
        for route in self._routes.values():
            for hs in route.hops:
                if hs.hop.switch == switch:
                    self._apply_rules(route, hs)

    def _apply_rules(self, route: _Route, hs: _HopState) -> None:
        flow = route.state.flow
        matching = [(rid, r) for rid, r in hs.switch.rules.items()
                    if r.matches(flow, route.src_ip, route.dst_ip)]
        hs.drop = any(r.drops for _, r in matching)
        hs.mirrors = [(rid, r) for rid, r in matching if r.mirror is not None]
        if hs.inp.sampler is not None:
            hs.template, hs.offsets = self._template(hs, flow)

    def _template(self, hs: _HopState, flow: TrafficFlow) -> tuple[bytes, tuple[int, int]]:
        """The encoded flow sample for this hop, sequence/pool/drops to be patched in."""
        packet, spec = hs.packet, self.spec
        if spec.raw_ip_headers:
            header = SampledHeader(12 if packet.is_ipv6 else 11,
                                   packet.length - packet.l2_header_length(), 0,
                                   packet.header(spec.header_bytes, raw_ip=True))
        else:
            header = SampledHeader(1, packet.length + 4, 4, packet.header(spec.header_bytes))
        vlan = flow.vlan or NATIVE_VLAN
        records = (header, ExtendedSwitch(vlan, 0, vlan, 0))
        in_if, out_if = hs.hop.in_if, hs.hop.out_if
        sample: FlowSample | FlowSampleExpanded
        if spec.expanded:
            out_format, out_value = (1, 258) if hs.drop else (0, out_if)
            sample = FlowSampleExpanded(0, 0, in_if, 0, 0, 0, 0, in_if, out_format, out_value,
                                        records)
        else:
            sample = FlowSample(0, in_if, 0, 0, 0, in_if, ACL_DISCARD if hs.drop else out_if,
                                records)
        kind = type(sample)
        return encode_sample(sample), (_offset(kind, "sequence_number"),
                                       _offset(kind, "sampling_rate"))

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> None:
        """Carry traffic up to ``now``, emit the samples and due polls, flush every agent."""
        if now < self.now:
            raise ValueError(f"tick({now}) is before the fabric's time {self.now}")
        t0, self.now = self.now, now
        for sw in self.switches.values():
            sw.begin_tick(now - t0)
        for route in self._routes.values():
            n = route.state.advance(t0, now)
            if n:
                self._forward(route, n, now)
        for sw in self.switches.values():
            sw.poll(now)
            sw.agent.flush(now)

    @staticmethod
    def _forward(route: _Route, n: int, now: float) -> None:
        state = route.state
        octets = n * (state.flow.packet_bytes + 4)
        for hs in route.hops:
            inp = hs.inp
            inp.in_octets += octets
            sampled = inp.sampler.observe(n) if inp.sampler is not None else 0
            if hs.mirrors:
                hs.switch.mirror(hs, state.packets - n, n, now)
            if hs.drop:
                inp.in_discards += n
                state.dropped += n
                if sampled:
                    hs.switch.emit_flow_samples(hs, sampled, now)
                return
            inp.in_ucast_pkts += n
            if hs.out is not None:
                hs.out.out_octets += octets
                hs.out.out_ucast_pkts += n
            if sampled:
                hs.switch.emit_flow_samples(hs, sampled, now)
