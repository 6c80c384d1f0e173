"""The switch fabric against its ground truth: topology, ECMP, counters, sampling, sequences."""

from __future__ import annotations

import itertools
import math
import os
import random
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from sflowlab.agent_sim.fabric import Fabric
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.agent_sim.topology import INTERNAL, FabricSpec, Hop
from sflowlab.agent_sim.traffic import TrafficFlow
from sflowlab.codec import (
    COUNTER_SAMPLES,
    FLOW_SAMPLES,
    EthernetCounters,
    ExtendedSwitch,
    IfCounters,
    PortName,
)

MIXED_FLOWS = [
    TrafficFlow("host1", "host5", "tcp", 40001, 443, 2000, 1500, stop_s=50),
    TrafficFlow("host5", "host1", "tcp", 443, 40001, 1000, 100, stop_s=50),
    TrafficFlow("host2", "host3", "udp", 5000, 5001, 700.5, 800, vlan=20, stop_s=50),
    TrafficFlow("host6", "host4", "icmp", rate_pps=300, packet_bytes=98, start_s=10, stop_s=40),
    TrafficFlow("host7", "host8", "tcp", 1234, 22, 500, 700, ipv6=True, vlan=30, stop_s=50),
    TrafficFlow("host3", "198.51.100.20", "tcp", 50000, 443, 900, 400, stop_s=50),
    TrafficFlow("2001:db8::9", "host6", "udp", 53, 33000, 800, 512, stop_s=50),
    TrafficFlow("host8", "leaf1", "tcp", 33001, 179, 200, 120, stop_s=50),
]


@pytest.fixture(scope="module")
def mixed(run_fabric: Callable[..., Any]) -> Any:
    return run_fabric(FabricSpec(sampling_rate=50, polling_s=10), MIXED_FLOWS, until=70)


# ---------------------------------------------------------------- topology and paths


def test_topology_names_ports_and_addresses_are_stable() -> None:
    a, b = Fabric(FabricSpec(), MemorySink(), random.Random(1)), Fabric(
        FabricSpec(), MemorySink(), random.Random(2))
    assert list(a.switches) == ["leaf1", "leaf2", "spine1", "spine2", "border1"]
    assert [(s.address, sorted(s.interfaces)) for s in a.switches.values()] == [
        ("10.255.0.1", [1, 2, 3, 4, 49, 50]), ("10.255.0.2", [1, 2, 3, 4, 49, 50]),
        ("10.255.0.3", [1, 2, 3]), ("10.255.0.4", [1, 2, 3]), ("10.255.0.5", [1, 49, 50])]
    assert a.hosts == b.hosts
    h6 = a.hosts["host6"]
    assert (h6.ip, h6.ip6, h6.mac, h6.leaf, h6.if_index) == (
        "10.0.2.2", "fd00::2:2", "02:00:0a:00:02:02", "leaf2", 2)
    leaf = a.switches["leaf1"].interfaces
    assert (leaf[1].port.name, leaf[1].port.peer, leaf[1].port.speed_bps) == (
        "swp1", "host1", 10_000_000_000)
    assert (leaf[50].port.peer, leaf[50].port.speed_bps) == ("spine2", 40_000_000_000)
    assert leaf[1].sampler is not None and leaf[1].sampler.sampling_rate == 10_000
    assert leaf[50].sampler is not None and leaf[50].sampler.sampling_rate == 40_000
    v6 = Fabric(FabricSpec(ipv6_agents=True, external_peers=0), MemorySink(), random.Random(1))
    assert [s.address for s in v6.switches.values()] == [
        "fd00:ff::1", "fd00:ff::2", "fd00:ff::3", "fd00:ff::4"]


def test_topology_exports_sflow_rt_links_and_nodes() -> None:
    fabric = Fabric(FabricSpec(spines=3), MemorySink(), random.Random(1))
    topo = fabric.topology.sflow_rt_topology()
    assert len(topo["links"]) == 3 * 3  # two leaves and the border leaf, each to three spines
    assert topo["links"]["leaf2-spine3"] == {
        "node1": "leaf2", "port1": "swp51", "node2": "spine3", "port2": "swp2"}
    assert topo["links"]["spine1-border1"] == {
        "node1": "spine1", "port1": "swp3", "node2": "border1", "port2": "swp49"}
    assert topo["nodes"]["spine1"] == {
        "agent": "10.255.0.3", "ports": {"swp1": {"ifindex": "1"}, "swp2": {"ifindex": "2"},
                                         "swp3": {"ifindex": "3"}}}
    assert topo["nodes"]["leaf1"]["ports"]["swp49"] == {"ifindex": "49"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"leaves": 0}, "leaves"), ({"sampling_rate": 0}, "sampling_rate"),
     ({"sampling_rate": 2**32}, "sampling_rate"), ({"polling_s": -1}, "polling_s"),
     ({"header_bytes": 8}, "header_bytes"), ({"max_datagram": 100}, "max_datagram"),
     ({"agent_subnet": "10.255.0.0/33"}, "10.255.0.0/33"),
     ({"agent_subnet": "10.255.0.0/30"}, "too small")],
)
def test_bad_specs_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fabric(FabricSpec(**kwargs), MemorySink(), random.Random(1))
    with pytest.raises(ValueError, match="unknown switches"):
        Fabric(FabricSpec(counter_only=("leaf9",)), MemorySink(), random.Random(1))


def test_paths_follow_the_leaf_spine_shape() -> None:
    fabric = Fabric(FabricSpec(), MemorySink(), random.Random(1))
    assert fabric.path(TrafficFlow("host1", "host3")) == [Hop("leaf1", 1, 3)]
    up, spine, down = fabric.path(TrafficFlow("host2", "10.0.2.4", "udp", 1, 2))
    assert (up.switch, up.in_if, down.switch, down.out_if) == ("leaf1", 2, "leaf2", 4)
    assert spine.switch.startswith("spine") and (spine.in_if, spine.out_if) == (1, 2)
    assert up.out_if == 48 + int(spine.switch[-1]) and down.in_if == up.out_if
    out = fabric.path(TrafficFlow("host5", "203.0.113.7", "tcp", 3, 443))
    assert [h.switch[:5] for h in out] == ["leaf2", "spine", "borde"]
    assert out[-1].out_if == 1  # towards ext1
    into = fabric.path(TrafficFlow("2001:db8::1", "host5", "udp", 53, 9))
    assert into[0] == Hop("border1", 1, into[0].out_if) and into[-1].switch == "leaf2"
    assert fabric.path(TrafficFlow("host1", "leaf1", "tcp", 1, 22)) == [Hop("leaf1", 1, INTERNAL)]
    to_spine = fabric.path(TrafficFlow("host1", "10.255.0.4", "tcp", 1, 179))
    assert to_spine == [Hop("leaf1", 1, 50), Hop("spine2", 1, INTERNAL)]


@pytest.mark.parametrize(
    ("flow", "message"),
    [(TrafficFlow("host1", "nowhere"), "unknown endpoint"),
     (TrafficFlow("leaf1", "host1"), "cannot start at switch"),
     (TrafficFlow("198.51.100.1", "198.51.100.2"), "both ends"),
     (TrafficFlow("host1", "10.0.1.1"), "both ends"),
     (TrafficFlow("host1", "host2", vlan=5, packet_bytes=60, ipv6=True), "packet_bytes")],
)
def test_bad_flows_are_refused(flow: TrafficFlow, message: str) -> None:
    fabric = Fabric(FabricSpec(), MemorySink(), random.Random(1))
    with pytest.raises(ValueError, match=message):
        fabric.add_flow(flow)
    assert not fabric.flows


def test_external_flows_need_external_peers() -> None:
    fabric = Fabric(FabricSpec(external_peers=0), MemorySink(), random.Random(1))
    with pytest.raises(ValueError, match="no external peers"):
        fabric.add_flow(TrafficFlow("host1", "198.51.100.1"))


def test_ecmp_spreads_flows_over_spines_and_keeps_each_flow_on_one_path() -> None:
    fabric = Fabric(FabricSpec(spines=4, external_peers=2), MemorySink(), random.Random(1))
    flows = [TrafficFlow(f"host{1 + i % 4}", f"host{5 + i % 4}", "tcp", 30000 + i, 80)
             for i in range(400)]
    spines = Counter(fabric.path(f)[1].switch for f in flows)
    assert set(spines) == {"spine1", "spine2", "spine3", "spine4"}
    assert all(60 <= n <= 140 for n in spines.values()), spines
    assert all(fabric.path(f) == fabric.path(f) for f in flows[:20])
    peers = Counter(fabric.path(TrafficFlow("host1", f"198.51.100.{i}"))[-1].out_if
                    for i in range(1, 201))
    assert set(peers) == {1, 2} and min(peers.values()) > 60


# ---------------------------------------------------------------- counters


def test_port_counters_equal_the_true_traffic_exactly(
        mixed: Any, counter_values: Callable[..., list[int]]) -> None:
    last: dict[tuple[str, int], IfCounters] = {}
    for _, switch, s in mixed.port_counters():
        if_c, eth, name = s.records
        assert isinstance(eth, EthernetCounters) and isinstance(name, PortName)
        assert name.name == f"swp{s.source_id_index}" and if_c.if_index == s.source_id_index
        last[switch, if_c.if_index] = if_c
    truth = mixed.true_counters()
    ports = {(n, i) for n, sw in mixed.fabric.switches.items() for i in sw.interfaces}
    assert set(last) == ports
    assert set(truth) <= ports
    for key, c in last.items():
        assert counter_values(c) == truth.get(key, [0] * 5), key
        assert (c.if_type, c.if_direction, c.if_status) == (6, 1, 3)
    leaf1 = last["leaf1", 1]
    assert leaf1.if_in_ucast_pkts == 2000 * 50 and leaf1.if_speed == 10_000_000_000


def test_counter_samples_one_per_source_per_interval_with_consecutive_sequences(mixed: Any
                                                                                 ) -> None:
    per_source: dict[tuple[str, int, int], list[tuple[float, int]]] = defaultdict(list)
    for now, switch, s in mixed.samples(COUNTER_SAMPLES):
        if s.source_id_type == 2:  # the device: host_descr naming the switch
            (descr,) = s.records
            assert (s.source_id_index, descr.hostname, descr.os_name) == (1, switch, 2)
        per_source[switch, s.source_id_type, s.source_id_index].append(
            (now, s.sequence_number))
    switches = mixed.fabric.switches
    assert set(per_source) == {(n, 0, i) for n, sw in switches.items() for i in sw.interfaces
                               } | {(n, 2, 1) for n in switches}
    assert len({switches[n].descr.uuid for n in switches}) == len(switches)
    firsts = set()
    for key, polls in per_source.items():
        times, seqs = zip(*polls, strict=True)
        assert list(seqs) == list(range(1, len(seqs) + 1)), key
        assert len(seqs) in (7, 8), key  # 70 s at 10 s, first poll within the first 10 s
        assert all(9.5 <= b - a <= 10.5 for a, b in itertools.pairwise(times)), key
        firsts.add(times[0])
    assert len(firsts) > 5  # first polls are randomised, not in lockstep


# ---------------------------------------------------------------- flow samples


def test_samples_are_taken_on_the_flow_path_within_binomial_bounds(
        mixed: Any, header_key: Callable[..., Any]) -> None:
    fabric = mixed.fabric
    seen: Counter[tuple[int, Hop]] = Counter()
    by_key = mixed.flow_keys()
    paths = {fid: fabric.path(state.flow) for fid, state in fabric.flows.items()}
    for _, switch, s in mixed.samples(FLOW_SAMPLES):
        header, ext = s.records
        assert isinstance(ext, ExtendedSwitch) and s.sampling_rate == 50
        fid = by_key[header_key(header)]
        flow = fabric.flows[fid].flow
        assert header.frame_length == flow.packet_bytes + 4 and header.stripped == 4
        assert ext.src_vlan == ext.dst_vlan == (flow.vlan or 1)
        hop = Hop(switch, s.input, s.output)
        assert hop in paths[fid], (flow, hop)
        assert s.source_id == s.input  # sampled at ingress
        seen[fid, hop] += 1
    for fid, state in fabric.flows.items():
        for hop in paths[fid]:
            expected = state.packets / 50
            k = seen[fid, hop]
            assert abs(k - expected) <= 5 * math.sqrt(expected) + 1, (state.flow, hop, k)
            assert k * 50 * (state.flow.packet_bytes + 4) == pytest.approx(
                state.packets * (state.flow.packet_bytes + 4), rel=5 / math.sqrt(expected))


def test_sequence_numbers_are_consecutive_per_sampler_and_agent(mixed: Any) -> None:
    per_sampler: dict[tuple[str, int], list[int]] = defaultdict(list)
    pools: dict[tuple[str, int], list[int]] = defaultdict(list)
    for _, switch, s in mixed.samples(FLOW_SAMPLES):
        per_sampler[switch, s.source_id_index].append(s.sequence_number)
        pools[switch, s.source_id_index].append(s.sample_pool)
    assert len(per_sampler) > 10
    for key, seqs in per_sampler.items():
        assert seqs == list(range(1, len(seqs) + 1)), key
        assert pools[key] == sorted(pools[key]), key
    per_agent: dict[str, list[int]] = defaultdict(list)
    for _, agent, dg in mixed.datagrams:
        per_agent[agent].append(dg.sequence_number)
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in per_agent.values())
    for sw in mixed.fabric.switches.values():  # the pool counts every packet received
        for iface in sw.interfaces.values():
            assert iface.sampler is not None
            assert iface.sampler.sample_pool == iface.in_ucast_pkts + iface.in_discards
            assert iface.sampler.drops == 0


def test_sample_pool_equals_the_packets_that_crossed_the_port(
        run_fabric: Callable[..., Any]) -> None:
    r = run_fabric(FabricSpec(sampling_rate=100, polling_s=0),
            [TrafficFlow("host1", "host2", "udp", 1, 2, 1000, 200)], until=20, step=1)
    samples = list(r.samples(FLOW_SAMPLES))
    assert 150 <= len(samples) <= 250
    assert all(s.sample_pool == round(now) * 1000 for now, _, s in samples)


def test_same_seed_same_bytes_and_another_seed_other_bytes(
        run_fabric: Callable[..., Any]) -> None:
    run = run_fabric
    flows = MIXED_FLOWS[:3]
    spec = FabricSpec(sampling_rate=100, polling_s=5)
    assert run(spec, flows, 12, seed=3).raw == run(spec, flows, 12, seed=3).raw
    assert run(spec, flows, 12, seed=3).raw != run(spec, flows, 12, seed=4).raw


_DIGEST_SCRIPT = """
import hashlib, random
from sflowlab.agent_sim.fabric import Fabric
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.agent_sim.topology import FabricSpec
from sflowlab.agent_sim.traffic import TrafficFlow, amplification_flood
sink = MemorySink()
fabric = Fabric(FabricSpec(sampling_rate=100, polling_s=5, spines=4), sink, random.Random(9))
for f in [TrafficFlow("host1", "host6", "tcp", 4000 + i, 80, 500, 700) for i in range(20)]:
    fabric.add_flow(f)
for f in amplification_flood("host2", 30, 3000.0):
    fabric.add_flow(f)
for t in range(1, 21):
    fabric.tick(t / 2)
print(hashlib.sha256(b"".join(d for _, _, d in sink.drain())).hexdigest())
"""


def test_same_seed_same_bytes_across_processes_and_hash_seeds() -> None:
    digests = {
        subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT], capture_output=True, text=True,
                       check=True, timeout=60, env={**os.environ, "PYTHONHASHSEED": seed}
                       ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(digests) == 1 and len(digests.pop()) == 64


def test_rates_change_and_flows_stop_at_runtime() -> None:
    sink = MemorySink()
    fabric = Fabric(FabricSpec(sampling_rate=10, polling_s=0), sink, random.Random(1))
    fid = fabric.add_flow(TrafficFlow("host1", "host2", "udp", 1, 2, 100, 100))
    fabric.tick(1)
    fabric.set_rate(fid, 1000)
    fabric.tick(2)
    assert fabric.switches["leaf1"].interfaces[1].in_ucast_pkts == 1100
    fabric.remove_flow(fid)
    fabric.tick(3)
    assert fabric.switches["leaf1"].interfaces[1].in_ucast_pkts == 1100
    with pytest.raises(ValueError, match="rate_pps"):
        fabric.set_rate(fabric.add_flow(TrafficFlow("host1", "host2")), -5)
    with pytest.raises(ValueError, match="before"):
        fabric.tick(2.5)
