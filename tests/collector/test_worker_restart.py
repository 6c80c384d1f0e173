"""``--workers N``: a worker killed with -9 is replaced at the next tick, with the same
definitions and socket, its agents rebuilt from the datagrams that follow; counted and logged."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from collector_helpers import counters, datagram, recorded, start, wait_for

from sflowlab.clock import SimClock
from sflowlab.codec import IfCounters
from sflowlab.collector.flows import FlowSpec
from sflowlab.collector.shards import ShardedEngine, shard_of

AGENTS = ("10.34.0.2", "10.34.0.3")  # one per worker of two


def one(agent: str, seq: int) -> bytes:
    return datagram(agent, seq, seq * 1000, [counters(seq, 0, 1, IfCounters(1, if_speed=10**9,
                                                                          if_in_octets=seq))])


def workers_of(pid: int) -> list[int]:
    """The collector's shard workers (spawned children; not the resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def dead(pid: int) -> bool:
    """Gone, or a zombie its parent has not reaped yet."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def test_killed_worker_is_replaced(tmp_path: Path) -> None:
    assert [shard_of(a, 2) for a in AGENTS] == [0, 1]
    rec = tmp_path / "rec"
    c = start(tmp_path, "--workers", "2", "--record-dir", str(rec))
    try:
        c.udp(*(one(a, 1) for a in AGENTS))
        wait_for(lambda: len(c.get("/agents/json")) == 2, what="both agents")
        victim = workers_of(c.proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: dead(victim), 10, "the worker to die")
        # the first query finds the worker gone and waits for its replacement: no error
        assert set(c.get("/agents/json")) <= set(AGENTS)
        stats = c.get("/analyzer/json")
        assert (stats["workers"], stats["workerRestarts"]) == (2, 1)
        assert victim not in workers_of(c.proc.pid)
        assert f"event=worker_restarted index=0 pid={victim} exit_code=-9" in c.log()
        c.udp(*(one(a, seq) for seq in (2, 3) for a in AGENTS))
        agents = wait_for(lambda: (a := c.get("/agents/json"))[AGENTS[0]][
            "sFlowDatagramsReceived"] == 2 and a[AGENTS[1]]["sFlowDatagramsReceived"] == 3
            and a, 10, "the agents after the restart")
        assert agents[AGENTS[1]]["sFlowDatagramsLost"] == 0  # the survivor's state kept
        assert c.get("/analyzer/json")["sFlowAgents"] == 2  # each agent in one worker only
        assert c.get(f"/metric/{AGENTS[0]}/json")["1.ifinoctets"] == 1.0
        assert c.get("/metric/ALL/ifspeed/json")[0]["metricN"] == 2
        after = {one(a, seq) for seq in (2, 3) for a in AGENTS}  # the replacement's copies too
        wait_for(lambda: after <= set(recorded(rec)), 10, "the recording after the restart")
    finally:
        assert c.stop() == 0


def test_replacement_keeps_the_definitions() -> None:
    """Without sockets (datagrams dispatched over the pipes): the replacement worker gets the
    definitions, even when it is the only worker."""
    clock = SimClock(start=1000.0)
    engine = ShardedEngine(1, clock)
    try:
        engine.set_flow("total", FlowSpec(value="frames"))
        engine.workers[0].proc.kill()
        engine.workers[0].proc.join(timeout=10)
        engine.tick(1001.0)
        assert engine.restarts == 1
        assert list(engine.flow_specs()) == ["total"]
        engine.ingest(one("10.34.1.1", 1), ("10.34.1.1", 6343), 1001.0)
        assert engine.analyzer_json()["sFlowDatagramsReceived"] == 1
    finally:
        engine.close()
