"""containers_reported over a real run of scenarios/container_churn.yaml, and what it says
when the collector's feed does not match the swarm's containers; controller switches given
by name in a scenario."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sflowlab.lab.scenario.assertions_lifecycle import ContainersReported, container_samples
from sflowlab.lab.scenario.loader import load_scenario, scenario_from_dict
from sflowlab.lab.scenario.outputs import Lifecycle, Recording
from sflowlab.lab.scenario.runner import LabRun, run_scenario

CHURN = Path(__file__).parents[3] / "scenarios" / "container_churn.yaml"


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    result = run_scenario(load_scenario(CHURN), tmp_path_factory.mktemp("churn"), chart=False)
    assert result.passed, [o.message for o in result.outcomes if not o.passed]
    return result.recording


def test_every_churned_container_has_start_and_final_samples(churn: Recording) -> None:
    outcome = ContainersReported("worker", start_within=4, stop_within=0.5).check(churn)
    assert outcome.passed
    assert outcome.message == ("14 worker containers: 10 with a start sample within 4 s, 13 "
                               "with a final sample within 0.5 s; the shortest lived 1.0 s")
    assert churn.sflow_pcap is not None
    samples = container_samples(churn.sflow_pcap)
    one_second = [c for c in churn.lifecycles if c.stopped is not None
                  and c.stopped - c.started == 1.0]
    assert len(one_second) == 2
    for c in one_second:  # too short for the start sample; its countdown may fall inside
        *running, final = samples[c.name]
        assert (final.state, final.time_s) == ("shutdown", c.stopped)
        assert all(s.state == "running" and c.started < s.time_s < c.stopped
                   for s in running)
    assert sorted(len(samples[c.name]) for c in one_second) == [1, 2]


def _with(rec: Recording, name: str, **changes: float | None) -> Recording:
    lives = [dataclasses.replace(c, **changes) if c.name == name else c
             for c in rec.lifecycles]
    return dataclasses.replace(rec, lifecycles=lives)


def test_a_final_sample_missing_at_the_stop_is_reported(churn: Recording) -> None:
    long_lived = next(c for c in churn.lifecycles
                      if c.stopped is not None and c.stopped - c.started == 20.0)
    moved = _with(churn, long_lived.name, stopped=long_lived.stopped - 5)  # type: ignore[operator]
    outcome = ContainersReported("worker", stop_within=0.5).check(moved)
    assert not outcome.passed and outcome.at == 45.5
    assert outcome.message == (
        f"FAILED: 1 problem in 14 worker containers; first at t=45.5 s: {long_lived.name}: "
        "stopped at t=45.5 s, the last sample at t=50.5 s says shutdown")


def test_a_container_the_collector_never_heard_of_is_reported(churn: Recording) -> None:
    ghost = Lifecycle("worker.9.ghost", "worker", "host1", 20.0, 30.0)
    rec = dataclasses.replace(churn, lifecycles=[*churn.lifecycles, ghost])
    outcome = ContainersReported("worker").check(rec)
    assert not outcome.passed
    assert outcome.message.endswith("first at t=24.0 s: worker.9.ghost: started at t=20.0 s, "
                                    "first running sample never")
    assert "2 problems in 15" in outcome.message  # no start sample and no final one


def test_a_container_missing_from_the_collectors_table_is_reported(churn: Recording) -> None:
    long_lived = next(c for c in churn.lifecycles
                      if c.stopped is not None and c.stopped - c.started == 20.0)
    rec = dataclasses.replace(churn, containers=[r for r in churn.containers
                                                 if r[1] != long_lived.name])
    assert churn.sflow_pcap is not None
    first = container_samples(churn.sflow_pcap)[long_lived.name][0].time_s
    assert long_lived.started < first < long_lived.started + 3
    outcome = ContainersReported("worker").check(rec)
    assert not outcome.passed
    assert outcome.message.endswith(
        f"first at t={first:.1f} s: {long_lived.name}: running from its sample at t={first:.1f} s "
        "to t=50.5 s, never in the collector's table")


def test_no_container_of_the_service(churn: Recording) -> None:
    outcome = ContainersReported("nothing").check(churn)
    assert not outcome.passed and outcome.message == "FAILED: the swarm ran no nothing container"


def test_controller_switches_by_name(tmp_path: Path) -> None:
    data = {"name": "names", "duration": 2, "hosts": 1,
            "fabric": {"leaves": 2, "spines": 1, "hosts_per_leaf": 1},
            "controllers": [{"use": "ddos", "params": {"protected": ["10.0.1.1"],
                                                        "switches": ["leaf2", "spine1"]}}]}
    run = LabRun(scenario_from_dict(data), tmp_path / "ok")
    try:
        directory = run.controllers["ddos"].directory
        agents = {s.name: s.agent for s in run.acl_switches}
        assert set(directory.switches) == {agents["leaf2"], agents["spine1"]}
        assert directory.switches[agents["leaf2"]].endswith("/switches/leaf2")
    finally:
        run.close()
    data["controllers"][0]["params"]["switches"] = ["leaf2", "leaf9"]  # type: ignore[index]
    with pytest.raises(ValueError, match=r"controller 'ddos': unknown switches \['leaf9'\]; "
                                         r"the fabric has \['border1', 'leaf1', 'leaf2', "
                                         r"'spine1'\]"):
        LabRun(scenario_from_dict(data), tmp_path / "bad")
