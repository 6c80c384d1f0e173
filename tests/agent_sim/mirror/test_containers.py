"""The mirror agent's container side against an Engine API double over HTTP: containers listed
at start, started and killed while it runs, and an engine restart during which one container
went and another came (the agent reconnects and catches up)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from engine_double import EngineDouble, Running
from mirror_helpers import wait_until

from sflowlab.agent_sim.mirror.agent import MirrorAgent, MirrorSettings
from sflowlab.agent_sim.mirror.containers import DockerSource
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.codec import COUNTER_SAMPLES, HostDescr, VirtCpu, VirtMemory, decode_datagram

pytestmark = pytest.mark.slow

C1, C2, C3 = ("a1" * 32, "b2" * 32, "c3" * 32)


class AgentThread:
    """A MirrorAgent (no packet sampling) running in a thread into a memory sink."""

    def __init__(self, url: str) -> None:
        self.sink = MemorySink()
        self.docker = DockerSource(url, retry_s=0.1)
        settings = MirrorSettings(sampling=0, polling_s=2, interfaces=(), docker_url=url)
        self.agent = MirrorAgent(settings, self.sink, time.time(), "192.0.2.9",
                                 docker=self.docker)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.agent.run, args=(time.time, self.stop))
        self.thread.start()

    def samples(self, name: str) -> list[Any]:
        out = []
        for _, _, data in list(self.sink.items):
            for s in decode_datagram(data).samples:
                if isinstance(s, COUNTER_SAMPLES) and s.source_id_type == 3 and any(
                        isinstance(r, HostDescr) and r.hostname == name for r in s.records):
                    out.append(s)
        return out

    def state(self, name: str) -> int | None:
        seen = self.samples(name)
        return next(r.state for r in seen[-1].records if isinstance(r, VirtCpu)) if seen else None

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.agent.close(time.time())


@pytest.fixture
def engine() -> Iterator[EngineDouble]:
    double = EngineDouble(containers={C1: Running(C1, "web.1.abc")}).start()
    try:
        yield double
    finally:
        double.stop()


def test_containers_follow_the_engine_through_a_restart(engine: EngineDouble) -> None:
    run = AgentThread(engine.url)
    try:
        wait_until("the listed container's first sample", lambda: run.samples("web.1.abc"), 5.0)
        (first,) = run.samples("web.1.abc")
        records = {type(r): r for r in first.records}
        assert records[VirtCpu] == VirtCpu(1, 1500, 2)
        assert records[VirtMemory] == VirtMemory(32 << 20, 1 << 30)  # usage less inactive file

        engine.run(Running(C2, "web.2.def"))
        wait_until("the started container's first sample", lambda: run.samples("web.2.def"),
                   5.0)
        engine.kill(C2)
        wait_until("the killed container's final sample", lambda: run.state("web.2.def") == 4,
                   3.0)

        # the engine restarts; meanwhile web.1 went and web.3 came
        port = engine.port
        engine.stop()
        wait_until("the agent to notice", lambda: run.docker.errors > 0, 5.0)
        restarted = EngineDouble(port, {C3: Running(C3, "web.3.ghi")}).start()
        try:
            wait_until("web.1's final sample", lambda: run.state("web.1.abc") == 4, 5.0)
            wait_until("web.3's first sample", lambda: run.samples("web.3.ghi"), 5.0)
            assert run.state("web.3.ghi") == 1
        finally:
            run.close()
            restarted.stop()
    finally:
        if run.thread.is_alive():
            run.close()
