"""The switch ACL double: rule parsing, asynchronous commits, the REST API, the fabric adapter."""

from __future__ import annotations

import ipaddress
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sflowlab.agent_sim.fabric import Fabric
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.agent_sim.topology import FabricSpec
from sflowlab.agent_sim.traffic import TrafficFlow
from sflowlab.clock import SimClock
from sflowlab.lab.doubles.acl_fabric import (
    ErspanCapture,
    FabricAclTarget,
    packet_rule,
    switches_for,
)
from sflowlab.lab.doubles.acl_rules import ParsedRule, PortRange, RuleError, parse_acl, parse_rule
from sflowlab.lab.doubles.switch_api import AclSwitch, SwitchApi

ERSPAN = "-A FORWARD --in-interface swp+ -s 10.0.1.1 -d 192.0.2.0/24 -j ERSPAN --src-ip 10.255.0.1 --dst-ip 10.0.9.9"
DROP = "-A FORWARD --in-interface swp+ -s 198.51.100.7 -d 10.10.100.10 -p udp --sport 53 -j DROP"


class Recorder:
    """An ``AclTarget`` that records calls (and refuses ACLs named in ``refuse``)."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.refuse = refuse

    def apply(self, switch: str, rule_id: str, rules: list[ParsedRule]) -> None:
        if rule_id in self.refuse:
            raise ValueError(f"cannot install {rule_id}")
        if any(rule.dport == PortRange(666, 666) for rule in rules):
            raise ValueError("port 666 is cursed")
        self.calls.append(("apply", switch, rule_id, [r.line for r in rules]))

    def withdraw(self, switch: str, rule_id: str) -> None:
        self.calls.append(("withdraw", switch, rule_id))


# -- iptables lines ------------------------------------------------------------------------------


def test_the_capture_and_ddos_lines_parse_into_rules() -> None:
    erspan, drop = parse_acl(["[iptables]", "# emerging threat capture", "", ERSPAN, DROP])
    assert erspan == ParsedRule(
        family=4,
        chain="FORWARD",
        target="ERSPAN",
        line=ERSPAN,
        in_interface="swp+",
        source=ipaddress.ip_network("10.0.1.1/32"),
        destination=ipaddress.ip_network("192.0.2.0/24"),
        erspan_src=ipaddress.ip_address("10.255.0.1"),
        erspan_dst=ipaddress.ip_address("10.0.9.9"),
    )
    assert (drop.target, drop.protocol, drop.sport, drop.dport) == (
        "DROP",
        17,
        PortRange(53, 53),
        None,
    )
    assert drop.matches(
        "198.51.100.7", "10.10.100.10", 17, sport=53, dport=4444, in_interface="swp7"
    )
    assert not drop.matches("198.51.100.7", "10.10.100.10", 6, sport=53)
    assert not drop.matches("198.51.100.7", "10.10.100.10", 17, sport=54)
    assert not drop.matches("198.51.100.8", "10.10.100.10", 17, sport=53)
    assert not drop.matches("198.51.100.7", "10.10.100.10", 17, sport=53, in_interface="eth0")
    assert erspan.matches("10.0.1.1", "192.0.2.200", 6) and not erspan.matches(
        "10.0.1.1", "192.0.3.1", 6
    )


def test_ip6tables_sections_port_ranges_and_long_options() -> None:
    rule = parse_acl(
        [
            "[ip6tables]",
            "--append FORWARD --source fd00::/64 --protocol tcp --dport 1024: --jump DROP",
        ]
    )[0]
    assert (rule.family, rule.source, rule.dport) == (
        6,
        ipaddress.ip_network("fd00::/64"),
        PortRange(1024, 65535),
    )
    assert rule.matches("fd00::9", "2001:db8::1", 6, dport=8080) and not rule.matches(
        "fd00::9", "2001:db8::1", 6, dport=80
    )
    assert not rule.matches("10.0.0.1", "10.0.0.2", 6, dport=8080)
    cidr = parse_rule("-A FORWARD -d 10.1.2.3/8 -p tcp -m tcp --sport :1023 -j DROP")
    assert (cidr.destination, cidr.sport) == (
        ipaddress.ip_network("10.0.0.0/8"),
        PortRange(0, 1023),
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("-A FORWARD -s 10.0.0.1 -j ACCEPT", "target 'ACCEPT' is not modelled"),
        ("-A INPUT -s 10.0.0.1 -j DROP", "must append to FORWARD"),
        ("-A FORWARD -s fd00::1 -j DROP", "needs a [ip6tables] section"),
        ("-A FORWARD -s example.com -j DROP", "bad address 'example.com'"),
        ("-A FORWARD --sport 53 -j DROP", "--sport/--dport need -p tcp or -p udp"),
        ("-A FORWARD -p udp --dport 70000 -j DROP", "bad port range '70000'"),
        ("-A FORWARD -p sctp -j DROP", "unknown protocol 'sctp'"),
        (
            "-A FORWARD -s 10.0.0.1 -j ERSPAN --src-ip 10.0.0.2",
            "ERSPAN needs --src-ip and --dst-ip",
        ),
        ("-A FORWARD -s 10.0.0.1 -j DROP --dst-ip 10.0.0.2", "belong to the ERSPAN target"),
        ("-A FORWARD ! -s 10.0.0.1 -j DROP", "negation (!) is not modelled"),
        ("-A FORWARD -m multiport -p tcp -j DROP", "match -m multiport is not modelled"),
        ("-A FORWARD -s 10.0.0.1 -s 10.0.0.2 -j DROP", "given twice"),
        ("-A FORWARD -s", "needs a value"),
        ("-A FORWARD --log-prefix x -j DROP", "unsupported option '--log-prefix'"),
        ("[ebtables]", "section [ebtables] is not modelled"),
    ],
)
def test_refused_lines_name_the_line_and_the_reason(line: str, reason: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_acl(["[iptables]", "# ok so far", line])
    assert info.value.line_number == 3 and reason in info.value.reason
    assert str(info.value) == f"line 3: {info.value.reason}: {line!r}"


# -- the switch daemon, on simulated time --------------------------------------------------------


@pytest.fixture
def switch() -> tuple[SimClock, AclSwitch, Recorder]:
    clock = SimClock()
    target = Recorder(refuse=("refused",))
    return clock, AclSwitch("leaf1", "10.255.0.1", clock, target, apply_delay_s=0.5), target


def test_acls_are_accepted_at_once_and_committed_after_the_delay(
    switch: tuple[SimClock, AclSwitch, Recorder],
) -> None:
    clock, sw, target = switch
    sw.put("cap1", ["[iptables]", ERSPAN])
    sw.put("ddos1", ["[iptables]", DROP])
    assert (sw.state("cap1"), sw.get("cap1"), target.calls) == (
        "pending",
        ["[iptables]", ERSPAN],
        [],
    )
    clock.advance_to(0.49)
    assert target.calls == []
    clock.advance_to(0.5)
    assert target.calls == [
        ("apply", "leaf1", "cap1", [ERSPAN]),
        ("apply", "leaf1", "ddos1", [DROP]),
    ]
    assert sw.state("cap1") == sw.state("ddos1") == "applied"
    assert [r.line for r in sw.installed()["ddos1"]] == [DROP]
    sw.put("cap1", ["[iptables]", ERSPAN])  # unchanged: no new commit
    clock.advance_to(2.0)
    assert len(target.calls) == 2
    sw.delete("ddos1")
    assert sw.get("ddos1") is None and "ddos1" in sw.installed()
    clock.advance_to(3.0)
    assert target.calls[2:] == [("withdraw", "leaf1", "ddos1")]
    assert sw.names() == ["cap1"] and sw.last_error is None


def test_a_target_that_refuses_leaves_a_last_error(
    switch: tuple[SimClock, AclSwitch, Recorder],
) -> None:
    clock, sw, target = switch
    sw.put("refused", [DROP])
    sw.put("fine", [DROP])
    clock.advance_to(1.0)
    assert (sw.state("refused"), sw.state("fine")) == ("failed", "applied")
    assert sw.last_error == {"returncode": 1, "lines": ["refused: cannot install refused"]}
    sw.delete("refused")
    clock.advance_to(2.0)
    assert sw.last_error is None and target.calls == [("apply", "leaf1", "fine", [DROP])]


def test_a_refused_new_version_leaves_the_old_one_in_force(
    switch: tuple[SimClock, AclSwitch, Recorder],
) -> None:
    clock, sw, target = switch
    cursed = "-A FORWARD -p tcp --dport 666 -j DROP"
    sw.put("acl1", [DROP])
    clock.advance_to(1.0)
    sw.put("acl1", [cursed])
    clock.advance_to(2.0)
    assert sw.state("acl1") == "failed" and [r.line for r in sw.installed()["acl1"]] == [DROP]
    assert sw.last_error == {"returncode": 1, "lines": ["acl1: port 666 is cursed"]}
    sw.put("acl1", [DROP, DROP])
    assert sw.state("acl1") == "pending"
    clock.advance_to(3.0)
    assert sw.state("acl1") == "applied" and sw.last_error is None
    sw.delete("acl1")
    clock.advance_to(4.0)
    assert target.calls == [
        ("apply", "leaf1", "acl1", [DROP]),
        ("apply", "leaf1", "acl1", [DROP, DROP]),
        ("withdraw", "leaf1", "acl1"),
    ]


def test_a_refused_line_changes_nothing(switch: tuple[SimClock, AclSwitch, Recorder]) -> None:
    clock, sw, target = switch
    sw.put("cap1", [ERSPAN])
    with pytest.raises(RuleError, match="line 2"):
        sw.put("cap1", [ERSPAN, "-A FORWARD -j ACCEPT"])
    with pytest.raises(ValueError, match="ACL names are"):
        sw.put("Bad-Name", [ERSPAN])
    clock.advance_to(1.0)
    assert sw.get("cap1") == [ERSPAN] and target.calls == [("apply", "leaf1", "cap1", [ERSPAN])]


# -- the REST API ---------------------------------------------------------------------------------


@pytest.fixture
def one_switch(
    switch: tuple[SimClock, AclSwitch, Recorder],
) -> Iterator[tuple[SimClock, SwitchApi, Recorder]]:
    clock, sw, target = switch
    with SwitchApi([sw]) as api:
        yield clock, api, target


def test_rest_put_get_list_delete(one_switch: tuple[SimClock, SwitchApi, Recorder]) -> None:
    clock, api, target = one_switch
    url = f"{api.url}/acl/emrg0"
    put = requests.put(url, json=["[iptables]", "# capture", ERSPAN], timeout=5)
    assert (put.status_code, put.content, "Warning" in put.headers) == (202, b"", False)
    got = requests.get(url, timeout=5)
    assert (got.status_code, got.json(), got.headers["X-Acl-State"]) == (
        200,
        ["[iptables]", "# capture", ERSPAN],
        "pending",
    )
    clock.advance(1.0)
    assert requests.get(url, timeout=5).headers["X-Acl-State"] == "applied"
    assert requests.get(f"{api.url}/acl/", timeout=5).json() == ["emrg0"]
    assert requests.delete(url, timeout=5).status_code == 204
    assert requests.delete(url, timeout=5).status_code == 204  # absent: still 204, as acl_server
    assert requests.get(url, timeout=5).status_code == 404
    clock.advance(1.0)
    assert target.calls == [("apply", "leaf1", "emrg0", [ERSPAN]), ("withdraw", "leaf1", "emrg0")]
    assert requests.get(f"{api.url}/acl/lasterror", timeout=5).status_code == 204


def test_rest_refusals(one_switch: tuple[SimClock, SwitchApi, Recorder]) -> None:
    clock, api, target = one_switch
    bad_line = requests.put(
        f"{api.url}/acl/x1", json=["[iptables]", "-A FORWARD -j SPAN"], timeout=5
    )
    assert bad_line.status_code == 400
    assert (
        bad_line.json()["message"]
        == "ACL x1: line 2: target 'SPAN' is not modelled (one of DROP, ERSPAN): '-A FORWARD -j SPAN'"
    )
    plain = requests.put(
        f"{api.url}/acl/x1", data=DROP, headers={"Content-Type": "text/plain"}, timeout=5
    )
    assert plain.status_code == 406
    not_json = requests.put(
        f"{api.url}/acl/x1", data="[", headers={"Content-Type": "application/json"}, timeout=5
    )
    assert not_json.status_code == 400
    too_deep = requests.put(f"{api.url}/acl/x1", data="[" * 100_000 + "]" * 100_000,
                            headers={"Content-Type": "application/json"}, timeout=5)
    assert too_deep.status_code == 400 and "ACL x1: invalid JSON" in too_deep.json()["message"]
    not_a_list = requests.put(f"{api.url}/acl/x1", json={"rule": DROP}, timeout=5)
    assert not_a_list.status_code == 400 and "JSON list" in not_a_list.json()["message"]
    assert requests.put(f"{api.url}/acl/Bad-Name", json=[DROP], timeout=5).status_code == 404
    assert requests.put(f"{api.url}/acl/lasterror", json=[DROP], timeout=5).status_code == 404
    assert requests.post(f"{api.url}/acl/x1", json=[DROP], timeout=5).status_code == 405
    clock.advance(1.0)
    assert target.calls == [] and requests.get(f"{api.url}/acl/", timeout=5).json() == []


def test_rest_last_error_and_warning_header(
    one_switch: tuple[SimClock, SwitchApi, Recorder],
) -> None:
    clock, api, _ = one_switch
    assert requests.put(f"{api.url}/acl/refused", json=[DROP], timeout=5).status_code == 202
    clock.advance(1.0)
    got = requests.get(f"{api.url}/acl/refused", timeout=5)
    assert (
        got.headers["X-Acl-State"] == "failed"
        and got.headers["Warning"] == '199 - "check lasterror"'
    )
    error = requests.get(f"{api.url}/acl/lasterror", timeout=5)
    assert (error.status_code, error.json()) == (
        200,
        {"returncode": 1, "lines": ["refused: cannot install refused"]},
    )
    assert requests.delete(f"{api.url}/acl/", timeout=5).status_code == 204
    clock.advance(1.0)
    assert requests.get(f"{api.url}/acl/lasterror", timeout=5).status_code == 204


def test_one_server_for_several_switches_by_name_or_agent() -> None:
    clock = SimClock()
    target = Recorder()
    switches = [AclSwitch(f"leaf{i}", f"10.255.0.{i}", clock, target) for i in (1, 2)]
    with SwitchApi(switches) as api:
        urls = api.acl_urls()
        assert urls == {
            "10.255.0.1": f"{api.url}/switches/leaf1",
            "10.255.0.2": f"{api.url}/switches/leaf2",
        }
        assert (
            requests.put(urls["10.255.0.2"] + "/acl/d1", json=[DROP], timeout=5).status_code == 202
        )
        assert requests.get(f"{api.url}/switches/10.255.0.2/acl/", timeout=5).json() == ["d1"]
        assert requests.get(f"{api.url}/switches/leaf1/acl/", timeout=5).json() == []
        assert requests.get(f"{api.url}/acl/", timeout=5).status_code == 404
        assert requests.get(f"{api.url}/switches/leaf9/acl/", timeout=5).status_code == 404
        listing = requests.get(f"{api.url}/switches/", timeout=5).json()
        assert [(s["name"], s["agent"]) for s in listing] == [
            ("leaf1", "10.255.0.1"),
            ("leaf2", "10.255.0.2"),
        ]
        clock.advance(1.0)
    assert target.calls == [("apply", "leaf2", "d1", [DROP])]


# -- into the simulated fabric -------------------------------------------------------------------


@pytest.fixture
def fabric_lab(tmp_path: Path) -> Iterator[tuple[SimClock, Fabric, SwitchApi, ErspanCapture, Path]]:
    clock = SimClock()
    fabric = Fabric(FabricSpec(), MemorySink(), random.Random(1))
    path = tmp_path / "analyser.pcap"
    capture = ErspanCapture(path)
    switches = switches_for(fabric, clock, FabricAclTarget(fabric, capture), apply_delay_s=0.5)
    with SwitchApi(switches) as api:
        yield clock, fabric, api, capture, path
    capture.close()


def first_hop(fabric: Fabric, flow: TrafficFlow) -> tuple[str, str]:
    name = fabric.path(flow)[0].switch
    return name, fabric.switches[name].address


def test_a_drop_acl_put_over_rest_drops_the_flow_in_the_fabric(fabric_lab: Any) -> None:
    clock, fabric, api, _, _ = fabric_lab
    attack = TrafficFlow("198.51.100.7", "host1", "udp", 53, 4444, rate_pps=100, packet_bytes=500)
    normal = TrafficFlow("198.51.100.7", "host1", "udp", 123, 4444, rate_pps=100, packet_bytes=500)
    attack_id, normal_id = fabric.add_flow(attack), fabric.add_flow(normal)
    _, agent = first_hop(fabric, attack)
    host1 = fabric.hosts["host1"].ip
    line = f"-A FORWARD --in-interface swp+ -d {host1} -p udp --sport 53 -j DROP"
    assert (
        requests.put(
            api.acl_urls()[agent] + "/acl/ddos1", json=["[iptables]", line], timeout=5
        ).status_code
        == 202
    )
    fabric.tick(1.0)
    assert fabric.flows[attack_id].dropped == 0  # not committed yet
    clock.advance_to(1.0)
    fabric.tick(2.0)
    assert fabric.flows[attack_id].dropped == 100 and fabric.flows[normal_id].dropped == 0
    assert requests.delete(api.acl_urls()[agent] + "/acl/ddos1", timeout=5).status_code == 204
    clock.advance_to(2.0)
    fabric.tick(3.0)
    assert fabric.flows[attack_id].dropped == 100


def test_an_ip6tables_acl_drops_ipv6_and_a_new_version_replaces_the_old_rules(
    fabric_lab: Any,
) -> None:
    clock, fabric, api, _, _ = fabric_lab
    flow = TrafficFlow("2001:db8::7", "host1", "udp", 53, 4444, rate_pps=50, packet_bytes=500)
    flow_id = fabric.add_flow(flow)
    name, agent = first_hop(fabric, flow)
    url = api.acl_urls()[agent] + "/acl/ddos6"
    target = fabric.hosts["host1"].ip6

    first = [
        "[ip6tables]",
        f"-A FORWARD --in-interface swp+ -s 2001:db8::7 -d {target} -p udp --sport 53 -j DROP",
        f"-A FORWARD --in-interface swp+ -d {target} -p tcp --dport 9999 -j DROP",
    ]
    assert requests.put(url, json=first, timeout=5).status_code == 202
    clock.advance_to(1.0)
    fabric.tick(1.0)
    assert fabric.flows[flow_id].dropped == 50
    assert sorted(fabric.switches[name].rules) == ["ddos6/0", "ddos6/1"]
    assert (
        requests.put(
            url,
            json=["[ip6tables]", "-A FORWARD -s 2001:db8::7 -p udp --sport 54 -j DROP"],
            timeout=5,
        ).status_code
        == 202
    )
    clock.advance_to(2.0)
    fabric.tick(2.0)
    assert fabric.flows[flow_id].dropped == 50
    assert sorted(fabric.switches[name].rules) == ["ddos6/0"]


def test_a_rule_the_fabric_cannot_honour_shows_in_last_error(fabric_lab: Any) -> None:
    clock, fabric, api, _, _ = fabric_lab
    url = api.acl_urls()[fabric.switches["leaf1"].address]
    requests.put(url + "/acl/r1", json=["-A FORWARD -p tcp --dport 1000 -j DROP"], timeout=5)
    clock.advance(1.0)
    assert list(fabric.switches["leaf1"].rules) == ["r1/0"]
    requests.put(url + "/acl/r1", json=["-A FORWARD -p tcp --dport 1000:2000 -j DROP"], timeout=5)
    clock.advance(1.0)
    assert fabric.switches["leaf1"].rules["r1/0"].dst_port == 1000  # the old version stays
    assert requests.get(url + "/acl/r1", timeout=5).headers["X-Acl-State"] == "failed"
    error = requests.get(url + "/acl/lasterror", timeout=5).json()
    assert error == {
        "returncode": 1,
        "lines": [
            "r1: the fabric matches single ports, not ranges: -A FORWARD -p tcp --dport 1000:2000 -j DROP"
        ],
    }
    with pytest.raises(ValueError, match="every port"):
        packet_rule(parse_rule("-A FORWARD -i swp3 -j DROP"))


def test_a_fabric_rule_acts_on_its_section_s_family_only() -> None:
    """As in the kernel (tests/interop/test_iptables_acl.py checks it there)."""
    dns = {v: TrafficFlow(src, dst, "udp", 53, 4444) for v, src, dst in (
        (4, "198.51.100.7", "10.0.1.1"), (6, "2001:db8::7", "fd00::1:1"))}
    for family in (4, 6):
        rule = packet_rule(parse_rule("-A FORWARD -p udp --sport 53 -j DROP", family))
        assert [rule.matches(f, f.src, f.dst) for f in dns.values()] == [family == 4, family == 6]
    for line, family in (("-A FORWARD -p icmp -j DROP", 6), ("-A FORWARD -p icmpv6 -j DROP", 4)):
        with pytest.raises(ValueError, match=f"matches no IPv{family} traffic"):
            packet_rule(parse_rule(line, family))


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_an_erspan_acl_mirrors_both_directions_to_the_analyser_pcap(fabric_lab: Any) -> None:
    clock, fabric, api, capture, path = fabric_lab
    out = TrafficFlow("host1", "host5", "udp", 5353, 53, rate_pps=10, packet_bytes=200)
    back = TrafficFlow("host5", "host1", "udp", 53, 5353, rate_pps=5, packet_bytes=300)
    fabric.add_flow(out)
    fabric.add_flow(back)
    local, remote = fabric.hosts["host1"].ip, fabric.hosts["host5"].ip
    switch, agent = first_hop(fabric, out)
    assert first_hop(fabric, back)[0] != switch  # each direction enters the fabric elsewhere
    acl = [
        "[iptables]",
        "# emerging threat capture",
        f"-A FORWARD --in-interface swp+ -s {local} -d {remote} -j ERSPAN --src-ip {agent} --dst-ip 10.0.9.9",
        f"-A FORWARD --in-interface swp+ -s {remote} -d {local} -j ERSPAN --src-ip {agent} --dst-ip 10.0.9.9",
    ]
    assert (
        requests.put(api.acl_urls()[agent] + "/acl/emrg0", json=acl, timeout=5).status_code == 202
    )
    clock.advance_to(1.0)
    fabric.tick(
        1.0
    )  # the reverse flow crosses this leaf on its way out, at the leaf's ingress from a spine
    capture.close()
    fields = [
        "frame.protocols",
        "ip.src",
        "ip.dst",
        "gre.proto",
        "erspan.spanid",
        "udp.srcport",
        "frame.len",
    ]
    done = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", *[x for f in fields for x in ("-e", f)]],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert capture.count == len(rows) == 15
    outer = f"{agent},{local}", f"10.0.9.9,{remote}"
    forward = [r for r in rows if r[1:3] == list(outer)]
    backward = [r for r in rows if r[1:3] == [f"{agent},{remote}", f"10.0.9.9,{local}"]]
    assert len(forward) == 10 and len(backward) == 5
    for row in rows:
        assert row[0] == "eth:ethertype:ip:gre:erspan:eth:ethertype:ip:udp:dns"
        assert row[3] == "0x88be"
    assert {r[4] for r in forward} != {r[4] for r in backward}  # one ERSPAN session per rule
    assert {r[5] for r in forward} == {"5353"} and {r[6] for r in forward} == {
        str(14 + 20 + 8 + 8 + 200)
    }
