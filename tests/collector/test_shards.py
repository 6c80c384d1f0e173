"""The sharded engine answers exactly like the in-process engine on the same datagrams."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from collector_helpers import SOURCE, container, counters, datagram, flow, tcp, wait_for

from sflowlab.clock import SimClock, SystemClock
from sflowlab.codec import HostCpu, HostDescr, IfCounters
from sflowlab.collector.engine import Engine
from sflowlab.collector.flows import FlowSpec
from sflowlab.collector.shards import ShardedEngine, shard_of
from sflowlab.collector.thresholds import ThresholdSpec

AGENTS = [f"10.0.{i}.{j}" for i in range(3) for j in range(1, 5)]
TOPOLOGY = {"nodes": {f"n{i}": {"agent": a, "ports": {"swp1": {"ifindex": "1"}}}
                      for i, a in enumerate(AGENTS[:8])},
            "links": {"l1": {"node1": "n0", "port1": "swp1", "node2": "n5", "port2": "swp1"}}}


def same(a: Any, b: Any) -> bool:
    """Equal, floats within 1e-9 relative (sums over workers add up in another order)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Engine, ShardedEngine]]:
    clock = SimClock(start=1000.0)
    single, sharded = Engine(clock), ShardedEngine(2, clock)
    try:
        for e in (single, sharded):
            e.set_flow("pairs", FlowSpec(keys="ipsource,ipdestination", value="bytes", t=2,
                                         log=True, activeTimeout=1))
            e.set_flow("total", FlowSpec(value="frames", t=2))
            e.set_flow("multi", FlowSpec(keys="ipsource", value="frames", values=["bps"], t=2))
            e.set_topology(TOPOLOGY)
            e.set_threshold("busy", ThresholdSpec(metric="total", value=5.0))
        for step in range(1, 6):
            t = 1000.0 + step
            for i, agent in enumerate(AGENTS):
                d = datagram(agent, step, step * 1000, [
                    counters(step, 0, 1, IfCounters(1, if_speed=10**9,
                                                    if_in_octets=step * 1000 * (i + 1))),
                    counters(step, 2, 1, HostDescr(hostname=f"h{i}"),
                             HostCpu(load_one=i / 10, cpu_user=step * 100 * i,
                                     cpu_idle=step * 1000)),
                    container(step, 100 + i, f"web.{i}", step * 100 * i),
                    flow(step, 1, tcp(f"10.9.0.{i % 3}", "10.9.1.1"), rate=10 + i),
                ])
                single.ingest(d, SOURCE, t)
                sharded.ingest(d, SOURCE, t)
            clock.advance_to(t)
            single.tick(t)
            sharded.tick(t)
        yield single, sharded
    finally:
        sharded.close()


def test_agents_spread_over_both_workers() -> None:
    assert {shard_of(a, 2) for a in AGENTS} == {0, 1}
    # the last 32 bits of the address, mod the number of workers
    assert [shard_of(a, 512) for a in ("10.0.0.3", "10.0.1.4", "::1:5", "2001:db8::0.0.1.0")] == [
        3, 260, 5, 256]


def test_listening_workers_receive_their_own_agents() -> None:
    """One source socket, several agents: the kernel steers by agent address, not by 4-tuple."""
    engine = ShardedEngine(2, SystemClock())
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            with pytest.raises(OSError, match="in use"):  # not silently sharing the port
                engine.listen(["127.0.0.1"], taken.getsockname()[1], 1 << 20)
        bound, granted = engine.listen(["127.0.0.1"], 0, 1 << 20)
        assert granted > 0 and bound[0][0] == "127.0.0.1"
        agents = AGENTS[:6]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for agent in agents:
                sock.sendto(datagram(agent, 1, 0, [counters(1, 0, 1, IfCounters(1))]), bound[0])
        wait_for(lambda: engine.socket_stats() == (len(agents), 0), what="every datagram")
        for w, worker in enumerate(engine.workers):
            assert set(worker.call("agents_json")) == {a for a in agents if shard_of(a, 2) == w}
        assert set(engine.agents_json()) == set(agents)
        engine.unlisten()
    finally:
        engine.close()


@pytest.mark.parametrize("metrics", [
    "max:load_one,min:load_one,sum:ifinoctets,avg:vir_cpu_utilization,med:load_one,"
    "q1:cpu_user,iqr:load_one,var:load_one,any:host_name,total",
])
def test_metric_equal(pair: tuple[Engine, ShardedEngine], metrics: str) -> None:
    single, sharded = pair
    assert same(sharded.metric("ALL", metrics), single.metric("ALL", metrics))
    flt = {"host_name": ["h1", "h1.*"]}
    assert sharded.metric(AGENTS[:6], "sum:load_one", flt) == single.metric(
        AGENTS[:6], "sum:load_one", flt)


def test_dump_table_and_listings_equal(pair: tuple[Engine, ShardedEngine]) -> None:
    single, sharded = pair

    def key(e: dict[str, object]) -> tuple[str, str, str]:
        return str(e["metricName"]), str(e["agent"]), str(e["dataSource"])

    for agents, m in (("ALL", "ifinoctets"), ("ALL", "vir_host_name;load_one"), ("ALL", "pairs"),
                      ("h2;h7", "ALL"), ("EDGE", "ifinoctets"), ("CORE;TOPOLOGY", "ALL")):
        assert sorted(sharded.dump(agents, m), key=key) == sorted(single.dump(agents, m),
                                                                  key=key), (agents, m)
    assert {e["agent"] for e in single.dump("CORE", "ifinoctets")} == {AGENTS[0], AGENTS[5]}
    assert same(sharded.metric("h3;EDGE", "sum:1.ifinoctets,max:2.1.load_one"),
                single.metric("h3;EDGE", "sum:1.ifinoctets,max:2.1.load_one"))
    cols = "sort:load_one:-5,host_name"
    assert sharded.table("ALL", cols) == single.table("ALL", cols)
    assert sharded.agents_json() == single.agents_json()
    assert sharded.metric_names() == single.metric_names()
    assert sharded.flow_keys() == single.flow_keys()
    assert sharded.agent_metrics(AGENTS[5]) == single.agent_metrics(AGENTS[5])
    assert sorted(sharded.numeric_series("ALL", {"load_one"})) == sorted(
        single.numeric_series("ALL", {"load_one"}))
    a, b = sharded.analyzer_json(), single.analyzer_json()
    for k in ("sFlowDatagramsReceived", "sFlowFlowSamples", "sFlowCounterSamples",
              "sFlowDataSources", "eventsGenerated", "flowsGenerated"):
        assert a[k] == b[k], k


@pytest.mark.parametrize("mode", ["max", "sum", "edge", "core"])
def test_active_flows_and_values_equal(pair: tuple[Engine, ShardedEngine], mode: str) -> None:
    single, sharded = pair
    top = sharded.active_flows("ALL", "pairs", 2, 0.0, mode)
    assert len(top) == 2 and same(top, single.active_flows("ALL", "pairs", 2, 0.0, mode))
    multi = sharded.active_flows("ALL", "multi", 3, 0.0, mode)
    assert len(multi) == (2 if mode == "core" else 3) and len(multi[0]["values"]) == 1
    assert same(multi, single.active_flows("ALL", "multi", 3, 0.0, mode))
    key = "10.9.0.1,10.9.1.1"
    assert sharded.flow_value(AGENTS[4], "pairs", key) == single.flow_value(AGENTS[4], "pairs", key)


def test_events_and_logged_flows_renumbered_into_one_sequence(
        pair: tuple[Engine, ShardedEngine]) -> None:
    single, sharded = pair
    mine = sharded.query_events(max_events=1000)
    theirs = single.query_events(max_events=1000)
    assert len(mine) == len(theirs) > 0
    assert [e.eventID for e in mine] == list(range(len(mine), 0, -1))
    assert sorted((e.agent, e.dataSource, e.timestamp) for e in mine) == sorted(
        (e.agent, e.dataSource, e.timestamp) for e in theirs)
    assert sharded.wait_events(len(mine) - 1, 0.01)
    flows = sharded.logged_flows("pairs", 1000)
    assert len(flows) == len(single.logged_flows("pairs", 1000)) > 0
    assert [f.flowID for f in flows] == list(range(len(flows), 0, -1))


def test_definitions_broadcast_and_errors_raised(pair: tuple[Engine, ShardedEngine]) -> None:
    _, sharded = pair
    sharded.set_group("lan", ["10.0.0.0/8"])
    assert sharded.group_specs() == {"lan": {"lan": ["10.0.0.0/8"]}}
    assert sharded.remove_group("lan") and not sharded.remove_group("lan")
    with pytest.raises(ValueError, match="unknown aggregation"):
        sharded.metric("ALL", "bad:load_one")
    with pytest.raises(ValueError, match="expected a comparison"):  # compiled by the workers
        sharded.set_flow("bad", FlowSpec.from_json({"filter": "ipprotocol=6&"}, check=False))
    assert set(sharded.flow_specs()) == {"pairs", "total", "multi"}


def test_dead_worker_is_replaced_by_the_first_call(caplog: pytest.LogCaptureFixture) -> None:
    engine = ShardedEngine(1, SimClock())
    try:
        pid = engine.workers[0].proc.pid
        engine.workers[0].proc.kill()
        engine.workers[0].proc.join(timeout=10)
        assert engine.metric("ALL", "load_one")[0]["metricN"] == 0
        assert engine.restarts == 1 and engine.workers[0].proc.pid != pid
        assert f"event=worker_restarted index=0 pid={pid} exit_code=-9" in caplog.text
    finally:
        engine.close()
