"""Datagrams built with the codec and a feeder for the sim-clock engine (collector tests)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sflowlab.agent_sim.packets import Packet
from sflowlab.clock import SimClock
from sflowlab.codec import (
    CountersSample,
    Datagram,
    FlowSample,
    HostDescr,
    SampledHeader,
    VirtCpu,
    VirtNetIo,
    encode_datagram,
)
from sflowlab.collector.engine import Engine

SOURCE = ("192.0.2.1", 50000)


def datagram(agent: str, seq: int, uptime_ms: int, samples: Iterable[Any],
             sub_agent: int = 0) -> bytes:
    return encode_datagram(Datagram(5, agent, sub_agent, seq, uptime_ms, tuple(samples)))


def counters(seq: int, ds_type: int, ds_index: int, *records: Any) -> CountersSample:
    return CountersSample(seq, (ds_type << 24) | ds_index, tuple(records))


def flow(seq: int, if_index: int, packet: Packet, rate: int = 100) -> FlowSample:
    header = SampledHeader(1, packet.length + 4, 4, packet.header(128))
    return FlowSample(seq, if_index, rate, seq * rate, 0, if_index, 0x3FFFFFFF, (header,))


def tcp(src: str, dst: str, sport: int = 40000, dport: int = 80, length: int = 1000) -> Packet:
    return Packet("02:00:00:00:00:01", "02:00:00:00:00:02", src, dst, 6, sport, dport,
                  length=length)


def container(seq: int, index: int, name: str, cpu_ms: int, state: int = 1,
              bytes_in: int = 0) -> CountersSample:
    return counters(seq, 3, index, HostDescr(hostname=name),
                    VirtCpu(state=state, cpu_time_ms=cpu_ms, nr_virt_cpu=2),
                    VirtNetIo(bytes_in=bytes_in))


class Feeder:
    """Feeds datagrams to an engine at sim-clock times."""

    def __init__(self, engine: Engine, clock: SimClock) -> None:
        self.engine, self.clock = engine, clock

    def at(self, t: float, data: bytes, source: tuple[str, int] = SOURCE) -> bool:
        if t > self.clock.now():
            self.clock.advance_to(t)
        return self.engine.ingest(data, source, t)
