"""The C walk (``sflowlab.codec._walk``) gives exactly what the pure-Python walk gives.

Differential: each input goes through ``fast.decode_for_collector`` (the accelerator's
``usual_datagram``, or ``_decode`` with its ``samples``) and ``fast.decode_for_collector_py``,
and through ``_walk.samples`` and ``fast._samples_py`` after an IPv4 header. The results are
compared whole: every field with its type, every ``keys()`` dict with its key order, errors by
type, message, offset and path. Skipped when the extension is not built (or
``SFLOWLAB_PURE_PYTHON=1``); ``tests/test_accel.py`` makes CI insist on it being built.
"""

from __future__ import annotations

import importlib.util
import random
import struct
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sflowlab.agent_sim.packets import ICMP, ICMPV6, TCP, UDP, Packet
from sflowlab.agent_sim.simulation import Lab, LabSpec
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.codec import (
    INTERNAL,
    CodecError,
    CountersSample,
    CountersSampleExpanded,
    Datagram,
    DiscardedPacket,
    ExtendedRouter,
    ExtendedSwitch,
    FlowSample,
    FlowSampleExpanded,
    HostDescr,
    IfCounters,
    Raw,
    SampledHeader,
    VirtNetIo,
    encode_datagram,
    fast,
)
from sflowlab.codec.fast import CollectorDatagram, CounterSampleView, FlowSampleView
from sflowlab.codec.headers import ETH_IP4_L4, eth_ip4_keys

from .strategies import datagram_wire

_walk = fast._walk
pytestmark = pytest.mark.skipif(
    _walk is None, reason="C accelerator sflowlab.codec._walk not built (python setup.py "
    "build_ext --inplace) or switched off by SFLOWLAB_PURE_PYTHON=1")

GOLDEN = Path(__file__).parent / "golden"
BENCH = Path(__file__).resolve().parents[2] / "bench"
_USUAL = struct.Struct(">" + ETH_IP4_L4)
_SAMPLES_AT = {1: 28, 2: 40, 0: 24}  # sample list offset by agent address type

# ---------------------------------------------------------------- comparing


def _outcome(decode: Callable[..., CollectorDatagram], *args: Any) -> Any:
    try:
        return decode(*args)
    except Exception as e:  # any: the exception itself is compared
        return e


def _same_value(got: Any, want: Any, what: str) -> None:
    assert type(got) is type(want), f"{what}: {type(got)} != {type(want)}"
    assert got == want, f"{what}: {got!r} != {want!r}"


def _is_usual(view: FlowSampleView) -> bool:
    """The header is the layout whose keys the C walk builds at decode (eth_ip4_keys's)."""
    return (view.header_protocol == 1 and len(view.header) >= _USUAL.size
            and eth_ip4_keys(*_USUAL.unpack_from(view.header)) is not None)


def _same_flow(got: FlowSampleView, want: FlowSampleView, what: str) -> None:
    assert type(got) is FlowSampleView and type(want) is FlowSampleView
    assert len(got) == len(want) == len(FlowSampleView._fields)
    for name, a, b in zip(FlowSampleView._fields, got, want, strict=True):
        _same_value(a, b, f"{what}.{name}")
    preset = vars(got).get("_keys")
    assert (preset is not None) == _is_usual(got), f"{what}: keys preset {preset is not None}"
    keys, expected = got.keys(), want.keys()
    assert type(keys) is dict
    assert list(keys.items()) == list(expected.items()), what  # values and key order
    for key, value in keys.items():
        _same_value(value, expected[key], f"{what}.keys()[{key!r}]")
    assert got.keys() is keys  # remembered


def _same_counters(got: CounterSampleView, want: CounterSampleView, what: str) -> None:
    assert type(got) is CounterSampleView and type(want) is CounterSampleView
    for name, a, b in zip(CounterSampleView._fields, got, want, strict=True):
        _same_value(a, b, f"{what}.{name}")


def assert_same_outcome(got: Any, want: Any) -> None:
    """Two results of a decode: equal datagrams, or the same error."""
    if isinstance(want, BaseException) or isinstance(got, BaseException):
        assert type(got) is type(want), f"{got!r} != {want!r}"
        assert got.args == want.args
        assert str(got) == str(want)
        if isinstance(want, CodecError):
            assert (got.message, got.offset, got.path) == (want.message, want.offset, want.path)
        assert type(got.__cause__) is type(want.__cause__)
        return
    assert type(got) is CollectorDatagram and type(want) is CollectorDatagram
    for name in ("agent_address", "sub_agent_id", "sequence_number", "uptime_ms",
                 "bad_samples"):
        _same_value(getattr(got, name), getattr(want, name), name)
    _same_value(len(got.flow_samples), len(want.flow_samples), "len(flow_samples)")
    assert type(got.flow_samples) is list and type(got.counter_samples) is list
    for i, (a, b) in enumerate(zip(got.flow_samples, want.flow_samples, strict=True)):
        _same_flow(a, b, f"flow_samples[{i}]")
    _same_value(len(got.counter_samples), len(want.counter_samples), "len(counter_samples)")
    for i, (c, d) in enumerate(zip(got.counter_samples, want.counter_samples, strict=True)):
        _same_counters(c, d, f"counter_samples[{i}]")


def check(data: bytes) -> Any:
    """Both implementations agree on ``data``, through both entry points; returns the result."""
    want = _outcome(fast.decode_for_collector_py, data)
    got = _outcome(fast.decode_for_collector, data)
    assert_same_outcome(got, want)
    if len(data) >= 28 and data[4:8] == b"\0\0\0\1":  # the walk alone, after an IPv4 header
        sub, seq, uptime, count = struct.unpack_from(">4I", data, 12)
        args = (data, 28, len(data), count, "192.0.2.9", sub, seq, uptime)
        assert_same_outcome(_outcome(_walk.samples, *args), _outcome(fast._samples_py, *args))
    return want


def check_all(datagrams: list[bytes]) -> list[Any]:
    return [check(d) for d in datagrams]


# ---------------------------------------------------------------- inputs


MAC_A, MAC_B = "00:0c:29:a1:b2:c3", "02:42:ac:11:00:02"


def packet(**changes: Any) -> Packet:
    fields: dict[str, Any] = {
        "src_mac": MAC_A, "dst_mac": MAC_B, "src_ip": "10.0.0.1", "dst_ip": "192.168.200.254",
        "protocol": TCP, "src_port": 40000, "dst_port": 443, "tcp_flags": 0x18,
        "length": 1000, "tos": 0x2B, "ttl": 63,
    }
    fields.update(changes)
    return Packet(**fields)


def _patched(data: bytes, at: int, raw: bytes) -> bytes:
    return data[:at] + raw + data[at + len(raw):]


def _ip_options(frame: bytes) -> bytes:
    """IHL 6: four bytes of options (NOPs) after the 20-byte IPv4 header."""
    return _patched(frame[:34], 14, b"\x46") + b"\x01\x01\x01\x01" + frame[34:]


V6 = {"src_ip": "2001:db8::1", "dst_ip": "fd00::2"}
TCP_FRAME = packet().header(128)
HEADERS: dict[str, tuple[int, bytes]] = {
    "tcp": (1, TCP_FRAME),
    "tcp_syn_ns": (1, _patched(packet(tcp_flags=0x02).header(128), 46, b"\x51")),
    "udp": (1, packet(protocol=UDP, dst_port=53, tos=0).header(128)),
    "tcp_48_bytes": (1, TCP_FRAME[:48]),
    "tcp_47_bytes": (1, TCP_FRAME[:47]),
    "tcp_61_bytes": (1, TCP_FRAME[:61]),
    "udp_38_bytes": (1, packet(protocol=UDP).header(38)),
    "cut_34": (1, TCP_FRAME[:34]),
    "cut_14": (1, TCP_FRAME[:14]),
    "cut_13": (1, TCP_FRAME[:13]),
    "cut_1": (1, TCP_FRAME[:1]),
    "empty": (1, b""),
    "icmp": (1, packet(protocol=ICMP).header(128)),
    "gre": (1, packet(protocol=47).header(128)),
    "vlan": (1, packet(vlan=99).header(128)),
    "qinq": (1, packet(vlan=99, outer_vlan=7).header(128)),
    "ipv6_tcp": (1, packet(**V6).header(128)),
    "ipv6_udp": (1, packet(protocol=UDP, **V6).header(128)),
    "ipv6_icmp6": (1, packet(protocol=ICMPV6, **V6).header(128)),
    "ipv6_vlan": (1, packet(vlan=5, **V6).header(128)),
    "raw_ipv4": (11, packet().header(128, raw_ip=True)),
    "raw_ipv6": (12, packet(protocol=UDP, **V6).header(128, raw_ip=True)),
    "raw_ipv4_said_ipv6": (12, packet().header(128, raw_ip=True)),
    "raw_empty": (11, b""),
    "first_fragment_more": (1, _patched(TCP_FRAME, 20, b"\x20\x00")),
    "later_fragment": (1, _patched(TCP_FRAME, 20, b"\x20\x10")),
    "last_fragment": (1, _patched(TCP_FRAME, 20, b"\x01\x00")),
    "fragment_at_32k": (1, _patched(TCP_FRAME, 20, b"\x10\x00")),
    "dont_fragment_evil": (1, _patched(TCP_FRAME, 20, b"\xe0\x00")),
    "ip_options": (1, _ip_options(TCP_FRAME)),
    "ip_version_6_in_ipv4": (1, _patched(TCP_FRAME, 14, b"\x65")),
    "arp": (1, _patched(TCP_FRAME, 12, b"\x08\x06")),
    "llc_length": (1, _patched(TCP_FRAME, 12, b"\x00\x40")),
    "protocol_2_usual_bytes": (2, TCP_FRAME),
    "protocol_13": (13, TCP_FRAME),
    "garbage": (1, bytes(range(64))),
    "ones": (1, b"\xff" * 80),
}


def _sample_kinds(protocol: int, header: bytes, i: int) -> list[Any]:
    """Every sample layout the walk tells apart, around one sampled header."""
    hdr = SampledHeader(protocol, len(header) + 4 + i, 4, header)
    other = SampledHeader(1, 90, 4, HEADERS["udp"][1])
    return [
        FlowSample(i, (0 << 24) | 7, 400, 1000 + i, 0, 3, 5, (hdr, ExtendedSwitch(20, 1, 30, 2))),
        FlowSample(i + 1, (2 << 24) | 0xABCDEF, 1, 2, 3, INTERNAL, 0x40000000 | 258,
                   (ExtendedSwitch(4095, 0, 4095, 0), hdr)),
        FlowSample(i + 2, 9, 1 << 31, 0xFFFFFFFF, 1, 0xFFFFFFFF, 0x80000000 | 3, (hdr,)),
        FlowSample(i + 3, 9, 64, 5, 0, 1, 0xC0000005, (
            ExtendedRouter("10.1.1.1", 24, 16), hdr, Raw(4242, b"abcd"),
            ExtendedSwitch(4096, 0, 7, 0))),
        FlowSample(i + 4, 9, 64, 5, 0, 1, 2, (hdr, other, ExtendedSwitch(0xFFFFFFFF, 0, 0, 0),
                                              ExtendedSwitch(11, 0, 12, 0))),
        FlowSample(i + 5, 9, 64, 5, 0, 1, 2, ()),
        FlowSampleExpanded(i, 3, 100123, 10, 10, 0, 0, 0xFFFFFFFF, 0, 0xFFFFFFFF,
                           (hdr, ExtendedSwitch(4095, 0, 1, 0))),
        FlowSampleExpanded(i, 0, 5, 10, 10, 0, 1, 7, 1, 258, (hdr,)),
        FlowSampleExpanded(i, 0, 5, 10, 10, 0, 0, INTERNAL, 2, 4, (Raw(2000, b""), hdr)),
        FlowSampleExpanded(i, 0, 5, 10, 10, 0, 0, 8, 7, 9, (hdr, ExtendedSwitch(20, 0, 20, 0))),
        DiscardedPacket(i, 0, 7, 11, 3, 0, 258, (hdr, ExtendedSwitch(10, 0, 10, 0))),
        DiscardedPacket(i, 0, 7, 11, 0xFFFFFFFF, 0xFFFFFFFF, 999, (hdr,)),
        DiscardedPacket(i, 2, 1, 0, 1, 2, 3, (ExtendedSwitch(4096, 0, 1, 0), hdr)),
        CountersSample(i, 4, (IfCounters(4),)),
        Raw(77, b"\0" * 8),
    ]


AGENTS = ("192.0.2.1", "2001:db8::7", "")


@cache
def matrix() -> dict[str, bytes]:
    """One datagram per header variant, with every sample layout; agents rotate."""
    return {name: encode_datagram(Datagram(5, AGENTS[i % 3], i, 1000 + i, 60000 + i,
                                           tuple(_sample_kinds(protocol, header, i))))
            for i, (name, (protocol, header)) in enumerate(HEADERS.items())}


def _load_bench_capture() -> Any:
    spec = importlib.util.spec_from_file_location("bench_capture", BENCH / "capture.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def bench_capture() -> list[bytes]:
    return list(_load_bench_capture().make_capture(120, seed=11))


@cache
def bench_stream() -> list[bytes]:
    """Like ``bench_collector.make_stream``: switches' flow datagrams and hosts' counters."""
    capture = _load_bench_capture()
    from sflowlab.codec import Exporter

    rng = random.Random(7)
    out: list[bytes] = []
    switches = [Exporter(f"192.168.0.{i + 1}", out.append) for i in range(3)]
    hosts = [Exporter(f"192.168.1.{i + 1}", out.append, sub_agent_id=0) for i in range(3)]
    flows = capture.flow_samples(rng)
    for r in range(4):
        for exp in switches:
            for _ in range(15):
                exp.add(next(flows), 1000 * r)
            exp.flush(1000 * r)
        for h, exp in enumerate(hosts):
            exp.add_all(capture.host_samples(rng, h + 1, r), 1000 * r)
            exp.flush(1000 * r)
    return out


@cache
def lab_datagrams() -> list[bytes]:
    """The agent simulators: hsflowd hosts with containers and a leaf-spine fabric."""
    sink = MemorySink()
    lab = Lab(LabSpec(seed=5, hosts=3, containers=2, switches=4, sampling=50, polling_s=2.0),
              sink)
    for i in range(1, 13):
        lab.tick(i * 0.5)
    return [data for _, _, data in sink.drain()]


def golden() -> dict[str, bytes]:
    def load(path: Path) -> bytes:
        lines = path.read_text().splitlines()
        return bytes.fromhex("".join("".join(line.split("#", 1)[0].split()) for line in lines))

    return {p.name: load(p) for p in sorted(GOLDEN.glob("*.hex"))}


@cache
def valid_pool() -> list[bytes]:
    """Valid datagrams of every origin, for damage."""
    return [*matrix().values(), *golden().values(), *bench_capture()[:20], *bench_stream()[:10],
            *lab_datagrams()[::4]]


# ---------------------------------------------------------------- whole datagrams


@pytest.mark.parametrize("name", list(HEADERS))
def test_header_variants_in_every_sample_layout(name: str) -> None:
    data = matrix()[name]
    dg = check(data)
    assert dg.bad_samples == 1 and len(dg.counter_samples) == 1 and len(dg.flow_samples) == 13
    # and alone, as the switch's usual sample (216 bytes when the header has 128)
    protocol, header = HEADERS[name]
    check(encode_datagram(Datagram(5, "192.0.2.1", 0, 1, 2, (FlowSample(
        1, 4, 400, 9, 0, 1, 2, (SampledHeader(protocol, 300, 4, header),
                                ExtendedSwitch(20, 0, 20, 0))),) * 3)))


def test_keys_are_built_in_c_for_usual_headers_of_any_layout() -> None:
    """The usual header's keys are ready at decode in every layout (they are compared with
    the pure-Python keys() in check); any other header's are parsed on first use."""
    usual = fast.decode_for_collector(matrix()["tcp"]).flow_samples
    assert all("_keys" in vars(v) for v in usual if v.header)
    other = fast.decode_for_collector(matrix()["vlan"]).flow_samples
    assert not any("_keys" in vars(v) for v in other)
    keys = usual[0].keys()
    assert list(keys)[-3:] == ["inputifindex", "outputifindex", "vlan"]
    assert keys["macsource"] == "000C29A1B2C3" and keys["ipdestination"] == "192.168.200.254"
    discarded = [v for v in usual if v.discarded]
    assert [v.keys()["reason"] for v in discarded] == ["acl", "999", "3"]


def test_golden_datagrams() -> None:
    for data in golden().values():
        check(data)


def test_benchmark_capture_and_stream() -> None:
    results = check_all(bench_capture() + bench_stream())
    assert sum(len(r.flow_samples) for r in results) > 400
    assert sum(len(r.counter_samples) for r in results) > 100


def test_agent_simulators() -> None:
    results = check_all(lab_datagrams())
    assert sum(len(r.flow_samples) for r in results) > 100
    assert sum(len(r.counter_samples) for r in results) > 20


def test_bytearray_and_memoryview_input() -> None:
    data = matrix()["tcp"]
    for wrapped in (bytearray(data), memoryview(data)):
        assert_same_outcome(fast.decode_for_collector(wrapped),
                            fast.decode_for_collector_py(wrapped))


def test_counter_samples_go_through_python() -> None:
    records = (VirtNetIo(1, 2, 3, 4, 5, 6, 7, 8), HostDescr("web.1", machine_type=3),
               Raw(4321, b"abcd"))
    data = encode_datagram(Datagram(5, "192.0.2.1", 0, 1, 2, (
        CountersSampleExpanded(9, 3, 100001, records), CountersSample(1, 2, (IfCounters(2),)))))
    assert check(data).counter_samples[0].records == records


# ---------------------------------------------------------------- damaged datagrams


def _truncation_pool() -> Iterator[bytes]:
    matrix_ = matrix()
    yield from (matrix_[name] for name in ("tcp", "ipv6_tcp", "later_fragment"))
    yield from golden().values()
    capture = bench_capture()
    yield next(d for d in capture if fast.decode_for_collector(d).flow_samples)
    yield next(d for d in capture if fast.decode_for_collector(d).counter_samples)
    yield from lab_datagrams()[:3]


def test_truncated_at_every_length() -> None:
    for data in _truncation_pool():
        for cut in range(len(data)):
            check(data[:cut])


def test_sample_bodies_cut_at_every_length() -> None:
    """A sample whose own length says it ends early (then a good sample): cut in its fields,
    in a record header, in a record."""
    good = encode_datagram(Datagram(5, "192.0.2.1", 0, 1, 2, _sample_kinds(*HEADERS["tcp"],
                                                                         1)[:1]))[28:]
    for name in ("tcp", "udp_38_bytes"):
        for sample in _sample_kinds(*HEADERS[name], 3):
            encoded = encode_datagram(Datagram(5, "192.0.2.1", 0, 1, 2, (sample,)))[28:]
            (tag,) = struct.unpack_from(">I", encoded)
            for cut in range(len(encoded) - 7):
                body = encoded[8 : 8 + cut]
                check(b"\0\0\0\5\0\0\0\1\xc0\0\2\1" + struct.pack(">4I", 0, 1, 2, 2)
                      + struct.pack(">II", tag, cut) + body + good)


def test_every_word_set_to_values_that_break_layouts() -> None:
    """Each 4-byte word (often a length, a count or a tag) set to edge values: a run of
    switch samples of the usual 216 bytes, and one sample of each kind around other headers."""
    switch = [encode_datagram(Datagram(5, "192.0.2.1", 0, 1, 2, tuple(_sample_kinds(
        *HEADERS["tcp"], 1)[:1] * 3)))]
    kinds = [encode_datagram(Datagram(5, agent, 0, 1, 2, tuple(
        s for i, s in enumerate(_sample_kinds(*HEADERS[name], 1)) if i in (3, 6, 11, 14))))
        for agent, name in (("192.0.2.1", "udp_38_bytes"), ("", "tcp_48_bytes"))]
    for data in switch + kinds:
        for at in range(0, len(data) - 3, 4):
            (word,) = struct.unpack_from(">I", data, at)
            for value in {0, 1, 8, 16, 48, 0x7FFFFFFF, 0xFFFFFFFF, word + 4 & 0xFFFFFFFF,
                          word - 4 & 0xFFFFFFFF}:
                check(data[:at] + struct.pack(">I", value) + data[at + 4:])


SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(st.data())
def test_random_byte_flips(draw: st.DataObject) -> None:
    data = bytearray(draw.draw(st.sampled_from(valid_pool())))
    for _ in range(draw.draw(st.integers(1, 8))):
        at = draw.draw(st.integers(0, len(data) - 1))
        data[at] = draw.draw(st.integers(0, 255))
    if draw.draw(st.booleans()):
        del data[draw.draw(st.integers(0, len(data))):]
    check(bytes(data))


@SETTINGS
@given(st.binary(max_size=600), st.sampled_from([b"", b"\0\0\0\5\0\0\0\1", b"\0\0\0\5\0\0\0\2",
                                                 b"\0\0\0\5\0\0\0\0", b"\0\0\0\5"]))
def test_garbage(data: bytes, prefix: bytes) -> None:
    check(prefix + data)


@SETTINGS
@given(datagram_wire())
def test_datagrams_from_the_declarations(data: bytes) -> None:
    check(data)


SAMPLE_POOL = [s for i, (p, h) in enumerate(HEADERS.values()) for s in _sample_kinds(p, h, i)]


@SETTINGS
@given(st.sampled_from(AGENTS), st.lists(st.sampled_from(SAMPLE_POOL), max_size=8))
def test_mixed_samples(agent: str, samples: list[Any]) -> None:
    check(encode_datagram(Datagram(5, agent, 1, 2, 3, tuple(samples))))


WORDS = st.sampled_from([0, 1, 2, 3, 16, 48, 256, 258, 999, 4095, 4096, INTERNAL, 0x40000001,
                         0x80000002, 0xC0000003, 0xFFFFFFFF]) | st.integers(0, 2**32 - 1)
HEADER_BYTES = [h for _, h in HEADERS.values() if h]


@st.composite
def raw_records(draw: st.DrawFn) -> bytes:
    """A flow record at the byte level: lengths that may disagree with the body, no padding
    rule kept, sampled_header's own length free."""
    kind = draw(st.sampled_from(["header", "switch", "other"]))
    if kind == "header":
        header = draw(st.sampled_from(HEADER_BYTES))[: draw(st.integers(0, 128))]
        hlen = draw(st.just(len(header)) | st.integers(0, 140) | WORDS)
        body = struct.pack(">4I", draw(st.sampled_from([1, 11, 12, 2])), draw(WORDS), 4, hlen)
        body += header + bytes(draw(st.integers(0, 4)))
        tag = 1
    elif kind == "switch":
        body = struct.pack(">4I", draw(WORDS), 0, draw(WORDS), 0)
        body = body[: draw(st.sampled_from([8, 12, 15, 16, 16, 16]))] + bytes(draw(
            st.integers(0, 8)))
        tag = 1001
    else:
        tag = draw(st.sampled_from([2, 1002, 1003, 99, 0]))
        body = draw(st.binary(max_size=12))
    length = len(body) if draw(st.integers(0, 4)) else draw(st.integers(0, len(body) + 8))
    return struct.pack(">II", tag, length) + body


@st.composite
def raw_flow_samples(draw: st.DrawFn) -> bytes:
    tag = draw(st.sampled_from([1, 3, 5]))
    fields = [draw(WORDS) for _ in range(10 if tag == 3 else 7)]
    records = draw(st.lists(raw_records(), max_size=4))
    nrec = len(records) if draw(st.integers(0, 4)) else draw(st.integers(0, 6))
    body = struct.pack(f">{len(fields) + 1}I", *fields, nrec) + b"".join(records)
    body = body[: draw(st.integers(0, len(body)))] if not draw(st.integers(0, 6)) else body
    return struct.pack(">II", tag, len(body)) + body


@settings(SETTINGS, max_examples=250)
@given(st.sampled_from([b"\0\0\0\1\xc0\0\2\1", b"\0\0\0\2" + bytes(range(16)), b"\0\0\0\0"]),
       st.lists(raw_flow_samples(), max_size=4), st.integers(0, 6))
def test_flow_samples_at_the_byte_level(address: bytes, samples: list[bytes],
                                        count: int) -> None:
    head = b"\0\0\0\5" + address + struct.pack(">3I", 1, 2, 3)
    check(head + struct.pack(">I", len(samples)) + b"".join(samples))
    check(head + struct.pack(">I", count) + b"".join(samples))


# ---------------------------------------------------------------- the extension itself


def test_arguments_are_checked() -> None:
    data = matrix()["tcp"]
    with pytest.raises(TypeError):
        _walk.samples(bytearray(data), 28, len(data), 1, "a", 0, 0, 0)
    with pytest.raises(TypeError):
        _walk.samples(data, 28, len(data), 1)
    with pytest.raises(ValueError):
        _walk.samples(data, 28, len(data) + 1, 1, "a", 0, 0, 0)
    with pytest.raises(ValueError):
        _walk.samples(data, 29, 28, 1, "a", 0, 0, 0)
    with pytest.raises(TypeError):
        _walk.usual_datagram(bytearray(data))
    assert _walk.usual_datagram(data[:27]) is None
    assert _walk.usual_datagram(b"\0\0\0\4" + data[4:]) is None
    with pytest.raises(TypeError):
        _walk.configure(flow_view=FlowSampleView)


def test_the_c_walk_reads_the_layout_it_is_given() -> None:
    """Offsets come from configure(layout=), not from the C source: swapped offsets swap the
    values read; a layout naming a field outside its structure, or missing one, is refused
    and leaves the walk as it was."""
    data = matrix()["tcp"]
    usual = _walk.usual_datagram(data).flow_samples[0]
    config, layout = fast._WALK_CONFIGURATION, fast._C_LAYOUT
    swapped = {**layout, "flow_sample.sampling_rate": layout["flow_sample.sample_pool"],
               "flow_sample.sample_pool": layout["flow_sample.sampling_rate"],
               "usual.sport": layout["usual.dport"], "usual.dport": layout["usual.sport"]}
    try:
        _walk.configure(**{**config, "layout": swapped})
        view = _walk.usual_datagram(data).flow_samples[0]
        assert (view.sampling_rate, view.sample_pool) == (usual.sample_pool, usual.sampling_rate)
        keys = view.__dict__["_keys"]  # built by the C walk with the layout it was given
        assert (keys["tcpsourceport"], keys["tcpdestinationport"]) == (
            usual.keys()["tcpdestinationport"], usual.keys()["tcpsourceport"])
    finally:
        _walk.configure(**config)
    outside = {**layout, "flow_sample.records": layout["flow_sample.size"]}
    with pytest.raises(ValueError, match=r"layout\[flow_sample.records\] lies outside"):
        _walk.configure(**{**config, "layout": outside})
    past = {**layout, "usual.dst": layout["usual.size"] - 4}  # a MAC needs 6 bytes
    with pytest.raises(ValueError, match=r"layout\[usual.dst\] lies outside"):
        _walk.configure(**{**config, "layout": past})
    missing = {k: v for k, v in layout.items() if k != "extended_switch.tag"}
    with pytest.raises(TypeError, match=r"layout\[extended_switch.tag\] must be an int"):
        _walk.configure(**{**config, "layout": missing})
    check(data)


def test_no_references_leak() -> None:
    """Objects the walk shares (types, texts, int and str values) keep their reference counts,
    and repeated decoding allocates nothing that survives (the caches are warm)."""
    pool = [*matrix().values(), *bench_capture()[:20]]
    for data in pool:  # warm the address caches and the counter memo
        check(data)
    watched = [FlowSampleView, CollectorDatagram, fast.TruncatedError, fast._counter_sample,
               *fast.IP_TOS[:64], *fast.TCP_FLAGS[:64], *fast.DROP_REASONS.values(), INTERNAL]
    before = [sys.getrefcount(x) for x in watched]
    blocks = sys.getallocatedblocks()
    for _ in range(3):
        for data in pool:
            for cut in (len(data), len(data) - 4):
                try:
                    dg = fast.decode_for_collector(data[:cut])
                except CodecError:
                    continue
                for view in dg.flow_samples:
                    view.keys()
    del dg, view
    assert [sys.getrefcount(x) for x in watched] == before
    assert sys.getallocatedblocks() - blocks < 50
