"""Definitions: compiled outside the engine lock, bounded in size and number, persisted as a
snapshot plus a journal (one short append per change)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from collector_helpers import counters, datagram

from sflowlab.codec import IfCounters
from sflowlab.collector import engine as engine_module
from sflowlab.collector import journal
from sflowlab.collector.engine import Engine
from sflowlab.collector.flows import FlowSpec
from sflowlab.collector.journal import DefinitionStore, read_definitions
from sflowlab.collector.rest import Api
from sflowlab.collector.thresholds import ThresholdSpec


def put(api: Api, path: str, body: object) -> tuple[int, object]:
    status, _, out = api.handle("PUT", path, {}, json.dumps(body).encode())
    return status, json.loads(out)


def test_a_flow_compiles_while_ingest_goes_on(engine: Engine,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ingested = threading.Event()
    compile_flow = engine.flows.compile

    def slow_compile(name: str, spec: FlowSpec) -> object:
        assert ingested.wait(5), "ingest waited for the flow to compile"
        return compile_flow(name, spec)

    monkeypatch.setattr(engine.flows, "compile", slow_compile)
    feeder = threading.Thread(target=lambda: (engine.ingest(
        datagram("10.0.0.1", 1, 0, [counters(1, 0, 1, IfCounters(1))]), ("10.0.0.1", 6343),
        1000.0), ingested.set()))
    feeder.start()
    engine.set_flow("f", FlowSpec(keys="ipsource", filter="ipprotocol=6"))
    feeder.join(5)
    assert engine.flow_specs()["f"]["filter"] == "ipprotocol=6"
    assert engine.analyzer_json()["sFlowDatagramsReceived"] == 1


def test_a_huge_definition_is_refused_at_once(engine: Engine) -> None:
    api = Api(engine)
    huge = "|".join(f"ipsource=10.{i // 65536}.{i // 256 % 256}.{i % 256}"
                    for i in range(400_000))  # 8.4 MB, with keys and value
    status, body = put(api, "/flow/big/json", {"keys": "ipsource", "filter": huge})
    assert status == 400
    assert body == {"error": f"flow definition too large: {len(huge) + 13} characters of keys, "
                             "values and filter, at most 65536"}
    status, body = put(api, "/threshold/big/json", {"metric": "load_one", "value": 1,
                                                     "filter": {"host_name": ["x" * 70_000]}})
    assert status == 400 and "threshold filter too large: 70009 characters" in str(body)
    assert engine.flow_specs() == {} and engine.threshold_specs() == {}


def test_the_number_of_definitions_is_bounded(engine: Engine,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine_module.MAX_DEFINITIONS == 1000
    monkeypatch.setattr(engine_module, "MAX_DEFINITIONS", 3)
    api = Api(engine)
    for kind, body in (("flow", {"keys": "ipsource"}), ("group", ["10.0.0.0/8"]),
                       ("threshold", {"metric": "load_one", "value": 1})):
        for i in range(3):
            assert put(api, f"/{kind}/{kind}{i}/json", body)[0] == 200
        assert put(api, f"/{kind}/{kind}1/json", body)[0] == 200  # a redefinition fits
        status, answer = put(api, f"/{kind}/one_more/json", body)
        assert (status, answer) == (400, {"error": f"too many {kind}s: 3 defined, at most 3; "
                                                   "remove one first"})
    assert put(api, "/groups/json", {f"g{i}": ["10.0.0.0/8"] for i in range(4)}) == (
        400, {"error": "too many groups: 4, at most 3"})


def test_changes_append_to_the_journal_which_compacts(tmp_path: Path, engine: Engine,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "COMPACT_LINES", 6)
    store = DefinitionStore(tmp_path)
    engine.on_change = lambda: store.save_changes(engine.take_changes, engine.export_state)
    engine.set_group("lan", ["10.0.0.0/8"])
    engine.set_flow("a", FlowSpec(keys="ipsource"))
    engine.set_flow("a", FlowSpec(keys="ipdestination"))
    engine.set_threshold("t", ThresholdSpec(metric="a", value=5))
    engine.remove_group("lan")
    assert not (tmp_path / "state.json").exists()
    lines = [json.loads(line) for line in (tmp_path / "state.journal").read_text().splitlines()]
    assert [(e["kind"], e["name"]) for e in lines] == [
        ("groups", "lan"), ("flows", "a"), ("flows", "a"), ("thresholds", "t"), ("groups", "lan")]
    assert lines[-1]["value"] is None and lines[2]["value"]["keys"] == "ipdestination"
    expected = {"groups": {}, "flows": engine.flow_specs(), "thresholds": engine.threshold_specs()}
    assert read_definitions(tmp_path) == expected
    engine.set_flow("b", FlowSpec(keys="ipsource"))  # the sixth line: compacted
    assert not (tmp_path / "state.journal").exists()
    assert read_definitions(tmp_path) == engine.export_state()
    restarted = Engine()
    restarted.import_state(DefinitionStore(tmp_path).load())
    assert restarted.export_state() == engine.export_state()


def test_a_journal_line_cut_by_a_crash_is_ignored(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "state.json").write_text('{"flows": {"a": {"keys": "ipsource"}}}')
    (tmp_path / "state.journal").write_text(
        '{"kind": "flows", "name": "b", "value": {"keys": "ipdestination"}}\n'
        '{"kind": "flows", "name": "a", "value": null}\n'
        '{"kind": "flows", "name": "c", "val')
    assert read_definitions(tmp_path) == {"flows": {"b": {"keys": "ipdestination"}}}
    assert "event=state_journal_cut" in caplog.text and "line=3" in caplog.text


def test_a_journal_larger_than_the_snapshot_is_compacted(tmp_path: Path, engine: Engine,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A large group set rewritten often costs what a snapshot would, not more and more."""
    monkeypatch.setattr(journal, "COMPACT_BYTES", 2000)
    store = DefinitionStore(tmp_path)
    engine.on_change = lambda: store.save_changes(engine.take_changes, engine.export_state)
    engine.set_flow("small", FlowSpec(keys="ipsource"))
    assert (tmp_path / "state.journal").exists() and not (tmp_path / "state.json").exists()
    for round_ in range(5):
        engine.set_group("big", [f"10.{round_}.{i}.0/24" for i in range(200)])
        assert store.bytes <= max(2000, (tmp_path / "state.json").stat().st_size)
    assert read_definitions(tmp_path) == engine.export_state()
