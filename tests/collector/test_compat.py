"""sFlow-RT compatibility, each test written from sFlow-RT's documented behaviour (reference
REST API, define_flow, topology pages): what real sFlow-RT scripts and apps rely on."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import Feeder, counters, datagram, flow, tcp

from sflowlab.codec import HostCpu, HostDescr, IfCounters, PortName
from sflowlab.collector.engine import Engine
from sflowlab.collector.events import Event, FlowRecord
from sflowlab.collector.rest import Api
from sflowlab.collector.runtime import ControllerApi, Runtime

A, B = "10.0.0.1", "10.0.0.2"


def call(api: Api, method: str, target: str, body: Any = None) -> tuple[int, Any]:
    raw = b"" if body is None else json.dumps(body).encode()
    status, ctype, out = api.handle(method, target, {}, raw)
    return status, json.loads(out) if ctype == "application/json" else out.decode()


def get(api: Api, target: str) -> Any:
    status, body = call(api, "GET", target)
    assert status == 200, body
    return body


@pytest.fixture
def api(engine: Engine) -> Api:
    return Api(engine)


def hosts(feed: Feeder) -> None:
    """web1 (A) and db1 (B), each with host counters and two interfaces (ifIndex 1, 3)."""
    for i, (agent, name) in enumerate(((A, "web1"), (B, "db1"))):
        feed.at(1000, datagram(agent, 1, 0, [
            counters(1, 2, 1, HostDescr(hostname=name), HostCpu(load_one=i + 0.5, load_five=i + 1.5)),
            counters(1, 0, 1, IfCounters(if_index=1, if_speed=10**9), PortName(name="swp1")),
            counters(1, 0, 3, IfCounters(if_index=3, if_speed=10**8), PortName(name="swp3"))]))


# ---------------------------------------------------------------- long polls (item 1)

def test_event_long_poll_filtered_by_threshold_waits_for_a_matching_event(
        api: Api, feed: Feeder) -> None:
    """``/events/json?thresholdID=b&eventID=-1&timeout=T`` waits for an event of b: events of
    other thresholds do not end the wait (clients would spin)."""
    for name in ("a", "b"):
        call(api, "PUT", f"/flow/{name}/json", {"value": "frames", "t": 1,
                                               "filter": f"ipsource=10.1.0.{ord(name) - 96}"})
        call(api, "PUT", f"/threshold/{name}/json", {"metric": name, "value": 1})
    feed.at(1000.1, datagram(A, 1, 100, [flow(1, 3, tcp("10.1.0.1", "10.2.0.1"))]))
    api.engine.tick(1000.2)
    assert [e["thresholdID"] for e in get(api, "/events/json?eventID=-1")] == ["a"]
    began = time.monotonic()
    assert get(api, "/events/json?thresholdID=b&eventID=-1&timeout=0.3") == []
    assert time.monotonic() - began >= 0.3  # waited: a's event did not answer it

    answer: list[Any] = []
    poll = threading.Thread(target=lambda: answer.append(
        get(api, "/events/json?thresholdID=b&eventID=-1&timeout=30")))
    poll.start()
    feed.at(1000.3, datagram(A, 2, 300, [flow(2, 3, tcp("10.1.0.2", "10.2.0.1"))]))
    api.engine.tick(1000.4)
    poll.join(timeout=10)
    assert not poll.is_alive()
    assert [e["thresholdID"] for e in answer[0]] == ["b"]


def test_logged_flow_long_poll_filtered_by_name_waits_for_that_flow(
        api: Api, feed: Feeder) -> None:
    for name, port in (("web", 80), ("dns", 53)):
        call(api, "PUT", f"/flow/{name}/json", {"keys": "ipsource", "value": "frames", "t": 0.2,
                                               "log": True, "flowStart": True,
                                               "filter": f"tcpdestinationport={port}"})
    feed.at(1000.1, datagram(A, 1, 100, [flow(1, 3, tcp("10.1.0.1", "10.2.0.1", dport=80))]))
    assert [f["name"] for f in get(api, "/flows/json?flowID=-1")] == ["web"]
    began = time.monotonic()
    assert get(api, "/flows/json?name=dns&flowID=-1&timeout=0.3") == []
    assert time.monotonic() - began >= 0.3

    answer: list[Any] = []
    poll = threading.Thread(target=lambda: answer.append(
        get(api, "/flows/json?name=dns&flowID=-1&timeout=30")))
    poll.start()
    feed.at(1000.2, datagram(A, 2, 200, [flow(2, 3, tcp("10.1.0.1", "10.2.0.1", dport=53))]))
    poll.join(timeout=10)
    assert not poll.is_alive()
    assert [(f["name"], f["flowKeys"]) for f in answer[0]] == [("dns", "10.1.0.1")]


# ---------------------------------------------------------------- flow values (item 3)

def test_flow_values_bps_Bps_fps_are_rates_in_those_units(api: Api, feed: Feeder) -> None:
    """top-flows' and flow-trend's defaults: bits, bytes and frames per second."""
    for value in ("bytes", "bps", "Bps", "frames", "fps"):
        assert call(api, "PUT", f"/flow/{value}/json", {"keys": "ipsource", "value": value})[0] \
            == 200
    for s in range(1, 21):
        feed.at(1000 + s * 0.1, datagram(A, s, s * 100, [
            flow(s, 3, tcp("10.1.0.1", "10.2.0.1", length=1000), rate=100)]))
    top = {v: get(api, f"/activeflows/ALL/{v}/json")[0]["value"]
           for v in ("bytes", "bps", "Bps", "frames", "fps")}
    assert top["bytes"] > 0 and top["frames"] > 0
    assert top["bps"] == pytest.approx(8 * top["bytes"])
    assert top["Bps"] == pytest.approx(top["bytes"])
    assert top["fps"] == pytest.approx(top["frames"])
    assert top["bytes"] == pytest.approx(1004 * top["frames"])  # frame length incl. the FCS


def test_flow_values_computes_several_values_per_key(api: Api, feed: Feeder) -> None:
    call(api, "PUT", "/flow/both/json", {"keys": "ipsource", "value": "bps",
                                         "values": ["frames", "count:tcpsourceport"]})
    call(api, "PUT", "/flow/frames/json", {"keys": "ipsource", "value": "frames"})
    for s in range(1, 11):
        feed.at(1000 + s * 0.1, datagram(A, s, s * 100, [
            flow(s, 3, tcp("10.1.0.1", "10.2.0.1", sport=40000 + s % 3))]))
    (top,) = get(api, "/activeflows/ALL/both/json")
    assert top["key"] == "10.1.0.1"
    frames = get(api, "/activeflows/ALL/frames/json")[0]["value"]
    assert top["values"] == [pytest.approx(frames), 3.0]
    assert get(api, "/flow/both/json")["values"] == ["frames", "count:tcpsourceport"]


# ---------------------------------------------------------------- groups (item 2)

def test_group_sets_are_two_level_and_the_key_function_names_the_group(
        api: Api, feed: Feeder) -> None:
    """ddos-protect's setGroups('ddos_protect', {external: [...], private: [...]}) and its
    filter group:ipsource:ddos_protect=external."""
    spec = {"external": ["0.0.0.0/0", "::/0"], "private": ["10.0.0.0/8", "192.168.0.0/16"]}
    assert call(api, "PUT", "/group/ddos/json", spec) == (200, spec)
    assert get(api, "/group/json") == {"ddos": spec}
    assert get(api, "/group/ddos/json") == spec
    status, body = call(api, "PUT", "/group/bad/json", {"private": ["10.0.0.0/99"]})
    assert status == 400 and "group 'private'" in body["error"]
    call(api, "PUT", "/flow/src/json", {
        "keys": "ipsource,group:ipsource:ddos", "value": "frames",
        "filter": "group:ipsource:ddos=external&group:ipdestination:ddos!=external"})
    call(api, "PUT", "/flow/groups/json", {"keys": "group:ipsource:ddos,group:ipdestination:ddos",
                                           "value": "frames"})
    for s, src in enumerate(("203.0.113.9", "10.1.0.1", "192.168.1.1"), 1):
        feed.at(1000 + s * 0.1, datagram(A, s, s * 100, [flow(s, 3, tcp(src, "10.2.0.1"))]))
    assert [f["key"] for f in get(api, "/activeflows/ALL/src/json")] == ["203.0.113.9,external"]
    assert sorted(f["key"] for f in get(api, "/activeflows/ALL/groups/json")) == [
        "external,private", "private,private"]
    assert call(api, "DELETE", "/group/ddos/json") == (200, {})
    assert get(api, "/group/json") == {}


# ---------------------------------------------------------------- metric queries (items 3, 4)

def test_metric_name_keeps_the_aggregation_prefix_and_lists_split_on_semicolons(
        api: Api, feed: Feeder) -> None:
    hosts(feed)
    body = get(api, "/metric/ALL/max:load_one;avg:load_one,load_five/json")
    assert [(m["metricName"], m["metricValue"]) for m in body] == [
        ("max:load_one", 1.5), ("avg:load_one", 1.0), ("load_five", 2.5)]
    assert body[0]["agent"] == B and body[2]["agent"] == B


def test_per_data_source_metric_names(api: Api, feed: Feeder) -> None:
    hosts(feed)
    (one,) = get(api, f"/metric/{A}/2.1.load_one/json")
    assert (one["metricName"], one["metricN"], one["metricValue"], one["dataSource"]) == (
        "2.1.load_one", 1, 0.5, "2.1")
    (port,) = get(api, "/metric/ALL/sum:3.ifspeed/json")
    assert (port["metricN"], port["metricValue"]) == (2, 2e8)
    assert get(api, "/metric/ALL/sum:ifspeed/json")[0]["metricValue"] == 2.2e9
    assert get(api, "/metric/ALL/9.ifspeed/json")[0]["metricN"] == 0


def test_agents_named_by_host_name(api: Api, feed: Feeder) -> None:
    hosts(feed)
    (m,) = get(api, "/metric/db1/load_one/json")
    assert (m["metricN"], m["agent"], m["metricValue"]) == (1, B, 1.5)
    assert get(api, f"/metric/web1;{B}/sum:load_one/json")[0]["metricValue"] == 2.0
    assert get(api, "/metric/db1/json")["2.1.load_one"] == 1.5
    assert {r["agent"] for r in get(api, "/dump/web1/ifspeed/json")} == {A}


def test_dump_ALL_metrics_gives_every_metric_of_each_data_source(
        api: Api, feed: Feeder) -> None:
    hosts(feed)
    entries = get(api, f"/dump/{A}/ALL/json")
    got = {(e["dataSource"], e["metricName"]): e["metricValue"] for e in entries}
    assert got[("2.1", "load_one")] == 0.5 and got[("2.1", "host_name")] == "web1"
    assert got[("3", "ifspeed")] == 10**8 and got[("1", "ifname")] == "swp1"
    assert {e["agent"] for e in entries} == {A}
    assert len(get(api, "/dump/ALL/ALL/json")) == 2 * len(entries)
    assert [e["metricName"] for e in get(api, "/dump/ALL/load_one;load_five/json")] == [
        "load_one", "load_one", "load_five", "load_five"]


def test_unknown_agent_is_404_and_known_agent_200(api: Api, feed: Feeder) -> None:
    hosts(feed)
    assert call(api, "GET", "/metric/10.9.9.9/json")[0] == 404
    assert call(api, "GET", "/metric/nosuchhost/json")[0] == 404
    assert get(api, f"/metric/{A}/json")["1.ifname"] == "swp1"


def test_prometheus_filters_data_sources_by_string_metrics(api: Api, feed: Feeder) -> None:
    hosts(feed)
    text = get(api, "/prometheus/metrics/ALL/load_one/txt?host_name=db.*")
    assert text.splitlines() == ["# TYPE load_one gauge",
                                 f'load_one{{agent="{B}",datasource="2.1"}} 1.5']


# ---------------------------------------------------------------- topology (items 3, 5)

LEAF, SPINE = A, B


def fabric(api: Api, feed: Feeder, *, learn: bool) -> None:
    """leaf1 (A: swp1 up to spine1's swp1, swp3 to a host) and spine1 (B). With ``learn`` the
    topology names only links and the mapping comes from host_descr and port_name."""
    for agent, name in ((LEAF, "leaf1"), (SPINE, "spine1")):
        feed.at(1000, datagram(agent, 1, 0, [
            counters(1, 2, 1, HostDescr(hostname=name)),
            counters(1, 0, 1, IfCounters(if_index=1, if_speed=10**9), PortName(name="swp1")),
            counters(1, 0, 3, IfCounters(if_index=3, if_speed=10**8), PortName(name="swp3"))]))
    topology: dict[str, Any] = {"links": {"l1": {"node1": "leaf1", "port1": "swp1",
                                                 "node2": "spine1", "port2": "swp1"}}}
    if not learn:
        topology["nodes"] = {"leaf1": {"agent": LEAF, "ports": {"swp1": {"ifindex": "1"}}},
                             "spine1": {"agent": SPINE, "ports": {"swp1": {"ifindex": "1"}}}}
    assert call(api, "PUT", "/topology/json", topology) == (200, topology)


def test_topology_tokens_need_a_topology(api: Api, feed: Feeder) -> None:
    hosts(feed)
    for token in ("TOPOLOGY", "EDGE", "CORE"):
        status, body = call(api, "GET", f"/metric/{token}/ifspeed/json")
        assert status == 400 and "topology" in body["error"]
    call(api, "PUT", "/flow/f/json", {"keys": "ipsource"})
    assert call(api, "GET", "/activeflows/ALL/f/json?aggMode=edge")[0] == 400


@pytest.mark.parametrize("learn", [False, True])
def test_topology_edge_and_core_select_ports(api: Api, feed: Feeder, learn: bool) -> None:
    fabric(api, feed, learn=learn)
    def sources(token: str) -> set[tuple[str, str]]:
        return {(r["agent"], r["dataSource"]) for r in get(api, f"/dump/{token}/ifspeed/json")}
    assert sources("CORE") == {(LEAF, "1"), (SPINE, "1")}
    assert sources("EDGE") == {(LEAF, "3"), (SPINE, "3")}
    assert sources("TOPOLOGY") == sources("ALL")
    assert get(api, "/metric/EDGE/sum:ifspeed/json")[0]["metricValue"] == 2e8
    assert get(api, "/topology/json")["links"]["l1"]["node2"] == "spine1"


def test_aggmode_edge_and_core_count_a_flow_once(api: Api, feed: Feeder) -> None:
    """A flow entering at leaf1's host port (3) and crossing the leaf-spine link (sampled at
    spine1's swp1): edge counts it at the edge port only, core at the core port only; a
    flow's own aggMode is the default of its queries."""
    fabric(api, feed, learn=False)
    call(api, "PUT", "/flow/pairs/json", {"keys": "ipsource", "value": "frames",
                                          "aggMode": "edge"})
    pkt = tcp("10.1.0.1", "10.2.0.1")
    for s in range(1, 11):
        feed.at(1000 + s * 0.1, datagram(LEAF, s + 1, s * 100, [flow(s, 3, pkt, rate=100)]))
        feed.at(1000 + s * 0.1, datagram(SPINE, s + 1, s * 100, [flow(s, 1, pkt, rate=200)]))
    values = {m: get(api, f"/activeflows/ALL/pairs/json?aggMode={m}")[0]
              for m in ("max", "sum", "edge", "core")}
    assert values["core"]["value"] == pytest.approx(2 * values["edge"]["value"])
    assert (values["edge"]["agent"], values["edge"]["dataSource"]) == (LEAF, "3")
    assert (values["core"]["agent"], values["core"]["dataSource"]) == (SPINE, "1")
    assert values["sum"]["value"] == pytest.approx(3 * values["edge"]["value"])
    assert values["max"]["value"] == pytest.approx(values["core"]["value"])
    assert get(api, "/activeflows/ALL/pairs/json")[0] == values["edge"]


# ---------------------------------------------------------------- controller API (item 7)

def test_controller_api_mirrors_sflow_rt_queries_and_hands_typed_records(
        engine: Engine, feed: Feeder) -> None:
    """flowKeys(), metrics(), metrics(agent), agents([...]), get/setTopology; flow handlers
    get FlowRecords and event handlers Events, both shaped as sFlow-RT's JSON (times in ms)."""
    records: list[FlowRecord] = []
    events: list[Event] = []

    class Probe:
        def start(self, api: ControllerApi) -> None:
            self.api = api
            api.set_flow("pairs", {"keys": "ipsource,ipdestination", "value": "frames",
                                   "log": True, "flowStart": True})
            api.set_flow("all", {"value": "frames"})
            api.set_threshold("any", {"metric": "all", "value": 1})
            api.set_flow_handler(records.append, ["pairs"])
            api.set_event_handler(events.append)

    probe = Probe()
    runtime = Runtime(engine, engine.clock)
    runtime.add("probe", probe)
    hosts(feed)
    feed.at(1000.5, datagram(A, 2, 500, [flow(1, 3, tcp("10.1.0.1", "10.2.0.1"))]))
    runtime.tick(1001.0, engine.tick(1001.0))
    api = probe.api
    assert {"ipsource", "tcpdestinationport", "agent"} <= set(api.flow_keys())
    assert api.metrics()["load_one"] == 500 and api.metrics()["all"] == 0  # ms ago
    assert api.metrics("web1")["2.1.load_one"] == 0.5 and api.metrics("10.9.9.9") == {}
    assert set(api.agents()) == {A, B} and set(api.agents([B])) == {B}
    api.set_topology({"nodes": {"leaf1": {"agent": A}}})
    assert api.topology() == {"nodes": {"leaf1": {"agent": A}}}
    (record,) = records
    assert isinstance(record, FlowRecord) and (record.flowKeys, record.start) == (
        "10.1.0.1,10.2.0.1", 1_000_500)
    (event,) = events
    assert isinstance(event, Event) and (event.thresholdID, event.timestamp) == ("any", 1_001_000)


# ---------------------------------------------------------------- app hosting (item 6)

def test_apps_serve_html_several_script_handlers_and_text(engine: Engine, tmp_path: Path) -> None:
    """An sFlow-RT app: html/ served at /app/{app}/html/, each script its own handler at
    /app/{app}/scripts/{script}/.../json, a /txt suffix for text answers."""
    html = tmp_path / "html"
    (html / "css").mkdir(parents=True)
    (html / "index.html").write_text("<html><body>top</body></html>")
    (html / "css" / "app.css").write_text("body { color: red }")
    (tmp_path / "secret.txt").write_text("no")

    class App:
        def start(self, api: ControllerApi) -> None:
            api.serve_html(html)
            api.set_http_handler(lambda r: {"script": "top", "path": list(r.path)}, "top.js")
            api.set_http_handler(lambda r: f"flows {r.arg('n')}\n", "text.js")
            api.set_http_handler(lambda r: {"script": None, "path": list(r.path)})

    runtime = Runtime(engine, engine.clock)
    runtime.add("demo", App())
    api = Api(engine, runtime=runtime)
    status, ctype, body = api.handle("GET", "/app/demo/html/", {}, b"")
    assert (status, ctype.split(";")[0], body) == (200, "text/html", b"<html><body>top</body></html>")
    status, ctype, body = api.handle("GET", "/app/demo/html/css/app.css", {}, b"")
    assert (status, ctype.split(";")[0]) == (200, "text/css")
    for bad in ("/app/demo/html/../secret.txt", "/app/demo/html/nothing.js",
                "/app/demo/html/%2e%2e/secret.txt", "/app/nosuch/html/index.html"):
        assert api.handle("GET", bad, {}, b"")[0] == 404, bad
    assert get(api, "/app/demo/scripts/top.js/status/json") == {"script": "top",
                                                                "path": ["status"]}
    assert get(api, "/app/demo/scripts/other.js/json") == {"script": None, "path": []}
    assert get(api, "/app/demo/json") == {"script": None, "path": []}
    status, ctype, body = api.handle("GET", "/app/demo/scripts/text.js/flows/txt?n=3", {}, b"")
    assert (status, ctype.split(";")[0], body) == (200, "text/plain", b"flows 3\n")
    assert get(api, "/scripts/json") == {"demo": {"scripts": ["text.js", "top.js"],
                                                  "http": True, "html": True}}


def test_prometheus_analyzer_statistics(api: Api, feed: Feeder) -> None:
    hosts(feed)
    text = get(api, "/prometheus/analyzer/txt")
    lines = text.splitlines()
    assert "sflow_datagrams_received 2.0" in lines and "sflow_agents 2.0" in lines
    assert "# TYPE sflow_flows_generated gauge" in lines
    assert all(line.startswith(("# TYPE sflow_", "sflow_")) for line in lines)


def test_published_decisions_are_kept_for_the_status_pages(engine: Engine) -> None:
    @dataclass(frozen=True)
    class Scaled:
        service: str
        to: int

    class Scaler:
        def start(self, api: ControllerApi) -> None:
            for n in range(1, 151):
                api.publish(Scaled("web", n))
            api.publish("a plain object")

    runtime = Runtime(engine, engine.clock)
    runtime.add("scaler", Scaler())
    published = get(Api(engine, runtime=runtime), "/app/json")["scaler"]["published"]
    assert len(published) == 100
    assert published[0] == {"type": "Scaled", "service": "web", "to": 52}
    assert published[-1] == {"type": "str", "event": "'a plain object'"}
