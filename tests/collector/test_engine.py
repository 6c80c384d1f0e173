"""The engine in-process under a SimClock: accounting, counter metrics, queries, events."""

from __future__ import annotations

import pytest
from collector_helpers import SOURCE, Feeder, container, counters, datagram, flow, tcp

from sflowlab.codec import HostCpu, HostMemory, IfCounters, PortName
from sflowlab.collector.engine import Engine
from sflowlab.collector.flows import FlowSpec
from sflowlab.collector.query import QueryError
from sflowlab.collector.thresholds import ThresholdSpec

A, B = "10.0.0.1", "10.0.0.2"


def ifc(octets: int, speed: int = 1_000_000_000, **kw: int) -> IfCounters:
    return IfCounters(if_index=7, if_speed=speed, if_in_octets=octets, **kw)


def test_interface_rates_and_utilisation_are_exact(engine: Engine, feed: Feeder) -> None:
    feed.at(1000, datagram(A, 1, 50_000, [counters(1, 0, 7, ifc(10_000), PortName("eth0"))]))
    feed.at(1010, datagram(A, 2, 60_000, [counters(
        2, 0, 7, ifc(10_000 + 12_500_000, if_in_ucast_pkts=1000, if_out_octets=0))]))
    [entry] = engine.dump(A, "ifinoctets")
    assert entry["metricValue"] == 1_250_000.0  # 12.5 MB over 10 s of agent uptime
    assert entry["dataSource"] == "7" and entry["agent"] == A
    values = engine.agent_metrics(A)
    assert values["7.ifinutilization"] == 1.0  # 10 Mbit/s of 1 Gbit/s
    assert values["7.ifinucastpkts"] == 100.0
    assert values["7.ifname"] == "eth0"
    assert values["7.ifoperstatus"] == "up"


def test_32_bit_counter_wrap_and_64_bit_discontinuity(engine: Engine, feed: Feeder) -> None:
    feed.at(1000, datagram(A, 1, 0, [counters(1, 0, 7, ifc(500, if_in_ucast_pkts=0xFFFFFF00))]))
    feed.at(1001, datagram(A, 2, 1000, [counters(2, 0, 7, ifc(1500, if_in_ucast_pkts=0x100))]))
    values = engine.agent_metrics(A)
    assert values["7.ifinucastpkts"] == 0x200
    assert values["7.ifinoctets"] == 1000.0
    feed.at(1002, datagram(A, 3, 2000, [counters(3, 0, 7, ifc(100, if_in_ucast_pkts=0x300))]))
    assert engine.agent_metrics(A)["7.ifinoctets"] == 1000.0  # 64-bit went back: kept old rate


def test_counter_sequence_reset_and_agent_restart_take_no_rate(engine: Engine, feed: Feeder) -> None:
    feed.at(1000, datagram(A, 10, 90_000, [counters(40, 0, 7, ifc(1_000_000))]))
    feed.at(1010, datagram(A, 11, 100_000, [counters(41, 0, 7, ifc(2_000_000))]))
    assert engine.agent_metrics(A)["7.ifinoctets"] == 100_000.0
    # agent restarted: uptime back to 5 s, sequences from 1, counters from 0
    feed.at(1020, datagram(A, 1, 5_000, [counters(1, 0, 7, ifc(1_000))]))
    assert engine.agent_metrics(A)["7.ifinoctets"] == 100_000.0
    feed.at(1030, datagram(A, 2, 15_000, [counters(2, 0, 7, ifc(11_000))]))
    assert engine.agent_metrics(A)["7.ifinoctets"] == 1_000.0
    stats = engine.agents_json()[A]
    assert stats["sFlowDatagramsLost"] == 0 and stats["sFlowCounterLostSamples"] == 0
    assert stats["sFlowDatagramsReset"] == 1


def test_host_cpu_and_memory(engine: Engine, feed: Feeder) -> None:
    cpu0 = HostCpu(load_one=0.5, cpu_num=4, cpu_user=1000, cpu_system=1000, cpu_idle=8000)
    cpu1 = cpu0._replace(cpu_user=1600, cpu_system=1200, cpu_idle=9200, cpu_wio=0)
    mem = HostMemory(mem_total=1000, mem_free=200, mem_buffers=100, mem_cached=200)
    feed.at(1000, datagram(A, 1, 0, [counters(1, 2, 1, cpu0, mem)]))
    feed.at(1020, datagram(A, 2, 20_000, [counters(2, 2, 1, cpu1, mem)]))
    v = engine.agent_metrics(A)
    assert v["2.1.cpu_user"] == pytest.approx(30.0)
    assert v["2.1.cpu_system"] == pytest.approx(10.0)
    assert v["2.1.cpu_utilization"] == pytest.approx(40.0)
    assert v["2.1.mem_utilization"] == pytest.approx(50.0)
    assert v["2.1.load_one"] == 0.5


def test_container_cpu_and_metric_n_follow_start_and_stop(engine: Engine, feed: Feeder) -> None:
    flt = {"vir_host_name": ["apache.*"], "vir_cpu_state": ["running"]}
    feed.at(1000, datagram(A, 1, 0, [container(1, 101, "apache.1", 0),
                                     container(1, 102, "apache.2", 0),
                                     container(1, 103, "redis", 0)]))
    feed.at(1010, datagram(A, 2, 10_000, [container(2, 101, "apache.1", 5_000),
                                          container(2, 102, "apache.2", 1_000),
                                          container(2, 103, "redis", 9_000)]))
    [avg] = engine.metric("ALL", "avg:vir_cpu_utilization", flt)
    assert avg["metricN"] == 2
    assert avg["metricValue"] == pytest.approx(30.0)  # (50 % + 10 %) / 2
    [mx] = engine.metric("ALL", "vir_cpu_utilization")
    assert (mx["metricValue"], mx["dataSource"], mx["metricN"]) == (90.0, "3.103", 3)
    # apache.2's final sample: state shutoff -> gone at once
    feed.at(1011, datagram(A, 3, 11_000, [container(3, 102, "apache.2", 1_000, state=5)]))
    [avg] = engine.metric("ALL", "avg:vir_cpu_utilization", flt)
    assert (avg["metricN"], avg["metricValue"]) == (1, 50.0)
    # a container index that comes back starts its sequence at 1: no rate from old counters
    feed.at(1020, datagram(A, 4, 20_000, [container(1, 102, "apache.2", 7)]))
    assert engine.metric("ALL", "avg:vir_cpu_utilization", flt)[0]["metricN"] == 1
    assert engine.agent_metrics(A)["3.102.docker_name"] == "apache.2"


def test_silent_data_sources_expire(engine: Engine, feed: Feeder) -> None:
    feed.at(1000, datagram(A, 1, 0, [counters(1, 0, 7, ifc(0))]))
    feed.at(1030, datagram(B, 1, 0, [counters(1, 0, 7, ifc(0))]))
    engine.tick(1061)
    assert [r["agent"] for r in engine.dump("ALL", "ifspeed")] == [B]


def test_aggregations_and_bad_aggregation(engine: Engine, feed: Feeder) -> None:
    for i, agent in enumerate(("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4")):
        feed.at(1000, datagram(agent, 1, 0, [counters(1, 2, 1, HostCpu(load_one=float(i + 1)))]))
    got = {e["metricName"] + str(i): e["metricValue"] for i, e in enumerate(engine.metric(
        "ALL", "max:load_one,min:load_one,sum:load_one,avg:load_one,med:load_one,var:load_one,"
               "q1:load_one,q3:load_one,iqr:load_one"))}
    assert list(got.values()) == [4.0, 1.0, 10.0, 2.5, 2.5, 1.25, 1.75, 3.25, 1.5]
    only = engine.metric("10.0.0.1;10.0.0.3", "sum:load_one")[0]
    assert (only["metricValue"], only["metricN"]) == (4.0, 2)
    with pytest.raises(QueryError, match="unknown aggregation 'avgg'"):
        engine.metric("ALL", "avgg:load_one")


def test_table_sorted_and_metric_names(engine: Engine, feed: Feeder) -> None:
    for i, agent in enumerate((A, B)):
        feed.at(1000, datagram(agent, 1, 0, [counters(1, 2, 1, HostCpu(load_one=float(i)),
                                                      HostMemory(mem_total=100 * (i + 1)))]))
    rows = engine.table("ALL", "sort:load_one:-1,mem_total")
    assert len(rows) == 1
    assert [c["metricValue"] for c in rows[0]] == [1.0, 200]
    assert "load_one" in engine.metric_names() and engine.metric_names()["load_one"] == 0


def test_malformed_datagrams_counted_never_hide_valid_ones(engine: Engine, feed: Feeder) -> None:
    good = [datagram(A, s, s * 1000, [counters(s, 0, 7, ifc(s * 1000))]) for s in range(1, 51)]
    for i, g in enumerate(good):
        assert feed.at(1000 + i, g)
        assert not feed.at(1000 + i, g[:-7] if i % 2 else b"\x00\x00\x00\x05garbage")
        assert not feed.at(1000 + i, b"")
    a = engine.analyzer_json()
    assert (a["sFlowDatagramsReceived"], a["sFlowParseErrors"]) == (150, 100)
    stats = engine.agents_json()[A]
    assert stats["sFlowDatagramsReceived"] == 50 and stats["sFlowDatagramsLost"] == 0
    assert stats["sFlowCounterSamples"] == 50
    assert stats["sFlowParseErrors"] == 25  # the truncated ones still name their agent
    assert a["parseErrorsBySource"] == {SOURCE[0]: 100}


def test_duplicate_datagram_is_not_analysed_twice(engine: Engine, feed: Feeder) -> None:
    engine.set_flow("bytes", FlowSpec(value="bytes", t=1))
    d = datagram(A, 1, 0, [flow(1, 3, tcp("10.1.0.1", "10.2.0.1"), rate=10)])
    feed.at(1000, d)
    feed.at(1000, d)
    stats = engine.agents_json()[A]
    assert (stats["sFlowDatagramsDuplicates"], stats["sFlowFlowSamples"]) == (1, 1)


def test_flows_scaled_by_sampling_rate_and_deduplicated(engine: Engine, feed: Feeder) -> None:
    engine.set_flow("pairs", FlowSpec(keys="ipsource,ipdestination", value="frames", t=1))
    pkt = tcp("10.1.0.1", "10.2.0.1")
    for s in range(1, 11):  # both switches see the same flow: 10 samples at 1-in-100
        feed.at(1000 + s * 0.1, datagram(A, s, s * 100, [flow(s, 3, pkt, 100)]))
        feed.at(1000 + s * 0.1, datagram(B, s, s * 100, [flow(s, 5, pkt, 100)]))
    top_max = engine.active_flows("ALL", "pairs", agg_mode="max")
    top_sum = engine.active_flows("ALL", "pairs", agg_mode="sum")
    assert [f["key"] for f in top_max] == ["10.1.0.1,10.2.0.1"]
    assert top_sum[0]["value"] == pytest.approx(2 * top_max[0]["value"])
    assert top_max[0]["value"] > 0


def test_keyless_flow_is_a_metric_and_threshold_raises_event(engine: Engine, feed: Feeder) -> None:
    engine.set_flow("web", FlowSpec(value="bytes", filter="tcpdestinationport=80", t=1))
    engine.set_threshold("busy", ThresholdSpec(metric="web", value=1000.0))
    for s in range(1, 21):
        feed.at(1000 + s * 0.1, datagram(A, s, s * 100, [flow(s, 3, tcp("10.1.0.1", "10.2.0.1"))]))
    [m] = engine.metric("ALL", "web")
    assert m["metricN"] == 1 and m["metricValue"] > 1000.0
    result = engine.tick(1002.0)
    assert [(e.thresholdID, e.agent, e.dataSource) for e in result.events] == [("busy", A, "3")]
    assert [e.thresholdID for e in engine.events.query()] == ["busy"]
    assert engine.analyzer_json()["eventsGenerated"] == 1


def test_state_round_trip(engine: Engine, clock: object) -> None:
    engine.set_group("lan", ["10.0.0.0/8"])
    engine.set_flow("f", FlowSpec(keys="ipsource", value="bytes"))
    engine.set_threshold("t", ThresholdSpec(metric="f", value=5.0))
    state = engine.export_state()
    other = Engine()
    other.import_state(state)
    assert other.export_state() == state
    with pytest.raises(ValueError, match="flow 'bad'"):
        other.import_state({"flows": {"bad": {"value": "nonsense:bytes"}}})


def test_sub_agents_and_ipv6_agents(engine: Engine, feed: Feeder) -> None:
    six = "2001:db8::7"
    feed.at(1000, datagram(A, 1, 0, [counters(1, 0, 1, ifc(0))], sub_agent=0))
    feed.at(1000, datagram(A, 1, 0, [counters(1, 0, 2, ifc(0))], sub_agent=1))
    feed.at(1001, datagram(A, 3, 10, [], sub_agent=1))
    feed.at(1001, datagram(six, 1, 0, [counters(1, 2, 1, HostCpu(load_one=2.0))]))
    stats = engine.agents_json()
    assert stats[A]["subAgents"] == [0, 1]
    assert (stats[A]["sFlowDatagramsReceived"], stats[A]["sFlowDatagramsLost"]) == (3, 1)
    assert engine.metric(six, "load_one")[0]["agent"] == six
    assert engine.analyzer_json()["sFlowAgents"] == 2


def test_expiry_follows_each_sources_polling_interval(engine: Engine, feed: Feeder) -> None:
    for s in (1, 2, 3):  # A polls every 5 s, B every 30 s (agent uptime)
        feed.at(1000 + 5 * s, datagram(A, s, 5000 * s, [counters(s, 0, 7, ifc(0))]))
        feed.at(1000 + 30 * s, datagram(B, s, 30_000 * s, [counters(s, 0, 7, ifc(0))]))
    engine.tick(1090 + 14.0)  # A silent 89 s > 3 x 5 s; B silent 14 s < 3 x 30 s
    assert [r["agent"] for r in engine.dump("ALL", "ifspeed")] == [B]
    engine.tick(1090 + 91.0)
    assert engine.dump("ALL", "ifspeed") == []
    assert engine.analyzer_json()["sFlowDataSourcesExpired"] == 2
    # two samples are not enough to trust an interval: the 60 s timeout still applies
    feed.at(1200, datagram(A, 4, 20_000, [counters(4, 0, 7, ifc(0))]))
    feed.at(1201, datagram(A, 5, 21_000, [counters(5, 0, 7, ifc(0))]))
    engine.tick(1201 + 59.0)
    assert len(engine.dump("ALL", "ifspeed")) == 1
