"""Sampled headers to sFlow-RT flow keys: layouts, formats, truncation and garbage."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sflowlab.agent_sim.packets import ICMP, ICMPV6, TCP, UDP, Packet
from sflowlab.codec import Datagram, FlowSample, SampledHeader, encode_datagram, headers
from sflowlab.codec.headers import decode_header
from sflowlab.codec.pcap import PcapWriter

MAC_A, MAC_B = "00:0c:29:a1:b2:c3", "ff:ff:ff:ff:ff:ff"
VOCABULARY = {
    "macsource", "macdestination", "ethernetprotocol", "vlan", "priority", "ipsource",
    "ipdestination", "ipprotocol", "iptos", "ipdscp", "ipecn", "ipttl", "ipbytes", "ip6source",
    "ip6destination", "ip6nexthdr", "ip6dscp", "tcpsourceport", "tcpdestinationport",
    "tcpflags", "udpsourceport", "udpdestinationport", "icmptype", "icmpcode", "icmp6type",
    "icmp6code", "stack",
}


def tcp4(**kw: object) -> Packet:
    fields: dict = dict(protocol=TCP, src_port=40000, dst_port=443, tcp_flags=0x12, length=200)
    fields.update(kw)
    return Packet(MAC_A, MAC_B, "10.0.0.1", "192.168.7.9", **fields)


def test_untagged_ipv4_tcp_exact_keys() -> None:
    data = tcp4(tos=0x2B, ttl=61).header(128)
    assert decode_header(1, data) == {
        "macsource": "000C29A1B2C3", "macdestination": "FFFFFFFFFFFF",
        "ethernetprotocol": 2048, "ipsource": "10.0.0.1", "ipdestination": "192.168.7.9",
        "ipprotocol": 6, "iptos": "00101011", "ipdscp": 10, "ipecn": 3, "ipttl": 61,
        "ipbytes": 186, "tcpsourceport": 40000, "tcpdestinationport": 443,
        "tcpflags": "000010010", "stack": "eth.ip.tcp",
    }


def test_ipv4_udp_keys() -> None:
    keys = decode_header(1, tcp4(protocol=UDP, src_port=5353, dst_port=53).header(128))
    assert keys["udpsourceport"] == 5353 and keys["udpdestinationport"] == 53
    assert keys["stack"] == "eth.ip.udp" and keys["ipprotocol"] == 17
    assert not {"tcpsourceport", "tcpflags"} & keys.keys()


@pytest.mark.parametrize(("flags", "text"), [
    (0x02, "000000010"), (0x12, "000010010"), (0x01, "000000001"), (0x04, "000000100"),
    (0x18, "000011000"), (0xC0, "011000000"),
])
def test_tcp_flags_are_nine_binary_digits(flags: int, text: str) -> None:
    assert decode_header(1, tcp4(tcp_flags=flags).header(128))["tcpflags"] == text


def test_tcp_ns_flag_is_the_ninth_bit() -> None:
    data = bytearray(tcp4(tcp_flags=0x10).header(128))
    data[14 + 20 + 12] |= 1  # NS is the low bit of the data-offset byte
    assert decode_header(1, bytes(data))["tcpflags"] == "100010000"


def test_dot1q_tag_gives_vlan_priority_and_inner_type() -> None:
    data = bytearray(tcp4(vlan=123).header(128))
    data[14] |= 5 << 5  # PCP 5
    keys = decode_header(1, bytes(data))
    assert (keys["vlan"], keys["priority"], keys["ethernetprotocol"]) == (123, 5, 2048)
    assert keys["stack"] == "eth.dot1q.ip.tcp"
    assert keys["tcpdestinationport"] == 443


@pytest.mark.parametrize("outer_tpid", [0x88A8, 0x9100, 0x8100])
def test_qinq_reports_the_outer_tag(outer_tpid: int) -> None:
    data = bytearray(tcp4(protocol=UDP, vlan=30, outer_vlan=2000).header(128))
    struct.pack_into(">H", data, 12, outer_tpid)
    keys = decode_header(1, bytes(data))
    assert keys["vlan"] == 2000 and keys["priority"] == 0
    assert keys["stack"] == "eth.dot1q.dot1q.ip.udp"
    assert keys["ethernetprotocol"] == 2048 and keys["udpdestinationport"] == 443


def _with_ipv4_options(packet: Packet, option_words: int) -> bytes:
    frame = packet.frame()
    ip = frame[14:]
    ihl = 5 + option_words
    head = bytes([0x40 | ihl]) + ip[1:20] + b"\x01" * (4 * option_words)  # NOP options
    return frame[:14] + head + ip[20:]


@pytest.mark.parametrize("words", [1, 3, 10])
def test_ipv4_options_are_skipped(words: int) -> None:
    keys = decode_header(1, _with_ipv4_options(tcp4(), words)[:128])
    assert keys["tcpsourceport"] == 40000 and keys["tcpflags"] == "000010010"
    assert keys["ipsource"] == "10.0.0.1" and keys["stack"] == "eth.ip.tcp"


def test_ipv4_non_first_fragment_has_no_transport_keys() -> None:
    data = bytearray(tcp4().header(128))
    struct.pack_into(">H", data, 14 + 6, 0x2000 | 185)  # MF, offset 185*8
    keys = decode_header(1, bytes(data))
    assert keys["ipprotocol"] == 6 and keys["stack"] == "eth.ip"
    assert not any(k.startswith("tcp") for k in keys)


def test_ipv4_first_fragment_keeps_ports() -> None:
    data = bytearray(tcp4().header(128))
    struct.pack_into(">H", data, 14 + 6, 0x2000)  # MF, offset 0
    assert decode_header(1, bytes(data))["tcpsourceport"] == 40000


def test_icmp_type_and_code() -> None:
    keys = decode_header(1, tcp4(protocol=ICMP, icmp_type=3, icmp_code=13).header(128))
    assert (keys["icmptype"], keys["icmpcode"], keys["ipprotocol"]) == (3, 13, 1)
    assert keys["stack"] == "eth.ip.icmp"


def ipv6_packet(protocol: int = UDP, **kw: object) -> Packet:
    return Packet(MAC_A, MAC_B, "2001:db8::1", "fe80::abcd", protocol, 5000, 53, length=300,
                  **kw)  # type: ignore[arg-type]


def test_ipv6_udp_keys() -> None:
    keys = decode_header(1, ipv6_packet(tos=0xB8).header(128))
    assert keys == {
        "macsource": "000C29A1B2C3", "macdestination": "FFFFFFFFFFFF",
        "ethernetprotocol": 0x86DD, "ip6source": "2001:db8::1", "ip6destination": "fe80::abcd",
        "ip6nexthdr": 17, "ip6dscp": 46, "udpsourceport": 5000, "udpdestinationport": 53,
        "stack": "eth.ip6.udp",
    }


def test_icmpv6_type_and_code() -> None:
    keys = decode_header(1, ipv6_packet(ICMPV6, icmp_type=128).header(128))
    assert (keys["icmp6type"], keys["icmp6code"], keys["ip6nexthdr"]) == (128, 0, 58)
    assert keys["stack"] == "eth.ip6.icmp6"
    assert "icmptype" not in keys


def _with_extensions(packet: Packet, chain: list[tuple[int, bytes]]) -> bytes:
    """Insert IPv6 extension headers ``(type, body after next/len bytes)`` before transport."""
    frame = packet.frame()
    ip = frame[14:]
    transport = ip[6]
    types = [t for t, _ in chain] + [transport]
    ext = b""
    for (kind, body), nxt in zip(chain, types[1:], strict=True):
        if kind == 44:
            ext += bytes([nxt, 0]) + body
        elif kind == 51:
            ext += bytes([nxt, (len(body) + 2) // 4 - 2]) + body
        else:
            ext += bytes([nxt, (len(body) + 2) // 8 - 1]) + body
    head = ip[:4] + struct.pack(">H", len(ip) - 40 + len(ext)) + bytes([types[0]]) + ip[7:40]
    return frame[:14] + head + ext + ip[40:]


def test_ipv6_extension_headers_are_walked() -> None:
    chain = [(0, bytes(6)), (43, bytes(14)), (60, bytes(6)), (51, bytes(10)),
             (44, struct.pack(">HI", 0x0001, 77))]  # first fragment (offset 0, M set)
    keys = decode_header(1, _with_extensions(ipv6_packet(TCP, tcp_flags=0x02), chain))
    assert keys["ip6nexthdr"] == 6 and keys["stack"] == "eth.ip6.tcp"
    assert keys["tcpsourceport"] == 5000 and keys["tcpflags"] == "000000010"


def test_ipv6_non_first_fragment_has_no_transport_keys() -> None:
    chain = [(44, struct.pack(">HI", 100 << 3, 77))]
    keys = decode_header(1, _with_extensions(ipv6_packet(), chain))
    assert keys["ip6nexthdr"] == 17 and keys["stack"] == "eth.ip6"
    assert "udpsourceport" not in keys


def test_raw_ipv4_header_protocol_11() -> None:
    keys = decode_header(11, tcp4().header(128, raw_ip=True))
    assert keys["stack"] == "ip.tcp" and keys["ipdestination"] == "192.168.7.9"
    assert keys["tcpdestinationport"] == 443
    assert not {"macsource", "ethernetprotocol"} & keys.keys()


def test_raw_ipv6_header_protocol_12() -> None:
    keys = decode_header(12, ipv6_packet().header(128, raw_ip=True))
    assert keys["stack"] == "ip6.udp" and keys["ip6source"] == "2001:db8::1"
    assert keys["udpdestinationport"] == 53


def test_raw_ip_with_the_wrong_version_gives_nothing() -> None:
    assert decode_header(11, ipv6_packet().header(128, raw_ip=True)) == {}
    assert decode_header(12, tcp4().header(128, raw_ip=True)) == {}


def test_arp_and_unknown_protocols() -> None:
    arp = bytes.fromhex("ffffffffffff000c29a1b2c30806") + bytes(28)
    assert decode_header(1, arp) == {
        "macdestination": "FFFFFFFFFFFF", "macsource": "000C29A1B2C3",
        "ethernetprotocol": 2054, "stack": "eth.arp",
    }
    llc = bytes.fromhex("0180c2000000000c29a1b2c30026424203") + bytes(20)  # 802.3 + LLC (STP)
    assert decode_header(1, llc) == {
        "macdestination": "0180C2000000", "macsource": "000C29A1B2C3", "stack": "eth",
    }
    assert decode_header(13, tcp4().header(128)) == {}
    assert decode_header(1, b"") == {}


SAMPLE_HEADERS = [
    (1, tcp4().header(128)),
    (1, tcp4(protocol=UDP).header(128)),
    (1, tcp4(vlan=7, outer_vlan=9).header(128)),
    (1, _with_ipv4_options(tcp4(), 2)[:128]),
    (1, tcp4(protocol=ICMP).header(128)),
    (1, ipv6_packet(TCP).header(128)),
    (1, ipv6_packet(ICMPV6, vlan=5).header(128)),
    (1, _with_extensions(ipv6_packet(), [(0, bytes(6)), (44, bytes(6))])),
    (11, tcp4().header(128, raw_ip=True)),
    (12, ipv6_packet().header(128, raw_ip=True)),
]


@pytest.mark.parametrize(("protocol", "data"), SAMPLE_HEADERS)
def test_truncation_gives_prefix_consistent_keys(protocol: int, data: bytes) -> None:
    previous: dict = {}
    for n in range(len(data) + 1):
        keys = decode_header(protocol, data[:n])
        stack = keys.pop("stack", "")
        prev_stack = previous.pop("stack", "")
        assert stack.startswith(prev_stack), (n, stack, prev_stack)
        assert keys.items() >= previous.items(), n  # nothing lost or changed by more bytes
        previous = dict(keys, stack=stack)
    assert previous == decode_header(protocol, data)


def test_cut_inside_tcp_header_keeps_ports_but_not_flags() -> None:
    data = tcp4().header(128)
    keys = decode_header(1, data[: 14 + 20 + 13])
    assert keys["tcpdestinationport"] == 443 and "tcpflags" not in keys
    assert keys["stack"] == "eth.ip.tcp"
    keys = decode_header(1, data[: 14 + 20 + 3])
    assert keys["tcpsourceport"] == 40000 and "tcpdestinationport" not in keys


@pytest.mark.parametrize(("protocol", "data"), SAMPLE_HEADERS[:2])
def test_fast_layout_matches_the_general_walk(protocol: int, data: bytes) -> None:
    general: dict = {}
    headers._ethernet(data, general)
    assert decode_header(protocol, data) == general


@pytest.mark.parametrize("limit", [1, 2, 1 << 14])
def test_address_texts_are_right_whether_cached_or_not(monkeypatch: pytest.MonkeyPatch,
                                                       limit: int) -> None:
    """Fresh caches, and caches so small they start again within one header."""
    monkeypatch.setattr(headers, "_mac_texts", {})
    monkeypatch.setattr(headers, "_ip4_texts", {})
    monkeypatch.setattr(headers, "_CACHE_LIMIT", limit)
    packets = [Packet(MAC_A, MAC_B, "10.0.0.1", "192.168.7.9", TCP, 1, 2),
               Packet(MAC_B, MAC_A, "192.168.7.9", "10.0.0.1", UDP, 2, 1),
               Packet(MAC_A, "02:42:ac:11:00:02", "10.0.0.1", "10.0.0.3", TCP, 3, 4)]
    for _ in range(2):  # first unknown, then (if the limit allows) remembered
        for packet in packets:
            data = packet.header(128)
            general: dict = {}
            headers._ethernet(data, general)
            assert decode_header(1, data) == general
            assert len(headers._mac_texts) <= limit and len(headers._ip4_texts) <= limit


TSHARK_FIELDS = {  # tshark field -> our key and how tshark's text reads as our value
    "eth.src": ("macsource", lambda t: t.replace(":", "").upper()),
    "eth.dst": ("macdestination", lambda t: t.replace(":", "").upper()),
    "vlan.id": ("vlan", int),
    "vlan.priority": ("priority", int),
    "ieee8021ad.id": ("vlan", int),  # an 802.1ad outer tag: read after vlan.id, so it wins
    "ieee8021ad.priority": ("priority", int),
    "ip.src": ("ipsource", str), "ip.dst": ("ipdestination", str),
    "ip.proto": ("ipprotocol", int), "ip.ttl": ("ipttl", int), "ip.len": ("ipbytes", int),
    "ip.dsfield.dscp": ("ipdscp", int), "ip.dsfield.ecn": ("ipecn", int),
    "ipv6.src": ("ip6source", str), "ipv6.dst": ("ip6destination", str),
    "ipv6.tclass.dscp": ("ip6dscp", int),
    "tcp.srcport": ("tcpsourceport", int), "tcp.dstport": ("tcpdestinationport", int),
    "tcp.flags": ("tcpflags", lambda t: format(int(t, 16), "09b")),
    "udp.srcport": ("udpsourceport", int), "udp.dstport": ("udpdestinationport", int),
    "icmp.type": ("icmptype", int), "icmp.code": ("icmpcode", int),
    "icmpv6.type": ("icmp6type", int), "icmpv6.code": ("icmp6code", int),
}


@pytest.mark.tshark
def test_keys_agree_with_tshark(tmp_path: Path) -> None:
    """Wireshark's dissection of the same sampled headers gives the same values."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    cases = [h for h in SAMPLE_HEADERS if h[0] == 1] + [
        (1, tcp4(tos=0xB9, tcp_flags=0x29, vlan=300).header(128)),
        (1, ipv6_packet(TCP, tos=0x2E, vlan=10, tcp_flags=0x11).header(128)),
    ]
    path = tmp_path / "headers.pcap"
    with PcapWriter(path) as writer:
        for i, (protocol, data) in enumerate(cases):
            sample = FlowSample(i, 1, 1, 1, 0, 1, 2, (SampledHeader(protocol, 1000, 4, data),))
            writer.write(encode_datagram(Datagram(5, "192.0.2.1", 0, i, 0, (sample,))), i)
    names = list(TSHARK_FIELDS)
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=a",
         "-E", "separator=|", *(x for n in names for x in ("-e", n))],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.splitlines()
    assert len(out) == len(cases)
    outer = {"eth.src", "eth.dst", "ip.src", "ip.dst", "ip.proto", "ip.ttl", "ip.len",
             "ip.dsfield.dscp", "ip.dsfield.ecn", "udp.srcport", "udp.dstport"}
    for (protocol, data), line in zip(cases, out, strict=True):
        keys = decode_header(protocol, data)
        seen = {}
        for name, text in zip(names, line.split("|"), strict=True):
            values = text.split(",") if text else []
            if name in outer:
                values = values[1:]  # the first is the UDP packet carrying the sFlow
            if values:
                key, convert = TSHARK_FIELDS[name]
                seen[key] = convert(values[0])
        assert seen == {k: v for k, v in keys.items() if k in seen}, (data.hex(), seen)
        assert set(seen) >= set(keys) - {"ethernetprotocol", "iptos", "ip6nexthdr", "stack"}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([1, 11, 12, 2]), st.binary(max_size=160))
def test_garbage_never_raises(protocol: int, data: bytes) -> None:
    keys = decode_header(protocol, data)
    assert set(keys) <= VOCABULARY
    assert all(isinstance(v, int | str) for v in keys.values())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SAMPLE_HEADERS), st.integers(0, 127), st.integers(0, 255))
def test_corrupted_real_headers_never_raise(sample: tuple[int, bytes], at: int, value: int) -> None:
    protocol, data = sample
    corrupted = bytearray(data)
    corrupted[at % len(data)] = value
    assert set(decode_header(protocol, bytes(corrupted))) <= VOCABULARY


@settings(max_examples=200, deadline=None)
@given(protocol=st.sampled_from([TCP, UDP]), ports=st.tuples(st.integers(0, 65535),
                                                              st.integers(0, 65535)),
       flags=st.integers(0, 0x1FF), tos=st.integers(0, 255), ttl=st.integers(0, 255),
       length=st.integers(60, 1514), cut=st.integers(48, 128))
def test_the_usual_header_fast_path_equals_the_general_parse(
        protocol: int, ports: tuple[int, int], flags: int, tos: int, ttl: int, length: int,
        cut: int) -> None:
    """eth_ip4_keys (the usual Ethernet/IPv4/TCP-or-UDP layout, read by one struct) gives
    the keys and values the general Ethernet parse gives for the same bytes (in its own
    order, which the C walk reproduces: test_walk.py)."""
    packet = Packet(MAC_A, MAC_B, "10.0.0.1", "192.168.7.9", protocol=protocol,
                    src_port=ports[0], dst_port=ports[1], tcp_flags=flags & 0xFF, tos=tos,
                    ttl=ttl, length=length)
    data = bytearray(packet.header(128)[:cut])
    if protocol == TCP:
        data[46] |= flags >> 8  # NS, the low bit of the TCP data offset byte
    data = bytes(data)
    usual = headers.eth_ip4_keys(*struct.unpack_from(">" + headers.ETH_IP4_L4, data))
    general: dict[str, int | str] = {}
    headers._ethernet(data, general)
    assert usual is not None
    assert usual == general
