"""The REST router in-process: shapes, errors, auth, persistence hooks, prometheus."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from collector_helpers import Feeder, counters, datagram, flow, tcp

from sflowlab.codec import HostCpu, HostDescr, IfCounters
from sflowlab.collector import flows
from sflowlab.collector.engine import Engine
from sflowlab.collector.flows import FlowSpec
from sflowlab.collector.rest import Api

A = "10.0.0.1"


def call(api: Api, method: str, target: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    status, ctype, out = api.handle(method, target, headers or {}, raw)
    return status, json.loads(out) if ctype == "application/json" else out.decode()


@pytest.fixture
def api(engine: Engine) -> Api:
    return Api(engine)


def test_metric_dump_table_and_filters(api: Api, feed: Feeder) -> None:
    for i, name in enumerate(("web1", "web2", "db1")):
        feed.at(1000, datagram(f"10.0.0.{i + 1}", 1, 0, [counters(
            1, 2, 1, HostDescr(hostname=name), HostCpu(load_one=float(i + 1)))]))
    status, body = call(api, "GET", "/metric/ALL/sum:load_one,max:load_one/json?host_name=web.*")
    assert status == 200
    assert body[0] == {"metricName": "sum:load_one", "metricN": 2, "lastUpdateMin": 0,
                       "lastUpdateMax": 0, "metricValue": 3.0}
    assert (body[1]["metricValue"], body[1]["agent"]) == (2.0, "10.0.0.2")
    # repeated key ORs, different keys AND
    _, body = call(api, "GET", "/metric/ALL/sum:load_one/json?host_name=web1&host_name=db.*")
    assert body[0]["metricValue"] == 4.0
    _, body = call(api, "GET", "/metric/ALL/sum:load_one/json?host_name=web.*&os_name=nope")
    assert body[0]["metricN"] == 0
    _, body = call(api, "GET", "/metric/ALL/sum:load_one/json?host_name=*b2")  # sFlow-RT style
    assert body[0]["metricValue"] == 2.0
    status, body = call(api, "GET", "/metric/ALL/sum:load_one/json?host_name=web(")
    assert status == 400 and "bad filter regex 'web('" in body["error"]
    assert list(call(api, "GET", "/agents/json?agent=10.0.0.2&agent=10.9.9.9")[1]) == ["10.0.0.2"]
    _, body = call(api, "GET", "/dump/10.0.0.1;10.0.0.3/host_name/json")
    assert sorted(e["metricValue"] for e in body) == ["db1", "web1"]
    _, body = call(api, "GET", "/table/ALL/sort:load_one:-2,host_name/json")
    assert [[c["metricValue"] for c in row] for row in body] == [[3.0, "db1"], [2.0, "web2"]]
    _, body = call(api, "GET", "/metric/10.0.0.3/json")
    assert body["2.1.host_name"] == "db1"
    _, body = call(api, "GET", "/metrics/json")
    assert body["load_one"] == 0


def test_errors_are_4xx_with_messages(api: Api) -> None:
    assert call(api, "GET", "/nope/json") == (404, {"error": "no such resource: /nope/json"})
    status, body = call(api, "GET", "/metric/ALL/avgx:load_one/json")
    assert status == 400 and "unknown aggregation 'avgx'" in body["error"]
    status, body = call(api, "PUT", "/flow/f/json", b"{not json")
    assert status == 400 and "bad JSON" in body["error"]
    status, body = call(api, "PUT", "/flow/f/json", {"value": "nonsense:bytes"})
    assert status == 400
    status, body = call(api, "PUT", "/group/g/json", ["10.0.0.0/33"])
    assert status == 400
    status, body = call(api, "POST", "/agents/json")
    assert status == 405
    status, body = call(api, "GET", "/activeflows/ALL/f/json?maxFlows=x")
    assert status == 400 and "maxFlows" in body["error"]
    status, body = call(api, "DELETE", "/threshold/none/json")
    assert status == 404


def test_flow_put_compiles_once_and_refuses_bad_syntax(api: Api, engine: Engine,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []

    class Counted(flows._CompiledFlow):
        def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
            compiled.append(name)
            super().__init__(name, *args, **kwargs)

    monkeypatch.setattr(flows, "_CompiledFlow", Counted)
    assert call(api, "PUT", "/flow/pairs/json", {"keys": "ipsource,ipdestination"})[0] == 200
    assert compiled == ["pairs"]
    status, body = call(api, "PUT", "/flow/bad/json", {"keys": "ipsource", "filter": "ipprotocol=6&"})
    assert status == 400 and "expected a comparison" in body["error"]
    assert compiled == ["pairs", "bad"]
    assert list(engine.flow_specs()) == ["pairs"]


def test_definitions_round_trip_and_persist_hook(api: Api, engine: Engine) -> None:
    saved: list[dict[str, Any]] = []
    engine.on_change = lambda: saved.append(engine.export_state())
    assert call(api, "PUT", "/group/lan/json", ["10.0.0.0/8"])[0] == 200
    assert call(api, "PUT", "/flow/pairs/json", {"keys": "ipsource,ipdestination",
                                                 "value": "bytes", "t": 1})[0] == 200
    assert call(api, "PUT", "/threshold/big/json", {"metric": "pairs", "value": 10,
                                                    "byFlow": True})[0] == 200
    assert call(api, "GET", "/group/lan/json") == (200, {"lan": ["10.0.0.0/8"]})
    assert call(api, "GET", "/flow/json")[1]["pairs"]["keys"] == "ipsource,ipdestination"
    assert call(api, "GET", "/threshold/big/json")[1]["byFlow"] is True
    assert saved[-1]["thresholds"]["big"]["value"] == 10
    assert call(api, "DELETE", "/flow/pairs/json")[0] == 200
    assert call(api, "GET", "/flow/pairs/json")[0] == 404
    assert "pairs" not in saved[-1]["flows"]
    assert call(api, "PUT", "/groups/json", {"a": ["192.0.2.0/24"]})[1] == {
        "a": {"a": ["192.0.2.0/24"]}}


def test_token_guards_mutations_and_readonly(engine: Engine) -> None:
    api = Api(engine, token="s3cret")
    assert call(api, "PUT", "/group/g/json", ["10.0.0.0/8"])[0] == 401
    assert call(api, "PUT", "/group/g/json", ["10.0.0.0/8"],
                {"authorization": "Bearer wrong"})[0] == 401
    assert call(api, "PUT", "/group/g/json", ["10.0.0.0/8"],
                {"authorization": "Bearer s3cret"})[0] == 200
    assert call(api, "GET", "/groups/json")[0] == 200
    ro = Api(engine, readonly=True)
    assert call(ro, "DELETE", "/group/g/json")[0] == 403
    assert call(ro, "PUT", "/forwarding/f/json", {"address": "127.0.0.1", "port": 7000})[0] == 403
    assert call(ro, "GET", "/forwarding/json") == (200, {})


def test_flow_endpoints_and_events(api: Api, feed: Feeder) -> None:
    call(api, "PUT", "/flow/pairs/json", {"keys": "ipsource,ipdestination", "value": "frames",
                                          "t": 1, "log": True, "activeTimeout": 1})
    call(api, "PUT", "/threshold/many/json", {"metric": "pairs", "value": 100, "byFlow": True})
    for s in range(1, 11):
        feed.at(1000 + s * 0.1, datagram(A, s, s * 100, [flow(s, 3, tcp("10.1.0.1", "10.2.0.1"))]))
    status, top = call(api, "GET", "/activeflows/ALL/pairs/json?maxFlows=5")
    assert status == 200 and top[0]["key"] == "10.1.0.1,10.2.0.1" and top[0]["agent"] == A
    status, value = call(api, "GET", f"/flowvalue/{A}/pairs/json?key=10.1.0.1,10.2.0.1")
    assert value == pytest.approx(top[0]["value"])
    assert "ipsource" in call(api, "GET", "/flowkeys/json")[1]
    api.engine.tick(1001.5)
    api.engine.tick(1005.0)
    status, events = call(api, "GET", "/events/json?eventID=-1&timeout=1")
    assert [e["flowKey"] for e in events] == ["10.1.0.1,10.2.0.1"]
    assert call(api, "GET", f"/events/json?eventID={events[0]['eventID']}&timeout=0.05")[1] == []
    status, flows = call(api, "GET", "/flows/json?name=pairs&flowID=-1&timeout=1")
    assert status == 200 and flows and flows[0]["flowKeys"] == "10.1.0.1,10.2.0.1"


def test_prometheus_exposition(api: Api, feed: Feeder) -> None:
    feed.at(1000, datagram(A, 1, 0, [counters(1, 0, 7, IfCounters(if_index=7, if_speed=10**9)),
                                     counters(1, 2, 1, HostCpu(load_one=0.25))]))
    status, text = call(api, "GET", "/prometheus/metrics/ALL/ALL/txt")
    assert status == 200
    assert f'load_one{{agent="{A}",datasource="2.1"}} 0.25' in text.splitlines()
    assert "# TYPE ifspeed gauge" in text and "ifadminstatus" not in text
    api.engine.set_flow("frames", FlowSpec(value="frames", t=1))
    feed.at(1000.5, datagram(A, 2, 500, [flow(1, 3, tcp("10.1.0.1", "10.2.0.1"))]))
    _, text = call(api, "GET", "/prometheus/metrics/ALL/frames/txt")
    assert text.startswith(f'# TYPE frames gauge\nframes{{agent="{A}",datasource="3"}} ')
    _, text = call(api, "GET", f"/prometheus/metrics/{A}/load_one/txt")
    assert text.splitlines() == ["# TYPE load_one gauge",
                                 f'load_one{{agent="{A}",datasource="2.1"}} 0.25']


def test_forwarding_definitions(api: Api) -> None:
    assert call(api, "PUT", "/forwarding/peer/json", {"address": "127.0.0.1", "port": 7000}) == (
        200, {"address": "127.0.0.1", "port": 7000})
    assert call(api, "PUT", "/forwarding/bad/json", {"address": "nowhere", "port": 7000})[0] == 400
    assert call(api, "GET", "/forwarding/json")[1] == {"peer": {"address": "127.0.0.1",
                                                                "port": 7000}}
    assert call(api, "DELETE", "/forwarding/peer/json")[0] == 200
    assert call(api, "GET", "/forwarding/peer/json")[0] == 404


def test_event_long_poll_returns_when_an_event_arrives(api: Api, feed: Feeder) -> None:
    call(api, "PUT", "/flow/all/json", {"value": "frames", "t": 1})
    call(api, "PUT", "/threshold/any/json", {"metric": "all", "value": 1})
    answer: list[tuple[int, Any]] = []
    poll = threading.Thread(target=lambda: answer.append(
        call(api, "GET", "/events/json?eventID=-1&timeout=30")))
    poll.start()
    for s in range(1, 4):
        feed.at(1000 + s * 0.1, datagram(A, s, s * 100, [flow(s, 3, tcp("10.1.0.1", "10.2.0.1"))]))
    assert answer == []  # still waiting: no tick has produced an event
    api.engine.tick(1001.0)
    poll.join(timeout=10)
    assert not poll.is_alive()
    status, events = answer[0]
    assert status == 200 and [e["thresholdID"] for e in events] == ["any"]
