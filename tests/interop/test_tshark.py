"""Wireshark's sFlow dissector (tshark 4.0) reads our datagrams as we meant them.

Each test encodes datagrams, writes them to a classic pcap, runs tshark over it and compares
tshark's field values, occurrence by occurrence, with ours. tshark 4.0 dissects the datagram
header, flow and counters samples in both forms, flow records 1-4 and 1001-1005 and counter
records 1, 2, 5 and 1001; it names other samples "Unknown sample format" and skips them by
their length. It does not skip unknown records inside a sample, so the host records it does
not know only appear as the last record of the last sample, where only their length is read.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sflowlab.codec import (
    AsPathSegment,
    CountersSample,
    CountersSampleExpanded,
    Datagram,
    DiscardedPacket,
    EthernetCounters,
    ExtendedGateway,
    ExtendedRouter,
    ExtendedSwitch,
    ExtendedUrl,
    ExtendedUser,
    FlowSample,
    FlowSampleExpanded,
    HostCpu,
    IfCounters,
    Processor,
    Raw,
    SampledEthernet,
    SampledHeader,
    SampledIpv4,
    SampledIpv6,
    VlanCounters,
    encode_datagram,
)
from sflowlab.codec.pcap import PcapWriter

pytestmark = pytest.mark.tshark

WARNING = 6291456  # Wireshark's PI_WARN; chat and note are lower, error is higher

# Ethernet / IPv4 / TCP SYN, 54 bytes: 172.17.0.3:50000 -> 172.17.0.2:80
TCP_SYN = bytes.fromhex(
    "0242ac110002" "0242ac110003" "0800"
    "450000281c4640004006" "0000" "ac110003" "ac110002"
    "c3500050" "00000001" "00000000" "5002faf0" "00000000"
)
# raw IPv4 (header_protocol 11) / UDP, 20 bytes: 10.0.0.1 -> 10.0.0.2
RAW_IPV4 = bytes.fromhex("4500002800014000401100000a0000010a000002")

FLOW = FlowSample(
    100, 3, 400, 40000, 2, 3, 0x3FFFFFFF,
    (SampledHeader(1, 58, 4, TCP_SYN), ExtendedSwitch(10, 1, 20, 2),
     SampledEthernet(1518, "00:0c:29:a1:b2:c3", "ff:ff:ff:ff:ff:ff", 0x0800),
     SampledIpv4(1500, 6, "10.1.2.3", "10.4.5.6", 443, 51234, 0x12, 0x28),
     SampledIpv6(1280, 17, "2001:db8::1", "2001:db8::2", 53, 5353, 0, 3)),
)
FLOW_EXPANDED = FlowSampleExpanded(
    1, 0, 7, 1000, 1000000, 5, 0, 7, 2, 3,
    (ExtendedRouter("fe80::1", 64, 48),
     ExtendedGateway("192.0.2.1", 65000, 64512, 64513,
                     (AsPathSegment(2, (64513, 3356, 15169)), AsPathSegment(1, (65001, 65002))),
                     (0xFDE80064, 0xFFFFFF01), 100),
     ExtendedUser(106, b"alice", 106, b"bob"),
     ExtendedUrl(2, "/index.html", "example.com"),
     SampledHeader(11, 40, 0, RAW_IPV4)),
)
IF_COUNTERS = IfCounters(5, 6, 10**9, 1, 3, 123456789012, 1000, 20, 30, 1, 2, 3, 987654321098,
                         2000, 40, 50, 4, 5, 1)
COUNTERS = CountersSample(
    9, 5,
    (IF_COUNTERS, EthernetCounters(*range(1, 14)), VlanCounters(10, 11259375, 100, 2, 3, 7),
     Processor(-1, 1234, 5678, 2**33, 2**31)),
)
COUNTERS_EXPANDED = CountersSampleExpanded(
    3, 0, 70000, (IF_COUNTERS._replace(if_index=70000), HostCpu()),
)
DISCARD = DiscardedPacket(4, 0, 7, 0, 7, 0, 258, (SampledHeader(11, 40, 0, RAW_IPV4),))
VENDOR_SAMPLE = Raw((4413 << 12) | 7, b"\xde\xad\xbe\xef")


def dissect(tshark: str, tmp_path: Path, datagrams: list[Datagram],
            fields: list[str]) -> list[dict[str, list[str]]]:
    """Per datagram, every occurrence of each field as tshark shows it; checks for errors."""
    pcap = tmp_path / "sflow.pcap"
    with PcapWriter(pcap) as writer:
        for i, dg in enumerate(datagrams):
            writer.write(encode_datagram(dg), 1_700_000_000.0 + i,
                         src=("10.0.0.1", 50000), dst=("10.0.0.2", 6343))
    wanted = ["_ws.malformed", "_ws.expert.severity", "_ws.expert.message", *fields]
    command = [tshark, "-n", "-r", str(pcap), "-T", "fields", "-E", "occurrence=a",
               "-E", "aggregator=|", "-E", "separator=/t"]
    for field in wanted:
        command += ["-e", field]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    rows = []
    for line in result.stdout.splitlines():
        values = [v.split("|") if v else [] for v in line.split("\t")]
        row = dict(zip(wanted, values, strict=True))
        assert row["_ws.malformed"] == [], row["_ws.expert.message"]
        serious = [m for s, m in zip(row["_ws.expert.severity"], row["_ws.expert.message"],
                                     strict=True) if int(s) >= WARNING]
        assert serious == []
        rows.append(row)
    assert len(rows) == len(datagrams)
    return rows


def text(*values: object) -> list[str]:
    return [str(v) for v in values]


def test_datagram_headers_with_ipv4_and_ipv6_agents(tshark: str, tmp_path: Path) -> None:
    rows = dissect(tshark, tmp_path, [
        Datagram(5, "192.0.2.7", 3, 4000000000, 123456, (FLOW,)),
        Datagram(5, "2001:db8::10", 100001, 1, 4294967295, (COUNTERS,)),
    ], ["sflow_245.version", "sflow_245.agenttype", "sflow_245.agent", "sflow_245.agent.v6",
        "sflow_245.sub_agent_id", "sflow_245.sequence_number", "sflow_245.sysuptime",
        "sflow_245.numsamples"])
    v4, v6 = rows
    assert v4["sflow_245.agenttype"] == ["1"] and v4["sflow_245.agent"] == ["192.0.2.7"]
    assert v6["sflow_245.agenttype"] == ["2"] and v6["sflow_245.agent.v6"] == ["2001:db8::10"]
    assert v4["sflow_245.sub_agent_id"] + v6["sflow_245.sub_agent_id"] == text(3, 100001)
    assert v4["sflow_245.sequence_number"] + v6["sflow_245.sequence_number"] == text(4000000000, 1)
    assert v4["sflow_245.sysuptime"] + v6["sflow_245.sysuptime"] == text(123456, 4294967295)
    assert v4["sflow_245.numsamples"] == v6["sflow_245.numsamples"] == ["1"]



def test_flow_samples_and_records(tshark: str, tmp_path: Path) -> None:
    """Compact and expanded flow samples with every flow record tshark 4.0 dissects."""
    (row,) = dissect(tshark, tmp_path, [Datagram(5, "10.0.0.1", 0, 1, 2, (FLOW, FLOW_EXPANDED))], [
        "sflow_245.sampletype", "sflow_5.sample_length", "sflow_5.flow_data_length",
        "sflow_245.flow_record_format", "sflow.flow_sample.sequence_number",
        "sflow.flow_sample.source_id_class", "sflow.flow_sample.index",
        "sflow.flow_sample.source_id_type", "sflow.flow_sample.source_id_index",
        "sflow.flow_sample.sampling_rate", "sflow.flow_sample.sample_pool",
        "sflow.flow_sample.dropped_packets", "sflow.flow_sample.input_interface",
        "sflow.flow_sample.output_interface", "sflow.flow_sample.input_interface_format",
        "sflow.flow_sample.input_interface_value", "sflow.flow_sample.output_interface_value",
        "sflow.flow_sample.flow_record", "sflow_245.header_protocol", "sflow_245.header",
        "sflow_245.header.frame_length", "sflow_245.header.payload_stripped",
        "sflow_245.header.sampled_header_length", "ip.src", "tcp.srcport", "tcp.dstport",
        "sflow_245.vlan.in", "sflow_245.pri.in", "sflow_245.vlan.out", "sflow_245.pri.out",
        "sflow_245.ethernet.length", "sflow_245.ethernet.source_mac_address",
        "sflow_245.ethernet.destination_mac_address", "sflow_245.ethernet.packet_type",
        "sflow_245.ip.length", "sflow.ip_protocol", "sflow_245.ipv4_src", "sflow_245.ipv4_dst",
        "sflow_245.ip.source_port", "sflow.ip.destination_port", "sflow_245.ipv6_src",
        "sflow_245.ipv6_dst", "sflow_245.ipv6_priority", "sflow_245.nexthop.v6",
        "sflow_245.nexthop.src_mask", "sflow_245.nexthop.dst_mask", "sflow_245.nexthop",
        "sflow_245.as", "sflow_245.srcAS", "sflow_245.peerAS", "sflow_245.dstASentries",
        "sflow.as_type", "sflow_245.dstAS", "sflow_245.communityEntries", "sflow_245.localpref",
        "sflow_5.extended_user.source_character_set", "sflow_5.extended_user.source_user",
        "sflow_5.extended_user.destination_character_set",
        "sflow_5.extended_user.destination_user", "sflow_5.extended_url.direction",
        "sflow_5.extended_url.url", "sflow_5.extended_url.host",
    ])
    expected = {
        "sflow_245.sampletype": text(1, 3),
        "sflow_5.sample_length": text(272, 288),  # body bytes after each sample's TLV header
        "sflow_5.flow_data_length": text(72, 16, 24, 32, 56, 28, 76, 28, 36, 36),
        "sflow_245.flow_record_format": text(1, 1001, 2, 3, 4, 1002, 1003, 1004, 1005, 1),
        # compact flow sample
        "sflow.flow_sample.sequence_number": text(100, 1),
        "sflow.flow_sample.source_id_class": text(0), "sflow.flow_sample.index": text(3),
        "sflow.flow_sample.sampling_rate": text(400, 1000),
        "sflow.flow_sample.sample_pool": text(40000, 1000000),
        "sflow.flow_sample.dropped_packets": text(2, 5),
        "sflow.flow_sample.input_interface": text(3),
        "sflow.flow_sample.output_interface": ["0x3fffffff"],
        "sflow.flow_sample.flow_record": text(5, 5),
        # expanded flow sample
        "sflow.flow_sample.source_id_type": text(0), "sflow.flow_sample.source_id_index": text(7),
        "sflow.flow_sample.input_interface_format": text(0),
        "sflow.flow_sample.input_interface_value": text(7),
        "sflow.flow_sample.output_interface_value": text(0x3FFFFFFF, 3),
        # sampled_header (Ethernet, then raw IPv4), dissected further by tshark
        "sflow_245.header_protocol": text(1, 11),
        "sflow_245.header": [(TCP_SYN + bytes(2)).hex(), RAW_IPV4.hex()],  # shown with padding
        "sflow_245.header.frame_length": text(58, 40),
        "sflow_245.header.payload_stripped": text(4, 0),
        "sflow_245.header.sampled_header_length": text(54, 20),
        "ip.src": ["10.0.0.1", "172.17.0.3", "10.0.0.1"],  # the capture's, then the headers'
        "tcp.srcport": text(50000), "tcp.dstport": text(80),
        # extended_switch
        "sflow_245.vlan.in": text(10), "sflow_245.pri.in": text(1),
        "sflow_245.vlan.out": text(20), "sflow_245.pri.out": text(2),
        # sampled_ethernet
        "sflow_245.ethernet.length": text(1518),
        "sflow_245.ethernet.source_mac_address": ["00:0c:29:a1:b2:c3"],
        "sflow_245.ethernet.destination_mac_address": ["ff:ff:ff:ff:ff:ff"],
        "sflow_245.ethernet.packet_type": text(0x0800),
        # sampled_ipv4 and sampled_ipv6 (tshark 4.0 reads tcp_flags and tos from the wrong
        # byte of their words, so those two are not compared)
        "sflow_245.ip.length": text(1500, 1280), "sflow.ip_protocol": text(6, 17),
        "sflow_245.ipv4_src": ["10.1.2.3"], "sflow_245.ipv4_dst": ["10.4.5.6"],
        "sflow_245.ip.source_port": text(443, 53), "sflow.ip.destination_port": text(51234, 5353),
        "sflow_245.ipv6_src": ["2001:db8::1"], "sflow_245.ipv6_dst": ["2001:db8::2"],
        "sflow_245.ipv6_priority": text(3),
        # extended_router with an IPv6 next hop
        "sflow_245.nexthop.v6": ["fe80::1"], "sflow_245.nexthop.src_mask": text(64),
        "sflow_245.nexthop.dst_mask": text(48),
        # extended_gateway: two AS-path segments, two communities (listed as dstAS by tshark)
        "sflow_245.nexthop": ["192.0.2.1"], "sflow_245.as": text(65000),
        "sflow_245.srcAS": text(64512), "sflow_245.peerAS": text(64513),
        "sflow_245.dstASentries": text(2), "sflow.as_type": text(2, 1),
        "sflow_245.dstAS": text(64513, 3356, 15169, 65001, 65002, 0xFDE80064, 0xFFFFFF01),
        "sflow_245.communityEntries": text(2), "sflow_245.localpref": text(100),
        # extended_user and extended_url
        "sflow_5.extended_user.source_character_set": text(106),
        "sflow_5.extended_user.source_user": ["alice"],
        "sflow_5.extended_user.destination_character_set": text(106),
        "sflow_5.extended_user.destination_user": ["bob"],
        "sflow_5.extended_url.direction": text(2), "sflow_5.extended_url.url": ["/index.html"],
        "sflow_5.extended_url.host": ["example.com"],
    }
    assert {k: row[k] for k in expected} == expected


def test_counter_samples_and_records(tshark: str, tmp_path: Path) -> None:
    """Compact and expanded counters samples with the counter records tshark 4.0 dissects."""
    if_fields = ["sflow_245.ifindex", "sflow_245.iftype", "sflow_245.ifspeed",
                 "sflow_245.ifdirection", "sflow_245.ifadmin_status", "sflow_245.ifoper_status",
                 "sflow_245.ifinoct", "sflow_245.ifinpkt", "sflow_245.ifinmcast",
                 "sflow_245.ifinbcast", "sflow_245.ifindisc", "sflow_245.ifinerr",
                 "sflow_245.ifinunk", "sflow_245.ifoutoct", "sflow_245.ifoutpkt",
                 "sflow_245.ifoutmcast", "sflow_245.ifoutbcast", "sflow_245.ifoutdisc",
                 "sflow_245.ifouterr", "sflow_245.ifpromisc"]
    dot3 = ["AlignmentErrors", "FCSErrors", "SingleCollisionFrames", "MultipleCollisionFrames",
            "SQETestErrors", "DeferredTransmissions", "LateCollisions", "ExcessiveCollisions",
            "InternalMacTransmitErrors", "CarrierSenseErrors", "FrameTooLongs",
            "InternalMacReceiveErrors", "SymbolErrors"]
    vlan = ["sflow_245.vlan_id", "sflow_245.octets", "sflow_245.ucastPkts",
            "sflow_245.multicastPkts", "sflow_245.broadcastPkts", "sflow_245.discards"]
    cpu = ["sflow_5.cpu_5s", "sflow_5.cpu_1m", "sflow_5.cpu_5m", "sflow_5.total_memory",
           "sflow_5.free_memory"]
    dg = Datagram(5, "10.0.0.1", 0, 1, 2, (COUNTERS, COUNTERS_EXPANDED))
    (row,) = dissect(tshark, tmp_path, [dg], [
        "sflow_245.sampletype", "sflow_5.sample_length", "sflow_5.flow_data_length",
        "sflow_245.counters_record_format", "sflow.counters_sample.sequence_number",
        "sflow.counters_sample.source_id_type", "sflow.counters_sample.source_id_index",
        "sflow.counters_sample.counters_records", *if_fields,
        *(f"sflow_245.dot3Stats{name}" for name in dot3), *vlan, *cpu,
    ])
    assert row["sflow_245.sampletype"] == text(2, 4)
    assert row["sflow_5.sample_length"] == text(240, 200)
    assert row["sflow_245.counters_record_format"] == text(1, 2, 5, 1001, 1, 2003)
    assert row["sflow_5.flow_data_length"] == text(88, 52, 28, 28, 88, 80)  # host_cpu: 80
    assert row["sflow.counters_sample.sequence_number"] == text(9, 3)
    assert row["sflow.counters_sample.source_id_type"] == text(0, 0)
    assert row["sflow.counters_sample.source_id_index"] == text(5, 70000)
    assert row["sflow.counters_sample.counters_records"] == text(4, 2)
    compact = (*IF_COUNTERS[:4], 1, 1, *IF_COUNTERS[5:])  # ifStatus 3: admin and oper bits up
    values = [compact, (70000, *compact[1:])]
    assert [row[f] for f in if_fields] == [text(*v) for v in zip(*values, strict=True)]
    assert [row[f"sflow_245.dot3Stats{name}"] for name in dot3] == [[str(i)] for i in range(1, 14)]
    assert [row[f] for f in vlan] == [[str(v)] for v in COUNTERS.records[2]]
    processor = COUNTERS.records[3]
    assert [row[f] for f in cpu] == [[str(v & 0xFFFFFFFF if i < 3 else v)]
                                     for i, v in enumerate(processor)]


def test_samples_tshark_does_not_know_are_skipped_by_their_length(tshark: str,
                                                                  tmp_path: Path) -> None:
    """discarded_packet (0,5) in the middle, a vendor sample last: both framed as declared."""
    dg = Datagram(5, "10.0.0.1", 0, 1, 2, (DISCARD, COUNTERS, VENDOR_SAMPLE))
    (row,) = dissect(tshark, tmp_path, [dg], [
        "sflow_245.numsamples", "sflow_245.sampletype", "sflow_5.sample_length",
        "sflow.counters_sample.sequence_number", "sflow_245.ifindex",
    ])
    assert row["sflow_245.numsamples"] == text(3)
    assert row["sflow_245.sampletype"] == text(5, 2)
    assert row["sflow_5.sample_length"] == text(76, 240)
    assert row["sflow.counters_sample.sequence_number"] == text(9)  # read after the skip
    assert row["sflow_245.ifindex"] == text(5)
    listing = subprocess.run([tshark, "-n", "-V", "-r", str(tmp_path / "sflow.pcap")],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    assert listing.count("Unknown sample format") == 1
    assert "Enterprise: Non-standard sFlow (4413)" in listing
