"""A controller that blocks never stalls ingest: its handlers run on a thread of their own,
and a slow one is timed and counted (``/app/json``, ``/analyzer/json``)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_helpers import counters, datagram, start, wait_for

from sflowlab.codec import IfCounters

HERE = Path(__file__).parent


@pytest.fixture
def hung_api() -> Iterator[str]:
    """A TCP server that accepts connections (the kernel completes the handshake) and never
    answers a request."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/services"


def test_blocked_controller_never_stalls_ingest(tmp_path: Path, hung_api: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "collector.toml"
    config.write_text(f"""
[sflow]
queue_size = 1000
[collector]
tick_s = 0.2
[[controllers]]
name = "slow"
use = "slow_controller:Slow"
[controllers.params]
url = "{hung_api}"
timeout_s = 1.5
""")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p))
    c = start(tmp_path, "--config", str(config))
    try:
        wait_for(lambda: c.get("/app/json")["slow"]["calls"].get("interval"), 10,
                 "the first interval call")
        agent, n = "10.32.0.1", 3000
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            start_s = time.monotonic()
            for seq in range(1, n + 1):  # about 2,000 datagrams/s for 1.5 s
                s.sendto(datagram(agent, seq, seq, [counters(seq, 0, 1, IfCounters(1))]),
                         ("127.0.0.1", c.sflow_port))
                if seq % 20 == 0:
                    time.sleep(max(0.0, start_s + seq / 2000 - time.monotonic()))
        wait_for(lambda: c.agent(agent).get("sFlowDatagramsReceived") == n, 10,
                 f"all {n} datagrams analysed")
        analyzer = c.get("/analyzer/json")
        assert analyzer["sFlowDatagramsDiscarded"] == 0
        assert c.agent(agent)["sFlowDatagramsLost"] == 0
        status = wait_for(lambda: (s := c.get("/app/json")["slow"])["slow"].get("interval")
                          and s, 10, "a slow call counted")
        assert status["maxMs"]["interval"] >= 1400
        assert status["errors"]["interval"] >= 1  # timed out: counted as a failure too
        assert c.get("/analyzer/json")["controllerSlowCalls"] >= 1
        assert "event=controller_slow controller=slow handler=interval" in c.log()
    finally:
        assert c.stop() == 0
