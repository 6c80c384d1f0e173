"""Build the bytes of real packet headers (Ethernet, 802.1Q, IPv4/IPv6, TCP/UDP/ICMP).

Agents put these in ``sampled_header`` records, so a decoder (ours, tshark, sFlow-RT) finds
the same addresses, ports and flags the traffic model chose. Checksums are computed, so the
packets also stand up in a pcap opened by Wireshark.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from sflowlab.codec.pcap import internet_checksum

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = 0x8100
ETH_QINQ = 0x88A8
TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


@dataclass(frozen=True)
class Packet:
    """One packet's identity and size; ``header(n)`` gives its first ``n`` bytes on the wire."""

    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str
    protocol: int = TCP
    src_port: int = 0
    dst_port: int = 0
    tcp_flags: int = TCP_ACK
    length: int = 64  # L2 frame length without FCS
    vlan: int | None = None
    outer_vlan: int | None = None
    tos: int = 0
    ttl: int = 64
    icmp_type: int = 8
    icmp_code: int = 0
    seq: int = 0

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.src_ip

    def l2_header_length(self) -> int:
        return 14 + 4 * (self.vlan is not None) + 4 * (self.outer_vlan is not None)

    def ip_packet(self) -> bytes:
        """The IP packet (header, transport header, zero payload) of this frame's size."""
        ip_len = max(self.length - self.l2_header_length(), 0)
        if self.protocol == TCP:
            l4 = struct.pack("!HHIIBBHHH", self.src_port, self.dst_port, self.seq, 0, 5 << 4,
                             self.tcp_flags, 65535, 0, 0)
            cksum_at = 16
        elif self.protocol == UDP:
            l4 = struct.pack("!HHHH", self.src_port, self.dst_port, 0, 0)
            cksum_at = 6
        else:
            kind = self.icmp_type
            l4 = struct.pack("!BBHHH", kind, self.icmp_code, 0, 0, self.seq & 0xFFFF)
            cksum_at = 2
        if self.is_ipv6:
            payload_len = max(ip_len - 40, len(l4))
            body = l4 + bytes(payload_len - len(l4))
            nxt = ICMPV6 if self.protocol in (ICMP, ICMPV6) else self.protocol
            src = socket.inet_pton(socket.AF_INET6, self.src_ip)
            dst = socket.inet_pton(socket.AF_INET6, self.dst_ip)
            if nxt == UDP:
                body = body[:4] + struct.pack("!H", len(body)) + body[6:]
            pseudo = src + dst + struct.pack("!IxxxB", len(body), nxt)
            body = self._with_checksum(body, cksum_at, pseudo)
            vtc = (6 << 28) | (self.tos << 20)
            return struct.pack("!IHBB", vtc, len(body), nxt, self.ttl) + src + dst + body
        payload_len = max(ip_len - 20, len(l4))
        body = l4 + bytes(payload_len - len(l4))
        src = socket.inet_pton(socket.AF_INET, self.src_ip)
        dst = socket.inet_pton(socket.AF_INET, self.dst_ip)
        if self.protocol == UDP:
            body = body[:4] + struct.pack("!H", len(body)) + body[6:]
        pseudo = src + dst + struct.pack("!xBH", self.protocol, len(body))
        body = self._with_checksum(body, cksum_at, b"" if self.protocol == ICMP else pseudo)
        head = struct.pack("!BBHHHBBH4s4s", 0x45, self.tos, 20 + len(body), self.seq & 0xFFFF,
                           0x4000, self.ttl, self.protocol, 0, src, dst)
        head = head[:10] + struct.pack("!H", internet_checksum(head)) + head[12:]
        return head + body

    @staticmethod
    def _with_checksum(body: bytes, at: int, pseudo: bytes) -> bytes:
        cksum = internet_checksum(pseudo + body) or 0xFFFF
        return body[:at] + struct.pack("!H", cksum) + body[at + 2:]

    def frame(self) -> bytes:
        """The whole Ethernet frame (no FCS)."""
        eth = bytes.fromhex(self.dst_mac.replace(":", "")) + bytes.fromhex(
            self.src_mac.replace(":", ""))
        if self.outer_vlan is not None:
            eth += struct.pack("!HH", ETH_QINQ, self.outer_vlan & 0xFFF)
        if self.vlan is not None:
            eth += struct.pack("!HH", ETH_VLAN, self.vlan & 0xFFF)
        eth += struct.pack("!H", ETH_IPV6 if self.is_ipv6 else ETH_IPV4)
        return eth + self.ip_packet()

    def header(self, max_bytes: int = 128, raw_ip: bool = False) -> bytes:
        """The first ``max_bytes`` of the frame (or of the IP packet when ``raw_ip``)."""
        data = self.ip_packet() if raw_ip else self.frame()
        return data[:max_bytes]
