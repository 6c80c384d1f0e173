"""ACL hooks: drop rules stop a flow at a switch, mirror rules hand its packets to a callback."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from sflowlab.agent_sim.fabric import Fabric
from sflowlab.agent_sim.packets import UDP, Packet
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.agent_sim.topology import FabricSpec
from sflowlab.agent_sim.traffic import PacketRule, TrafficFlow, amplification_flood
from sflowlab.codec import FLOW_SAMPLES, FlowSampleExpanded, decode_datagram

FLOOD = amplification_flood("host2", 20, 4000.0, stop_s=30)
VICTIM = TrafficFlow("host1", "host2", "tcp", 40000, 80, 500, 1000, stop_s=30)


def test_a_drop_rule_stops_matching_flows_at_the_switch(
        run_fabric: Callable[..., Any], counter_values: Callable[..., list[int]],
        header_key: Callable[..., Any]) -> None:
    def block(fabric: Fabric) -> None:
        fabric.install_rule("border1", "ddos-1", PacketRule(src="198.51.100.0/24",
                                                            protocol="udp", src_port=123))

    r = run_fabric(FabricSpec(sampling_rate=20, polling_s=10), [*FLOOD, VICTIM], until=40,
                   setup=block)
    fabric = r.fabric
    flood_ids = {fid for fid, st in fabric.flows.items() if st.flow.src_port == 123}
    assert all(fabric.flows[f].dropped == fabric.flows[f].packets > 0 for f in flood_ids)
    last = r.last_counters()
    truth = r.true_counters(dict.fromkeys(flood_ids, "border1"))
    for key, c in last.items():
        assert counter_values(c) == truth.get(key, [0] * 5), key
    assert last["border1", 1].if_in_discards == sum(fabric.flows[f].packets for f in flood_ids)
    assert last["leaf1", 2].if_out_ucast_pkts == 500 * 30  # only the victim's own flow left
    by_key = r.flow_keys()
    at: Counter[tuple[str, bool]] = Counter()
    for _, switch, s in r.samples(FLOW_SAMPLES):
        fid = by_key[header_key(s.records[0])]
        at[switch, fid in flood_ids] += 1
        if fid in flood_ids:
            assert switch == "border1" and (s.output_format, s.output_value) == (1, 258)
        else:
            assert s.output_format == 0
    assert at["border1", True] > 100 and at["leaf1", False] > 100
    assert {sw for sw, flood in at if flood} == {"border1"}


def test_removing_a_rule_restores_forwarding_and_expanded_samples_say_discarded() -> None:
    sink = MemorySink()
    fabric = Fabric(FabricSpec(sampling_rate=10, polling_s=0, expanded=True), sink,
                    random.Random(5))
    fid = fabric.add_flow(TrafficFlow("host1", "host5", "udp", 9, 9, 1000, 200))
    spine = fabric.path(fabric.flows[fid].flow)[1].switch
    fabric.install_rule("leaf1", "r1", PacketRule(dst="10.0.2.1"))
    fabric.tick(5)
    assert fabric.flows[fid].dropped == 5000
    assert fabric.switches[spine].interfaces[1].in_ucast_pkts == 0
    fabric.remove_rule("leaf1", "r1")
    fabric.tick(10)
    assert fabric.flows[fid].dropped == 5000 and fabric.flows[fid].packets == 10_000
    assert fabric.switches[spine].interfaces[1].in_ucast_pkts == 5000
    leaf = fabric.switches["leaf1"].address
    samples = [(now, s) for now, agent, d in sink.drain() if agent == leaf
               for s in decode_datagram(d).samples]
    assert all(isinstance(s, FlowSampleExpanded) for _, s in samples)
    assert {(s.output_format, s.output_value) for now, s in samples if now == 5} == {(1, 258)}
    assert {(s.output_format, s.output_value) for now, s in samples if now == 10} == {
        (0, 48 + int(spine[-1]))}


def test_mirror_rules_hand_capped_matching_packets_to_the_callback() -> None:
    got: list[tuple[Packet, str, float]] = []
    fabric = Fabric(FabricSpec(polling_s=0), MemorySink(), random.Random(1))
    flood = fabric.add_flow(TrafficFlow("198.51.100.7", "host3", "udp", 123, 5555, 300, 468))
    fabric.add_flow(VICTIM)
    rule = PacketRule(protocol="udp", action=("erspan", lambda *a: got.append(a)),
                      mirror_limit=100)
    fabric.install_rule("leaf1", "cap", rule)
    fabric.tick(1)
    fabric.tick(1.1)
    assert [len([g for g in got if g[2] == t]) for t in (1, 1.1)] == [100, 30]
    packet, switch, _ = got[0]
    assert switch == "leaf1"
    assert (packet.src_ip, packet.dst_ip, packet.protocol, packet.src_port, packet.dst_port,
            packet.length) == ("198.51.100.7", "10.0.1.3", UDP, 123, 5555, 468)
    assert packet.dst_mac == fabric.switches["leaf1"].mac
    assert [p.seq for p, _, _ in got[:3]] == [0, 1, 2]
    assert fabric.flows[flood].dropped == 0  # mirroring does not drop
    fabric.remove_rule("leaf1", "cap")
    fabric.tick(2)
    assert len(got) == 130
