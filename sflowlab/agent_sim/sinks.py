"""Where simulated agents' datagrams go: memory, UDP collectors, a pcap file, or several.

A sink is any callable ``sink(datagram, agent_address, now)``; ``now`` is the agent's clock
time (simulated or real), which the pcap sink writes as the packet timestamp.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

DEFAULT_AGENT_PORT = 6343
"""Source port written for agents in pcap files (real agents use an ephemeral one)."""


class Sink(Protocol):
    def __call__(self, datagram: bytes, agent_address: str, now: float) -> None: ...


@dataclass
class MemorySink:
    """Keeps ``(now, agent_address, datagram)`` tuples until drained."""

    items: list[tuple[float, str, bytes]] = field(default_factory=list)

    def __call__(self, datagram: bytes, agent_address: str, now: float) -> None:
        self.items.append((now, agent_address, datagram))

    def drain(self) -> list[tuple[float, str, bytes]]:
        items, self.items = self.items, []
        return items


def parse_endpoint(text: str, default_port: int = 6343) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"``, ``"host"`` -> ``(host, port)``; ValueError if bad."""
    host, port = text, default_port
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad endpoint {text!r}: expected [address]:port")
        if rest:
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    if not host or not 0 < port < 65536:
        raise ValueError(f"bad endpoint {text!r}: expected host:port")
    return host, port


class UdpSink:
    """Sends every datagram to each collector, from one socket per address family.

    Send failures (e.g. an unreachable network) are counted in ``send_errors``, never raised:
    an agent does not stop because a collector is away.
    """

    def __init__(self, collectors: Iterable[tuple[str, int]]) -> None:
        self.targets: list[tuple[socket.socket, Any]] = []
        self._sockets: dict[int, socket.socket] = {}
        for host, port in collectors:
            family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
            sock = self._sockets.get(family)
            if sock is None:
                sock = self._sockets[family] = socket.socket(family, socket.SOCK_DGRAM)
            self.targets.append((sock, addr))
        if not self.targets:
            raise ValueError("UdpSink needs at least one collector")
        self.datagrams_sent = 0
        self.send_errors = 0

    def __call__(self, datagram: bytes, agent_address: str, now: float) -> None:
        for sock, addr in self.targets:
            try:
                sock.sendto(datagram, addr)
                self.datagrams_sent += 1
            except OSError:
                self.send_errors += 1

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()

    def __enter__(self) -> UdpSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PcapSink:
    """Writes each datagram as a UDP packet from ``agent:agent_port`` to the collector.

    IPv4 agents are written towards ``collector``, IPv6 agents towards ``collector6``;
    timestamps are the agents' ``now``.
    """

    def __init__(self, path: str, collector: tuple[str, int] = ("127.0.0.1", 6343),
                 collector6: tuple[str, int] = ("::1", 6343),
                 agent_port: int = DEFAULT_AGENT_PORT) -> None:
        from sflowlab.codec.pcap import PcapWriter

        self.writer = PcapWriter(path)
        self.collector = collector
        self.collector6 = collector6
        self.agent_port = agent_port
        self.datagrams_written = 0

    def __call__(self, datagram: bytes, agent_address: str, now: float) -> None:
        dst = self.collector6 if ":" in agent_address else self.collector
        self.writer.write(datagram, now, src=(agent_address, self.agent_port), dst=dst)
        self.datagrams_written += 1

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> PcapSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TeeSink:
    """Hands every datagram to each of several sinks."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def __call__(self, datagram: bytes, agent_address: str, now: float) -> None:
        for sink in self.sinks:
            sink(datagram, agent_address, now)

    def close(self) -> None:
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close()


@dataclass
class CountingSink:
    """Counts datagrams and bytes, then passes them on (if ``inner`` is set)."""

    inner: Sink | None = None
    datagrams: int = 0
    octets: int = 0

    def __call__(self, datagram: bytes, agent_address: str, now: float) -> None:
        self.datagrams += 1
        self.octets += len(datagram)
        if self.inner is not None:
            self.inner(datagram, agent_address, now)
