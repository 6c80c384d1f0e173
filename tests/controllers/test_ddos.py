"""The DDoS mitigation controller: floods detected from the fabric's sFlow, DROP rules through
the switch ACL double over HTTP, the fabric's counters showing the flood stopped and released."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from acl_lab import START, AclLab

from sflowlab.agent_sim.packets import ICMP, TCP, TCP_SYN, UDP, Packet
from sflowlab.agent_sim.traffic import TrafficFlow, amplification_flood
from sflowlab.codec import Datagram, FlowSample, SampledHeader, encode_datagram
from sflowlab.controllers.acl_client import AclClient
from sflowlab.controllers.ddos import DdosMitigation

TRIGGER, RELEASE = 2_000.0, 500.0


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[AclLab]:
    lab = AclLab(tmp_path)
    yield lab
    lab.close()


def ddos(lab: AclLab, protected: list[str], **params: Any) -> DdosMitigation:
    params.setdefault("switches", lab.urls())
    params.setdefault("hold_s", 10.0)
    limits = {"trigger": TRIGGER, "release": RELEASE}
    params.setdefault("thresholds", {name: limits for name in (
        "udp_amplification", "udp_flood", "syn_flood", "icmp_flood")})
    controller = DdosMitigation(protected, **params)
    lab.runtime.add("ddos", controller)
    return controller


def flood(lab: AclLab, target: str, pps: float, port: int = 123, start: float = START,
          stop: float | None = None, sources: int = 20, prefix: str = "198.51.100.0/24"
          ) -> list[int]:
    return [lab.fabric.add_flow(f) for f in amplification_flood(
        target, sources, pps, src_port=port, start_s=start, stop_s=stop, source_prefix=prefix)]


def mitigations(lab: AclLab) -> list[dict[str, Any]]:
    return list(lab.http("ddos")["mitigations"])


def delivered(lab: AclLab, host: str) -> int:
    """Packets the host's leaf port has sent to it so far."""
    h = lab.fabric.hosts[host]
    return lab.fabric.switches[h.leaf].interfaces[h.if_index].out_ucast_pkts


def test_an_amplification_flood_is_dropped_at_the_switches_and_released_after(
        lab: AclLab) -> None:
    victim = lab.ip("host1")
    ctl = ddos(lab, [victim])
    attack = flood(lab, "host1", 10_000, start=START + 5, stop=START + 40)
    lab.fabric.add_flow(TrafficFlow("host5", "host1", "udp", 5000, 6000, 100, 300))
    lab.fabric.add_flow(TrafficFlow("198.51.100.200", "host1", "tcp", 443, 40000, 50, 1000))
    lab.step_to(START + 5)
    assert mitigations(lab) == [] and lab.all_acls() == {}  # legitimate traffic only
    applied = lab.run_until(
        lambda: any(s == "applied" for acls in lab.all_acls().values() for s in acls.values()),
        within_s=10)
    assert applied - (START + 5) <= 5
    [m] = mitigations(lab)
    assert (m["attack"], m["victim"], m["port"], m["id"]) == (
        "ddos_udp_amplification", victim, 123, "ddos0")
    seen_by = set().union(*(lab.path_agents(lab.fabric.flows[i].flow) for i in attack))
    assert set(m["switches"]) == seen_by  # every switch that saw the flood
    rule = f"-A FORWARD --in-interface swp+ -d {victim} -p udp --sport 123 -j DROP"
    assert {lab.agent(name) for name in lab.all_acls()} == seen_by
    for name in lab.all_acls():
        assert lab.switches[name].get("ddos0") == [
            "[iptables]", "# ddos mitigation udp_amplification 10.0.1.1,123", rule]
    lab.step_to(applied + 2)
    before, dropped = delivered(lab, "host1"), sum(lab.fabric.flows[i].dropped for i in attack)
    lab.step_to(applied + 12)
    assert delivered(lab, "host1") - before == 10 * (100 + 50)  # only the legitimate traffic
    assert sum(lab.fabric.flows[i].dropped for i in attack) - dropped == 100_000
    assert len(mitigations(lab)) == 1  # the flood goes on (sampled before the drop)
    released = lab.run_until(lambda: not lab.all_acls(), within_s=45)
    # the rate decays below the release rate within seconds, then hold_s
    assert START + 40 + 10 <= released <= START + 40 + 20
    assert mitigations(lab) == []
    assert (ctl.stats.raised, ctl.stats.released, ctl.stats.refused) == (1, {"ended": 1}, 0)


def test_configured_edge_switches_get_the_rule(lab: AclLab) -> None:
    border = lab.agent("border1")
    ddos(lab, [lab.ip("host2")], edge=[border])
    attack = flood(lab, "host2", 8_000, port=53)
    lab.run_until(lambda: lab.acls("border1") == {"ddos0": "applied"}, within_s=8)
    assert list(lab.all_acls()) == ["border1"]
    before = delivered(lab, "host2")
    lab.step_to(lab.clock.now() + 5)
    assert delivered(lab, "host2") == before
    assert all(lab.fabric.flows[i].dropped > 0 for i in attack)


def test_the_cap_refuses_then_lets_a_larger_attack_displace_a_smaller_one(
        lab: AclLab) -> None:
    hosts = ["host1", "host2", "host3"]
    ctl = ddos(lab, [lab.ip(h) for h in hosts], max_mitigations=1, edge=[lab.agent("border1")])
    flood(lab, "host1", 5_000, port=123, start=START)
    big = flood(lab, "host2", 15_000, port=53, start=START + 10, stop=START + 40,
                prefix="198.18.0.0/24")
    flood(lab, "host3", 3_000, port=1900, start=START + 20, prefix="198.18.1.0/24")

    def victims() -> list[str]:
        return [m["victim"] for m in mitigations(lab) if not m["releasing"]]
    lab.run_until(lambda: victims() == [lab.ip("host1")], within_s=8)
    lab.run_until(lambda: victims() == [lab.ip("host2")], within_s=15)
    assert ctl.stats.preempted == 1 and ctl.stats.refused == 1
    lab.step_to(START + 30)
    waiting = {w["flowKey"] for w in lab.http("ddos")["waiting"]}
    assert waiting == {f"{lab.ip('host1')},123", f"{lab.ip('host3')},1900"}
    assert victims() == [lab.ip("host2")] and ctl.stats.refused == 2
    assert sum(len(a) for a in lab.all_acls().values()) == 1  # the cap holds
    assert all(lab.fabric.flows[i].dropped > 0 for i in big)
    # the big flood stops: as its rate decays, the largest waiting attack takes its place
    lab.run_until(lambda: victims() == [lab.ip("host1")], within_s=25)
    assert lab.clock.now() < START + 40 + 10  # before hold_s would have released it
    assert ctl.stats.released == {"preempted": 2}
    lab.run_until(lambda: [w["flowKey"] for w in lab.http("ddos")["waiting"]] == [
        f"{lab.ip('host3')},1900"], within_s=10)  # the ended flood leaves the queue


class SampleFeed:
    """Hand-made flow samples from one agent (sub-agent 1, beside the fabric's own)."""

    def __init__(self, lab: AclLab, agent: str) -> None:
        self.lab, self.agent, self.seq = lab, agent, 0

    def send(self, packet: Packet, samples: int, rate: int) -> None:
        header = SampledHeader(1, packet.length + 4, 4, packet.header(128))
        flows = [FlowSample(self.seq * 100 + i, 3, rate, 0, 0, 3, 4, (header,))
                 for i in range(samples)]
        self.seq += 1
        now = self.lab.clock.now()
        data = encode_datagram(Datagram(5, self.agent, 1, self.seq, int(now * 1000),
                                        tuple(flows)))
        assert self.lab.engine.ingest(data, (self.agent, 6343), now)


def test_each_attack_type_gets_its_own_rule_ipv4_and_ipv6(lab: AclLab) -> None:
    v4, v6 = lab.ip("host1"), lab.ip("host1", ipv6=True)
    ddos(lab, [v4, f"{v6}/128"], edge=[lab.agent("leaf1")])
    feed = SampleFeed(lab, lab.agent("leaf1"))
    mac = "02:00:00:00:00:01", "02:00:00:00:00:02"
    attacks = [
        Packet(*mac, "198.51.100.1", v4, UDP, 11211, 4444, length=1400),  # memcached
        Packet(*mac, "198.51.100.2", v4, UDP, 40000, 9999, length=1400),  # plain UDP
        Packet(*mac, "198.51.100.3", v4, TCP, 40000, 443, TCP_SYN, 64),  # SYN, no ACK
        Packet(*mac, "198.51.100.4", v4, ICMP, length=100),
        Packet(*mac, "2001:db8::5", v6, UDP, 53, 4444, length=1400),  # DNS reflection
        Packet(*mac, "2001:db8::6", v6, ICMP, length=100),  # ICMPv6 echo
    ]
    for t in range(1, 6):
        for packet in attacks:
            feed.send(packet, 4, 1000)  # 4,000 frames per second each
        lab.step_to(START + t)
    lab.step_to(START + 7)
    rules = {m["id"]: (m["attack"], lab.switches["leaf1"].get(m["id"]))
             for m in mitigations(lab)}
    by_attack = sorted((a, lines[0], lines[2]) for a, lines in rules.values() if lines)
    drop = "-A FORWARD --in-interface swp+ -d {} -j DROP"
    assert by_attack == sorted([
        ("ddos_udp_amplification", "[iptables]", drop.format(f"{v4} -p udp --sport 11211")),
        ("ddos_udp_flood", "[iptables]", drop.format(f"{v4} -p udp")),
        ("ddos_syn_flood", "[iptables]", drop.format(f"{v4} -p tcp --dport 443")),
        ("ddos_icmp_flood", "[iptables]", drop.format(f"{v4} -p icmp")),
        ("ddos_udp_amplification", "[ip6tables]", drop.format(f"{v6} -p udp --sport 53")),
        ("ddos_icmp_flood", "[ip6tables]", drop.format(f"{v6} -p icmpv6")),
    ])
    assert set(lab.acls("leaf1").values()) == {"applied"}


def test_mitigations_survive_a_restart_and_http_lists_and_deletes(lab: AclLab) -> None:
    victim = lab.ip("host1")
    ddos(lab, [victim], edge=[lab.agent("border1"), lab.agent("leaf1")])
    flood(lab, "host1", 8_000, stop=START + 30)
    flood(lab, "host1", 8_000, port=19, prefix="198.18.0.0/24")
    lab.run_until(lambda: len(lab.acls("border1")) == 2, within_s=8)
    by_port = {m["port"]: m for m in mitigations(lab)}
    AclClient().delete(lab.urls("border1")[lab.agent("border1")], by_port[19]["id"])
    lab.restart_runtime()
    ctl = ddos(lab, [victim], edge=[lab.agent("border1"), lab.agent("leaf1")])
    after = {m["port"]: m for m in mitigations(lab)}
    assert after[123]["id"] == by_port[123]["id"] and set(after[123]["switches"]) == {
        lab.agent("border1"), lab.agent("leaf1")}
    assert after[19]["switches"] == {lab.agent("leaf1"): "active"}  # its border ACL was lost
    answer = lab.http("ddos", "DELETE", "mitigations", after[19]["id"])
    assert answer == {"id": after[19]["id"], "released": True}
    assert [m["port"] for m in mitigations(lab)] == [123]
    lab.step_to(lab.clock.now() + 5)
    assert [m["port"] for m in mitigations(lab)] == [123]  # the deleted one is not redone
    released = lab.run_until(lambda: not lab.all_acls(), within_s=60)
    assert released >= START + 30 + 10 and ctl.stats.released == {"deleted": 1, "ended": 1}
    with pytest.raises(Exception, match="no mitigation 'ddos7'"):
        lab.http("ddos", "DELETE", "mitigations", "ddos7")


def test_bad_parameters_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown attack type"):
        DdosMitigation(["10.0.0.1"], switch_url="http://{agent}:8080", attacks=["smurf"])
    with pytest.raises(ValueError, match="release <= trigger"):
        DdosMitigation(["10.0.0.1"], switch_url="http://{agent}:8080",
                       thresholds={"udp_flood": {"trigger": 10, "release": 20}})
    with pytest.raises(ValueError, match="'switches'"):
        DdosMitigation(["10.0.0.1"])
