"""Sample declarations (flow, counters, their expanded forms, discarded packets) and the datagram.

Compact samples keep their wire fields (``source_id``, ``input``, ``output`` as packed u32s)
and expose the unpacked parts as properties, so the one declaration stays the wire truth.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

from ._compile import sample, structure
from ._fields import U32, Address, Tlv

INTERNAL = 0x3FFFFFFF
"""Compact input/output value meaning the device itself (expanded form also uses 0xFFFFFFFF)."""

DROP_REASONS = {
    256: "unknown", 257: "ttl_exceeded", 258: "acl", 259: "no_buffer_space", 260: "red",
    261: "traffic_shaping", 262: "pkt_too_big",
}


@sample(0, 1, "flow_sample")
class FlowSample(NamedTuple):
    sequence_number: Annotated[int, U32] = 0
    source_id: Annotated[int, U32] = 0
    sampling_rate: Annotated[int, U32] = 1
    sample_pool: Annotated[int, U32] = 0
    drops: Annotated[int, U32] = 0
    input: Annotated[int, U32] = 0
    output: Annotated[int, U32] = 0
    records: Annotated[tuple[Any, ...], Tlv("flow")] = ()

    @property
    def source_id_type(self) -> int:
        return self.source_id >> 24

    @property
    def source_id_index(self) -> int:
        return self.source_id & 0xFFFFFF

    @property
    def input_format(self) -> int:
        return self.input >> 30

    @property
    def input_value(self) -> int:
        return self.input & 0x3FFFFFFF

    @property
    def output_format(self) -> int:
        return self.output >> 30

    @property
    def output_value(self) -> int:
        return self.output & 0x3FFFFFFF


@sample(0, 2, "counters_sample")
class CountersSample(NamedTuple):
    sequence_number: Annotated[int, U32] = 0
    source_id: Annotated[int, U32] = 0
    records: Annotated[tuple[Any, ...], Tlv("counter")] = ()

    @property
    def source_id_type(self) -> int:
        return self.source_id >> 24

    @property
    def source_id_index(self) -> int:
        return self.source_id & 0xFFFFFF


@sample(0, 3, "flow_sample_expanded")
class FlowSampleExpanded(NamedTuple):
    sequence_number: Annotated[int, U32] = 0
    source_id_type: Annotated[int, U32] = 0
    source_id_index: Annotated[int, U32] = 0
    sampling_rate: Annotated[int, U32] = 1
    sample_pool: Annotated[int, U32] = 0
    drops: Annotated[int, U32] = 0
    input_format: Annotated[int, U32] = 0
    input_value: Annotated[int, U32] = 0
    output_format: Annotated[int, U32] = 0
    output_value: Annotated[int, U32] = 0
    records: Annotated[tuple[Any, ...], Tlv("flow")] = ()


@sample(0, 4, "counters_sample_expanded")
class CountersSampleExpanded(NamedTuple):
    sequence_number: Annotated[int, U32] = 0
    source_id_type: Annotated[int, U32] = 0
    source_id_index: Annotated[int, U32] = 0
    records: Annotated[tuple[Any, ...], Tlv("counter")] = ()


@sample(0, 5, "discarded_packet")
class DiscardedPacket(NamedTuple):
    sequence_number: Annotated[int, U32] = 0
    source_id_type: Annotated[int, U32] = 0
    source_id_index: Annotated[int, U32] = 0
    drops: Annotated[int, U32] = 0
    input: Annotated[int, U32] = 0
    output: Annotated[int, U32] = 0
    reason: Annotated[int, U32] = 256
    records: Annotated[tuple[Any, ...], Tlv("flow")] = ()


@structure
class Datagram(NamedTuple):
    """An sFlow v5 datagram: header and samples (decode with ``decode_datagram``)."""

    version: Annotated[int, U32] = 5
    agent_address: Annotated[str, Address()] = "0.0.0.0"
    sub_agent_id: Annotated[int, U32] = 0
    sequence_number: Annotated[int, U32] = 0
    uptime_ms: Annotated[int, U32] = 0
    samples: Annotated[tuple[Any, ...], Tlv("sample")] = ()


FLOW_SAMPLES = (FlowSample, FlowSampleExpanded)
COUNTER_SAMPLES = (CountersSample, CountersSampleExpanded)


def data_source(s: Any) -> str:
    """sFlow-RT's data source name: ``"12"`` for an ifIndex, ``"2.1"``, ``"3.100123"``."""
    kind, index = s.source_id_type, s.source_id_index
    return str(index) if kind == 0 else f"{kind}.{index}"
