"""The traffic model: flows with rates and sizes, their per-tick packet counts, and ACL rules.

Traffic is simulated in aggregate: ``FlowState.advance(t0, t1)`` turns a rate into a whole
number of packets for the part of ``[t0, t1)`` the flow is active, carrying the fractional
remainder to the next tick, so the counts are integers and the long-run total is exact.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .packets import ICMP, TCP, TCP_ACK, TCP_PSH, UDP, Packet

PROTOCOLS = {"tcp": TCP, "udp": UDP, "icmp": ICMP}
MAX_FRAME = 9216  # jumbo frames, without FCS
MIN_FRAME = 60  # Ethernet minimum without FCS
_L4_HEADER = {TCP: 20, UDP: 8, ICMP: 8}
_EPSILON = 1e-9  # packets: absorbs float rounding in rate * duration

MirrorCallback = Callable[[Packet, str, float], None]
"""``callback(packet, switch, now)``: receives each mirrored packet (the ERSPAN double)."""


@dataclass(frozen=True)
class TrafficFlow:
    """A unidirectional flow between hosts, switches or external addresses.

    ``src``/``dst`` are host or switch names or IP addresses (an address that is no host's or
    switch's is external). ``ipv6=None`` infers the family from any address given, else IPv4.
    ``packet_bytes`` is the L2 frame length without FCS. ICMP flows are echo requests and
    leave the ports at 0.
    """

    src: str
    dst: str
    protocol: str = "tcp"
    src_port: int = 0
    dst_port: int = 0
    rate_pps: float = 0.0
    packet_bytes: int = 1000
    vlan: int | None = None
    start_s: float = 0.0
    stop_s: float | None = None
    ipv6: bool | None = None
    tos: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.protocol in PROTOCOLS, f"protocol must be one of {sorted(PROTOCOLS)}"),
            (0 <= self.src_port < 65536 and 0 <= self.dst_port < 65536, "ports must be 0..65535"),
            (self.protocol != "icmp" or self.src_port == self.dst_port == 0,
             "icmp flows have no ports"),
            (math.isfinite(self.rate_pps) and self.rate_pps >= 0, "rate_pps must be >= 0"),
            (MIN_FRAME <= self.packet_bytes <= MAX_FRAME,
             f"packet_bytes must be {MIN_FRAME}..{MAX_FRAME}"),
            (self.vlan is None or 1 <= self.vlan <= 4094, "vlan must be 1..4094"),
            (self.stop_s is None or self.stop_s > self.start_s, "stop_s must follow start_s"),
            (0 <= self.tos < 256, "tos must be 0..255"),
            (self.src != self.dst, "src and dst must differ"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TrafficFlow {self.src}->{self.dst}: {message}")

    @property
    def protocol_number(self) -> int:
        return PROTOCOLS[self.protocol]

    def inferred_ipv6(self) -> bool:
        """The family: as given, else from the literal addresses (which must agree)."""
        families = set()
        for end in (self.src, self.dst):
            try:
                families.add(ipaddress.ip_address(end).version == 6)
            except ValueError:
                continue
        if self.ipv6 is not None:
            families.add(self.ipv6)
        if len(families) > 1:
            raise ValueError(f"TrafficFlow {self.src}->{self.dst}: mixes IPv4 and IPv6")
        return families.pop() if families else False

    def min_packet_bytes(self, ipv6: bool) -> int:
        """The smallest frame that holds this flow's headers."""
        l2 = 14 + 4 * (self.vlan is not None)
        return max(MIN_FRAME, l2 + (40 if ipv6 else 20) + _L4_HEADER[self.protocol_number])

    def packet(self, src_ip: str, dst_ip: str, src_mac: str, dst_mac: str, ttl: int,
               seq: int) -> Packet:
        """One of this flow's packets as seen on a link between the given MACs."""
        flags = TCP_ACK | TCP_PSH if self.protocol == "tcp" else 0
        return Packet(src_mac, dst_mac, src_ip, dst_ip, self.protocol_number, self.src_port,
                      self.dst_port, flags, self.packet_bytes, self.vlan, None, self.tos, ttl,
                      seq=seq)


@dataclass
class FlowState:
    """A running flow: its current rate, carried remainder and the packets it has sent."""

    flow: TrafficFlow
    rate_pps: float
    carry: float = 0.0
    packets: int = 0  # sent by the source
    dropped: int = 0  # stopped by an ACL on the way

    def advance(self, t0: float, t1: float) -> int:
        """Whole packets sent in ``[t0, t1)`` at the current rate (remainder carried)."""
        stop = math.inf if self.flow.stop_s is None else self.flow.stop_s
        active = min(t1, stop) - max(t0, self.flow.start_s)
        if active <= 0 or self.rate_pps <= 0:
            return 0
        exact = self.rate_pps * active + self.carry
        n = math.floor(exact + _EPSILON)  # 3.3 pps over ten 0.1 s ticks is 33, not 32
        self.carry = max(exact - n, 0.0)
        self.packets += n
        return n


@dataclass(frozen=True)
class PacketRule:
    """An ACL entry: match on addresses (or CIDR prefixes), protocol and ports; then act.

    ``action`` is ``"drop"`` or ``("erspan", callback)``: the callback gets each matching
    packet, at most ``mirror_limit`` per tick per rule. ``None`` fields match anything.
    """

    src: str | None = None
    dst: str | None = None
    protocol: str | None = None
    src_port: int | None = None
    dst_port: int | None = None
    action: str | tuple[str, MirrorCallback] = "drop"
    mirror_limit: int = 1000
    _nets: tuple[Any, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nets = tuple(None if p is None else ipaddress.ip_network(p, strict=False)
                     for p in (self.src, self.dst))
        object.__setattr__(self, "_nets", nets)
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise ValueError(f"PacketRule: protocol must be one of {sorted(PROTOCOLS)}")
        if self.action != "drop" and not (
            isinstance(self.action, tuple) and len(self.action) == 2
            and self.action[0] == "erspan" and callable(self.action[1])
        ):
            raise ValueError("PacketRule: action must be 'drop' or ('erspan', callback)")
        if self.mirror_limit < 0:
            raise ValueError("PacketRule: mirror_limit must be >= 0")

    @property
    def drops(self) -> bool:
        return self.action == "drop"

    @property
    def mirror(self) -> MirrorCallback | None:
        return None if isinstance(self.action, str) else self.action[1]

    def matches(self, flow: TrafficFlow, src_ip: str, dst_ip: str) -> bool:
        """True when every given field matches this flow's packets."""
        for net, ip in zip(self._nets, (src_ip, dst_ip), strict=True):
            if net is not None and ipaddress.ip_address(ip) not in net:
                return False
        return (
            (self.protocol is None or self.protocol == flow.protocol)
            and (self.src_port is None or self.src_port == flow.src_port)
            and (self.dst_port is None or self.dst_port == flow.dst_port)
        )


def external_addresses(count: int, prefix: str = "198.51.100.0/24") -> list[str]:
    """``count`` distinct addresses from a (documentation) prefix, in order."""
    out = [str(a) for a in itertools.islice(ipaddress.ip_network(prefix).hosts(), count)]
    if len(out) < count:
        raise ValueError(f"{prefix} holds fewer than {count} addresses")
    return out


def amplification_flood(target: str, sources: int | list[str], rate_pps: float,
                        src_port: int = 123, packet_bytes: int = 468, start_s: float = 0.0,
                        stop_s: float | None = None, ipv6: bool = False,
                        source_prefix: str | None = None) -> list[TrafficFlow]:
    """A UDP reflection flood (NTP monlist by default) from many sources to one target.

    ``sources`` is a list of external addresses or a count drawn from ``source_prefix``
    (default 198.51.100.0/24, or 2001:db8::/32 with ``ipv6``; 198.18.0.0/15 holds more);
    the total ``rate_pps`` is split evenly.
    """
    if isinstance(sources, int):
        prefix = source_prefix or ("2001:db8::/32" if ipv6 else "198.51.100.0/24")
        sources = external_addresses(sources, prefix)
    if not sources:
        raise ValueError("amplification_flood needs at least one source")
    each = rate_pps / len(sources)
    return [
        TrafficFlow(src, target, "udp", src_port, 1024 + (i * 7919) % 64000, each, packet_bytes,
                    start_s=start_s, stop_s=stop_s)
        for i, src in enumerate(sources)
    ]
