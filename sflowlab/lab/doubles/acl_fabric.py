"""Switch ACLs into the simulated fabric, and ERSPAN mirrors into an analyser's pcap.

``FabricAclTarget`` is the ``AclTarget`` the lab gives the switch ACL double: each committed
ACL line becomes one agent_sim ``PacketRule`` on that switch (rule ids ``{acl}/{n}``), DROP as
``"drop"`` and ERSPAN as a mirror whose callback hands each mirrored packet to an
``ErspanCapture``. ``switches_for(fabric, ...)`` makes one ``AclSwitch`` per fabric switch,
named like it and answering for its sFlow agent address.

The fabric applies rules at ingress on every port, on addresses, protocol (tcp, udp, icmp) and
single ports, so a line it cannot honour (a specific ``--in-interface``, ``--out-interface``,
a port range, another protocol) is refused at commit and shows in the switch's lasterror.
As in the kernel, a rule acts only on its section's address family (an ``[ip6tables]`` rule
without addresses never drops IPv4); ``-p icmp`` under ``[ip6tables]`` and ``-p icmpv6`` under
``[iptables]``, which match nothing there, are refused.
Commits run where the switch's scheduler runs its timers: with a ``SimClock`` in the thread
that advances it, between fabric ticks (deterministic); with a ``RealTimeScheduler`` in its
worker thread, so a real-time lab must not tick the fabric concurrently.

``ErspanCapture`` writes what an analyser receives from Cumulus' ERSPAN target: the mirrored
Ethernet frame inside an ERSPAN type II header (session id per rule, index 0) inside GRE
(protocol 0x88BE, with a sequence number per session) inside IPv4 or IPv6 from the rule's
``--src-ip`` to its ``--dst-ip``, one classic-pcap Ethernet record per packet. Wireshark and
tshark decode it as ``eth:ip:gre:erspan:eth:...``.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Callable
from typing import BinaryIO

from sflowlab.agent_sim.fabric import Fabric
from sflowlab.agent_sim.packets import Packet
from sflowlab.agent_sim.traffic import PacketRule
from sflowlab.codec.pcap import PcapWriter, internet_checksum
from sflowlab.lab.doubles.acl_rules import ParsedRule
from sflowlab.lab.doubles.scheduler import Scheduler
from sflowlab.lab.doubles.switch_api import AclSwitch, AclTarget

__all__ = ["ErspanCapture", "FabricAclTarget", "packet_rule", "switches_for"]

_PROTOCOL_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}
_ICMP = {4: 1, 6: 58}  # the ICMP protocol number of each family
_ANY = {4: "0.0.0.0/0", 6: "::/0"}
_GRE_SEQ = 0x1000  # GRE flags: sequence number present
_ERSPAN_II = 0x88BE
_GRE_PROTOCOL = 47
_ANALYSER_MAC = bytes.fromhex("020000000a01")
_SWITCH_MAC = bytes.fromhex("020000000a02")


class ErspanCapture(PcapWriter):
    """An analyser's capture of ERSPAN type II traffic (a ``PcapWriter`` of whole frames)."""

    def __init__(self, target: str | os.PathLike[str] | BinaryIO, snaplen: int = 65535) -> None:
        super().__init__(target, snaplen)
        self._sessions: dict[tuple[str, str], int] = {}
        self._sequence: dict[int, int] = {}

    def session(self, switch: str, rule_id: str) -> int:
        """The 10-bit ERSPAN session id of a rule (assigned in order of first use)."""
        return self._sessions.setdefault((switch, rule_id), len(self._sessions) % 1024)

    def mirror(self, packet: Packet, rule: ParsedRule, session: int, now: float) -> None:
        """Write ``packet`` as the switch's ERSPAN encapsulation of it sends it."""
        assert rule.erspan_src is not None and rule.erspan_dst is not None
        sequence = self._sequence.get(session, 0)
        self._sequence[session] = (sequence + 1) & 0xFFFFFFFF
        vlan = packet.vlan or 0
        erspan = struct.pack("!II", (1 << 28) | (vlan << 16) | session, 0)
        gre = struct.pack("!HHI", _GRE_SEQ, _ERSPAN_II, sequence) + erspan + packet.frame()
        self.write_frame(_ip_frame(rule.erspan_src, rule.erspan_dst, gre), now)


def _ip_frame(
    src: ipaddress.IPv4Address | ipaddress.IPv6Address,
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address,
    payload: bytes,
) -> bytes:
    """An Ethernet frame carrying ``payload`` as IP protocol 47 (GRE) from ``src`` to ``dst``."""
    if src.version != dst.version:
        raise ValueError(f"ERSPAN tunnel ends {src} and {dst} differ in address family")
    if src.version == 6:
        ip = (
            struct.pack("!IHBB", 6 << 28, len(payload), _GRE_PROTOCOL, 64) + src.packed + dst.packed
        )
        ethertype = 0x86DD
    else:
        head = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(payload),
            0,
            0x4000,
            64,
            _GRE_PROTOCOL,
            0,
            src.packed,
            dst.packed,
        )
        ip = head[:10] + struct.pack("!H", internet_checksum(head)) + head[12:]
        ethertype = 0x0800
    return _ANALYSER_MAC + _SWITCH_MAC + struct.pack("!H", ethertype) + ip + payload


def packet_rule(
    rule: ParsedRule, mirror: Callable[[Packet, str, float], None] | None = None
) -> PacketRule:
    """The fabric's form of one ACL rule; ``ValueError`` when the fabric cannot honour it."""
    if rule.in_interface not in (None, "swp+"):
        raise ValueError(
            f"the fabric applies rules on every port (--in-interface swp+): {rule.line}"
        )
    if rule.out_interface is not None:
        raise ValueError(f"the fabric does not match on --out-interface: {rule.line}")
    if rule.protocol is not None and rule.protocol not in _PROTOCOL_NAMES:
        raise ValueError(f"the fabric carries tcp, udp and icmp only: {rule.line}")
    if rule.protocol in _ICMP.values() and rule.protocol != _ICMP[rule.family]:
        raise ValueError(f"protocol {rule.protocol} matches no IPv{rule.family} traffic (ICMP is "
                         f"-p icmp under [iptables], -p icmpv6 under [ip6tables]): {rule.line}")
    ports = []
    for port in (rule.sport, rule.dport):
        if port is not None and port.low != port.high:
            raise ValueError(f"the fabric matches single ports, not ranges: {rule.line}")
        ports.append(None if port is None else port.low)
    if rule.target == "ERSPAN":
        if mirror is None:
            raise ValueError(f"no analyser to mirror to: {rule.line}")
        action: str | tuple[str, Callable[[Packet, str, float], None]] = ("erspan", mirror)
    else:
        action = "drop"
    return PacketRule(  # with no source, any of the section's family (never the other's)
        src=_ANY[rule.family] if rule.source is None else str(rule.source),
        dst=None if rule.destination is None else str(rule.destination),
        protocol=None if rule.protocol is None else _PROTOCOL_NAMES[rule.protocol],
        src_port=ports[0],
        dst_port=ports[1],
        action=action,
    )


class FabricAclTarget:
    """Installs committed ACLs into ``fabric``; ERSPAN rules mirror into ``capture``."""

    def __init__(self, fabric: Fabric, capture: ErspanCapture | None = None) -> None:
        self.fabric, self.capture = fabric, capture
        self._installed: dict[tuple[str, str], list[str]] = {}

    def apply(self, switch: str, rule_id: str, rules: list[ParsedRule]) -> None:
        converted = [
            packet_rule(rule, self._mirror(switch, f"{rule_id}/{n}", rule))
            for n, rule in enumerate(rules)
        ]
        self.withdraw(switch, rule_id)  # only once every line converted: a refusal changes nothing
        ids = self._installed[(switch, rule_id)] = []
        for n, rule in enumerate(converted):
            self.fabric.install_rule(switch, f"{rule_id}/{n}", rule)
            ids.append(f"{rule_id}/{n}")

    def withdraw(self, switch: str, rule_id: str) -> None:
        for sub_id in self._installed.pop((switch, rule_id), []):
            self.fabric.remove_rule(switch, sub_id)

    def _mirror(
        self, switch: str, sub_id: str, rule: ParsedRule
    ) -> Callable[[Packet, str, float], None] | None:
        capture = self.capture
        if rule.target != "ERSPAN" or capture is None:
            return None
        session = capture.session(switch, sub_id)
        return lambda packet, _switch, now: capture.mirror(packet, rule, session, now)


def switches_for(
    fabric: Fabric, scheduler: Scheduler, target: AclTarget, apply_delay_s: float = 0.5
) -> list[AclSwitch]:
    """One ACL double per fabric switch, named like it, answering for its agent address."""
    return [
        AclSwitch(name, sw.address, scheduler, target, apply_delay_s)
        for name, sw in sorted(fabric.switches.items())
    ]
