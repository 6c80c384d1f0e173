"""Each declaration against the reference layouts: sizes, field order, types, maxima."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from sflowlab.codec import (
    BY_NAME,
    REGISTRY,
    AppOperations,
    AppResources,
    AppWorkers,
    AsPathSegment,
    CountersSample,
    CountersSampleExpanded,
    Datagram,
    DiscardedPacket,
    EthernetCounters,
    Exporter,
    ExtendedEntities,
    ExtendedGateway,
    ExtendedProxySocketIpv4,
    ExtendedProxySocketIpv6,
    ExtendedRouter,
    ExtendedSocketIpv4,
    ExtendedSocketIpv6,
    ExtendedSwitch,
    ExtendedTcpInfo,
    ExtendedUrl,
    ExtendedUser,
    FlowSample,
    FlowSampleExpanded,
    HostAdapter,
    HostAdapters,
    HostCpu,
    HostDescr,
    HostDiskIo,
    HostMemory,
    HostNetIo,
    HostParent,
    HttpCounters,
    HttpRequest,
    IfCounters,
    Mib2IcmpGroup,
    Mib2IpGroup,
    Mib2TcpGroup,
    Mib2UdpGroup,
    OfPort,
    OvsDpStats,
    PortName,
    Processor,
    SampledEthernet,
    SampledHeader,
    SampledIpv4,
    SampledIpv6,
    VirtCpu,
    VirtDiskIo,
    VirtMemory,
    VirtNetIo,
    VirtNode,
    VlanCounters,
    encode_datagram,
    encode_sample,
)
from sflowlab.codec._fields import Fixed, String

# (class, body bytes) for every fixed-size structure: the reference tables' "Bytes" column
FIXED_SIZES = [
    (SampledEthernet, 24), (SampledIpv4, 32), (SampledIpv6, 56), (ExtendedSwitch, 16),
    (ExtendedSocketIpv4, 20), (ExtendedProxySocketIpv4, 20), (ExtendedSocketIpv6, 44),
    (ExtendedProxySocketIpv6, 44), (ExtendedTcpInfo, 48), (ExtendedEntities, 16),
    (IfCounters, 88), (EthernetCounters, 52), (VlanCounters, 28), (Processor, 28),
    (HostParent, 8), (HostMemory, 72), (HostDiskIo, 52), (HostNetIo, 40), (Mib2IpGroup, 76),
    (Mib2IcmpGroup, 100), (Mib2TcpGroup, 60), (Mib2UdpGroup, 28), (VirtNode, 28), (VirtCpu, 12),
    (VirtMemory, 16), (VirtDiskIo, 52), (VirtNetIo, 40), (HttpCounters, 60),
    (AppResources, 40), (AppWorkers, 20), (OfPort, 12), (OvsDpStats, 24),
]

# (class, (enterprise, format), namespace) as numbered by sflow.org
NUMBERS = [
    (FlowSample, 1, "sample"), (CountersSample, 2, "sample"), (FlowSampleExpanded, 3, "sample"),
    (CountersSampleExpanded, 4, "sample"), (DiscardedPacket, 5, "sample"),
    (SampledHeader, 1, "flow"), (SampledEthernet, 2, "flow"), (SampledIpv4, 3, "flow"),
    (SampledIpv6, 4, "flow"), (ExtendedSwitch, 1001, "flow"), (ExtendedRouter, 1002, "flow"),
    (ExtendedGateway, 1003, "flow"), (ExtendedUser, 1004, "flow"), (ExtendedUrl, 1005, "flow"),
    (ExtendedSocketIpv4, 2100, "flow"), (ExtendedSocketIpv6, 2101, "flow"),
    (ExtendedProxySocketIpv4, 2102, "flow"), (ExtendedProxySocketIpv6, 2103, "flow"),
    (HttpRequest, 2206, "flow"), (ExtendedTcpInfo, 2209, "flow"), (ExtendedEntities, 2210, "flow"),
    (IfCounters, 1, "counter"), (EthernetCounters, 2, "counter"), (VlanCounters, 5, "counter"),
    (Processor, 1001, "counter"), (OfPort, 1004, "counter"), (PortName, 1005, "counter"),
    (HostDescr, 2000, "counter"),
    (HostAdapters, 2001, "counter"), (HostParent, 2002, "counter"), (HostCpu, 2003, "counter"),
    (HostMemory, 2004, "counter"), (HostDiskIo, 2005, "counter"), (HostNetIo, 2006, "counter"),
    (Mib2IpGroup, 2007, "counter"), (Mib2IcmpGroup, 2008, "counter"),
    (Mib2TcpGroup, 2009, "counter"), (Mib2UdpGroup, 2010, "counter"), (VirtNode, 2100, "counter"),
    (VirtCpu, 2101, "counter"), (VirtMemory, 2102, "counter"), (VirtDiskIo, 2103, "counter"),
    (VirtNetIo, 2104, "counter"), (HttpCounters, 2201, "counter"), (AppOperations, 2202, "counter"),
    (AppResources, 2203, "counter"), (AppWorkers, 2206, "counter"), (OvsDpStats, 2207, "counter"),
]


def encode(obj: Any) -> bytes:
    out = bytearray()
    type(obj)._sflow_encode(obj, out)
    return bytes(out)


def words(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


@pytest.mark.parametrize(("cls", "size"), FIXED_SIZES, ids=lambda x: getattr(x, "__name__", ""))
def test_fixed_records_encode_to_their_reference_size(cls: type, size: int) -> None:
    assert len(encode(cls())) == size
    assert all(isinstance(f.type, Fixed) for f in cls._sflow_fields)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("cls", "fmt", "namespace"), NUMBERS, ids=lambda x: getattr(x, "__name__", ""))
def test_structures_are_registered_under_their_numbers(cls: type, fmt: int, namespace: str) -> None:
    assert REGISTRY[namespace][fmt] is cls  # enterprise 0: data_format == format
    assert BY_NAME[f"{namespace}:{cls.sflow_name}"] is cls  # type: ignore[attr-defined]
    assert (cls.enterprise, cls.format, cls.data_format) == (0, fmt, fmt)  # type: ignore[attr-defined]


def test_every_registered_structure_is_checked_here() -> None:
    assert {c for c, _, _ in NUMBERS} == {c for t in REGISTRY.values() for c in t.values()}


def test_datagram_header_is_28_bytes_with_ipv4_agent_and_40_with_ipv6() -> None:
    v4 = encode_datagram(Datagram(5, "192.0.2.1", 7, 9, 1234))
    assert v4 == words(5, 1) + bytes([192, 0, 2, 1]) + words(7, 9, 1234, 0)
    v6 = encode_datagram(Datagram(5, "2001:db8::1", 7, 9, 1234))
    assert v6 == words(5, 2) + bytes.fromhex("20010db8" + "0" * 23 + "1") + words(7, 9, 1234, 0)


def test_compact_flow_sample_with_128_byte_header_and_switch_is_216_bytes() -> None:
    s = FlowSample(1, 3, 400, 400, 0, 3, 4,
                   (SampledHeader(1, 1518, 4, bytes(128)), ExtendedSwitch(10, 0, 10, 0)))
    raw = encode_sample(s)
    assert len(raw) == 216
    assert raw[:8] == words(1, 208)
    assert raw[8:40] == words(1, 3, 400, 400, 0, 3, 4, 2)
    assert raw[40:56] == words(1, 144, 1, 1518) and raw[56:64] == words(4, 128)
    assert raw[192:216] == words(1001, 16, 10, 0, 10, 0)


def test_compact_counters_sample_with_if_and_ethernet_is_176_bytes() -> None:
    raw = encode_sample(CountersSample(1, 5, (IfCounters(5), EthernetCounters())))
    assert len(raw) == 176
    assert raw[:20] == words(2, 168, 1, 5, 2)
    assert raw[20:28] == words(1, 88) and raw[116:124] == words(2, 52)


def test_expanded_samples_fixed_parts() -> None:
    flow = encode_sample(FlowSampleExpanded(1, 0, 5, 400, 800, 2, 0, 5, 0, 0x3FFFFFFF))
    assert flow == words(3, 44, 1, 0, 5, 400, 800, 2, 0, 5, 0, 0x3FFFFFFF, 0)
    counters = encode_sample(CountersSampleExpanded(9, 3, 100123))
    assert counters == words(4, 16, 9, 3, 100123, 0)
    discard = encode_sample(DiscardedPacket(1, 0, 5, 2, 5, 0, 258))
    assert discard == words(5, 32, 1, 0, 5, 2, 5, 0, 258, 0)


def test_compact_fields_unpack_into_type_and_index() -> None:
    s = FlowSample(source_id=(2 << 24) | 1, input=0x3FFFFFFF, output=0x80000007)
    assert (s.source_id_type, s.source_id_index) == (2, 1)
    assert (s.input_format, s.input_value) == (0, 0x3FFFFFFF)
    assert (s.output_format, s.output_value) == (2, 7)


def test_sampled_header_carries_header_length_bytes_then_padding() -> None:
    raw = encode(SampledHeader(1, 64, 4, b"\xaa" * 5))
    assert raw == words(1, 64, 4, 5) + b"\xaa" * 5 + b"\0\0\0"


def test_mac_addresses_take_eight_bytes_with_zero_padding() -> None:
    raw = encode(SampledEthernet(60, "00:0c:29:a1:b2:c3", "ff:ff:ff:ff:ff:ff", 0x0800))
    assert raw == (words(60) + bytes.fromhex("000c29a1b2c3") + b"\0\0"
                   + b"\xff" * 6 + b"\0\0" + words(0x0800))
    adapters = encode(HostAdapters((HostAdapter(2, ("02:42:ac:11:00:02",)),)))
    assert adapters == words(1, 2, 1) + bytes.fromhex("0242ac110002") + b"\0\0"


def test_host_descr_uuid_is_16_raw_bytes_between_hostname_and_machine_type() -> None:
    uuid = "0123cdef-4567-89ab-0123-456789abcdef"
    raw = encode(HostDescr("web-1", uuid, 3, 2, "6.1.0"))
    assert raw == (words(5) + b"web-1\0\0\0" + bytes.fromhex(uuid.replace("-", ""))
                   + words(3, 2, 5) + b"6.1.0\0\0\0")


def test_host_cpu_has_68_and_80_byte_forms() -> None:
    old = HostCpu(cpu_steal=None, cpu_guest=None, cpu_guest_nice=None)
    assert len(encode(old)) == 68
    assert len(encode(HostCpu())) == 80
    loads = encode(HostCpu(0.5, 1.25, -1.0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17))
    assert loads == struct.pack(">3f17I", 0.5, 1.25, -1.0, *range(1, 18))


def test_extended_router_and_gateway_use_address_unions_and_segments() -> None:
    assert encode(ExtendedRouter("10.0.0.1", 24, 16)) == words(1, 0x0A000001, 24, 16)
    assert len(encode(ExtendedRouter("2001:db8::1", 64, 48))) == 28
    gw = ExtendedGateway("10.0.0.1", 65000, 65001, 65002,
                         (AsPathSegment(2, (65002, 65003)), AsPathSegment(1, (7, 8, 9))),
                         (0xFFFF0001,), 100)
    assert encode(gw) == words(1, 0x0A000001, 65000, 65001, 65002, 2, 2, 2, 65002, 65003,
                               1, 3, 7, 8, 9, 1, 0xFFFF0001, 100)


def test_user_and_url_records_are_counted_bytes() -> None:
    assert encode(ExtendedUser(106, b"alice", 106, b"")) == words(106, 5) + b"alice\0\0\0" + words(106, 0)
    assert encode(ExtendedUrl(2, "/a", "h")) == words(2, 2) + b"/a\0\0" + words(1) + b"h\0\0\0"


def test_http_request_field_order_and_signed_status() -> None:
    raw = encode(HttpRequest(2, 1001, "/", "h", "", "ua", "", "", "text/html", 10, 20, 30, -1))
    assert raw == (words(2, 1001, 1) + b"/\0\0\0" + words(1) + b"h\0\0\0" + words(0, 2)
                   + b"ua\0\0" + words(0, 0, 9) + b"text/html\0\0\0"
                   + struct.pack(">QQIi", 10, 20, 30, -1))


def test_app_operations_starts_with_its_application_name() -> None:
    raw = encode(AppOperations("web", *range(1, 12)))
    assert raw == words(3) + b"web\0" + words(*range(1, 12))


def test_signed_fields_match_the_spec() -> None:
    signed = {(c.__name__, f.name) for t in REGISTRY.values() for c in t.values()
              for f in c._sflow_fields if isinstance(f.type, Fixed) and f.type.fmt == "i"}
    assert signed == {("HttpRequest", "status"), ("HostDiskIo", "part_max_used"),
                      ("Processor", "cpu_5s"), ("Processor", "cpu_1m"), ("Processor", "cpu_5m"),
                      ("Mib2TcpGroup", "tcp_max_conn")}


def test_string_maxima_match_the_spec() -> None:
    maxima = {(c.__name__, f.name): f.type.max for t in REGISTRY.values() for c in t.values()
              for f in c._sflow_fields if isinstance(f.type, String)}
    assert maxima == {
        ("ExtendedUrl", "url"): 0, ("ExtendedUrl", "host"): 0,
        ("HttpRequest", "uri"): 255, ("HttpRequest", "host"): 64,
        ("HttpRequest", "referer"): 255, ("HttpRequest", "useragent"): 128,
        ("HttpRequest", "xff"): 64, ("HttpRequest", "authuser"): 32,
        ("HttpRequest", "mime_type"): 64, ("PortName", "name"): 255,
        ("HostDescr", "hostname"): 64, ("HostDescr", "os_release"): 32,
        ("AppOperations", "application"): 32,
    }


@pytest.mark.parametrize("agent", ["10.0.0.1", "2001:db8::1"])
def test_exporter_packs_six_switch_flow_samples_or_seven_port_counters_per_datagram(
    agent: str,
) -> None:
    flow = FlowSample(1, 3, 400, 400, 0, 3, 4,
                      (SampledHeader(1, 1518, 4, bytes(128)), ExtendedSwitch()))
    counters = CountersSample(1, 5, (IfCounters(5), EthernetCounters()))
    header = 28 if ":" not in agent else 40
    for sample, per_datagram, size in ((flow, 6, 216), (counters, 7, 176)):
        sent: list[bytes] = []
        exporter = Exporter(agent, sent.append)
        exporter.add_all([sample] * (per_datagram + 1), uptime_ms=1000)
        exporter.flush(uptime_ms=2000)
        assert [len(d) for d in sent] == [header + per_datagram * size, header + size]
        assert [struct.unpack_from(">I", d, header - 4)[0] for d in sent] == [per_datagram, 1]
        assert [struct.unpack_from(">II", d, header - 12) for d in sent] == [(1, 1000), (2, 2000)]
