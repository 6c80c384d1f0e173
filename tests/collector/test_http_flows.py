"""Flows on HTTP request records (0,2206): sFlow-RT's http keys, values and ``uri:`` parts,
in the engine under a SimClock (exact rates) and in the collector process over real UDP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import Collector, Feeder, datagram, flow, start, tcp, wait_for

from sflowlab.codec import ExtendedSocketIpv4, FlowSample, HttpRequest
from sflowlab.collector.engine import Engine
from sflowlab.collector.flows import FlowSpec

AGENT = "10.20.0.1"


def request(seq: int, host: str, uri: str, status: int, req: int, resp: int, duration: int,
            rate: int) -> FlowSample:
    """A mod-sflow transaction sample: socket and http_request records, no sampled header."""
    return FlowSample(seq, 3, rate, seq * rate, 0, 0, 0, (
        ExtendedSocketIpv4(6, "10.20.1.1", "10.20.2.2", 80, 40000 + seq),
        HttpRequest(host=host, uri=uri, status=status, req_bytes=req, resp_bytes=resp,
                    duration_us=duration)))


def web_datagram(agent: str, seq: int = 1) -> bytes:
    """Three requests (rates 10, 10, 20) and one packet sample (rate 100, 1504 bytes)."""
    return datagram(agent, seq, 1000 * seq, [
        request(1, "www.a", "/x/index.php?id=1", 404, 300, 4_700, 2_000, 10),
        request(2, "www.a", "/x/style.css", 200, 200, 800, 1_000, 10),
        request(3, "www.b", "/y/index.php", 404, 100, 900, 4_000, 20),
        flow(4, 3, tcp("10.20.1.1", "10.20.2.2", length=1500), rate=100)])


def top(engine: Engine, name: str) -> dict[str, float]:
    return {f["key"]: f["value"] for f in engine.active_flows("ALL", name)}


def test_http_keys_values_and_filters_exact(engine: Engine, feed: Feeder) -> None:
    """t = 1 s and every sample at one instant: a rate reads the scaled quantity itself."""
    flows = {
        "hosts": FlowSpec(keys="httphost", value="requests", t=1),
        "host_bytes": FlowSpec(keys="httphost", value="bytes", t=1),
        "not_found": FlowSpec(keys="httpurl", value="requests", filter="httpstatus=404", t=1),
        "php": FlowSpec(keys="httphost,uri:httpurl:extension", value="avg:duration",
                        filter="uri:httpurl:extension=php", t=1),
        "status": FlowSpec(keys="httpstatus,httpmethod,httpprotocol", value="frames", t=1),
        "all": FlowSpec(value="bytes", t=1),
        "by_source": FlowSpec(keys="ipsource", value="bytes", t=1),
    }
    for name, spec in flows.items():
        engine.set_flow(name, spec)
    assert feed.at(1000.0, web_datagram(AGENT))
    assert top(engine, "hosts") == {"www.a": 20.0, "www.b": 20.0}
    assert top(engine, "host_bytes") == {"www.a": 60_000.0, "www.b": 20_000.0}
    assert top(engine, "not_found") == {"/x/index.php?id=1": 10.0, "/y/index.php": 20.0}
    assert top(engine, "php") == {"www.b,php": 4_000.0, "www.a,php": 2_000.0}
    assert top(engine, "status") == {"404,GET,HTTP/1.1": 30.0, "200,GET,HTTP/1.1": 10.0}
    assert top(engine, "all") == {"": 80_000.0 + 1504 * 100}
    assert top(engine, "by_source") == {"10.20.1.1": 1504 * 100.0}  # http samples: no ipsource
    seen = engine.flow_keys()
    assert {"httphost", "httpurl", "httpstatus", "duration", "requests"} <= set(seen)


def test_what_a_flow_counts_does_not_depend_on_other_flows(engine: Engine,
                                                           feed: Feeder) -> None:
    """A flow reading no HTTP key counts the transaction samples' bytes (no sampled header:
    request + response bytes) whether or not another flow reads HTTP keys, and /flowkeys
    lists the keys the samples carry."""
    engine.set_flow("frames", FlowSpec(value="frames", t=1))
    engine.set_flow("bytes", FlowSpec(value="bytes", t=1))
    feed.at(1000.0, web_datagram(AGENT))
    assert top(engine, "frames") == {"": 140.0}  # every sample counted, http or not
    assert top(engine, "bytes") == {"": 80_000.0 + 1504 * 100}
    assert {"httphost", "httpurl", "httpstatus", "duration", "requests"} <= set(
        engine.flow_keys())


@pytest.fixture(scope="module", params=[0, 2], ids=["in-process", "2-workers"])
def collector(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    tmp: Path = tmp_path_factory.mktemp("http-flows")
    c = start(tmp, "--workers", str(request.param))
    yield c
    assert c.stop() == 0


def test_http_flows_over_udp_and_rest(collector: Collector) -> None:
    """Averages and maxima are exact whatever the timing; logged totals too."""
    definitions: dict[str, Any] = {
        "http_duration": {"keys": "httphost,uri:httpurl:extension", "value": "avg:duration",
                          "filter": "httpstatus=404", "t": 60},
        "http_largest": {"keys": "uri:httpurl:extension", "value": "max:resp_bytes", "t": 60},
        "http_php_bytes": {"keys": "httphost", "value": "bytes", "t": 0.2, "log": True,
                           "filter": "uri:httpurl:extension=php"},
    }
    for name, spec in definitions.items():
        assert collector.send("PUT", f"/flow/{name}/json", spec)[0] == 200
    collector.udp(web_datagram(AGENT))
    wait_for(lambda: collector.agent(AGENT).get("sFlowFlowSamples") == 4, what="the samples")

    def active(name: str) -> dict[str, float]:
        return {f["key"]: f["value"]
                for f in collector.get(f"/activeflows/{AGENT}/{name}/json")}
    assert active("http_duration") == {"www.b,php": 4_000.0, "www.a,php": 2_000.0}
    assert active("http_largest") == {"php": 4_700.0, "css": 800.0}
    logged = wait_for(lambda: len(collector.get("/flows/json?name=http_php_bytes")) == 2
                      and collector.get("/flows/json?name=http_php_bytes"), what="logged flows")
    assert sorted((r["flowKeys"], r["value"], r["agent"], r["dataSource"]) for r in logged) == [
        ("www.a", 50_000.0, AGENT, "3"), ("www.b", 20_000.0, AGENT, "3")]
