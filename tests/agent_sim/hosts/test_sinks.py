"""Sinks: memory, UDP to loopback collectors, pcap files, fan-out; endpoint parsing."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sflowlab.agent_sim.sinks import (
    CountingSink,
    MemorySink,
    PcapSink,
    TeeSink,
    UdpSink,
    parse_endpoint,
)
from sflowlab.codec.pcap import read_sflow


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_memory_sink_keeps_then_drains() -> None:
    sink = MemorySink()
    sink(b"a", "10.0.0.1", 1.0)
    sink(b"b", "10.0.0.2", 2.0)
    assert sink.drain() == [(1.0, "10.0.0.1", b"a"), (2.0, "10.0.0.2", b"b")]
    assert sink.drain() == []


def test_udp_sink_sends_to_every_collector(listener: socket.socket) -> None:
    other = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    other.bind(("::1", 0))
    other.settimeout(5)
    port4, port6 = listener.getsockname()[1], other.getsockname()[1]
    with UdpSink([("127.0.0.1", port4), ("::1", port6)]) as sink:
        sink(b"datagram-1", "10.0.0.1", 0.0)
        assert listener.recvfrom(100)[0] == b"datagram-1"
        assert other.recvfrom(100)[0] == b"datagram-1"
        assert sink.datagrams_sent == 2 and sink.send_errors == 0
    other.close()


def test_udp_sink_needs_a_collector() -> None:
    with pytest.raises(ValueError, match="at least one"):
        UdpSink([])


def test_pcap_sink_writes_udp_from_the_agent_with_clock_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    with PcapSink(str(path), collector=("192.0.2.9", 6343)) as sink:
        sink(b"\x00\x00\x00\x05v4", "10.0.0.1", 1700000000.5)
        sink(b"\x00\x00\x00\x05v6", "fd00::1", 1700000001.25)
    got = list(read_sflow(str(path)))
    assert [(g.timestamp, g.src, g.dst, g.payload) for g in got] == [
        (1700000000.5, ("10.0.0.1", 6343), ("192.0.2.9", 6343), b"\x00\x00\x00\x05v4"),
        (1700000001.25, ("fd00::1", 6343), ("::1", 6343), b"\x00\x00\x00\x05v6"),
    ]


def test_tee_and_counting_sinks_pass_everything_on() -> None:
    a, b = MemorySink(), MemorySink()
    counter = CountingSink(TeeSink(a, b))
    counter(b"xyz", "10.0.0.1", 3.0)
    assert a.drain() == b.drain() == [(3.0, "10.0.0.1", b"xyz")]
    assert (counter.datagrams, counter.octets) == (1, 3)


@pytest.mark.parametrize(("text", "expected"), [
    ("collector:6343", ("collector", 6343)),
    ("127.0.0.1:9999", ("127.0.0.1", 9999)),
    ("[::1]:7000", ("::1", 7000)),
    ("[fd00::1]", ("fd00::1", 6343)),
    ("fd00::1", ("fd00::1", 6343)),
    ("host", ("host", 6343)),
])
def test_parse_endpoint(text: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize("text", ["host:0", "host:70000", ":80", "[::1]x", "[::1"])
def test_parse_endpoint_refuses_bad_ones(text: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(text)
