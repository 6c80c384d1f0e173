"""Bounded tables: silent agents expire, new agents beyond ``max_agents`` and parse-error
sources beyond ``max_error_sources`` are shed and counted (a flood of spoofed sources)."""

from __future__ import annotations

import socket
from pathlib import Path

from collector_helpers import Feeder, counters, datagram, start, wait_for

from sflowlab.clock import SimClock
from sflowlab.codec import IfCounters
from sflowlab.collector.agents import MAX_SOURCES, TableLimits
from sflowlab.collector.engine import Engine


def one(agent: str, seq: int = 1) -> bytes:
    return datagram(agent, seq, seq * 1000, [counters(seq, 0, 1, IfCounters(1))])


def test_silent_agents_expire_and_come_back_afresh(clock: SimClock) -> None:
    engine = Engine(clock, limits=TableLimits(agent_timeout_s=30))
    feed = Feeder(engine, clock)
    feed.at(1000, one("10.0.0.1"))
    feed.at(1020, one("10.0.0.2"))
    engine.tick(1029)
    assert set(engine.agents_json()) == {"10.0.0.1", "10.0.0.2"}
    engine.tick(1031)  # 10.0.0.1 silent for 31 s
    assert set(engine.agents_json()) == {"10.0.0.2"}
    assert engine.analyzer_json()["sFlowAgentsExpired"] == 1
    feed.at(1040, one("10.0.0.1", 2))
    assert engine.agents_json()["10.0.0.1"]["sFlowDatagramsReceived"] == 1


def test_new_agents_beyond_the_cap_are_shed(clock: SimClock) -> None:
    engine = Engine(clock, limits=TableLimits(agent_timeout_s=30, max_agents=3))
    feed = Feeder(engine, clock)
    assert all(feed.at(1000, one(f"10.0.1.{i}")) for i in range(3))
    assert not feed.at(1001, one("10.0.1.9"))
    assert feed.at(1001, one("10.0.1.0", 2))  # a known agent still counts
    stats = engine.analyzer_json()
    assert (stats["sFlowAgents"], stats["sFlowDatagramsShed"]) == (3, 1)
    assert stats["sFlowDatagramsReceived"] == 5
    engine.tick(1031)  # every agent silent 30 s or more but 10.0.1.0
    assert feed.at(1032, one("10.0.1.9"))  # room again
    assert set(engine.agents_json()) == {"10.0.1.0", "10.0.1.9"}


def test_parse_error_sources_capped(clock: SimClock) -> None:
    engine = Engine(clock, limits=TableLimits(max_error_sources=2))
    feed = Feeder(engine, clock)
    for i in range(5):
        feed.at(1000, b"\0\0\0\x06junk", (f"192.0.2.{i}", 1234))
    feed.at(1000, b"\0\0\0\x06junk", ("192.0.2.0", 1234))
    stats = engine.analyzer_json()
    assert stats["parseErrorsBySource"] == {"192.0.2.0": 2, "192.0.2.1": 1}
    assert (stats["sFlowParseErrors"], stats["sFlowParseErrorSourcesShed"]) == (6, 3)


def test_data_sources_and_source_addresses_capped(clock: SimClock) -> None:
    """One agent spoofed from many addresses, with many data sources: the data sources stop
    at ``max_data_sources`` (the rest shed and counted), the listed sources at MAX_SOURCES."""
    engine = Engine(clock, limits=TableLimits(max_data_sources=4))
    feed = Feeder(engine, clock)
    for i in range(1, 41):
        feed.at(1000, datagram("10.0.2.1", i, i * 1000, [counters(i, 0, i, IfCounters(i))]),
                (f"192.0.2.{i}", 6343))
    stats = engine.analyzer_json()
    assert (stats["sFlowDataSources"], stats["sFlowDataSourcesShed"]) == (4, 36)
    agent = engine.agents_json()["10.0.2.1"]
    assert agent["sFlowCounterSamples"] == 40
    assert len(agent["sFlowDatagramSource"]) == MAX_SOURCES


def test_spoofed_agent_flood_is_bounded(tmp_path: Path) -> None:
    """3,000 spoofed agent addresses over UDP with max_agents = 1,000: 1,000 tracked, the
    rest shed and counted; once silent, agents and their data sources expire."""
    cfg = tmp_path / "collector.toml"
    cfg.write_text("[collector]\nmax_agents = 1000\nagent_timeout_s = 1\nmetric_timeout_s = 1\n"
                   "tick_s = 0.2\n")
    c = start(tmp_path, "--config", str(cfg))
    try:
        n = 3000
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(n):
                s.sendto(one(f"10.33.{i // 256}.{i % 256}"), ("127.0.0.1", c.sflow_port))
        stats = wait_for(lambda: (a := c.get("/analyzer/json"))["sFlowDatagramsReceived"]
                         + a["sFlowDatagramsDiscarded"] == n and a, 10, "every datagram")
        assert stats["sFlowAgents"] <= 1000
        assert stats["sFlowDatagramsShed"] == stats["sFlowDatagramsReceived"] - 1000
        assert stats["sFlowDatagramsShed"] >= 1000
        stats = wait_for(lambda: (a := c.get("/analyzer/json"))["sFlowAgents"] == 0
                         and a["sFlowDataSources"] == 0 and a, 10, "the agents expired")
        assert stats["sFlowAgentsExpired"] == 1000
        assert c.get("/agents/json") == {}
    finally:
        assert c.stop() == 0
