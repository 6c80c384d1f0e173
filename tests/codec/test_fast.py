"""The collector's fast path gives what decode_datagram + decode_header give, and fails alike."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sflowlab.agent_sim.packets import ICMP, TCP, UDP, Packet
from sflowlab.codec import (
    INTERNAL,
    CountersSample,
    CountersSampleExpanded,
    Datagram,
    DecodeError,
    DiscardedPacket,
    ExtendedRouter,
    ExtendedSwitch,
    FlowSample,
    FlowSampleExpanded,
    HostCpu,
    HostDescr,
    IfCounters,
    Raw,
    SampledHeader,
    VirtNetIo,
    _compile,
    decode_datagram,
    encode_datagram,
    fast,
)
from sflowlab.codec.fast import (
    CollectorDatagram,
    CounterSampleView,
    FlowSampleView,
    decode_for_collector,
)
from sflowlab.codec.headers import decode_header
from sflowlab.codec.samples import DROP_REASONS

# ---------------------------------------------------------------- the reference reading


def _plain(records: tuple[Any, ...]) -> tuple[Any, ...]:
    """Raw errors name their path differently in the two readers: compare only that they failed."""
    return tuple(r._replace(error=bool(r.error)) if type(r) is Raw else r for r in records)


def _internal(value: int) -> int:
    return INTERNAL if value == 0xFFFFFFFF else value


def reference(data: bytes) -> CollectorDatagram:
    """What the fast path must return, read from decode_datagram's full objects."""
    dg = decode_datagram(data)
    flows: list[FlowSampleView] = []
    counters: list[CounterSampleView] = []
    bad = 0
    for s in dg.samples:
        if type(s) in (CountersSample, CountersSampleExpanded):
            counters.append(CounterSampleView(s.source_id_type, s.source_id_index,
                                              s.sequence_number, _plain(s.records)))
            continue
        if type(s) not in (FlowSample, FlowSampleExpanded, DiscardedPacket):
            bad += 1
            continue
        head = next((r for r in s.records if type(r) is SampledHeader), SampledHeader(0, 0, 0))
        switch = next((r for r in s.records if type(r) is ExtendedSwitch), None)
        if type(s) is DiscardedPacket:
            rate, pool, inp, out_format, out = 1, 0, s.input, 0, s.output
        else:
            rate, pool = s.sampling_rate, s.sample_pool
            inp, out_format, out = s.input_value, s.output_format, s.output_value
        flows.append(FlowSampleView(
            s.source_id_type, s.source_id_index, s.sequence_number, rate, pool, s.drops,
            _internal(inp), _internal(out), out_format, head.header_protocol,
            head.frame_length, head.stripped, head.header,
            switch and switch.src_vlan, switch and switch.dst_vlan,
            type(s) is DiscardedPacket, s.reason if type(s) is DiscardedPacket else None,
        ))
    return CollectorDatagram(dg.agent_address, dg.sub_agent_id, dg.sequence_number,
                             dg.uptime_ms, flows, counters, bad)


def reference_keys(view: FlowSampleView) -> dict[str, int | str]:
    keys = decode_header(view.header_protocol, view.header)
    keys["inputifindex"] = view.input
    keys["outputifindex"] = {1: "discard", 2: "multiple"}.get(view.output_format, view.output)
    if "vlan" not in keys and view.src_vlan is not None and view.src_vlan < 4096:
        keys["vlan"] = view.src_vlan
    if view.reason is not None:
        keys["reason"] = DROP_REASONS.get(view.reason, str(view.reason))
    return keys


def assert_same(data: bytes) -> CollectorDatagram:
    """The fast path equals the reference, or both raise DecodeError; returns the fast result."""
    try:
        expected = reference(data)
    except DecodeError:
        with pytest.raises(DecodeError):
            decode_for_collector(data)
        return CollectorDatagram("", 0, 0, 0, [], [], 0)
    got = decode_for_collector(data)
    got = got._replace(counter_samples=[c._replace(records=_plain(c.records))
                                        for c in got.counter_samples])
    # repr too: a damaged float word can decode to NaN, which equals no NaN, not even its own
    assert got == expected or repr(got) == repr(expected)
    for view in got.flow_samples:
        assert list(view.keys().items()) == list(reference_keys(view).items())  # order too
    return got


# ---------------------------------------------------------------- generated datagrams

U32 = st.integers(0, 2**32 - 1)
PORT = st.integers(0, 65535)
MACS = st.sampled_from(["00:0c:29:a1:b2:c3", "02:42:ac:11:00:02", "ff:ff:ff:ff:ff:ff"])


@st.composite
def packet_headers(draw: st.DrawFn) -> tuple[int, bytes]:
    v6 = draw(st.booleans())
    src, dst = ("2001:db8::1", "fd00::2") if v6 else ("10.0.0.1", "172.16.5.4")
    packet = Packet(
        draw(MACS), draw(MACS), src, dst, draw(st.sampled_from([TCP, UDP, ICMP, 47])),
        draw(PORT), draw(PORT), draw(st.integers(0, 255)), draw(st.integers(64, 1500)),
        draw(st.none() | st.integers(0, 4095)), draw(st.none() | st.integers(0, 4095)),
        draw(st.integers(0, 255)), draw(st.integers(0, 255)),
    )
    raw_ip = draw(st.booleans())
    protocol = (12 if v6 else 11) if raw_ip else 1
    return protocol, packet.header(draw(st.just(128) | st.integers(0, 128)), raw_ip=raw_ip)


def sampled_headers() -> st.SearchStrategy[SampledHeader]:
    return st.one_of(
        packet_headers().map(lambda h: SampledHeader(h[0], len(h[1]) + 4, 4, h[1])),
        st.builds(SampledHeader, st.sampled_from([1, 11, 12, 13]), U32, U32,
                  st.binary(max_size=64)),
    )


FLOW_RECORDS = st.one_of(
    sampled_headers(),
    st.builds(ExtendedSwitch, U32, U32, U32, U32),
    st.builds(ExtendedRouter, st.sampled_from(["10.1.1.1", "2001:db8::9", ""]), U32, U32),
    st.builds(Raw, st.sampled_from([2000, 4242, (9 << 12) | 1]),
              st.integers(0, 5).map(lambda n: bytes(range(4 * n)))),
)
SWITCH_LAYOUT = st.tuples(sampled_headers(), st.builds(ExtendedSwitch, U32, U32, U32, U32))
RECORDS = st.one_of(SWITCH_LAYOUT, st.lists(FLOW_RECORDS, max_size=4).map(tuple))
PORT_VALUE = st.one_of(U32, st.sampled_from([0, INTERNAL, 0xFFFFFFFF, 0x40000000 | 258,
                                             0x80000000 | 3, 0x80000000]))

SAMPLES = st.one_of(
    st.builds(FlowSample, U32, U32, U32, U32, U32, PORT_VALUE, PORT_VALUE, RECORDS),
    st.builds(FlowSampleExpanded, U32, U32, U32, U32, U32, U32, st.integers(0, 2), PORT_VALUE,
              st.integers(0, 2), PORT_VALUE, RECORDS),
    st.builds(DiscardedPacket, U32, U32, U32, U32, PORT_VALUE, PORT_VALUE,
              st.sampled_from([256, 258, 3, 999]), RECORDS),
    st.builds(lambda seq, i: CountersSample(seq, i, (IfCounters(if_index=i),)), U32, U32),
    st.builds(lambda seq, i, name: CountersSampleExpanded(seq, 3, i, (
        VirtNetIo(i, 2, 3, 4, 5, 6, 7, 8), HostDescr(name), Raw(4321, b"abcd"), HostCpu())),
        U32, U32, st.text(max_size=10)),
    st.builds(Raw, st.sampled_from([6, 77, (1 << 12) | 1]), st.just(b"\0" * 8)),
)
DATAGRAMS = st.builds(
    lambda addr, sub, seq, up, samples: encode_datagram(Datagram(5, addr, sub, seq, up,
                                                                 tuple(samples))),
    st.sampled_from(["192.0.2.1", "2001:db8::7", ""]), U32, U32, U32,
    st.lists(SAMPLES, max_size=6),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DATAGRAMS)
def test_generated_datagrams_match_the_full_decoder(data: bytes) -> None:
    assert_same(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DATAGRAMS, st.data())
def test_damaged_datagrams_match_or_fail_alike(data: bytes, draw: st.DataObject) -> None:
    """Overwrite a word (often a length or count) or cut the datagram anywhere."""
    damaged = bytearray(data)
    if draw.draw(st.booleans()):
        at = draw.draw(st.integers(0, max(len(data) // 4 - 1, 0))) * 4
        value = draw.draw(st.one_of(st.integers(0, 300), U32))
        damaged[at : at + 4] = struct.pack(">I", value)[: len(damaged) - at]
    else:
        del damaged[draw.draw(st.integers(0, len(data))):]
    assert_same(bytes(damaged))


def _load_bench_capture() -> Any:
    path = Path(__file__).resolve().parents[2] / "bench" / "capture.py"
    spec = importlib.util.spec_from_file_location("bench_capture", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_capture_matches_the_full_decoder() -> None:
    capture = _load_bench_capture().make_capture(60, seed=7)
    flows = counters = 0
    for data in capture:
        got = assert_same(data)
        flows += len(got.flow_samples)
        counters += len(got.counter_samples)
        assert got.bad_samples == 0
    assert flows > 200 and counters > 40


@pytest.mark.parametrize("kind", ["flow_samples", "counter_samples"])
def test_every_word_of_a_real_datagram_damaged(kind: str) -> None:
    """Each 4-byte word of a switch (or host) datagram set to values that break layouts."""
    capture = _load_bench_capture().make_capture(20, seed=3)
    data = next(d for d in capture if getattr(decode_for_collector(d), kind))
    for at in range(0, len(data), 4):
        (word,) = struct.unpack_from(">I", data, at)
        for value in {0, 1, 16, word + 4, word - 4 & 0xFFFFFFFF, 0xFFFFFFFF}:
            assert_same(data[:at] + struct.pack(">I", value) + data[at + 4 :])


# ---------------------------------------------------------------- exact values


def one_sample(sample: Any, agent: str = "192.0.2.1") -> CollectorDatagram:
    return decode_for_collector(encode_datagram(Datagram(5, agent, 3, 42, 9000, (sample,))))


HEADER = Packet("00:0c:29:a1:b2:c3", "02:42:ac:11:00:02", "10.0.0.1", "10.0.0.2", TCP, 1234,
                80, 0x02, length=300).header(128)


def test_compact_flow_sample_fields_and_keys() -> None:
    dg = one_sample(FlowSample(7, (0 << 24) | 12, 400, 123456, 2, 5, 0x40000000 | 258, (
        ExtendedSwitch(20, 1, 30, 2), SampledHeader(1, 304, 4, HEADER))))
    assert (dg.agent_address, dg.sub_agent_id, dg.sequence_number, dg.uptime_ms) == (
        "192.0.2.1", 3, 42, 9000)
    (view,) = dg.flow_samples
    assert view == FlowSampleView(0, 12, 7, 400, 123456, 2, 5, 258, 1, 1, 304, 4, HEADER, 20,
                                  30, False, None)
    keys = view.keys()
    assert keys["outputifindex"] == "discard" and keys["inputifindex"] == 5
    assert keys["vlan"] == 20  # from extended_switch: the header is untagged
    assert keys["tcpflags"] == "000000010" and keys["stack"] == "eth.ip.tcp"
    assert view.keys() is keys  # cached


def test_vlan_from_the_header_wins_and_multiple_outputs() -> None:
    tagged = Packet("00:0c:29:a1:b2:c3", "02:42:ac:11:00:02", "10.0.0.1", "10.0.0.2", UDP, 1,
                    2, vlan=99).header(128)
    dg = one_sample(FlowSample(1, 4, 1, 1, 0, INTERNAL, 0x80000000 | 3, (
        SampledHeader(1, 200, 4, tagged), ExtendedSwitch(20, 0, 20, 0))))
    keys = dg.flow_samples[0].keys()
    assert keys["vlan"] == 99 and keys["outputifindex"] == "multiple"
    assert keys["inputifindex"] == INTERNAL


def test_unknown_switch_vlan_is_not_a_key() -> None:
    dg = one_sample(FlowSample(1, 4, 1, 1, 0, 2, 3, (
        SampledHeader(1, 304, 4, HEADER), ExtendedSwitch(0xFFFFFFFF, 0, 0xFFFFFFFF, 0))))
    (view,) = dg.flow_samples
    keys = view.keys()
    assert view.src_vlan == 0xFFFFFFFF and "vlan" not in keys


def test_expanded_sample_reports_all_ones_as_internal() -> None:
    dg = one_sample(FlowSampleExpanded(1, 3, 100123, 10, 10, 0, 0, 0xFFFFFFFF, 0, 8, (
        SampledHeader(11, 100, 0, HEADER[14:]),)), agent="2001:db8::1")
    (view,) = dg.flow_samples
    assert (view.source_id_type, view.source_id_index, view.input, view.output) == (
        3, 100123, INTERNAL, 8)
    assert dg.agent_address == "2001:db8::1"
    assert view.keys()["stack"] == "ip.tcp" and view.src_vlan is None


def test_discarded_packet_has_reason_and_no_rate() -> None:
    dg = one_sample(DiscardedPacket(5, 0, 7, 11, 3, 0, 258, (SampledHeader(1, 300, 4, HEADER),)))
    (view,) = dg.flow_samples
    assert view.discarded and view.reason == 258
    assert (view.sampling_rate, view.sample_pool, view.output_format) == (1, 0, 0)
    assert view.keys()["reason"] == "acl" and view.keys()["outputifindex"] == 0


def test_flow_sample_without_header_has_only_sample_keys() -> None:
    (view,) = one_sample(FlowSample(1, 4, 1, 1, 0, 2, 3, ())).flow_samples
    assert (view.header, view.frame_length, view.header_protocol) == (b"", 0, 0)
    assert view.keys() == {"inputifindex": 2, "outputifindex": 3}


def test_counter_samples_carry_decoded_records() -> None:
    records = (VirtNetIo(1, 2, 3, 4, 5, 6, 7, 8), HostDescr("web.1", machine_type=3),
               Raw(4321, b"abcd"))
    dg = one_sample(CountersSampleExpanded(9, 3, 100001, records))
    assert dg.counter_samples == [CounterSampleView(3, 100001, 9, records)]
    assert dg.flow_samples == [] and dg.bad_samples == 0


def test_descriptive_records_are_decoded_once_and_the_memo_is_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def datagram(name: str, octets: int) -> bytes:
        return encode_datagram(Datagram(5, "192.0.2.1", 0, 1, 2, (CountersSampleExpanded(
            1, 3, 100001, (VirtNetIo(octets), HostDescr(name, machine_type=3))),)))

    first = decode_for_collector(datagram("web.1", 10)).counter_samples[0].records
    again = decode_for_collector(datagram("web.1", 20)).counter_samples[0].records
    assert again[0] == VirtNetIo(20) and again[1] == HostDescr("web.1", machine_type=3)
    assert again[1] is first[1]  # remembered, not decoded again
    monkeypatch.setattr(_compile, "MEMO_LIMIT", 3)
    for i in range(10):
        assert decode_for_collector(datagram(f"c{i}", i)).counter_samples[0].records[1] == (
            HostDescr(f"c{i}", machine_type=3))
        assert len(fast._described[HostDescr.data_format]) <= 3


# ---------------------------------------------------------------- errors


GOOD = encode_datagram(Datagram(5, "192.0.2.1", 0, 1, 2, (
    FlowSample(1, 4, 1, 1, 0, 2, 3, (SampledHeader(1, 304, 4, HEADER),)),
    CountersSample(1, 4, (IfCounters(4),)))))


@pytest.mark.parametrize(("data", "message"), [
    (b"", "shorter than its version word"),
    (struct.pack(">I", 4) + GOOD[4:], "unsupported sFlow version 4"),
    (GOOD[:4] + struct.pack(">I", 3) + GOOD[8:], "unknown address type 3"),
    (GOOD[:20], "runs past the end"),
    (GOOD[:24] + struct.pack(">I", 1000) + GOOD[28:], "list of 1000"),
    (GOOD[:-4], "runs past the end of its container"),
])
def test_framing_errors_raise_decode_error(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_for_collector(data)
    with pytest.raises(DecodeError):
        decode_datagram(data)


def test_bad_and_unknown_samples_are_counted_and_neighbours_kept() -> None:
    broken_flow = struct.pack(">II", 1, 8) + bytes(8)  # too short for a flow sample
    unknown = struct.pack(">II", 77, 4) + bytes(4)
    broken_counters = struct.pack(">II", 2, 12) + struct.pack(">III", 1, 4, 5)  # 5 records, none
    body = GOOD[28:] + broken_flow + unknown + broken_counters
    data = GOOD[:24] + struct.pack(">I", 5) + body
    dg = decode_for_collector(data)
    assert dg.bad_samples == 3
    assert len(dg.flow_samples) == 1 and len(dg.counter_samples) == 1
    assert_same(data)


def test_trailing_bytes_are_ignored_and_bytearray_accepted() -> None:
    assert decode_for_collector(bytearray(GOOD + bytes(12))) == decode_for_collector(GOOD)
