"""The recorder reads the collector through the engine API only: an in-process and a sharded
engine fed the same datagrams give the same container rows and datagram accounting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sflowlab.clock import SimClock
from sflowlab.codec import CountersSample, Datagram, HostDescr, VirtCpu, VirtNetIo, encode_datagram
from sflowlab.collector.engine import Engine
from sflowlab.collector.engine_api import EngineApi
from sflowlab.collector.shards import ShardedEngine
from sflowlab.lab.scenario.outputs import (
    CONTAINER_METRICS,
    Accounting,
    accounting,
    container_rows,
    data_sources,
)

AGENTS = ("10.0.0.1", "10.0.0.2", "10.0.1.3")


def _datagram(agent: str, seq: int, cpu_ms: int) -> bytes:
    """A container counter sample of ``web.<last byte of agent>`` from ``agent``."""
    name = f"web.{agent.rpartition('.')[2]}"
    sample = CountersSample(seq, (3 << 24) | 7, (
        HostDescr(hostname=name), VirtCpu(state=1, cpu_time_ms=cpu_ms, nr_virt_cpu=2),
        VirtNetIo(bytes_in=1000 * seq)))
    return encode_datagram(Datagram(5, agent, 0, seq, seq * 1000, (sample,)))


@pytest.fixture(scope="module")
def engines() -> Iterator[list[EngineApi]]:
    clock = SimClock(start=100.0)
    single, sharded = Engine(clock), ShardedEngine(2, clock)
    try:
        for seq in (1, 2, 4):  # 3 never arrives: one datagram lost per agent
            t = 100.0 + seq
            clock.advance_to(t)
            for agent in AGENTS:
                for engine in (single, sharded):
                    engine.ingest(_datagram(agent, seq, 200 * seq), (agent, 6343), t)
                    engine.tick(t)
        for engine in (single, sharded):  # the last datagram of the first agent again
            engine.ingest(_datagram(AGENTS[0], 4, 800), (AGENTS[0], 6343), 104.5)
            engine.ingest(b"\x00\x00\x00\x05 not sFlow", (AGENTS[0], 6343), 104.5)
        yield [single, sharded]
    finally:
        sharded.close()


def test_accounting_from_either_engine(engines: list[EngineApi]) -> None:
    for engine in engines:
        assert accounting(engine, 12) == Accounting(sent=12, received=11, parse_errors=1,
                                                    lost=3, duplicates=1, discarded=0)


def test_container_rows_from_either_engine(engines: list[EngineApi]) -> None:
    found = []
    for engine in engines:
        rows: list[tuple[object, ...]] = []
        seen = container_rows(105.0, data_sources(engine.dump("ALL", CONTAINER_METRICS, now=105.0)), rows)
        assert seen == {"web": 3}
        found.append(sorted(rows, key=str))
    single, sharded = found
    assert [r[1] for r in single] == ["web.1", "web.2", "web.3"]
    assert all(r[0] == 105.0 and r[2] == "web" and r[6] == "running" for r in single)
    assert single == sharded
