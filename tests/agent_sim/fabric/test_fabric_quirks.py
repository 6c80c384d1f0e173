"""The quirks a real network produces, on request: raw IP headers, traffic to the switch itself,
counter-only agents, huge sampling rates, IPv6 agents, expanded samples, agent drops, and
counters that wrap."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from sflowlab.agent_sim.fabric import Fabric
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.agent_sim.topology import INTERNAL, FabricSpec
from sflowlab.agent_sim.traffic import TrafficFlow
from sflowlab.codec import (
    COUNTER_SAMPLES,
    FLOW_SAMPLES,
    CountersSample,
    CountersSampleExpanded,
    FlowSample,
    FlowSampleExpanded,
    decode_datagram,
)

FLOWS = [
    TrafficFlow("host1", "host5", "tcp", 40000, 80, 1000, 1000),
    TrafficFlow("host6", "host2", "udp", 53, 40001, 1000, 300, ipv6=True),
]
Runner = Callable[..., Any]


def test_raw_ip_headers_use_protocols_11_and_12(run_fabric: Runner,
                                                header_key: Callable[..., Any]) -> None:
    r = run_fabric(FabricSpec(sampling_rate=100, raw_ip_headers=True, polling_s=0), FLOWS, 5)
    by_key = r.flow_keys()
    protocols = set()
    for _, _, s in r.samples(FLOW_SAMPLES):
        header = s.records[0]
        flow = r.fabric.flows[by_key[header_key(header)]].flow
        six = flow.inferred_ipv6()
        assert header.header_protocol == (12 if six else 11)
        assert header.header[0] >> 4 == (6 if six else 4)
        assert (header.frame_length, header.stripped) == (flow.packet_bytes - 14, 0)
        protocols.add(header.header_protocol)
    assert protocols == {11, 12}


def test_traffic_to_the_switch_itself_leaves_by_ifindex_0x3fffffff(run_fabric: Runner) -> None:
    r = run_fabric(FabricSpec(sampling_rate=10, polling_s=0),
                   [TrafficFlow("host2", "spine1", "tcp", 50000, 179, 200, 100)], 5)
    outputs = {(sw, s.input, s.output) for _, sw, s in r.samples(FLOW_SAMPLES)}
    assert outputs == {("leaf1", 2, 49), ("spine1", 1, INTERNAL)}
    spine_port = r.fabric.switches["spine1"].interfaces[1]
    assert (spine_port.in_ucast_pkts, spine_port.out_ucast_pkts) == (1000, 0)


def test_counter_only_agents_poll_but_never_sample(run_fabric: Runner) -> None:
    r = run_fabric(FabricSpec(sampling_rate=10, polling_s=5, counter_only=("spine1", "spine2")),
                   FLOWS, 20)
    sampled = {sw for _, sw, _ in r.samples(FLOW_SAMPLES)}
    polled = {sw for _, sw, _ in r.samples(COUNTER_SAMPLES)}
    assert sampled == {"leaf1", "leaf2"}
    assert polled == set(r.fabric.switches)
    assert all(i.sampler is None for i in r.fabric.switches["spine1"].interfaces.values())
    spines = [c for (sw, _), c in r.last_counters().items() if sw.startswith("spine")]
    assert sum(c.if_in_ucast_pkts for c in spines) >= 2 * 15_000  # both flows cross a spine


def test_huge_sampling_rates_still_count_the_pool(run_fabric: Runner) -> None:
    rate = 2**32 - 1
    r = run_fabric(FabricSpec(sampling_rate=rate, polling_s=0), FLOWS, 10)
    assert not list(r.samples(FLOW_SAMPLES))  # 10**4 packets at 1 in 4e9: effectively none
    port = r.fabric.switches["leaf1"].interfaces[1]
    assert port.sampler is not None and port.sampler.sampling_rate == rate
    assert port.sampler.sample_pool == 10_000


def test_ipv6_agents_and_expanded_samples(run_fabric: Runner) -> None:
    r = run_fabric(FabricSpec(sampling_rate=100, polling_s=5, ipv6_agents=True, expanded=True),
                   FLOWS, 10)
    assert {agent for _, agent, _ in r.datagrams} == {
        sw.address for sw in r.fabric.switches.values()}
    assert all(":" in agent for _, agent, _ in r.datagrams)
    kinds = {type(s) for _, _, dg in r.datagrams for s in dg.samples}
    assert kinds == {FlowSampleExpanded, CountersSampleExpanded}
    for _, sw, s in r.samples(FLOW_SAMPLES):
        assert (s.source_id_type, s.input_format, s.output_format) == (0, 0, 0)
        assert s.source_id_index == s.input_value
        assert s.output_value in r.fabric.switches[sw].interfaces


def test_a_sample_budget_turns_the_excess_into_drops(run_fabric: Runner) -> None:
    spec = FabricSpec(sampling_rate=10, polling_s=0, max_samples_per_s=20)
    r = run_fabric(spec, [TrafficFlow("host1", "host2", "udp", 1, 2, 1000, 100)], 10, step=1)
    samples = [s for _, sw, s in r.samples(FLOW_SAMPLES)]
    assert all(isinstance(s, FlowSample) for s in samples)
    assert len(samples) == 200  # 20 per second on leaf1, the only switch on the path
    sampler = r.fabric.switches["leaf1"].interfaces[1].sampler
    assert sampler is not None and sampler.sample_pool == 10_000
    assert samples[-1].drops == sampler.drops
    assert abs(sampler.drops + len(samples) - 1000) <= 5 * math.sqrt(1000)
    drops = [s.drops for s in samples]
    assert drops == sorted(drops) and drops[0] > 0


def test_packet_counters_and_pool_wrap_at_32_bits() -> None:
    sink = MemorySink()
    fabric = Fabric(FabricSpec(sampling_rate=1000, polling_s=1), sink, random.Random(1))
    port = fabric.switches["leaf1"].interfaces[1]
    assert port.sampler is not None
    port.in_ucast_pkts = port.sampler.sample_pool = 2**32 - 10
    fabric.add_flow(TrafficFlow("host1", "host2", "udp", 1, 2, 100, 100))
    fabric.tick(1.5)
    leaf1 = fabric.switches["leaf1"].address
    polled = [s.records[0] for _, agent, d in sink.drain() if agent == leaf1
              for s in decode_datagram(d).samples
              if isinstance(s, CountersSample) and s.source_id == 1]
    assert [(c.if_in_ucast_pkts, c.if_in_octets) for c in polled] == [(140, 150 * 104)]
    assert port.sampler.sample_pool == 140
