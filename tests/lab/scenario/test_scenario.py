"""Scenario files: schema validation with path-named errors, load profiles, moments."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sflowlab.lab.scenario.loader import json_schema, load_scenario, scenario_from_dict
from sflowlab.lab.scenario.model import LoadPhase, Ramp, ScenarioError, Step, build

SCENARIOS = Path(__file__).parents[3] / "scenarios"


def minimal(**extra: Any) -> dict[str, Any]:
    return {"name": "t", "services": [{"name": "apache"}], **extra}


@pytest.mark.parametrize(("data", "message"), [
    ({"services": [{"name": "apache", "load": [{"clients": "four"}]}]},
     "services[0].load[0].clients: expected an integer, got 'four'"),
    ({"services": [{"name": "apache", "load": [{"clients": 4, "rps": 10}]}]},
     "services[0].load[0]: a load phase needs exactly one of clients, rps, ramp, steps; "
     "got ['clients', 'rps']"),
    ({"services": [{"name": "apache", "load": [{"ramp": {"from": 0, "to": 5}}]}]},
     "services[0].load[0].ramp: missing over"),
    ({"services": [{"name": "apache", "replicas": True}]},
     "services[0].replicas: expected an integer, got True"),
    ({"services": [{"name": "apache", "colour": "red"}]},
     "services[0]: unknown key 'colour'"),
    ({"duration": "long"}, "duration: expected a number, got 'long'"),
    ({"duration": -1}, "scenario: duration and step must be > 0"),
    ({"services": [{"name": "a"}, {"name": "a"}]}, "service names repeat"),
    ({"fabric": {"leaves": 0}}, "fabric: FabricSpec: leaves must be 1..250"),
    ({"traffic": [{"flow": {"src": "host1", "dst": "1.2.3.4", "rate_pps": 1}}]},
     "traffic: needs a fabric"),
    ({"services": "apache"}, "services: expected a list, got 'apache'"),
    ({"controllers": [{"params": {}}]}, "controllers[0]: missing use"),
])
def test_invalid_scenarios_name_the_bad_value(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as e:
        scenario_from_dict({"name": "t", **data})
    assert message in str(e.value)


@pytest.mark.parametrize(("assertions", "message"), [
    ("replicas", "assertions: expected a list"),
    (["replicas"], "assertions[0]: expected a mapping with one key, the kind"),
    ([{"replicas_at": {}}], "assertions[0]: unknown assertion kind 'replicas_at'; known: "),
    ([{"replicas": {"service": "apache", "reaches": "many"}}],
     "assertions[0].replicas.reaches: expected an integer, got 'many'"),
    ([{"replicas": {"service": "nginx", "reaches": 2}}],
     "assertions[0].replicas.service: unknown service 'nginx'; the scenario has ['apache']"),
    ([{"max_flaps": {"service": "apache"}}], "assertions[0].max_flaps: missing max"),
    ([{"compare_policies": {"better": "apache", "than": "nginx", "target": 1}}],
     "assertions[0].compare_policies.than: unknown service 'nginx'"),
    ([{"returns_to_min": {"service": "apache", "within": 5, "after": "flood_end"}}],
     "assertions[0].returns_to_min.after: the scenario has no moment 'flood_end'; it has "
     "['end', 'start']"),
    ([{"capture_installed": {"within": 5}}],
     "assertions[0].capture_installed.from: the scenario has no moment 'traffic_start'"),
    ([{"analyser_pcap": {"only_flow": "10.0.0.1"}}],
     "assertions[0].analyser_pcap.only_flow: expected a list"),
])
def test_invalid_assertions_name_the_bad_value(assertions: Any, message: str) -> None:
    with pytest.raises(ScenarioError) as e:
        scenario_from_dict(minimal(assertions=assertions))
    assert message in str(e.value)


@pytest.mark.parametrize(("live", "message"), [
    ({"assertions": [{"replicas": {"service": "nginx", "reaches": 2}}]},
     "live.assertions[0].replicas.service: unknown service 'nginx'"),
    ({"assertions": [{"replicas_at": {}}]},
     "live.assertions[0]: unknown assertion kind 'replicas_at'"),
    ({"compare": {"replicas": "one"}}, "live.compare.replicas: expected an integer, got 'one'"),
    ({"pace_s": 0}, "live: pace_s must be > 0 seconds"),
    ({"colour": "red"}, "live: unknown key 'colour'"),
])
def test_invalid_live_sections_name_the_bad_value(live: Any, message: str) -> None:
    with pytest.raises(ScenarioError) as e:
        scenario_from_dict(minimal(live=live))
    assert message in str(e.value)


def test_a_live_section_replaces_the_assertions_for_live_runs() -> None:
    scenario = scenario_from_dict(minimal(
        assertions=[{"max_flaps": {"service": "apache", "max": 1}}],
        live={"assertions": [{"max_flaps": {"service": "apache", "max": 2}},
                             {"no_lost_datagrams": {}}],
              "compare": {"replicas": 2}, "pace_s": 0.05}))
    assert [a.name for a in scenario.checks] == ["max_flaps(service=apache, max=1)"]
    live = scenario.for_live()
    assert [a.name for a in live.checks] == ["max_flaps(service=apache, max=2)",
                                            "no_lost_datagrams()"]
    assert scenario.live is not None
    assert (scenario.live.compare.replicas, scenario.live.compare.time_back_s) == (2, 15.0)
    assert scenario.live.pace_s == 0.05
    bare = scenario_from_dict(minimal(assertions=[{"no_lost_datagrams": {}}]))
    assert bare.for_live() is bare  # no live section: the same assertions


def test_assertion_aliases_and_names() -> None:
    s = scenario_from_dict(minimal(assertions=[
        {"replicas": {"service": "apache", "reaches": 3, "within": 20, "from": 5}},
        {"per_container_load": {"service": "apache", "below": 1e5, "while": "load"}},
        {"no_lost_datagrams": None},
    ]))
    kinds = [(c.kind, c.index) for c in s.checks]
    assert kinds == [("replicas", 0), ("per_container_load", 1), ("no_lost_datagrams", 2)]
    assert s.checks[0].params.since == 5
    assert s.checks[1].params.during == "load"
    assert s.checks[0].name == "replicas(service=apache, reaches=3, within=20.0, from=5.0)"
    assert s.checks[1].name == "per_container_load(service=apache, below=100000.0, " \
        "metric=avg_vir_bytes, while=load, share=1.0)"


def test_load_phases_offer_load_in_their_windows() -> None:
    s = scenario_from_dict(minimal(services=[{"name": "apache", "load": [
        {"rps": 10, "start": 0, "stop": 10},
        {"ramp": {"from": 0, "to": 100, "over": 20}, "start": 10, "duration": 20},
        {"steps": [{"at": 0, "rps": 5}, {"at": 5, "rps": 50}], "start": 30, "duration": 10},
        {"clients": 4, "start": 50, "duration": 60},
    ]}]))
    svc = s.services[0]
    assert svc.offered(0) == (10, None)
    assert svc.offered(10) == (0, None)
    assert svc.offered(20) == (50, None)
    assert svc.offered(29.9) == pytest.approx((99.5, None))
    assert svc.offered(30) == (5, None)
    assert svc.offered(36) == (50, None)
    assert svc.offered(45) == (0.0, None)  # between phases: no load
    assert svc.offered(50) == (None, 4)
    assert svc.offered(110) == (0.0, None)
    assert svc.load_window == (0, 110)


def test_open_ended_phase_and_ramp_aliases() -> None:
    phase = build(LoadPhase, {"ramp": {"from": 10, "to": 0, "over": 10}, "start": 5}, "p")
    assert phase.end == math.inf
    assert phase.ramp == Ramp(10, 0, 10)
    assert phase.offered(10) == (5, None)
    assert phase.offered(100) == (0, None)
    assert build(Step, {"at": 1, "rps": 2}, "s") == Step(1.0, 2.0)


def test_traffic_flows_and_floods_need_one_kind() -> None:
    fabric = {"leaves": 2, "spines": 1, "hosts_per_leaf": 1}
    s = scenario_from_dict(minimal(fabric=fabric, traffic=[
        {"flow": {"src": "host1", "dst": "203.0.113.9", "rate_pps": 5, "start_s": 3,
                  "stop_s": 9}, "name": "suspect"},
        {"amplification_flood": {"target": "host2", "sources": 4, "rate_pps": 100,
                                 "start_s": 5, "stop_s": 20}},
    ]))
    assert len(s.traffic[1].flows()) == 4
    assert s.moments() == {"start": 0, "end": 60, "traffic_start": 3, "traffic_end": 20,
                           "attack_start": 5, "attack_end": 20, "suspect_start": 3,
                           "suspect_end": 9}
    with pytest.raises(ScenarioError, match=r"traffic\[0\]: give exactly one of"):
        scenario_from_dict(minimal(fabric=fabric, traffic=[{}]))


def test_files_report_their_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nservices: [{name: apache, load: [{clients: four}]}]\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml: services\[0\].load\[0\].clients"):
        load_scenario(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [\n")
    with pytest.raises(ScenarioError, match=r"broken\.yaml: not valid YAML"):
        load_scenario(broken)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml")


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    f = tmp_path / "my_lab.yaml"
    f.write_text("services: [{name: web}]\n")
    s = load_scenario(f)
    assert (s.name, s.source) == ("my_lab", f)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenarios_validate(path: Path) -> None:
    s = load_scenario(path)
    assert s.checks, f"{path.name} asserts nothing"


def test_the_json_schema_file_is_current_and_accepts_the_shipped_scenarios() -> None:
    schema = json_schema()
    assert json.loads((SCENARIOS / "scenario.schema.json").read_text()) == schema, \
        "regenerate with: sflowlab run --schema > scenarios/scenario.schema.json"
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted(SCENARIOS.glob("*.yaml")):
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert not errors, f"{path.name}: {errors}"
    bad = {"services": [{"name": "web", "load": [{"clients": "four"}]}],
           "assertions": [{"replicas": {"service": "web", "reaches": 2, "soon": True}}]}
    messages = sorted(e.message for e in validator.iter_errors(bad))
    assert messages == [
        "'four' is not valid under any of the given schemas",
        "{'replicas': {'service': 'web', 'reaches': 2, 'soon': True}} is not valid under any "
        "of the given schemas"]
