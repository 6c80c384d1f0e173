"""Sampled packet headers -> sFlow-RT flow keys.

``decode_header(header_protocol, data)`` reads the bytes of a ``sampled_header`` record
(protocol 1 Ethernet, 11 raw IPv4, 12 raw IPv6) into a dict keyed with sFlow-RT's flow key
names. Values follow sFlow-RT's formats. The MAC text, the decimal ``ethernetprotocol``, the
binary ``tcpflags`` and the names ``icmp6type``/``ip6dscp`` are confirmed by filters and key
lists in sFlow-RT's own apps (``macdestination=FFFFFFFFFFFF``, ``tcpflags~.......1.``); the
binary ``iptos`` follows ``tcpflags`` and is not confirmed.

==================================  ==========================================================
``macsource``, ``macdestination``   12 uppercase hex digits, no separators (``FFFFFFFFFFFF``)
``ethernetprotocol``                int, the EtherType after any VLAN tags (``2048``); absent
                                    for 802.3 frames, whose type field is a length
``vlan``, ``priority``              int, VID and PCP of the outermost 802.1Q/802.1ad tag
``ipsource``, ``ipdestination``     dotted quad
``ipprotocol``, ``ipttl``           int
``ipbytes``                         int, the IPv4 total length field
``iptos``                           8-character binary string of the ToS byte (``00101000``)
``ipdscp``, ``ipecn``               int (ToS >> 2, ToS & 3)
``ip6source``, ``ip6destination``   RFC 5952 text
``ip6nexthdr``                      int, the upper-layer protocol after extension headers
``ip6dscp``                         int, traffic class >> 2
``tcpsourceport`` ...               int ports (``tcp``/``udp`` source and destination)
``tcpflags``                        9-character binary string, NS first (SYN = ``000000010``)
``icmptype``, ``icmpcode``          int (IPv4 ICMP)
``icmp6type``, ``icmp6code``        int (ICMPv6)
``stack``                           layers joined by dots: ``eth.dot1q.ip.tcp``, ``ip6.udp``
==================================  ==========================================================

A key is present exactly when all the bytes it comes from are in the header, so a header
cut anywhere gives a subset of the keys of the whole one, with the same values (``stack``
grows by layers: a layer is listed once its first byte is present and its type is known).
IPv4 options and IPv6 extension headers (hop-by-hop, routing, fragment, destination options,
AH, mobility, HIP, shim6) are skipped to reach the transport; non-first fragments carry no
transport header. Garbage never raises: decoding stops where the bytes stop making sense.
"""

from __future__ import annotations

import socket
import struct

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
IPV6_EXTENSIONS = frozenset((0, 43, 44, 51, 60, 135, 139, 140))
_IPV6_FRAGMENT, _IPV6_AH = 44, 51

TCP_FLAGS = tuple(format(i, "09b") for i in range(512))
"""sFlow-RT's ``tcpflags`` text for each 9-bit flags value."""
IP_TOS = tuple(format(i, "08b") for i in range(256))
"""sFlow-RT's ``iptos`` text for each ToS byte."""

_U16 = struct.Struct(">H")
_inet_ntoa = socket.inet_ntoa
_inet_ntop = socket.inet_ntop
_AF_INET6 = socket.AF_INET6

ETH_IP4_L4 = "6s6sHBBH2xHBB2x4s4sHH8xBB"
"""Struct format (big-endian) of the usual header's first 48 bytes: Ethernet, IPv4 without
options, TCP up to its flags or UDP with padding; its fields are ``eth_ip4_keys``'s arguments."""
_ETH_IP4_L4 = struct.Struct(">" + ETH_IP4_L4)
_ETH_IP4_L4_SIZE = _ETH_IP4_L4.size  # 48


def _template(transport: str, *ports: str) -> dict[str, int | str]:
    """The usual layout's keys in order, constants set: copying it beats a dict display."""
    keys: dict[str, int | str] = dict.fromkeys((
        "macdestination", "macsource", "ethernetprotocol", "ipsource", "ipdestination",
        "ipprotocol", "iptos", "ipdscp", "ipecn", "ipttl", "ipbytes", *ports, "stack"), 0)
    keys["ethernetprotocol"] = ETH_IPV4
    keys["ipprotocol"] = IPPROTO_TCP if transport == "tcp" else IPPROTO_UDP
    keys["stack"] = f"eth.ip.{transport}"
    return keys


_TCP_KEYS = _template("tcp", "tcpsourceport", "tcpdestinationport", "tcpflags")
_UDP_KEYS = _template("udp", "udpsourceport", "udpdestinationport")

_CACHE_LIMIT = 1 << 14
_mac_texts: dict[bytes, str] = {}
_ip4_texts: dict[bytes, str] = {}


def _mac_text(raw: bytes) -> str:
    """``macsource`` text of 6 bytes, remembered (addresses repeat; the cache is bounded)."""
    if len(_mac_texts) >= _CACHE_LIMIT:
        _mac_texts.clear()
    text = _mac_texts[raw] = raw.hex().upper()
    return text


def _ip4_text(raw: bytes) -> str:
    """Dotted quad of 4 bytes, remembered like ``_mac_text``."""
    if len(_ip4_texts) >= _CACHE_LIMIT:
        _ip4_texts.clear()
    text = _ip4_texts[raw] = _inet_ntoa(raw)
    return text


def _address_keys(dst: bytes, src: bytes, sip: bytes, dip: bytes) -> dict[str, int | str]:
    """The address keys of the usual layout, any not yet cached computed and remembered."""
    return {
        "macdestination": _mac_texts.get(dst) or _mac_text(dst),
        "macsource": _mac_texts.get(src) or _mac_text(src),
        "ipsource": _ip4_texts.get(sip) or _ip4_text(sip),
        "ipdestination": _ip4_texts.get(dip) or _ip4_text(dip),
    }


def decode_header(header_protocol: int, data: bytes) -> dict[str, int | str]:
    """Flow keys of a sampled header; ``{}`` for protocols other than 1, 11 and 12."""
    if header_protocol == 1:
        if len(data) >= _ETH_IP4_L4_SIZE:
            usual = eth_ip4_keys(*_ETH_IP4_L4.unpack_from(data))
            if usual is not None:
                return usual
        keys: dict[str, int | str] = {}
        _ethernet(data, keys)
        return keys
    keys = {}
    version = data[0] >> 4 if data else 0
    if header_protocol == 11 and version == 4:
        _ipv4(data, 0, keys, ["ip"])
    elif header_protocol == 12 and version == 6:
        _ipv6(data, 0, keys, ["ip6"])
    return keys


def eth_ip4_keys(
    dst: bytes, src: bytes, etype: int, vihl: int, tos: int, total: int, frag: int, ttl: int,
    proto: int, sip: bytes, dip: bytes, sport: int, dport: int, off_ns: int, flags: int,
) -> dict[str, int | str] | None:
    """The keys of a header whose first 48 bytes unpacked by ``ETH_IP4_L4`` give the arguments.

    ``None`` unless they are the usual untagged Ethernet, IPv4 without options (first or only
    fragment), TCP or UDP; the caller then decodes the header the general way.
    """
    if (etype != ETH_IPV4 or vihl != 0x45 or frag & 0x1FFF
            or (proto != IPPROTO_TCP and proto != IPPROTO_UDP)):
        return None
    keys = (_TCP_KEYS if proto == IPPROTO_TCP else _UDP_KEYS).copy()
    try:  # subscripts: cheaper than get() calls when the addresses are known, as they mostly are
        keys["macdestination"] = _mac_texts[dst]
        keys["macsource"] = _mac_texts[src]
        keys["ipsource"] = _ip4_texts[sip]
        keys["ipdestination"] = _ip4_texts[dip]
    except KeyError:
        keys.update(_address_keys(dst, src, sip, dip))
    keys["iptos"] = IP_TOS[tos]
    keys["ipdscp"] = tos >> 2
    keys["ipecn"] = tos & 3
    keys["ipttl"] = ttl
    keys["ipbytes"] = total
    if proto == IPPROTO_TCP:
        keys["tcpsourceport"] = sport
        keys["tcpdestinationport"] = dport
        keys["tcpflags"] = TCP_FLAGS[((off_ns & 1) << 8) | flags]
    else:
        keys["udpsourceport"] = sport
        keys["udpdestinationport"] = dport
    return keys


def _ethernet(data: bytes, keys: dict[str, int | str]) -> None:
    n = len(data)
    if n == 0:
        return
    stack = ["eth"]
    if n >= 6:
        keys["macdestination"] = data[0:6].hex().upper()
    if n >= 12:
        keys["macsource"] = data[6:12].hex().upper()
    off = 12
    while True:
        if off + 2 > n:
            keys["stack"] = ".".join(stack)
            return
        (etype,) = _U16.unpack_from(data, off)
        if etype not in VLAN_TPIDS:
            break
        stack.append("dot1q")
        if off + 4 > n:
            keys["stack"] = ".".join(stack)
            return
        if "vlan" not in keys:
            (tci,) = _U16.unpack_from(data, off + 2)
            keys["vlan"] = tci & 0xFFF
            keys["priority"] = tci >> 13
        off += 4
    if etype < 0x0600:  # an 802.3 length field (LLC/SNAP follows): no EtherType to report
        keys["stack"] = ".".join(stack)
        return
    keys["ethernetprotocol"] = etype
    off += 2
    if off < n:
        first = data[off] >> 4
        if etype == ETH_IPV4 and first == 4:
            stack.append("ip")
            _ipv4(data, off, keys, stack)
            return
        if etype == ETH_IPV6 and first == 6:
            stack.append("ip6")
            _ipv6(data, off, keys, stack)
            return
        if etype == ETH_ARP:
            stack.append("arp")
    keys["stack"] = ".".join(stack)


def _ipv4(data: bytes, off: int, keys: dict[str, int | str], stack: list[str]) -> None:
    """IPv4 at ``off`` (its first byte present, version 4); sets ``stack`` on return."""
    n = len(data) - off
    ihl = (data[off] & 0xF) * 4
    if n >= 2:
        tos = data[off + 1]
        keys["iptos"] = IP_TOS[tos]
        keys["ipdscp"] = tos >> 2
        keys["ipecn"] = tos & 3
    if n >= 4:
        keys["ipbytes"] = _U16.unpack_from(data, off + 2)[0]
    if n >= 9:
        keys["ipttl"] = data[off + 8]
    if n >= 10:
        keys["ipprotocol"] = data[off + 9]
    if n >= 16:
        keys["ipsource"] = _inet_ntoa(data[off + 12 : off + 16])
    if n >= 20:
        keys["ipdestination"] = _inet_ntoa(data[off + 16 : off + 20])
    if n > ihl >= 20 and not _U16.unpack_from(data, off + 6)[0] & 0x1FFF:
        _transport(data, off + ihl, data[off + 9], keys, stack, IPPROTO_ICMP)
    keys["stack"] = ".".join(stack)


def _ipv6(data: bytes, off: int, keys: dict[str, int | str], stack: list[str]) -> None:
    """IPv6 at ``off`` (its first byte present, version 6); sets ``stack`` on return."""
    end = len(data)
    n = end - off
    if n >= 2:
        keys["ip6dscp"] = ((data[off] & 0xF) << 2) | (data[off + 1] >> 6)
    if n >= 24:
        keys["ip6source"] = _inet_ntop(_AF_INET6, data[off + 8 : off + 24])
    if n >= 40:
        keys["ip6destination"] = _inet_ntop(_AF_INET6, data[off + 24 : off + 40])
        nxt = data[off + 6]
        pos = off + 40
        transport = True
        while nxt in IPV6_EXTENSIONS:
            if pos + 2 > end:
                keys["stack"] = ".".join(stack)
                return
            if nxt == _IPV6_FRAGMENT:
                if pos + 4 > end:
                    keys["stack"] = ".".join(stack)
                    return
                transport = transport and not _U16.unpack_from(data, pos + 2)[0] & 0xFFF8
                size = 8
            elif nxt == _IPV6_AH:
                size = (data[pos + 1] + 2) * 4
            else:
                size = (data[pos + 1] + 1) * 8
            nxt = data[pos]
            pos += size
        keys["ip6nexthdr"] = nxt
        if transport and pos < end:
            _transport(data, pos, nxt, keys, stack, IPPROTO_ICMPV6)
    keys["stack"] = ".".join(stack)


def _transport(
    data: bytes, off: int, proto: int, keys: dict[str, int | str], stack: list[str], icmp: int
) -> None:
    """TCP, UDP or ICMP(v6) at ``off`` (at least one byte present)."""
    n = len(data) - off
    if proto == IPPROTO_TCP:
        stack.append("tcp")
        if n >= 2:
            keys["tcpsourceport"] = _U16.unpack_from(data, off)[0]
        if n >= 4:
            keys["tcpdestinationport"] = _U16.unpack_from(data, off + 2)[0]
        if n >= 14:
            keys["tcpflags"] = TCP_FLAGS[((data[off + 12] & 1) << 8) | data[off + 13]]
    elif proto == IPPROTO_UDP:
        stack.append("udp")
        if n >= 2:
            keys["udpsourceport"] = _U16.unpack_from(data, off)[0]
        if n >= 4:
            keys["udpdestinationport"] = _U16.unpack_from(data, off + 2)[0]
    elif proto == icmp == IPPROTO_ICMP:
        stack.append("icmp")
        keys["icmptype"] = data[off]
        if n >= 2:
            keys["icmpcode"] = data[off + 1]
    elif proto == icmp == IPPROTO_ICMPV6:
        stack.append("icmp6")
        keys["icmp6type"] = data[off]
        if n >= 2:
            keys["icmp6code"] = data[off + 1]
