"""Thresholds: firing once, re-arming after the hysteresis timeout, byFlow, filters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from sflowlab.collector.events import Event
from sflowlab.collector.thresholds import ThresholdEngine, ThresholdSpec

A1, A2 = "192.0.2.1", "192.0.2.2"


@dataclass
class FakeSource:
    """A MetricSource whose values the test sets directly."""

    metrics: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)
    flows: dict[str, list[tuple[str, str, str, float]]] = field(default_factory=dict)
    filters_seen: list[Mapping[str, list[str]] | None] = field(default_factory=list)

    def metric_values(self, metric: str, now: float,
                      filter: Mapping[str, list[str]] | None) -> list[tuple[str, str, float]]:
        self.filters_seen.append(filter)
        return list(self.metrics.get(metric, []))

    def flow_values(self, name: str, now: float) -> list[tuple[str, str, str, float]]:
        return list(self.flows.get(name, []))


def run(engine: ThresholdEngine, source: FakeSource, values: list[float],
        start: float = 0.0) -> list[list[Event]]:
    """Evaluate once per second with ``load_one`` of one host taking ``values`` in turn."""
    out = []
    for i, v in enumerate(values):
        source.metrics["load_one"] = [(A1, "2.1", v)]
        out.append(engine.evaluate(start + i, source))
    return out


def test_fires_once_while_above_and_rearms_after_timeout_below() -> None:
    engine, source = ThresholdEngine(), FakeSource()
    engine.set("load", ThresholdSpec("load_one", 1.0, timeout=3))
    fired = run(engine, source, [0.5, 1.5, 2.0, 0.5, 1.2, 0.5, 0.5, 0.5, 1.1])
    assert [len(e) for e in fired] == [0, 1, 0, 0, 0, 0, 0, 0, 1]
    # back above at 4 s (1 s below): still disarmed; below from 5 s to 7 s (3 s): re-armed
    event = fired[1][0]
    assert event == Event(1, 1000, "load", "load_one", 1.0, 1.5, A1, "2.1", None)
    assert event.to_json() == {"eventID": 1, "timestamp": 1000, "thresholdID": "load",
                               "metric": "load_one", "threshold": 1.0, "value": 1.5,
                               "agent": A1, "dataSource": "2.1"}
    assert fired[8][0].eventID == 2


def test_zero_timeout_rearms_as_soon_as_the_value_drops() -> None:
    engine, source = ThresholdEngine(), FakeSource()
    engine.set("load", ThresholdSpec("load_one", 1.0, timeout=0))
    fired = run(engine, source, [2, 1, 2, 2, 0.9, 3])
    assert [len(e) for e in fired] == [1, 0, 1, 0, 0, 1]  # equal to the threshold: not above


def test_each_data_source_fires_on_its_own() -> None:
    engine, source = ThresholdEngine(), FakeSource()
    engine.set("load", ThresholdSpec("load_one", 1.0))
    source.metrics["load_one"] = [(A2, "2.1", 5.0), (A1, "2.1", 5.0), (A1, "3.7", 0.1)]
    events = engine.evaluate(0.0, source)
    assert [(e.eventID, e.agent, e.dataSource) for e in events] == [(1, A1, "2.1"), (2, A2, "2.1")]
    assert engine.evaluate(1.0, source) == []


def test_by_flow_raises_one_event_per_flow_key() -> None:
    engine, source = ThresholdEngine(), FakeSource()
    engine.set("ddos", ThresholdSpec("udp_target", 1000, byFlow=True, timeout=10))
    source.flows["udp_target"] = [(A1, "5", "10.0.0.1", 5000.0), (A1, "5", "10.0.0.2", 10.0)]
    first = engine.evaluate(0.0, source)
    assert [(e.flowKey, e.value) for e in first] == [("10.0.0.1", 5000.0)]
    source.flows["udp_target"].append((A1, "5", "10.0.0.3", 2000.0))
    second = engine.evaluate(1.0, source)
    assert [(e.flowKey, e.eventID) for e in second] == [("10.0.0.3", 2)]
    assert second[0].to_json()["flowKey"] == "10.0.0.3"


def test_keyed_flow_without_by_flow_fires_for_the_first_flow_only() -> None:
    engine, source = ThresholdEngine(), FakeSource()
    engine.set("top", ThresholdSpec("pair", 100))
    source.flows["pair"] = [(A1, "5", "a,b", 150.0), (A1, "5", "c,d", 900.0),
                            (A2, "7", "a,b", 50.0)]
    events = engine.evaluate(0.0, source)
    assert [(e.agent, e.dataSource, e.flowKey, e.value) for e in events] == [
        (A1, "5", "c,d", 900.0)]
    source.flows["pair"].append((A1, "5", "e,f", 1000.0))
    assert engine.evaluate(1.0, source) == []


def test_filter_is_passed_to_the_metric_source() -> None:
    engine, source = ThresholdEngine(), FakeSource()
    spec = ThresholdSpec.from_json({"metric": "vir_cpu_utilization", "value": 80,
                                    "filter": {"vir_host_name": "apache.*"}})
    assert spec.filter == {"vir_host_name": ["apache.*"]}
    engine.set("cpu", spec)
    source.flows["vir_cpu_utilization"] = [(A1, "3.1", "", 99.0)]  # not used with a filter
    assert engine.evaluate(0.0, source) == []
    assert source.filters_seen == [{"vir_host_name": ["apache.*"]}]


def test_changing_a_threshold_rearms_it_and_deleting_forgets_it() -> None:
    engine, source = ThresholdEngine(), FakeSource()
    engine.set("load", ThresholdSpec("load_one", 1.0))
    assert len(run(engine, source, [2.0])[0]) == 1
    engine.set("load", ThresholdSpec("load_one", 1.0))  # identical: stays disarmed
    assert run(engine, source, [2.0], start=1)[0] == []
    engine.set("load", ThresholdSpec("load_one", 1.5))
    assert len(run(engine, source, [2.0], start=2)[0]) == 1
    engine.delete("load")
    assert engine.specs() == {}
    assert run(engine, source, [2.0], start=3)[0] == []


def test_spec_json_round_trip() -> None:
    obj = {"metric": "load_one", "value": 2, "byFlow": False, "timeout": 5,
           "filter": {"os_name": ["linux"]}}
    spec = ThresholdSpec.from_json({**obj, "name": "load"})
    assert spec.to_json() == {**obj, "value": 2.0, "timeout": 5.0}
    assert ThresholdSpec.from_json(spec.to_json()) == spec
    assert ThresholdSpec.from_json({"metric": "m", "value": "3.5"}).to_json() == {
        "metric": "m", "value": 3.5, "byFlow": False, "timeout": 60.0}


@pytest.mark.parametrize(("obj", "message"), [
    ({"value": 1}, "needs 'metric'"),
    ({"metric": "load_one"}, "needs 'value'"),
    ({"metric": "", "value": 1}, "non-empty string"),
    ({"metric": "m", "value": "high"}, "value must be a number"),
    ({"metric": "m", "value": float("nan")}, "must be finite"),
    ({"metric": "m", "value": 1, "timeout": -1}, "must not be negative"),
    ({"metric": "m", "value": 1, "byFlow": "yes"}, "byFlow must be true or false"),
    ({"metric": "m", "value": 1, "filter": ["x"]}, "filter must be an object"),
    ({"metric": "m", "value": 1, "filter": {"a": [1]}}, "strings"),
    ({"metric": "m", "value": 1, "byFlow": True, "filter": {"a": ["b"]}}, "byFlow"),
    ({"metric": "m", "value": 1, "bogus": 1}, "unsupported threshold attribute(s) bogus"),
    ("m", "JSON object"),
])
def test_bad_thresholds_are_refused_clearly(obj: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        ThresholdSpec.from_json(obj)
    assert message in str(info.value)
