"""The traffic model: integer-exact packet counts, start/stop windows, validation, ACL matching."""

from __future__ import annotations

import itertools

import pytest

from sflowlab.agent_sim.packets import ICMP, TCP, UDP
from sflowlab.agent_sim.traffic import (
    FlowState,
    PacketRule,
    TrafficFlow,
    amplification_flood,
    external_addresses,
)


def _run(state: FlowState, ticks: list[float]) -> list[int]:
    return [state.advance(t0, t1) for t0, t1 in itertools.pairwise(ticks)]


def test_advance_is_integer_exact_with_a_carried_remainder() -> None:
    state = FlowState(TrafficFlow("a", "b", rate_pps=3.3), 3.3)
    counts = _run(state, [i / 10 for i in range(101)])  # 10 s in 0.1 s ticks
    assert all(isinstance(n, int) and n in (0, 1) for n in counts)
    assert sum(counts) == state.packets == 33


def test_advance_honours_start_and_stop_within_a_tick() -> None:
    state = FlowState(TrafficFlow("a", "b", rate_pps=100, start_s=1.25, stop_s=2.5), 100)
    counts = _run(state, [0.0, 1.0, 2.0, 3.0, 4.0])
    assert counts == [0, 75, 50, 0]


def test_rate_change_applies_to_later_ticks() -> None:
    state = FlowState(TrafficFlow("a", "b", rate_pps=10), 10)
    assert state.advance(0, 1) == 10
    state.rate_pps = 1000
    assert state.advance(1, 2) == 1000
    state.rate_pps = 0
    assert state.advance(2, 3) == 0
    assert state.packets == 1010


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "sctp"}, "protocol"),
        ({"dst_port": 70000}, "ports"),
        ({"protocol": "icmp", "dst_port": 1}, "icmp"),
        ({"rate_pps": -1}, "rate_pps"),
        ({"rate_pps": float("nan")}, "rate_pps"),
        ({"packet_bytes": 40}, "packet_bytes"),
        ({"packet_bytes": 10000}, "packet_bytes"),
        ({"vlan": 4095}, "vlan"),
        ({"start_s": 5, "stop_s": 5}, "stop_s"),
        ({"dst": "a"}, "differ"),
    ],
)
def test_bad_flows_are_refused_with_the_reason(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"src": "a", "dst": "b", **kwargs}
    with pytest.raises(ValueError, match=message):
        TrafficFlow(**fields)  # type: ignore[arg-type]


def test_family_is_inferred_from_literal_addresses() -> None:
    assert TrafficFlow("host1", "host2").inferred_ipv6() is False
    assert TrafficFlow("host1", "2001:db8::1").inferred_ipv6() is True
    assert TrafficFlow("host1", "host2", ipv6=True).inferred_ipv6() is True
    with pytest.raises(ValueError, match="mixes"):
        TrafficFlow("10.0.0.1", "2001:db8::1").inferred_ipv6()
    with pytest.raises(ValueError, match="mixes"):
        TrafficFlow("host1", "198.51.100.1", ipv6=True).inferred_ipv6()


def test_min_packet_bytes_covers_the_headers() -> None:
    assert TrafficFlow("a", "b", "tcp").min_packet_bytes(False) == 60
    assert TrafficFlow("a", "b", "tcp", vlan=10).min_packet_bytes(True) == 78
    assert TrafficFlow("a", "b", "udp").min_packet_bytes(True) == 62


def test_packet_carries_the_flow_identity() -> None:
    flow = TrafficFlow("a", "b", "udp", 5353, 53, packet_bytes=200, vlan=7, tos=0x28)
    p = flow.packet("10.0.0.1", "10.0.0.2", "02:00:00:00:00:01", "02:00:00:00:00:02", 63, 9)
    assert (p.protocol, p.src_port, p.dst_port, p.vlan, p.tos, p.ttl, p.seq) == (
        UDP, 5353, 53, 7, 0x28, 63, 9)
    assert len(p.frame()) == 200
    assert TrafficFlow("a", "b", "icmp").protocol_number == ICMP
    assert TrafficFlow("a", "b").protocol_number == TCP


def test_rules_match_prefixes_protocols_and_ports() -> None:
    flow = TrafficFlow("x", "y", "udp", 123, 4444)
    src, dst = "198.51.100.9", "10.0.1.1"
    assert PacketRule().matches(flow, src, dst)
    assert PacketRule(src="198.51.100.0/24", dst="10.0.1.1").matches(flow, src, dst)
    assert PacketRule(protocol="udp", src_port=123).matches(flow, src, dst)
    assert not PacketRule(src="203.0.113.0/24").matches(flow, src, dst)
    assert not PacketRule(dst="2001:db8::/32").matches(flow, src, dst)
    assert not PacketRule(protocol="tcp").matches(flow, src, dst)
    assert not PacketRule(dst_port=53).matches(flow, src, dst)


def test_rule_actions() -> None:
    seen: list[object] = []
    mirror = PacketRule(action=("erspan", lambda p, s, t: seen.append(p)))
    assert not mirror.drops and mirror.mirror is not None
    assert PacketRule().drops and PacketRule().mirror is None
    for bad in ("allow", ("erspan", 5), ("tap", print)):
        with pytest.raises(ValueError, match="action"):
            PacketRule(action=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="protocol"):
        PacketRule(protocol="gre")
    with pytest.raises(ValueError):
        PacketRule(src="not-a-prefix")


def test_amplification_flood_splits_the_rate_over_distinct_sources() -> None:
    flows = amplification_flood("host1", 50, 10_000.0)
    assert len({f.src for f in flows}) == 50
    assert all(f.src.startswith("198.51.100.") for f in flows)
    assert sum(f.rate_pps for f in flows) == pytest.approx(10_000.0)
    assert {(f.dst, f.protocol, f.src_port) for f in flows} == {("host1", "udp", 123)}
    six = amplification_flood("host1", 3, 30.0, ipv6=True, src_port=53)
    assert [f.src for f in six] == ["2001:db8::1", "2001:db8::2", "2001:db8::3"]
    assert all(f.inferred_ipv6() for f in six)
    big = amplification_flood("host1", 1000, 1.0, source_prefix="198.18.0.0/15")
    assert len({f.src for f in big}) == 1000 and big[-1].src == "198.18.3.232"
    with pytest.raises(ValueError, match="fewer"):
        external_addresses(300, "198.51.100.0/24")
    with pytest.raises(ValueError, match="at least one"):
        amplification_flood("host1", [], 1.0)
