"""The flow engine on real decoded samples: values, smoothing, top flows, logging, memory."""

from __future__ import annotations

import functools
import math
import threading
import time
from typing import Any

import pytest
from collector_helpers import flow_view

from sflowlab.agent_sim.packets import UDP
from sflowlab.collector.events import FlowRecord
from sflowlab.collector.flows import EXPIRE_T, LOG_IDLE_T, FlowEngine, FlowSpec
from sflowlab.collector.groups import GroupSet
from sflowlab.collector.query import Scope

A1, A2 = "192.0.2.1", "192.0.2.2"


view = functools.cache(flow_view)


def engine(groups: GroupSet | None = None, **kwargs: Any) -> FlowEngine:
    return FlowEngine(groups or GroupSet(), **kwargs)


def define(fe: FlowEngine, name: str, **spec: Any) -> None:
    fe.define(name, FlowSpec.from_json(spec))


# ------------------------------------------------------------------ values and smoothing

def test_bytes_rate_follows_the_documented_smoothing_formula() -> None:
    fe = engine()
    define(fe, "pair", keys="ipsource,ipdestination", value="bytes", t=2)
    q = 1000 * 100  # frame_length x sampling rate
    for s in (0.0, 1.0, 3.0):
        fe.ingest(A1, view(), s)
    r = q / 2
    r = r * math.exp(-1 / 2) + q / 2
    r = r * math.exp(-2 / 2) + q / 2
    assert fe.flow_value(A1, "pair", "10.0.0.1,10.0.0.2", 4.0) == pytest.approx(
        r * math.exp(-1 / 2))
    assert fe.flow_value(A1, "pair", "10.0.0.1,10.0.0.2", 3.0) == pytest.approx(r)
    assert fe.flow_value(A1, "pair", "10.9.9.9,10.0.0.2", 3.0) == 0.0
    assert fe.flow_value(A2, "pair", "10.0.0.1,10.0.0.2", 3.0) == 0.0


def test_a_datagrams_samples_count_as_if_ingested_one_by_one() -> None:
    """ingest_all (one datagram, one time) gives what per-sample ingest gives, for the
    generated rate loop (a key repeated within the datagram, a filter, a key function,
    a numeric value) and for the general path (logging, avg)."""
    specs = {"pair": {"keys": "ipsource,ipdestination", "value": "bytes", "t": 2},
             "web": {"keys": "null:vlan:none", "value": "ipbytes", "filter": "tcpdestinationport=80"},
             "logged": {"keys": "ipsource", "value": "frames", "log": True},
             "avg": {"keys": "ipdestination", "value": "avg:ipbytes"}}
    batch = [view(), view(rate=50), view("10.0.0.3", dport=443, ds=6), view(length=200, ds=6)]
    one, many = engine(), engine()
    for fe in (one, many):
        for name, spec in specs.items():
            fe.define(name, FlowSpec.from_json(spec))
    for now in (1.0, 2.5):
        for sample in batch:
            one.ingest(A1, sample, now)
        many.ingest_all(A1, batch, now)
    for name in specs:
        expected = sorted(one.flow_values(name, 3.0))
        assert expected and all(
            got[:3] == want[:3] and got[3] == pytest.approx(want[3], rel=1e-12)
            for got, want in zip(sorted(many.flow_values(name, 3.0)), expected, strict=True))
    assert [r.flowKeys for r in one.tick(60.0)] == [r.flowKeys for r in many.tick(60.0)]


def test_steady_stream_averages_to_its_true_rate() -> None:
    # 10 samples/s of 500-byte frames at 1-in-64: 320,000 B/s; the smoothed rate, averaged
    # over a period once settled, equals it (the EWMA keeps the integral of the input).
    fe = engine()
    define(fe, "all", value="bytes", t=2)
    sample = view(length=500, rate=64)
    for i in range(400):
        fe.ingest(A1, sample, i / 10)
    reads = [fe.metric_values("all", 39.9 + k / 1000)[0][2] for k in range(100)]
    assert sum(reads) / len(reads) == pytest.approx(320_000, rel=0.01)


def test_values_scale_by_each_samples_own_sampling_rate() -> None:
    fe = engine()
    define(fe, "frames", value="frames", t=1)
    define(fe, "ipbytes", value="ipbytes", t=1)
    fe.ingest(A1, view(rate=10), 0.0)
    fe.ingest(A1, view(rate=1000), 0.0)
    assert fe.metric_values("frames", 0.0) == [(A1, "5", 1010.0)]
    ip_bytes = view().keys()["ipbytes"]
    assert fe.metric_values("ipbytes", 0.0) == [(A1, "5", pytest.approx(ip_bytes * 1010))]


def test_avg_count_min_max_prefixes() -> None:
    fe = engine()
    define(fe, "avg", keys="ipdestination", value="avg:ipbytes", t=10)
    define(fe, "count", keys="ipdestination", value="count:ipsource", t=10)
    define(fe, "max", keys="ipdestination", value="max:ipbytes", t=10)
    define(fe, "min", keys="ipdestination", value="min:ipbytes", t=10)
    small, big = view("10.0.0.1", length=200, rate=300), view("10.0.0.3", length=1200, rate=100)
    s_bytes, b_bytes = small.keys()["ipbytes"], big.keys()["ipbytes"]
    for s in (0.0, 0.0, 0.0):
        fe.ingest(A1, small, s)
    fe.ingest(A1, big, 0.0)
    weighted = (3 * 300 * s_bytes + 100 * b_bytes) / (3 * 300 + 100)
    assert fe.flow_value(A1, "avg", "10.0.0.2", 5.0) == pytest.approx(weighted)
    assert fe.flow_value(A1, "count", "10.0.0.2", 5.0) == 2.0
    assert fe.flow_value(A1, "max", "10.0.0.2", 5.0) == b_bytes
    assert fe.flow_value(A1, "min", "10.0.0.2", 5.0) == s_bytes
    fe.ingest(A1, view("10.0.0.4"), 8.0)  # the distinct-count window is t seconds
    assert fe.flow_value(A1, "count", "10.0.0.2", 12.0) == 1.0
    fe.ingest(A1, small, 20.0)  # an extreme older than t gives way to the next sample
    assert fe.flow_value(A1, "max", "10.0.0.2", 20.0) == s_bytes


def test_missing_key_does_not_match_and_null_gives_a_default() -> None:
    fe = engine()
    define(fe, "udp", keys="udpsourceport", value="frames")
    define(fe, "vlan", keys="null:vlan:none", value="frames")
    fe.ingest(A1, view(), 0.0)  # TCP, untagged
    fe.ingest(A1, view(proto=UDP, sport=53, vlan=7), 0.0)
    assert [(r["key"], r["value"]) for r in fe.active_flows(None, "udp", 0.0)] == [("53", 50.0)]
    assert sorted((r["key"], r["value"]) for r in fe.active_flows(None, "vlan", 0.0)) == [
        ("7", 50.0), ("none", 50.0)]  # 100 frames / t


def test_filter_group_key_and_separator() -> None:
    groups = GroupSet()
    groups.set("emerging", ["10.0.0.2/32"])
    fe = engine(groups)
    define(fe, "bad", keys="ipsource,group:ipdestination:emerging", value="frames", fs="|",
           filter="group:ipdestination:emerging=emerging&ipprotocol=6")
    fe.ingest(A1, view("10.0.0.1", "10.0.0.2"), 0.0)
    fe.ingest(A1, view("10.0.0.1", "10.0.0.3"), 0.0)
    fe.ingest(A1, view("10.0.0.1", "10.0.0.2", proto=UDP), 0.0)
    assert fe.flow_values("bad", 0.0) == [(A1, "5", "10.0.0.1|emerging", 50.0)]


def test_agent_key_and_discarded_packets() -> None:
    fe = engine()
    define(fe, "per_agent", keys="agent", value="frames")
    define(fe, "drops", keys="agent,reason", value="frames", dropped=True)
    fe.ingest(A1, view(), 0.0)
    fe.ingest(A2, view(), 0.0)
    fe.ingest(A2, view(discarded=True), 0.0)
    assert sorted(r[2] for r in fe.flow_values("per_agent", 0.0)) == [A1, A2]
    assert fe.flow_values("drops", 0.0) == [(A2, "5", f"{A2},acl", 0.5)]  # rate 1, t 2


# ------------------------------------------------------------------ queries

def test_active_flows_dedupes_agents_with_max_and_adds_with_sum() -> None:
    fe = engine()
    define(fe, "pair", keys="ipsource,ipdestination", value="frames")
    fe.ingest(A1, view(ds=1, rate=100), 0.0)  # one flow seen by two switches
    fe.ingest(A2, view(ds=2, rate=300), 0.0)
    fe.ingest(A2, view("10.0.0.7", rate=50, ds=2), 0.0)
    assert fe.active_flows(None, "pair", 0.0) == [
        {"key": "10.0.0.1,10.0.0.2", "value": 150.0, "agent": A2, "dataSource": "2"},
        {"key": "10.0.0.7,10.0.0.2", "value": 25.0, "agent": A2, "dataSource": "2"},
    ]
    summed = fe.active_flows(None, "pair", 0.0, agg_mode="sum")
    assert [(r["key"], r["value"], r["agent"]) for r in summed] == [
        ("10.0.0.1,10.0.0.2", 200.0, A2), ("10.0.0.7,10.0.0.2", 25.0, A2)]
    assert fe.active_flows(Scope(agents=frozenset({A1})), "pair", 0.0) == [
        {"key": "10.0.0.1,10.0.0.2", "value": 50.0, "agent": A1, "dataSource": "1"}]
    assert [r["key"] for r in fe.active_flows(None, "pair", 0.0, max_flows=1)] == [
        "10.0.0.1,10.0.0.2"]
    assert fe.active_flows(None, "pair", 0.0, min_value=30) == fe.active_flows(
        None, "pair", 0.0, max_flows=1)
    with pytest.raises(ValueError, match="aggMode 'median'"):
        fe.active_flows(None, "pair", 0.0, agg_mode="median")
    with pytest.raises(KeyError) as info:
        fe.active_flows(None, "nope", 0.0)
    assert str(info.value) == "no flow named 'nope'"


def test_dump_gives_top_n_keys_per_data_source() -> None:
    fe = engine()
    define(fe, "src", keys="ipsource", value="frames", n=5, t=1)
    for i in range(8):
        fe.ingest(A1, view(f"10.0.0.{10 + i}", rate=10 * (i + 1)), 0.0)
    fe.ingest(A2, view(ds=9), 0.5)
    rows = fe.dump(Scope(agents=frozenset({A1})), "src", 1.0)
    assert len(rows) == 1
    row = rows[0]
    assert (row["agent"], row["dataSource"], row["metricName"]) == (A1, "5", "src")
    assert row["lastUpdate"] == 1000
    assert [k["key"] for k in row["topKeys"]] == [f"10.0.0.{10 + i}" for i in (7, 6, 5, 4, 3)]
    assert row["metricValue"] == row["topKeys"][0]["value"] == pytest.approx(80 * math.exp(-1))
    assert len(fe.dump(None, "src", 1.0)) == 2


def test_keyless_flow_is_a_metric_keyed_flow_is_not() -> None:
    fe = engine()
    define(fe, "total", value="bytes")
    define(fe, "keyed", keys="ipsource", value="bytes")
    fe.ingest(A1, view(), 0.0)
    assert fe.metric_values("total", 0.0) == [(A1, "5", 50_000.0)]
    assert fe.metric_values("keyed", 0.0) == []
    assert fe.metric_values("load_one", 0.0) == []
    assert fe.flow_values("undefined", 0.0) == []


def test_flow_keys_reports_key_names_seen_with_their_age() -> None:
    fe = engine()
    fe.ingest(A1, view(), 1.0)
    fe.ingest(A1, view(proto=UDP), 2.5)
    keys = fe.flow_keys(3.0)
    assert keys["tcpsourceport"] == 2000
    assert keys["udpsourceport"] == 500
    assert keys["ipsource"] == 500
    assert keys["agent"] == 500


# ------------------------------------------------------------------ memory

def test_silent_entries_expire_on_tick() -> None:
    fe = engine()
    define(fe, "src", keys="ipsource", value="bytes", t=2)
    fe.ingest(A1, view("10.0.0.1"), 0.0)
    fe.ingest(A1, view("10.0.0.9"), 15.0)
    fe.tick(EXPIRE_T * 2 + 0.1)
    assert [k for _, _, k, _ in fe.flow_values("src", 20.1)] == ["10.0.0.9"]
    fe.tick(100.0)
    assert fe.flow_values("src", 100.0) == []


def test_expiry_pass_runs_in_slices_oldest_tables_first() -> None:
    """40 silent entries in 8 tables: the tick that starts the pass expires nothing with
    expire=False; slices of 10 entries expire two tables each; a table fed meanwhile keeps its
    live entry; then no pass is due until a quarter of the expiry time later."""
    fe = engine()
    define(fe, "src", keys="ipsource", value="bytes", t=2)
    for ds in range(1, 9):
        for host in range(5 if ds < 8 else 4):
            fe.ingest(A1, view(f"10.0.{ds}.{host}", ds=ds), 0.0)
    fe.ingest(A1, view("10.9.9.9", ds=8), 19.0)  # the last table's fifth entry, still live
    now = EXPIRE_T * 2 + 0.5
    fe.tick(now, expire=False)
    left = [len(fe.flow_values("src", now))]
    while fe.expire_some(now, 10):
        left.append(len(fe.flow_values("src", now)))
    left.append(len(fe.flow_values("src", now)))
    assert left == [40, 30, 20, 10, 1]
    assert [k for _, _, k, _ in fe.flow_values("src", now)] == ["10.9.9.9"]
    fe.ingest(A1, view("10.0.1.1", ds=1), now)
    fe.tick(now + EXPIRE_T * 2 / 4 - 0.1)
    assert not fe.expire_some(now + 100)  # no pass in progress: nothing expires
    assert len(fe.flow_values("src", now)) == 2


def test_tracked_keys_per_data_source_are_capped_evicting_the_smallest() -> None:
    fe = engine(max_keys=4)
    define(fe, "src", keys="ipsource", value="frames")
    for i in range(6):  # the 6th key pushes the table past 4 x 1.25
        fe.ingest(A1, view(f"10.0.0.{i}", rate=100 * (i + 1)), 0.0)
    assert sorted(k for _, _, k, _ in fe.flow_values("src", 0.0)) == [
        "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]


def test_identical_redefinition_keeps_state_changed_one_restarts() -> None:
    fe = engine()
    define(fe, "f", keys="ipsource", value="frames")
    fe.ingest(A1, view(), 0.0)
    define(fe, "f", keys="ipsource", value="frames")
    assert len(fe.flow_values("f", 0.0)) == 1
    define(fe, "f", keys="ipsource", value="bytes")
    assert fe.flow_values("f", 0.0) == []
    fe.ingest(A1, view(), 0.0)
    spec = fe.specs()["f"]
    spec.t = 10  # changing the caller's copy changes nothing until it is defined again
    assert fe.specs()["f"].t == 2
    fe.define("f", spec)
    assert fe.specs()["f"].t == 10
    assert fe.flow_values("f", 0.0) == []
    assert fe.remove("f") is True
    assert fe.remove("f") is False
    assert fe.specs() == {}


# ------------------------------------------------------------------ logged flows

def test_logged_flow_ends_after_idle_timeout() -> None:
    fe = engine()
    define(fe, "pair", keys="ipsource,ipdestination", value="bytes", t=2, log=True)
    for s in range(5):
        fe.ingest(A1, view(), float(s))
    idle = LOG_IDLE_T * 2
    assert fe.tick(4 + idle) == []
    records = fe.tick(4 + idle + 0.5)
    assert records == [FlowRecord(flowID=1, name="pair", flowKeys="10.0.0.1,10.0.0.2",
                                  value=500_000.0, start=0, end=4000, agent=A1, dataSource="5")]
    assert records[0].to_json() == {"flowID": 1, "name": "pair", "flowKeys": "10.0.0.1,10.0.0.2",
                                    "value": 500_000.0, "start": 0, "end": 4000, "agent": A1,
                                    "dataSource": "5"}
    assert fe.logged() == records
    fe.ingest(A1, view(), 30.0)  # the same key again: a new flow
    assert [r.start for r in fe.tick(60.0)] == [30_000]


def test_active_timeout_flushes_long_flows() -> None:
    fe = engine()
    define(fe, "pair", keys="ipsource", value="frames", log=True, activeTimeout=3)
    for s in range(4):
        fe.ingest(A1, view(), float(s))
    first = fe.tick(3.0)
    assert [(r.start, r.end, r.value) for r in first] == [(0, 3000, 400.0)]
    fe.ingest(A1, view(), 4.0)
    fe.ingest(A1, view(), 5.0)
    second = fe.tick(60.0)
    assert [(r.flowID, r.start, r.end, r.value) for r in second] == [
        (2, 4000, 5000, 200.0)]
    assert [r.flowID for r in fe.logged()] == [2, 1]
    assert [r.flowID for r in fe.logged(after_id=1)] == [2]
    assert fe.logged(name="other") == []
    assert fe.logged(max_flows=1) == second


def test_flow_start_logs_once_at_the_first_sample() -> None:
    fe = engine()
    define(fe, "start", keys="ipdestination", value="bytes", log=True, flowStart=True)
    define(fe, "quiet", keys="ipdestination", value="bytes")
    fe.ingest(A1, view(), 0.0)
    fe.ingest(A1, view(), 1.0)
    assert fe.logged() != []  # in the store at once, for long polls
    records = fe.tick(1.0)
    assert [(r.name, r.start, r.end, r.value) for r in records] == [
        ("start", 0, 0, 100_000.0)]
    assert fe.tick(100.0) == []  # no record at the end


def test_wait_logged_returns_when_a_flow_is_logged_from_another_thread() -> None:
    fe = engine()
    define(fe, "start", keys="ipdestination", value="bytes", log=True, flowStart=True)
    assert fe.wait_logged(-1, 0.05) is False
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(fe.wait_logged(-1, 30.0)))
    began = time.monotonic()
    waiter.start()
    fe.ingest(A1, view(), 0.0)
    waiter.join(30.0)
    assert result == [True]
    assert time.monotonic() - began < 10.0
    assert fe.wait_logged(fe.last_logged_id(), 0.05) is False


# ------------------------------------------------------------------ definitions

def test_flow_spec_round_trips_and_clamps_like_sflow_rt() -> None:
    spec = FlowSpec.from_json({"keys": ["ipsource", "ipdestination"], "value": "frames",
                               "t": 1000, "n": 1, "filter": None, "name": "pair"})
    assert (spec.keys, spec.t, spec.n, spec.filter) == ("ipsource,ipdestination", 600, 5, "")
    assert FlowSpec.from_json(spec.to_json()) == spec
    assert FlowSpec.from_json({"t": 0.01, "n": 50}).to_json()["t"] == 0.2
    assert FlowSpec.from_json({}).to_json() == {
        "keys": "", "value": "bytes", "filter": "", "t": 2, "n": 5, "fs": ",", "log": False,
        "flowStart": False, "activeTimeout": 60, "dropped": False, "values": [],
        "aggMode": "max"}


@pytest.mark.parametrize(("obj", "message"), [
    ({"keys": "ipsource", "colour": "red"}, "unsupported flow attribute(s) colour"),
    ({"keys": "ipsource", "values": ["median:bytes"]}, "prefix 'median'"),
    ({"aggMode": "median"}, "aggMode 'median'"),
    ({"value": "median:bytes"}, "prefix 'median'"),
    ({"value": ""}, "non-empty string"),
    ({"keys": "mask:ipsource"}, "needs 2 arguments"),
    ({"filter": "ipprotocol=6&"}, "expected a comparison"),
    ({"t": "soon"}, "'t' must be a number"),
    ({"n": True}, "'n' must be a number"),
    ({"log": "yes"}, "'log' must be true or false"),
    ({"fs": ""}, "fs must be a non-empty string"),
    ({"keys": 5}, "comma list"),
    ([1, 2], "JSON object"),
])
def test_bad_flow_definitions_are_refused_clearly(obj: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        FlowSpec.from_json(obj)
    assert message in str(info.value)


def test_engine_refuses_a_directly_built_spec_it_cannot_run() -> None:
    with pytest.raises(ValueError, match="t must be a positive number"):
        engine().define("f", FlowSpec(t=0))
    with pytest.raises(ValueError, match="bad flow name"):
        engine().define("", FlowSpec())
