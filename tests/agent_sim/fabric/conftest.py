"""Helpers for the fabric tests: run a fabric over flows, decode everything, compute the truth."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sflowlab.agent_sim.fabric import Fabric
from sflowlab.agent_sim.sinks import MemorySink, Sink, TeeSink
from sflowlab.agent_sim.topology import INTERNAL, FabricSpec
from sflowlab.agent_sim.traffic import TrafficFlow
from sflowlab.codec import COUNTER_SAMPLES, Datagram, IfCounters, SampledHeader, decode_datagram
from sflowlab.codec.headers import decode_header


def header_key(header: SampledHeader) -> tuple[Any, ...]:
    """(source, destination, protocol, ports) as the codec's header decoder reads them."""
    keys = decode_header(header.header_protocol, header.header)
    return (keys.get("ipsource", keys.get("ip6source")),
            keys.get("ipdestination", keys.get("ip6destination")),
            keys.get("ipprotocol", keys.get("ip6nexthdr")),
            keys.get("tcpsourceport", keys.get("udpsourceport", 0)),
            keys.get("tcpdestinationport", keys.get("udpdestinationport", 0)))


@dataclass
class FabricRun:
    """A fabric after a run, with every datagram it sent (decoded, and as bytes)."""

    fabric: Fabric
    datagrams: list[tuple[float, str, Datagram]]
    raw: list[bytes]

    def samples(self, kinds: tuple[type, ...]) -> Iterator[tuple[float, str, Any]]:
        """``(now, switch name, sample)`` for every sample of the given classes."""
        switch_of = {sw.address: name for name, sw in self.fabric.switches.items()}
        for now, agent, dg in self.datagrams:
            for s in dg.samples:
                if isinstance(s, kinds):
                    yield now, switch_of[agent], s

    def flow_keys(self) -> dict[tuple[Any, ...], int]:
        """Each flow's id by its ``header_key`` (addresses as the fabric assigned them)."""
        out = {}
        topo = self.fabric.topology
        for fid, state in self.fabric.flows.items():
            f = state.flow
            ipv6 = f.inferred_ipv6()
            proto = 58 if ipv6 and f.protocol == "icmp" else f.protocol_number
            out[topo.address_of(f.src, ipv6), topo.address_of(f.dst, ipv6), proto, f.src_port,
                f.dst_port] = fid
        return out

    def port_counters(self) -> Iterator[tuple[float, str, Any]]:
        """``(now, switch name, sample)`` for the counters samples of ports (ifIndex sources)."""
        return ((now, sw, s) for now, sw, s in self.samples(COUNTER_SAMPLES)
                if s.source_id_type == 0)

    def last_counters(self) -> dict[tuple[str, int], IfCounters]:
        """The last if_counters reported per (switch, ifIndex)."""
        return {(switch, s.source_id_index): s.records[0]
                for _, switch, s in self.port_counters()}

    def true_counters(self, dropped_at: dict[int, str] | None = None
                      ) -> dict[tuple[str, int], list[int]]:
        """Per (switch, ifIndex) from the flows' packets and paths: in octets, in ucast,
        in discards, out octets, out ucast. ``dropped_at``: flow id -> switch dropping it."""
        dropped_at = dropped_at or {}
        totals: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0] * 5)
        for fid, state in self.fabric.flows.items():
            n, octets = state.packets, state.packets * (state.flow.packet_bytes + 4)
            for hop in self.fabric.path(state.flow):
                into = totals[hop.switch, hop.in_if]
                into[0] += octets
                if dropped_at.get(fid) == hop.switch:
                    into[2] += n
                    break
                into[1] += n
                if hop.out_if != INTERNAL:
                    out = totals[hop.switch, hop.out_if]
                    out[3] += octets
                    out[4] += n
        return dict(totals)


def counter_values(c: IfCounters) -> list[int]:
    return [c.if_in_octets, c.if_in_ucast_pkts, c.if_in_discards, c.if_out_octets,
            c.if_out_ucast_pkts]


def run_fabric(spec: FabricSpec, flows: Iterable[TrafficFlow], until: float, step: float = 0.5,
               seed: int = 7, sink: Sink | None = None,
               setup: Callable[[Fabric], None] | None = None) -> FabricRun:
    """Run ``flows`` from 0 to ``until`` in ``step`` ticks; ``setup`` may add rules first."""
    memory = MemorySink()
    fabric = Fabric(spec, memory if sink is None else TeeSink(memory, sink), random.Random(seed))
    for flow in flows:
        fabric.add_flow(flow)
    if setup is not None:
        setup(fabric)
    t = 0.0
    while t < until:
        t = min(until, t + step)
        fabric.tick(t)
    items = memory.drain()
    return FabricRun(fabric, [(now, a, decode_datagram(d)) for now, a, d in items],
                     [d for _, _, d in items])


@pytest.fixture(scope="session", name="run_fabric")
def run_fabric_fixture() -> Callable[..., FabricRun]:
    return run_fabric


@pytest.fixture(scope="session", name="header_key")
def header_key_fixture() -> Callable[[SampledHeader], tuple[Any, ...]]:
    return header_key


@pytest.fixture(scope="session", name="counter_values")
def counter_values_fixture() -> Callable[[IfCounters], list[int]]:
    return counter_values
