"""The DDoS controller's DROP rules in the Linux kernel, and the lab's switch double agreeing.

A router namespace with ports ``swp1`` (the attacker's host behind it) and ``swp2`` (the
victim's, which also holds a bystander address) stands in for a Cumulus switch. For each
attack type the controller mitigates, its own ACL lines (``AttackType.acl``) are loaded into
the router's FORWARD chain the way cl-acltool loads a policy file: the ``[iptables]`` section
through ``iptables-restore``, the ``[ip6tables]`` section through ``ip6tables-restore``, with
each iptables backend installed (nf_tables, legacy). The attacker sends ``N`` frames of every
probe; the victim counts what arrives (a packet socket), the rules' counters what they dropped.
The same lines and probes go through the lab double (``parse_acl`` -> ``FabricAclTarget`` ->
``Fabric``); kernel and double must drop exactly the same probes. A hand-written rule without
addresses, in each section, checks that a rule acts on its own address family only.

Not covered: the capture controller's ERSPAN lines. ERSPAN is a Cumulus-only target; stock
iptables has no such extension and refuses the lines (``unknown option "--src-ip"``), so there
is no real implementation here to check them against.
"""

from __future__ import annotations

import random
import select
import shutil
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from sflowlab.agent_sim.fabric import Fabric
from sflowlab.agent_sim.packets import TCP_SYN
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.agent_sim.topology import FabricSpec
from sflowlab.agent_sim.traffic import TrafficFlow
from sflowlab.controllers.ddos import ATTACKS
from sflowlab.lab.doubles.acl_fabric import FabricAclTarget
from sflowlab.lab.doubles.acl_rules import parse_acl
from sflowlab.lab.interop.netns import Router, router, unavailable_reason

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.iptables]

N = 25  # frames per probe
ATTACKER = {4: "198.51.100.7", 6: "2001:db8:51::7"}
VICTIM = {4: "10.199.1.1", 6: "fd00:199::1:1"}  # host1 of SPEC
BYSTANDER = {4: "10.199.1.2", 6: "fd00:199::1:2"}  # host2 of SPEC
PORTS = {
    "swp1": (["198.51.100.254/24", "2001:db8:51::fe/64"],
             [f"{ATTACKER[4]}/24", f"{ATTACKER[6]}/64"]),
    "swp2": (["10.199.1.254/24", "fd00:199::fe/64"],
             [f"{VICTIM[4]}/24", f"{BYSTANDER[4]}/24", f"{VICTIM[6]}/64", f"{BYSTANDER[6]}/64"]),
}
SPEC = FabricSpec(leaves=1, spines=1, hosts_per_leaf=2, external_peers=1,
                  host_subnet="10.199.0.0/16", host_subnet6="fd00:199::/48", polling_s=0)
PROBES = {  # name: protocol, source port, destination port, destination (TCP ones are SYNs)
    "udp from 53": ("udp", 53, 4444, VICTIM),
    "udp from 123": ("udp", 123, 4444, VICTIM),
    "udp to 53": ("udp", 40000, 53, VICTIM),
    "syn to 80": ("tcp", 40001, 80, VICTIM),
    "syn to 443": ("tcp", 40002, 443, VICTIM),
    "syn from 80": ("tcp", 80, 40003, VICTIM),
    "icmp echo": ("icmp", 0, 0, VICTIM),
    "udp from 53 to the bystander": ("udp", 53, 4444, BYSTANDER),
}
CASES = [  # attack, port in its flow key, the probes its rule must drop
    ("udp_amplification", "53", {"udp from 53"}),
    ("udp_amplification", "123", {"udp from 123"}),
    ("udp_flood", "", {"udp from 53", "udp from 123", "udp to 53"}),
    ("syn_flood", "80", {"syn to 80"}),
    ("icmp_flood", "", {"icmp echo"}),
]
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # sll_pkttype of a frame the socket's host sent
SOL_PACKET, PACKET_STATISTICS = 263, 6  # <linux/if_packet.h>


@dataclass(frozen=True)
class Switch:
    """The router namespace and the iptables backend (``nft``, ``legacy``) that filters in it."""

    router: Router
    backend: str

    def command(self, family: int, suffix: str = "") -> str:
        return f"{'ip6tables' if family == 6 else 'iptables'}-{self.backend}{suffix}"

    def restore(self, family: int, rules: list[str]) -> None:
        """Replace the filter table with a FORWARD chain holding ``rules``."""
        text = "\n".join(["*filter", ":FORWARD ACCEPT [0:0]", *rules, "COMMIT", ""])
        command = self.command(family, "-restore")
        done = self.router.ns.run([command], input=text, text=True, capture_output=True)
        assert done.returncode == 0, f"{command}: {done.stderr}"

    def counters(self, family: int) -> list[tuple[str, int]]:
        """(target, packets) of each FORWARD rule, in order."""
        done = self.router.ns.run([self.command(family), "-L", "FORWARD", "-v", "-x", "-n"],
                                  text=True, capture_output=True, check=True)
        rows = [line.split() for line in done.stdout.splitlines()[2:]]
        return [(row[2], int(row[0])) for row in rows]


def policy_sections(lines: list[str]) -> dict[int, list[str]]:
    """The rules of a Cumulus policy file by address family, as cl-acltool splits them."""
    sections: dict[int, list[str]] = {4: [], 6: []}
    family = 4
    for line in (raw.strip() for raw in lines):
        if line in ("[iptables]", "[ip6tables]"):
            family = 6 if line == "[ip6tables]" else 4
        elif line.startswith("-A "):
            sections[family].append(line)
        elif line and not line.startswith("#"):
            raise ValueError(f"not a policy line: {line!r}")
    return sections


def probes(family: int) -> dict[str, TrafficFlow]:
    return {name: TrafficFlow(ATTACKER[family], to[family], protocol, sport, dport,
                              rate_pps=N, packet_bytes=100)
            for name, (protocol, sport, dport, to) in PROBES.items()}


Signature = tuple[bytes, bytes, int, bytes]


def signature(frame: bytes) -> Signature | None:
    """Source, destination, IP protocol and the first 4 transport bytes (ports) of a frame."""
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x0800:
        ihl = (frame[14] & 0x0F) * 4
        return frame[26:30], frame[30:34], frame[23], frame[14 + ihl:18 + ihl]
    if ethertype == 0x86DD:
        return frame[22:38], frame[38:54], frame[20], frame[54:58]
    return None


def kernel_drops(switch: Switch, family: int, lines: list[str], flows: dict[str, TrafficFlow]
                 ) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """Probes dropped by the router with ``lines`` loaded, and its rules' counters."""
    for fam, rules in policy_sections(lines).items():
        switch.restore(fam, rules)  # the other family's chain emptied of earlier cases
    attacker, victim = switch.router.ports["swp1"], switch.router.ports["swp2"]
    frames = {}
    for name, flow in flows.items():
        packet = flow.packet(flow.src, flow.dst, attacker.host_mac, attacker.mac, 64, 0)
        frames[name] = replace(packet, tcp_flags=TCP_SYN).frame()
    names = {signature(frame): name for name, frame in frames.items()}
    received: Counter[str] = Counter()
    with victim.host.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as rx, \
            attacker.host.socket(socket.AF_PACKET, socket.SOCK_RAW) as tx:
        rx.bind((victim.host_interface, ETH_P_ALL))
        rx.setblocking(False)
        tx.bind((attacker.host_interface, 0))
        for frame in frames.values():
            for _ in range(N):
                tx.send(frame)
            _receive(rx, names, received)  # a burst at a time: the socket buffer holds it
        deadline = time.monotonic() + 10.0
        while True:  # until every frame sent is either received or counted by a rule
            counted = sum(packets for _, packets in switch.counters(family))
            if received.total() + counted >= N * len(frames) or time.monotonic() > deadline:
                break
            select.select([rx], [], [], 0.05)
            _receive(rx, names, received)
        _, overflowed = struct.unpack("II", rx.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    assert overflowed == 0, f"the victim's packet socket lost {overflowed} frames"
    return {name: N - received[name] for name in frames}, switch.counters(family)


def _receive(sock: socket.socket, names: dict[Signature | None, str],
             received: Counter[str]) -> None:
    """Count the probes waiting in the packet socket (those it sees arrive)."""
    while True:
        try:
            frame, where = sock.recvfrom(65535)
        except BlockingIOError:
            return
        if where[2] != PACKET_OUTGOING and (name := names.get(signature(frame))):
            received[name] += 1


def double_drops(lines: list[str], flows: dict[str, TrafficFlow]) -> dict[str, int]:
    """Probes dropped in one second by the lab fabric with ``lines`` on the attacker's switch."""
    fabric = Fabric(SPEC, MemorySink(), random.Random(1))
    assert [fabric.topology.node_of(a) for a in (VICTIM[4], BYSTANDER[4], ATTACKER[4])] == [
        "host1", "host2", "internet"]
    FabricAclTarget(fabric).apply("border1", "ddos0", parse_acl(lines))
    ids = {name: fabric.add_flow(flow) for name, flow in flows.items()}
    fabric.tick(1.0)
    assert {fabric.flows[i].packets for i in ids.values()} == {N}
    return {name: fabric.flows[i].dropped for name, i in ids.items()}


@pytest.fixture(scope="module", params=["nft", "legacy"])
def switch(request: pytest.FixtureRequest) -> Iterator[Switch]:
    """A router namespace of its own per backend (the two would see each other's rules)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    commands = [f"{tool}-{request.param}{suffix}" for tool in ("iptables", "ip6tables")
                for suffix in ("", "-restore")]
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian package iptables)")
    with router(PORTS, prefix="sflipt") as built:
        switch = Switch(built, request.param)
        for family in (4, 6):
            done = built.ns.run([switch.command(family), "-L", "FORWARD", "-n"], text=True,
                                capture_output=True)
            if done.returncode:
                pytest.skip(f"{switch.command(family)} cannot work here: {done.stderr.strip()}")
        yield switch


def assert_agree(switch: Switch, family: int, lines: list[str], dropped: set[str]) -> None:
    """The kernel drops exactly the ``dropped`` probes of ``family``, by one rule; so does the
    double."""
    flows = probes(family)
    kernel, counters = kernel_drops(switch, family, lines, flows)
    assert kernel == {name: N if name in dropped else 0 for name in flows}
    assert counters == ([("DROP", N * len(dropped))] if dropped else [])
    assert double_drops(lines, flows) == kernel


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize(("attack", "port", "dropped"), CASES,
                         ids=[f"{a}{p and '-' + p}" for a, p, _ in CASES])
def test_the_kernel_and_the_double_drop_what_the_ddos_rules_name(
        switch: Switch, family: int, attack: str, port: str, dropped: set[str]) -> None:
    victim = VICTIM[family]
    assert_agree(switch, family, ATTACKS[attack].acl(f"{victim},{port}" if port else victim),
                 dropped)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("section", ["[iptables]", "[ip6tables]"])
def test_a_rule_without_addresses_acts_on_its_section_s_family_only(
        switch: Switch, family: int, section: str) -> None:
    """The double once applied such an ``[ip6tables]`` rule to IPv4 traffic too."""
    lines = [section, "-A FORWARD --in-interface swp+ -p udp --sport 53 -j DROP"]
    same = (section == "[ip6tables]") == (family == 6)
    assert_agree(switch, family, lines, {"udp from 53", "udp from 53 to the bystander"} if same
                 else set())
