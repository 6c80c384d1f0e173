"""Tolerance and errors: vendor padding, unknown and broken elements, framing errors, encoder checks."""

from __future__ import annotations

import struct

import pytest

from sflowlab.codec import (
    CodecError,
    CountersSample,
    Datagram,
    DecodeError,
    EncodeError,
    Exporter,
    ExtendedSwitch,
    FlowSample,
    HostCpu,
    HostDescr,
    HttpRequest,
    IfCounters,
    PortName,
    Raw,
    SampledEthernet,
    SampledHeader,
    TruncatedError,
    decode_datagram,
    encode_datagram,
    encode_sample,
)


def words(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def tlv(tag: int, body: bytes) -> bytes:
    return words(tag, len(body)) + body


HEADER = words(5, 1, 0x0A000001, 0, 1, 100)  # IPv4 agent 10.0.0.1, sub 0, seq 1, uptime 100
# ... then num_samples at offset 24: samples start at 28
SWITCH = words(10, 1, 20, 2)


def datagram(*samples: bytes) -> bytes:
    return HEADER + words(len(samples)) + b"".join(samples)


def flow_sample(*records: bytes) -> bytes:
    return tlv(1, words(7, 3, 400, 4000, 0, 3, 4, len(records)) + b"".join(records))


def expect(raw: bytes, cls: type[CodecError], path: str, offset: int) -> CodecError:
    with pytest.raises(cls) as info:
        decode_datagram(raw)
    assert (info.value.path, info.value.offset) == (path, offset)
    return info.value


# ---------------------------------------------------------------- tolerance


def test_a_record_longer_than_its_declaration_decodes_its_prefix_and_skips_the_rest() -> None:
    padded_switch = tlv(1001, SWITCH + b"\xee" * 8)  # a vendor's 24-byte extended_switch
    raw = datagram(flow_sample(padded_switch, tlv(1001, SWITCH)))
    records = decode_datagram(raw).samples[0].records
    assert records == (ExtendedSwitch(10, 1, 20, 2), ExtendedSwitch(10, 1, 20, 2))


def test_a_sample_longer_than_its_declaration_is_skipped_to_its_end() -> None:
    body = words(7, 3, 400, 4000, 0, 3, 4, 1) + tlv(1001, SWITCH) + b"\xee" * 12
    raw = datagram(tlv(1, body), flow_sample(tlv(1001, SWITCH)))
    samples = decode_datagram(raw).samples
    assert [s.sequence_number for s in samples] == [7, 7]
    assert samples[0].records == samples[1].records == (ExtendedSwitch(10, 1, 20, 2),)


def test_host_cpu_short_form_leaves_the_2014_fields_none() -> None:
    body = struct.pack(">3f14I", 0.5, 0.25, 0.125, *range(14))
    raw = datagram(tlv(2, words(1, (2 << 24) | 1, 1) + tlv(2003, body)))
    cpu = decode_datagram(raw).samples[0].records[0]
    assert (cpu.load_one, cpu.contexts) == (0.5, 13)
    assert (cpu.cpu_steal, cpu.cpu_guest, cpu.cpu_guest_nice) == (None, None, None)
    assert encode_datagram(decode_datagram(raw)) == raw


def test_unknown_samples_and_records_are_kept_raw_and_reencoded_byte_for_byte() -> None:
    vendor_sample = tlv((4413 << 12) | 7, b"\x01\x02\x03\x04" * 3)
    vendor_record = tlv((9 << 12) | 1, b"abcdefgh")
    raw = datagram(flow_sample(vendor_record, tlv(1001, SWITCH)), vendor_sample,
                   flow_sample(tlv(1001, SWITCH)))
    dg = decode_datagram(raw)
    assert dg.samples[1] == Raw((4413 << 12) | 7, b"\x01\x02\x03\x04" * 3)
    assert (dg.samples[1].enterprise, dg.samples[1].format) == (4413, 7)
    assert dg.samples[0].records[0] == Raw((9 << 12) | 1, b"abcdefgh")
    assert dg.samples[2].records == (ExtendedSwitch(10, 1, 20, 2),)
    assert encode_datagram(dg) == raw


def test_a_record_failing_inside_its_length_becomes_raw_with_the_full_path() -> None:
    bad_header = tlv(1, words(1, 64, 4, 200) + b"\0" * 16)  # header_length 200 in a 32-byte body
    raw = datagram(flow_sample(tlv(1001, SWITCH)), flow_sample(bad_header, tlv(1001, SWITCH)))
    dg = decode_datagram(raw)
    broken, switch = dg.samples[1].records
    assert switch == ExtendedSwitch(10, 1, 20, 2)
    assert broken.data_format == 1 and broken.data == bad_header[8:]
    header_offset = len(HEADER) + 4 + 32 + 8 + 24 + 8 + 32 + 8  # start of the sampled_header body
    assert broken.error == (
        "datagram/samples[1]:flow_sample/records[0]:sampled_header/header: "
        f"200-byte value runs past the end of its element at offset {header_offset + 16}"
    )
    assert encode_datagram(dg) == raw  # nothing lost


def test_a_sample_whose_records_overrun_it_becomes_raw_and_spares_its_neighbours() -> None:
    body = words(7, 3, 400, 4000, 0, 3, 4, 1) + words(1001, 40) + SWITCH  # record claims 40 bytes
    raw = datagram(tlv(1, body), flow_sample(tlv(1001, SWITCH)))
    first, second = decode_datagram(raw).samples
    assert type(first) is Raw and first.data == body
    assert first.error.startswith("datagram/samples[0]:flow_sample/records[0]: element length 40")
    assert second.records == (ExtendedSwitch(10, 1, 20, 2),)


def test_a_bad_utf8_string_decodes_without_loss() -> None:
    raw = datagram(tlv(2, words(1, 5, 1) + tlv(1005, words(3) + b"e\xff0\0")))
    port = decode_datagram(raw).samples[0].records[0]
    assert port == PortName("e\udcff0")
    assert encode_datagram(decode_datagram(raw)) == raw


def test_trailing_bytes_after_the_samples_are_ignored() -> None:
    raw = datagram(flow_sample(tlv(1001, SWITCH)))
    assert decode_datagram(raw + b"\0" * 8) == decode_datagram(raw)


# ---------------------------------------------------------------- framing errors


def test_framing_errors_raise_with_offset_and_path() -> None:
    good = flow_sample(tlv(1001, SWITCH))
    expect(words(4) + HEADER[4:], DecodeError, "datagram/version", 0)
    expect(b"\0\0\0", DecodeError, "datagram", 0)
    expect(HEADER[:14], TruncatedError, "datagram/sub_agent_id", 12)
    expect(words(5, 3) + HEADER[8:] + words(0), DecodeError, "datagram/agent_address", 4)
    expect(HEADER + words(1000) + good, TruncatedError, "datagram/samples", 28)
    expect(HEADER + words(2) + good, TruncatedError, "datagram/samples[1]", 28 + len(good))
    cut = datagram(good)[:-4]
    expect(cut, TruncatedError, "datagram/samples[0]", 32)
    expect(datagram(good, good)[:-4], TruncatedError, "datagram/samples[1]", 28 + len(good) + 4)


def test_decoders_never_read_past_the_end_they_are_given() -> None:
    raw = datagram(flow_sample(tlv(1001, SWITCH)))
    for end in range(len(raw)):
        with pytest.raises(DecodeError):
            Datagram._sflow_decode(raw, 0, end)  # type: ignore[attr-defined]


def test_ipv6_agent_header_is_read() -> None:
    agent = bytes.fromhex("20010db8000000000000000000000042")
    raw = words(5, 2) + agent + words(1, 2, 3, 0)
    assert decode_datagram(raw) == Datagram(5, "2001:db8::42", 1, 2, 3, ())


# ---------------------------------------------------------------- encoder


@pytest.mark.parametrize(
    ("record", "path"),
    [
        (IfCounters(if_index=-1), "if_index"),
        (IfCounters(if_speed=2**64), "if_speed"),
        (SampledEthernet(src_mac="00:11"), "src_mac"),
        (HostDescr(uuid="not-a-uuid"), "uuid"),
        (HostDescr(hostname="h" * 65), "hostname"),
        (HttpRequest(uri="/" * 256), "uri"),
        (HttpRequest(status=2**31), "status"),
        (HostCpu(load_one=1e39), "load_one"),
        (HostCpu(cpu_guest=None), "cpu_guest"),
        (HostCpu(cpu_steal=None, cpu_guest=None), "cpu_guest_nice"),  # half a tail
        (SampledHeader(header="text"), "header"),  # type: ignore[arg-type]
    ],
)
def test_encode_errors_name_the_field(record: object, path: str) -> None:
    flow = record.namespace == "flow"  # type: ignore[attr-defined]
    sample = (FlowSample(records=(ExtendedSwitch(), record)) if flow
              else CountersSample(records=(IfCounters(), record)))
    with pytest.raises(EncodeError) as info:
        encode_datagram(Datagram(samples=(CountersSample(), sample)))
    assert info.value.path == (f"datagram/samples[1]:{sample.sflow_name}/records[1]:"
                               f"{record.sflow_name}/{path}")  # type: ignore[attr-defined]


def test_a_record_of_another_namespace_is_refused() -> None:
    with pytest.raises(EncodeError) as info:
        encode_sample(FlowSample(records=(HostCpu(),)))
    assert info.value.path == "sample[0]:flow_sample/records[0]:host_cpu"
    assert "not a flow element" in info.value.message


def test_a_bad_agent_address_is_refused() -> None:
    with pytest.raises(EncodeError) as info:
        encode_datagram(Datagram(agent_address="10.0.0.300"))
    assert info.value.path == "datagram/agent_address"


def test_exporter_refuses_a_sample_larger_than_a_datagram() -> None:
    sent: list[bytes] = []
    exporter = Exporter("10.0.0.1", sent.append, max_datagram=200)
    with pytest.raises(EncodeError):
        exporter.add(FlowSample(records=(SampledHeader(header=bytes(200)),)), 0)
    assert sent == []
