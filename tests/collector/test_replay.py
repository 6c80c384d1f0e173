"""Replay in-process: the capture's timestamps are the clock; ticks, events and pacing follow."""

from __future__ import annotations

import time
from pathlib import Path

from collector_helpers import datagram, flow, tcp

from sflowlab.codec.pcap import PcapWriter
from sflowlab.collector.config import Config
from sflowlab.collector.daemon import Daemon, ReplayClock
from sflowlab.collector.engine import TickResult

T0 = 1_700_000_000.0
AGENT = "10.40.0.1"


def capture(path: Path, seconds: int) -> None:
    with PcapWriter(path) as w:
        for s in range(1, 10 * seconds + 1):  # 10 datagrams per second of capture time
            w.write(datagram(AGENT, s, s * 100, [flow(s, 2, tcp("10.41.0.1", "10.41.0.2"))]),
                    T0 + s / 10, src=(AGENT, 6343), dst=("127.0.0.1", 6343))


def daemon() -> Daemon:
    cfg = Config(definitions={"flows": {"f": {"value": "frames", "t": 1}},
                              "thresholds": {"hot": {"metric": "f", "value": 100}}})
    return Daemon(cfg, ReplayClock())


def test_replay_ticks_on_capture_time_and_raises_events(tmp_path: Path) -> None:
    capture(tmp_path / "c.pcap", 5)
    d = daemon()
    ticks: list[TickResult] = []
    d.on_tick = ticks.append
    assert d.replay(tmp_path / "c.pcap") == 50
    assert len(ticks) == 5 and [e.thresholdID for t in ticks for e in t.events] == ["hot"]
    assert d.clock.now() == T0 + 5.0
    [event] = d.engine.query_events()
    assert event.thresholdID == "hot" and event.agent == AGENT
    assert T0 * 1000 < event.timestamp <= (T0 + 5.0) * 1000  # stamped with capture time
    assert d.engine.analyzer_json()["uptime"] == 4900  # first datagram at T0 + 0.1
    [top] = d.engine.metric(AGENT, "f")
    assert top["metricValue"] > 100


def test_replay_speed_paces_by_capture_time(tmp_path: Path) -> None:
    capture(tmp_path / "c.pcap", 2)
    d = daemon()
    start = time.monotonic()
    d.replay(tmp_path / "c.pcap", speed=4.0)  # 1.9 s of capture at 4x: at least 0.475 s
    assert time.monotonic() - start >= 0.47
