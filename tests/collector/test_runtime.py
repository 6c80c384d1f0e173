"""The controller runtime: handlers dispatched on ticks, isolation, HTTP, persistent store."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sflowlab.clock import SimClock
from sflowlab.codec import CountersSampleExpanded, Datagram, HostCpu, HostDescr, encode_datagram
from sflowlab.collector import runtime as runtime_module
from sflowlab.collector.engine import Engine, TickResult
from sflowlab.collector.runtime import (
    ControllerApi,
    ControllerError,
    HttpError,
    HttpRequest,
    Runtime,
    resolve,
)

AGENT = "10.0.0.1"


def host_datagram(seq: int, load: float) -> bytes:
    sample = CountersSampleExpanded(seq, 2, 1, (HostCpu(load_one=load), HostDescr("web1")))
    return encode_datagram(Datagram(5, AGENT, 0, seq, seq * 1000, (sample,)))


class Recorder:
    """A controller that records what it is handed."""

    def __init__(self, threshold: float = 1.0) -> None:
        self.threshold = threshold
        self.events: list[Any] = []
        self.ticks: list[float] = []
        self.loads: list[float] = []

    def start(self, api: ControllerApi) -> None:
        self.api = api
        api.set_threshold("busy", {"metric": "load_one", "value": self.threshold})
        api.set_event_handler(self.events.append, ["busy"])
        api.set_interval_handler(self.on_tick, 2.0)
        api.set_http_handler(self.on_http)

    def on_tick(self, now: float) -> None:
        self.ticks.append(now)
        self.loads.append(self.api.metric("ALL", "max:load_one")[0]["metricValue"])

    def on_http(self, req: HttpRequest) -> Any:
        if req.arg("fail"):
            raise HttpError(400, "asked to fail")
        self.api.store_set("state", req.arg("state"))
        return {"path": list(req.path), "state": self.api.store_get("state")}


class Exploding:
    def start(self, api: ControllerApi) -> None:
        api.set_interval_handler(self.boom, 1.0)
        api.set_http_handler(lambda req: 1 / 0)

    def boom(self, now: float) -> None:
        raise RuntimeError("controller bug")


def run(engine: Engine, runtime: Runtime, clock: SimClock, until: float, step: float = 1.0,
        feed: dict[float, bytes] | None = None) -> None:
    t = clock.now()
    while t < until:
        t += step
        clock.advance_to(t)
        if feed and t in feed:
            engine.ingest(feed[t], (AGENT, 6343), t)
        runtime.tick(t, engine.tick(t))


def test_handlers_run_on_ticks_and_events_reach_the_controller() -> None:
    clock = SimClock()
    engine = Engine(clock)
    runtime = Runtime(engine, clock)
    rec = Recorder(threshold=1.0)
    runtime.add("rec", rec)
    run(engine, runtime, clock, 10.0, feed={1.0: host_datagram(1, 0.5), 5.0: host_datagram(2, 3.0)})
    assert rec.ticks == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert rec.loads[0] == pytest.approx(0.5) and rec.loads[-1] == pytest.approx(3.0)
    assert [(e.thresholdID, e.agent, e.dataSource) for e in rec.events] == [("busy", AGENT, "2.1")]
    assert rec.events[0].value == pytest.approx(3.0)
    assert runtime.status()["rec"]["errors"] == {}


def test_a_failing_controller_is_counted_and_isolated() -> None:
    clock = SimClock()
    engine = Engine(clock)
    runtime = Runtime(engine, clock)
    runtime.add("bad", Exploding())
    rec = Recorder()
    runtime.add("rec", rec)
    run(engine, runtime, clock, 4.0)
    status = runtime.status()
    assert status["bad"]["errors"] == {"interval": 4}
    assert "controller bug" in status["bad"]["lastError"]
    assert rec.ticks == [2.0, 4.0]
    with pytest.raises(HttpError) as info:
        runtime.http("bad", HttpRequest("GET", (), {}))
    assert info.value.status == 500
    assert runtime.status()["bad"]["errors"]["http"] == 1


def test_start_failure_does_not_stop_loading() -> None:
    class FailsToStart:
        def start(self, api: ControllerApi) -> None:
            raise ValueError("bad config")

    clock = SimClock()
    runtime = Runtime(Engine(clock), clock)
    runtime.add("broken", FailsToStart())
    runtime.add("rec", Recorder())
    assert runtime.status()["broken"]["errors"] == {"start": 1}
    assert set(runtime.controllers) == {"broken", "rec"}


def test_http_handler_and_store_survive_a_restart(tmp_path: Path) -> None:
    clock = SimClock()
    runtime = Runtime(Engine(clock), clock, state_dir=tmp_path)
    runtime.add("rec", Recorder())
    reply = runtime.http("rec", HttpRequest("GET", ("status",), {"state": ["enabled"]}))
    assert reply == {"path": ["status"], "state": "enabled"}
    with pytest.raises(HttpError) as info:
        runtime.http("rec", HttpRequest("GET", (), {"fail": ["1"]}))
    assert (info.value.status, info.value.message) == (400, "asked to fail")
    with pytest.raises(HttpError) as missing:
        runtime.http("nope", HttpRequest("GET", (), {}))
    assert missing.value.status == 404

    again = Runtime(Engine(clock), clock, state_dir=tmp_path)
    api = again.add("rec", Recorder())
    assert api.store_get("state") == "enabled"


def test_load_by_import_path_with_params_and_clear_errors() -> None:
    clock = SimClock()
    engine = Engine(clock)
    runtime = Runtime(engine, clock)
    runtime.load([{"name": "r1", "use": f"{__name__}:Recorder", "params": {"threshold": 7}}])
    assert engine.thresholds.specs()["busy"].value == 7
    runtime.load([f"{__name__}:Exploding"])
    assert "Exploding" in runtime.controllers
    with pytest.raises(ControllerError, match="needs a 'use'"):
        runtime.load([{"name": "x"}])
    with pytest.raises(ControllerError, match="bad params"):
        runtime.load([{"name": "r2", "use": f"{__name__}:Recorder", "params": {"nope": 1}}])
    with pytest.raises(ControllerError, match="cannot load"):
        resolve("sflowlab.no_such_module:Thing")
    with pytest.raises(ControllerError, match="no controller entry point"):
        resolve("no-such-entry-point")


class Publisher:
    """Publishes the time of each interval as an event."""

    def start(self, api: ControllerApi) -> None:
        api.set_interval_handler(lambda now: api.publish(("ticked", now)), 1.0)


def test_published_events_reach_every_subscriber_and_a_failing_one_is_isolated(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = SimClock()
    engine = Engine(clock)
    runtime = Runtime(engine, clock)
    first: list[tuple[str, object]] = []
    last: list[tuple[str, object]] = []
    runtime.subscribe(lambda name, event: first.append((name, event)))
    runtime.subscribe(lambda name, event: 1 / 0)
    runtime.subscribe(lambda name, event: last.append((name, event)))
    runtime.add("pub", Publisher())
    for t in (1.0, 2.0):
        clock.advance_to(t)
        runtime.tick(t, engine.tick(t))
    expected = [("pub", ("ticked", 1.0)), ("pub", ("ticked", 2.0))]
    assert first == expected
    assert last == expected
    assert runtime.status()["pub"]["errors"] == {}
    assert sum("event=subscriber_failed controller=pub" in r.getMessage()
               for r in caplog.records) == 2


class Blocking:
    """A controller whose handlers wait on ``gate`` (as on a hung API)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.flows: list[int] = []
        self.ticks: list[float] = []

    def start(self, api: ControllerApi) -> None:
        api.set_flow_handler(self.on_flow)
        api.set_interval_handler(self.ticks.append, 1.0)
        api.set_http_handler(lambda req: "answered")

    def on_flow(self, record: dict[str, Any]) -> None:
        self.entered.set()
        self.gate.wait(10)
        self.flows.append(record["i"])


def test_submitted_ticks_merge_while_a_handler_blocks_and_the_excess_is_shed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``submit`` never waits: while the dispatcher thread is stuck in a handler, ticks pile
    up merged (their flows in order, the latest time), beyond MAX_PENDING shed and counted;
    an HTTP request gives up after HTTP_WAIT_S with 503 naming the busy handler."""
    monkeypatch.setattr(runtime_module, "MAX_PENDING", 5)
    monkeypatch.setattr(runtime_module, "HTTP_WAIT_S", 0.1)
    runtime = Runtime(Engine(SimClock(start=1000.0)), SimClock(start=1000.0))
    ctl = Blocking()
    runtime.add("b", ctl)
    runtime.start()
    try:
        runtime.submit(1001.0, TickResult(flows=[{"name": "f", "i": 0}]))
        assert ctl.entered.wait(10)
        for t in range(2, 6):  # 8 flows more while blocked: 5 kept, 3 shed
            runtime.submit(1000.0 + t, TickResult(flows=[{"name": "f", "i": 2 * t},
                                                         {"name": "f", "i": 2 * t + 1}]))
        assert runtime.shed == 3
        with pytest.raises(HttpError) as busy:
            runtime.http("b", HttpRequest("GET", (), {}))
        assert busy.value.status == 503 and "b's flow handler" in busy.value.message
        assert runtime.status()["b"]["running"]["handler"] == "flow"
        ctl.gate.set()
        deadline = time.monotonic() + 10
        while len(ctl.flows) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ctl.flows == [0, 4, 5, 6, 7, 8]
        assert ctl.ticks[-1] == 1005.0  # one interval call for the merged ticks, the latest time
        assert runtime.http("b", HttpRequest("GET", (), {})) == "answered"
    finally:
        ctl.gate.set()
        runtime.close()
