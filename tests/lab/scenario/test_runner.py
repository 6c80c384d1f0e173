"""The scenario runner: the lab on one clock, determinism, the out folder, the CLI, realtime."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sflowlab.agent_sim.fabric import Fabric
from sflowlab.cli import main
from sflowlab.clock import SimClock
from sflowlab.collector.engine import Engine
from sflowlab.commands.run import ProgressBar
from sflowlab.lab.doubles.swarm_model import Swarm
from sflowlab.lab.scenario.loader import scenario_from_dict
from sflowlab.lab.scenario.model import Scenario
from sflowlab.lab.scenario.runner import LabRun, run_scenario

SERVICE = {"name": "web", "replicas": 1, "response_bytes": 10000, "cpu_us_per_request": 1224,
           "latency_s": 0.0686}


def scenario(**extra: Any) -> Scenario:
    data: dict[str, Any] = {"name": "small", "duration": 30, "hosts": 2, "polling": 5,
                            "swarm": {"start_delay": 0.5},
                            "services": [{**SERVICE, "load": [{"clients": 4, "start": 2,
                                                               "duration": 15}]}]}
    data.update(extra)
    return scenario_from_dict(data)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_swarm_tasks_start_and_stop_containers_on_their_nodes(tmp_path: Path) -> None:
    s = scenario(services=[{**SERVICE, "schedule": [{"at": 5, "replicas": 3},
                                                    {"at": 20, "replicas": 1}]}])
    result = run_scenario(s, tmp_path, chart=False)
    rows = result.recording.timeline
    tasks = {int(r["time_s"]): r["web.tasks"] for r in rows}
    assert (tasks[4], tasks[6], tasks[19], tasks[21]) == (1, 3, 3, 1)
    assert [r["web.replicas"] for r in rows if r["time_s"] in (4, 5, 20)] == [1, 3, 1]
    lives = result.recording.lifecycles
    assert len(lives) == 3
    assert {c.node for c in lives} == {"host1", "host2"}
    assert [c.started for c in lives] == [0.5, 5.5, 5.5]
    assert [c.stopped for c in lives] == [None, 20.5, 20.5]
    assert all(c.name.startswith("web.") for c in lives)
    # the collector knows each live container from its first sample (at the tick 3 s into the
    # second it started, sooner when its poll countdown runs out first), and averages it from
    # its second
    seen = {int(r["time_s"]): r["web.seen"] for r in rows}
    assert (seen[3], seen[5], seen[8], seen[20], seen[21]) == (1, 1, 3, 3, 1)
    running = {int(r["time_s"]): r["web.running"] for r in rows}
    assert running[29] == 1 and max(running.values()) == 3
    assert all(running[t] <= seen[t] for t in seen)


def test_same_seed_same_timeline_and_bytes(tmp_path: Path) -> None:
    s = scenario(controllers=[{"use": "elb", "params": {"enabled": True,
                                                        "services": {"web": {}}}}])
    for name in ("a", "b"):
        run_scenario(s, tmp_path / name, chart=False)
    run_scenario(scenario(seed=2), tmp_path / "c", chart=False)
    for f in ("timeline.csv", "containers.csv", "decisions.csv", "sflow.pcap"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "sflow.pcap").read_bytes() != \
        (tmp_path / "c" / "sflow.pcap").read_bytes()


def test_same_timeline_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    """The flagship scenario, replayed in two processes with different string hashing."""
    script = ("import sys; from pathlib import Path; from sflowlab.lab.scenario.runner import "
              "run_scenario; from sflowlab.lab.scenario.loader import load_scenario; "
              "run_scenario(load_scenario(sys.argv[1]), Path(sys.argv[2]), chart=False)")
    flagship = Path(__file__).parents[3] / "scenarios" / "apache_load_ramp.yaml"
    for seed in ("1", "2"):
        subprocess.run([sys.executable, "-c", script, str(flagship), str(tmp_path / seed)],
                       check=True, timeout=120, env={"PYTHONHASHSEED": seed, "PATH": ""})
    for f in ("timeline.csv", "decisions.csv", "containers.csv", "sflow.pcap"):
        assert (tmp_path / "1" / f).read_bytes() == (tmp_path / "2" / f).read_bytes(), f


def test_out_folder_follows_the_contract(tmp_path: Path) -> None:
    s = scenario(controllers=[{"use": "elb", "params": {"enabled": True,
                                                        "services": {"web": {}}}}],
                 assertions=[{"replicas": {"service": "web", "reaches": 2, "within": 20}},
                             {"no_lost_datagrams": {}}])
    result = run_scenario(s, tmp_path, chart=False)
    timeline = read_csv(tmp_path / "timeline.csv")
    assert list(timeline[0]) == ["time_s", "web.load", "web.replicas", "web.tasks",
                                 "web.seen", "web.running", "web.rps",
                                 "web.avg_vir_cpu_utilization", "web.avg_vir_bytes"]
    assert [float(r["time_s"]) for r in timeline] == [float(t) for t in range(1, 31)]
    loads = [float(r["web.load"]) for r in timeline]
    assert loads[:2] == [0, 0] and set(loads[2:17]) == {4} and set(loads[17:]) == {0}
    served = [float(r["web.rps"]) for r in timeline]
    assert 50 < sum(served[3:17]) / 14 < 60  # 4 clients / ~70 ms
    containers = read_csv(tmp_path / "containers.csv")
    assert list(containers[0]) == ["time_s", "container", "service", "vir_cpu_utilization",
                                   "vir_bytes_in", "vir_bytes_out", "state"]
    assert {r["service"] for r in containers} == {"web"}
    decisions = read_csv(tmp_path / "decisions.csv")
    assert decisions and decisions[0]["from"] == "1" and decisions[0]["to"] == "2"
    assert decisions[0]["controller"] == "elb" and "util" in decisions[0]["reason"]
    log = (tmp_path / "controller.log").read_text()
    assert "event=scale service=web from=1 to=2" in log
    assert len(decisions) == log.count(" event=scale ")  # every scaling the ELB published
    assert [json.loads((tmp_path / "assertions.json").read_text())[i]["passed"]
            for i in range(2)] == [True, True]
    assert result.passed
    for f in ("acl.csv", "events.csv", "lifecycles.csv", "sflow.pcap", "summary.json"):
        assert (tmp_path / f).exists(), f
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["accounting"]["sent"] == summary["accounting"]["received"] > 0


def test_a_failing_assertion_says_what_happened_and_when(tmp_path: Path) -> None:
    s = scenario(assertions=[{"replicas": {"service": "web", "reaches": 5, "within": 10}},
                             {"returns_to_min": {"service": "web", "within": 5}}])
    result = run_scenario(s, tmp_path, chart=False)
    first, second = result.outcomes
    assert not result.passed
    assert (first.passed, first.message) == (
        False, "FAILED: web never reached 5 replicas; max 1 at t=1.0 s")
    assert second.passed and second.message.startswith("web back to 1 replicas at t=17.0 s")


def test_scheduled_controller_requests(tmp_path: Path) -> None:
    s = scenario(controllers=[{"use": "elb", "params": {"services": {"web": {}}},
                               "http": [{"at": 6, "query": {"state": "enabled"}}]}])
    result = run_scenario(s, tmp_path, chart=False)
    assert result.recording.decisions, "enabled at t=6 s, the ELB scales"
    assert result.recording.decisions[0].time_s >= 6
    assert "event=http request='GET /?state=enabled' answer='enabled'" in \
        (tmp_path / "controller.log").read_text()


def test_cli_exit_status_and_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(textwrap.dedent("""\
        duration: 12
        services: [{name: web, replicas: 2}]
        swarm: {start_delay: 0.5}
        assertions:
          - replicas: {service: web, at_most: 2}
        """))
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(good), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "PASS  replicas(service=web, from=load_start, at_most=2)" in out
    assert "1/1 assertions passed" in out
    assert "  web: replicas 2, peak 2 at t=1.0 s, 2 at the end; 0 scaling decisions" in out
    assert (tmp_path / "out" / "good" / "timeline.csv").exists()
    assert main(["run", str(good), "--out", str(tmp_path / "o"), "--quiet",
                 "--duration", "5"]) == 0
    assert len(read_csv(tmp_path / "o" / "timeline.csv")) == 5
    capsys.readouterr()
    assert main(["run", "--schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "sflowlab scenario"
    bad = tmp_path / "bad.yaml"
    bad.write_text("services: [{name: web, replicas: two}]\n")
    assert main(["run", str(bad)]) == 2
    assert "services[0].replicas: expected an integer, got 'two'" in capsys.readouterr().err
    failing = tmp_path / "failing.yaml"
    failing.write_text(good.read_text().replace("at_most: 2", "reaches: 3"))
    assert main(["run", str(failing), "--out", str(tmp_path / "f")]) == 1
    captured = capsys.readouterr()
    assert "FAIL  replicas" in captured.out and "never reached 3 replicas" in captured.out
    assert captured.err.count(".") == 10  # the progress bar, without a terminal


def test_realtime_runs_over_udp_in_wall_clock_time(tmp_path: Path) -> None:
    s = scenario(duration=2, polling=1, services=[{**SERVICE, "load": [{"rps": 50}]}],
                 swarm={"start_delay": 0.1},
                 assertions=[{"no_lost_datagrams": {}}])
    result = run_scenario(s, tmp_path, realtime=True, chart=False)
    assert 2.0 <= result.recording.wall_s < 10.0
    assert result.passed, result.outcomes
    assert result.recording.accounting.received > 0
    assert [r["time_s"] for r in result.recording.timeline] == [1, 2]


def test_pytest_collects_scenario_files(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "passes.yaml").write_text(
        "duration: 5\nservices: [{name: web}]\nassertions: [{replicas: {service: web, "
        "at_most: 1}}]\n")
    (folder / "fails.yaml").write_text(
        "duration: 5\nservices: [{name: web}]\nassertions: [{replicas: {service: web, "
        "reaches: 4}}]\n")
    (folder / "invalid.yml").write_text("duration: soon\n")
    (folder / "notes.txt").write_text("not a scenario")
    proc = subprocess.run([sys.executable, "-m", "pytest", str(folder), "-q",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "2 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    assert "invalid.yml: duration: expected a number, got 'soon'" in proc.stdout
    assert "FAIL  replicas(service=web, reaches=4" in proc.stdout
    assert "never reached 4 replicas" in proc.stdout
    assert proc.returncode == 1


def test_fixtures_share_one_clock_and_engine(lab: LabRun, sim_clock: SimClock, engine: Engine,
                                             swarm: Swarm, fabric: Fabric) -> None:
    assert lab.clock is sim_clock and lab.engine is engine
    swarm.scale("web", 2)
    lab.run_until(12)
    assert sim_clock.now() == 12
    assert len(swarm.running("web")) == 2
    names = [str(e["metricValue"]) for e in engine.dump("ALL", "vir_host_name")]
    assert len(names) == 2 and all(n.startswith("web.") for n in names)
    assert set(fabric.switches) == {"leaf1", "leaf2", "spine1", "border1"}
    agents = set(engine.agents_json())
    assert agents >= {fabric.hosts["host1"].ip, fabric.hosts["host2"].ip}
    assert len(lab.finish().timeline) == 12


def test_lab_replicas_follow_an_orchestrator(tmp_path: Path) -> None:
    run = LabRun(scenario(), tmp_path)
    try:
        cid = run.lab.start_replica("web", "web.9.abc", "host2", 1.0, "f" * 64)
        assert cid == "f" * 64 and run.lab.placement[cid] == "host2"
        assert cid in run.lab.services["web"].replicas
        run.lab.stop_replica(cid, 2.0)
        assert cid not in run.lab.services["web"].replicas
        assert cid not in run.lab.hosts["host2"].containers
    finally:
        run.close()


CONTROLLERS = '''
class Broken:
    def start(self, api):
        raise RuntimeError("no thresholds file")


class Flaky:
    def start(self, api):
        api.set_interval_handler(self.tick, 5.0)

    def tick(self, now):
        raise ZeroDivisionError("division by zero")
'''


def test_controller_failures_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "my_controllers.py").write_text(CONTROLLERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="controller 'broken' failed to start: start: "
                                         "RuntimeError: no thresholds file"):
        run_scenario(scenario(controllers=[{"name": "broken", "use": "my_controllers:Broken"}]),
                     tmp_path / "a", chart=False)
    with pytest.raises(ValueError, match="controller 'elbx': no controller entry point named "
                                         "'elbx'"):
        run_scenario(scenario(controllers=[{"use": "elbx"}]), tmp_path / "c", chart=False)
    flaky = tmp_path / "flaky.yaml"
    flaky.write_text("duration: 12\nservices: [{name: web}]\n"
                     "controllers: [{use: 'my_controllers:Flaky'}]\n")
    assert main(["run", str(flaky), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert "controller Flaky: handler errors {'interval': 2}, last: interval: " \
           "ZeroDivisionError: division by zero" in capsys.readouterr().out
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["controllers"]["Flaky"]["errors"] == {"interval": 2}
    assert "event=controller_failed controller=Flaky" in \
        (tmp_path / "b" / "controller.log").read_text()


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    bar = ProgressBar(out, width=10)
    bar(25.0, 100.0)
    bar(100.0, 100.0)
    bar.close()
    assert out.getvalue() == "\r[##........]     25/100 s\r[##########]    100/100 s\n"
