"""Layouts computed from declarations (codec/layout.py), which the collector's fast path reads
by: exact offsets and formats, and a declaration of its own to show they follow it."""

from __future__ import annotations

import struct
from typing import Annotated, Any, NamedTuple

import pytest

from sflowlab.codec import (
    Datagram,
    ExtendedSwitch,
    FlowSample,
    FlowSampleExpanded,
    HostCpu,
    HostDescr,
    SampledHeader,
    encode_datagram,
    fast,
)
from sflowlab.codec._compile import structure
from sflowlab.codec._fields import MAC, U32, U64, Opaque, Tlv
from sflowlab.codec.headers import ETH_IP4_L4
from sflowlab.codec.layout import ELEMENT, data_format_of, fixed, head, offsets, struct_offsets


def test_flow_sample_heads() -> None:
    assert head(FlowSample) == "I" * 8  # seven fields and the records count
    assert fixed(FlowSample) == "I" * 7
    assert offsets(FlowSample) == {
        "sequence_number": 0, "source_id": 4, "sampling_rate": 8, "sample_pool": 12,
        "drops": 16, "input": 20, "output": 24, "records": 28, "size": 32}
    assert offsets(FlowSampleExpanded)["output_value"] == 36
    assert offsets(FlowSampleExpanded)["size"] == 44
    assert offsets(SampledHeader) == {"header_protocol": 0, "frame_length": 4, "stripped": 8,
                                      "header": 12, "size": 16}
    assert head(ExtendedSwitch) == fixed(ExtendedSwitch) == "IIII"
    assert data_format_of(ExtendedSwitch) == 1001


def test_after_a_field_tails_and_variable_fields_end_the_head() -> None:
    assert offsets(Datagram, after="agent_address") == {
        "sub_agent_id": 0, "sequence_number": 4, "uptime_ms": 8, "samples": 12, "size": 16}
    assert head(Datagram) == "II"  # version, then the address union's type word
    assert head(HostDescr) == "I"  # the hostname string's length word first
    assert fixed(HostCpu) == "fff" + "I" * 14  # the optional tail is not part of the head
    assert head(HostCpu) == fixed(HostCpu)


@structure
class _Mixed(NamedTuple):
    mac: Annotated[str, MAC] = "00:00:00:00:00:00"
    octets: Annotated[int, U64] = 0
    index: Annotated[int, U32] = 0
    data: Annotated[bytes, Opaque()] = b""
    more: Annotated[tuple[Any, ...], Tlv("flow")] = ()


def test_a_declaration_of_other_sizes() -> None:
    assert head(_Mixed) == "6s2xQII"
    assert offsets(_Mixed) == {"mac": 0, "octets": 8, "index": 16, "data": 20, "size": 24}
    encoded = bytearray()
    _Mixed._sflow_encode(_Mixed("00:0c:29:a1:b2:c3", 7, 9, b"xy"), encoded)
    assert struct.unpack_from(">" + head(_Mixed), encoded) == (
        bytes.fromhex("000c29a1b2c3"), 7, 9, 2)


def test_the_fast_path_structs_are_the_declared_ones() -> None:
    assert fast._FLOW.format == ">" + head(FlowSample)
    assert fast._SWITCH.format == ">" + ELEMENT + fixed(ExtendedSwitch)
    # a usual switch sample: tag and length, sample head, header record head, 128 header
    # bytes, extended_switch record: as the codec encodes one
    sample = FlowSample(1, 2, 400, 800, 0, 3, 4, (
        SampledHeader(1, 1514, 4, bytes(fast.USUAL_HEADER_BYTES)), ExtendedSwitch(10, 0, 20, 0)))
    data = encode_datagram(Datagram(5, "10.0.0.1", 0, 1, 1000, (sample,)))
    assert len(data) - fast._USUAL_HEAD == fast._SWITCH_SAMPLE.size == 216
    assert fast._C_LAYOUT["datagram.samples"] == fast._USUAL_HEAD - 4 == 24


def test_struct_offsets_skip_pads_and_name_every_item() -> None:
    assert struct_offsets("2I3s4xH", ["a", "b", "c", "d"]) == {
        "a": 0, "b": 4, "c": 8, "d": 15, "size": 17}
    usual = struct_offsets(ETH_IP4_L4, [
        "dst", "src", "etype", "vihl", "tos", "total", "frag", "ttl", "proto", "sip", "dip",
        "sport", "dport", "off_ns", "flags"])
    assert (usual["etype"], usual["sip"], usual["sport"], usual["flags"], usual["size"]) == (
        12, 26, 34, 47, 48)
    assert fast._C_LAYOUT["usual.dport"] == 36
    with pytest.raises(ValueError, match="unpacks 2 items, not 3"):
        struct_offsets("HH", ["a", "b", "c"])
