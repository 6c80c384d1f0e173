"""Rendering decoded sFlow: JSON-able dicts named by sflow_name, and the sflowtool-like text."""

from __future__ import annotations

import json
import math

import pytest

from sflowlab.agent_sim.packets import TCP_ACK, Packet
from sflowlab.codec import (
    AsPathSegment,
    CountersSample,
    CountersSampleExpanded,
    Datagram,
    ExtendedGateway,
    FlowSample,
    HostAdapter,
    HostAdapters,
    HostCpu,
    HostDescr,
    PortName,
    Raw,
    SampledHeader,
    data_format,
    decode_datagram,
    encode_datagram,
)
from sflowlab.codec.render import render_text, sample_rows, to_jsonable

FRAME = Packet("02:00:00:00:00:01", "02:00:00:00:00:02", "10.1.2.3", "10.4.5.6",
               src_port=33000, dst_port=8080, tcp_flags=TCP_ACK, length=200).header(128)


def flow_datagram() -> Datagram:
    return Datagram(5, "192.0.2.1", 3, 42, 1234, (
        FlowSample(8, (0 << 24) | 5, 512, 1024, 0, 5, 6, (
            SampledHeader(1, 204, 4, FRAME),
            ExtendedGateway("192.0.2.254", 65000, 65001, 65002,
                            (AsPathSegment(2, (65001, 65100)),), (100, 200), 10),
            Raw(data_format(4413, 7), b"\xde\xad\xbe\xef"),
        )),
    ))


def test_records_named_by_sflow_name_with_flow_keys() -> None:
    (sample,) = to_jsonable(flow_datagram())["samples"]
    assert {k: sample[k] for k in ("sample", "enterprise", "format", "data_source",
                                   "sampling_rate", "input", "output")} == {
        "sample": "flow_sample", "enterprise": 0, "format": 1, "data_source": "5",
        "sampling_rate": 512, "input": 5, "output": 6}
    header, gateway, raw = sample["records"]
    assert header["record"] == "sampled_header" and header["format"] == 1
    assert header["header"] == FRAME.hex()
    keys = header["flow_keys"]
    assert (keys["ipsource"], keys["ipdestination"], keys["tcpsourceport"],
            keys["tcpdestinationport"], keys["stack"]) == ("10.1.2.3", "10.4.5.6", 33000, 8080,
                                                           "eth.ip.tcp")
    assert gateway == {
        "record": "extended_gateway", "enterprise": 0, "format": 1003,
        "nexthop": "192.0.2.254", "as_number": 65000, "src_as": 65001, "src_peer_as": 65002,
        "as_path": [{"type": 2, "asns": [65001, 65100]}], "communities": [100, 200],
        "localpref": 10}
    assert raw == {"record": "unknown_4413_7", "enterprise": 4413, "format": 7,
                   "data": "deadbeef"}


def test_raw_samples_keep_their_kind_and_error() -> None:
    dg = Datagram(samples=(Raw(data_format(0, 9), b"\x01"),
                           CountersSample(1, 1, (Raw(data_format(0, 1), b"", "too short"),))))
    unknown, counters = to_jsonable(dg)["samples"]
    assert unknown == {"sample": "unknown_0_9", "enterprise": 0, "format": 9, "data": "01"}
    assert counters["records"] == [{"record": "unknown_0_1", "enterprise": 0, "format": 1,
                                    "data": "", "error": "too short"}]


def test_nested_structures_tails_floats_and_odd_text() -> None:
    row = to_jsonable(CountersSampleExpanded(1, 2, 1, (
        HostAdapters((HostAdapter(2, ("52:54:00:12:34:56", "52:54:00:ab:cd:ef")),)),
        HostCpu(float("nan"), math.inf, 0.5, cpu_steal=None, cpu_guest=None,
                cpu_guest_nice=None),
        HostDescr("bad\udcffname\n"),
    )))
    adapters, cpu, descr = row["records"]
    assert row["data_source"] == "2.1"
    assert adapters["adapters"] == [
        {"if_index": 2, "mac_addresses": ["52:54:00:12:34:56", "52:54:00:ab:cd:ef"]}]
    assert (cpu["load_one"], cpu["load_five"], cpu["load_fifteen"]) == (None, None, 0.5)
    assert cpu["cpu_steal"] is None
    assert descr["hostname"] == "bad\\xffname\n"
    json.dumps(row, allow_nan=False)  # strict JSON: no NaN, no lone surrogates
    row["records"][2]["hostname"].encode("utf-8")


def test_plain_values_and_unknown_objects() -> None:
    assert to_jsonable({"a": (1, b"\x00\xff", [2.5])}) == {"a": [1, "00ff", [2.5]]}
    with pytest.raises(TypeError, match="cannot render object"):
        to_jsonable(object())


def test_decoded_datagram_renders_like_the_original() -> None:
    dg = flow_datagram()
    assert to_jsonable(decode_datagram(encode_datagram(dg))) == to_jsonable(dg)


def test_sample_rows_carry_the_datagram_context() -> None:
    dg = flow_datagram()._replace(samples=flow_datagram().samples * 2)
    rows = list(sample_rows(dg, 1700000000.25, ("fd00::1", 6343)))
    assert len(rows) == 2
    assert {k: rows[1][k] for k in ("agent", "sub_agent", "datagram_sequence", "uptime_ms",
                                    "timestamp", "source", "sample")} == {
        "agent": "192.0.2.1", "sub_agent": 3, "datagram_sequence": 42, "uptime_ms": 1234,
        "timestamp": 1700000000.25, "source": "[fd00::1]:6343", "sample": "flow_sample"}
    assert all(row["source"] is None for row in sample_rows(dg))


def test_text_listing() -> None:
    dg = Datagram(5, "192.0.2.1", 3, 42, 1234, (
        CountersSample(7, 5, (PortName("swp1"), HostCpu(0.25, proc_run=2, cpu_steal=None,
                                                        cpu_guest=None, cpu_guest_nice=None),
                              Raw(data_format(9, 2), b"\x01\x02"))),
    ))
    text = render_text(dg, 1700000000.5, ("192.0.2.1", 6343), 500)
    lines = text.splitlines()
    assert lines[:18] == [
        "startDatagram =================================",
        "datagramSourceIP 192.0.2.1", "datagramSourcePort 6343", "datagramSize 500",
        "unixSecondsUTC 1700000000.500000", "datagramVersion 5", "agent 192.0.2.1",
        "agentSubId 3", "packetSequenceNo 42", "sysUpTime 1234", "samplesInPacket 1",
        "startSample ----------------------", "sampleType_tag 0:2", "sample counters_sample",
        "data_source 5", "sequence_number 7", "source_id 5", "counterBlock_tag 0:1005",
    ]
    assert lines[18:21] == ["record port_name", "name swp1", "counterBlock_tag 0:2003"]
    assert "load_one 0.25" in lines and "proc_run 2" in lines
    assert not any(line.startswith("cpu_steal") for line in lines)  # absent tail fields
    assert lines[-5:] == ["counterBlock_tag 9:2", "record unknown_9_2", "data 0102",
                          "endSample   ----------------------",
                          "endDatagram   ================================="]
    assert text.endswith("\n")


def test_text_of_flow_records_and_nested_lists() -> None:
    lines = render_text(flow_datagram()).splitlines()
    assert "flowBlock_tag 0:1" in lines and "record sampled_header" in lines
    assert "flow_keys.tcpdestinationport 8080" in lines
    assert "as_path.0.asns 65001,65100" in lines and "communities 100,200" in lines
    assert not any(line.startswith("datagramSourceIP") for line in lines)


def test_text_escapes_unprintable_strings() -> None:
    dg = Datagram(samples=(CountersSample(1, 1, (HostDescr("a\nb\udcfe"),)),))
    assert "hostname a\\nb\\\\xfe" in render_text(dg).splitlines()
