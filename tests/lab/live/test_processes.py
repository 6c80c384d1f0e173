"""The live lab's daemons and files: the collector's TOML configuration (read back by the
collector's own loader), a daemon's start and stop, the controllers' log lines, the merged
recording."""

from __future__ import annotations

import datetime
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sflowlab.codec.pcap import PcapWriter, read_sflow
from sflowlab.collector.config import load_config
from sflowlab.lab.live.lab import loaded_service
from sflowlab.lab.live.processes import Daemon, agent_argv, collector_config, toml_value
from sflowlab.lab.live.runner import merge_pcaps
from sflowlab.lab.live.sampler import controller_log
from sflowlab.lab.live.swarm import engine_lock
from sflowlab.lab.scenario.model import ControllerSpec, LoadPhase, Scenario, ScenarioService


def test_toml_values() -> None:
    assert toml_value({"a b": [1, 2.5, True, "x\"y"], "n": {"k": False}}) == \
        '{"a b" = [1, 2.5, true, "x\\"y"], "n" = {"k" = false}}'
    with pytest.raises(ValueError, match="cannot write None in TOML"):
        toml_value(None)


def test_the_collector_reads_the_configuration_written_for_it(tmp_path: Path) -> None:
    elb = ControllerSpec("elb", params={"interval_s": 2, "services": {
        "apache": {"policy": "seed", "replicas_max": 10, "util_max": 1}}})
    path = collector_config(tmp_path / "c.toml", 16343, 18008, tmp_path / "rec", [elb],
                            docker_url="unix:///run/other.sock")
    cfg = load_config(path, env={})
    assert (cfg.sflow_port, cfg.sflow_hosts, cfg.http_host, cfg.http_port) == (
        16343, ("127.0.0.1",), "127.0.0.1", 18008)
    assert cfg.record_dir == tmp_path / "rec"
    assert cfg.controllers == [{"name": "elb", "use": "elb", "params": {
        "interval_s": 2, "docker_url": "unix:///run/other.sock",
        "services": {"apache": {"policy": "seed", "replicas_max": 10, "util_max": 1}}}}]
    with pytest.raises(ValueError, match="controller 'x'"):
        collector_config(tmp_path / "d.toml", 1, 2, tmp_path, [ControllerSpec("no.such:thing",
                                                                              name="x")])


def test_the_agent_command_line() -> None:
    argv = agent_argv("127.0.0.1:16343", 400, 10.0, ["docker0", "br0"], "unix:///d.sock")
    assert argv[:3] == [sys.executable, "-m", "sflowlab.cli"]
    assert argv[3:] == ["agent", "--collector", "127.0.0.1:16343", "--sampling", "400",
                        "--polling", "10", "--docker-url", "unix:///d.sock",
                        "--interface", "docker0", "--interface", "br0"]


def test_a_daemon_is_stopped_by_sigterm_and_its_exit_reported(tmp_path: Path) -> None:
    code = "import signal, sys, time\nprint('up', flush=True)\n" \
           "signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))\ntime.sleep(60)\n"
    daemon = Daemon("sleeper", [sys.executable, "-c", code], tmp_path / "d.log").start()
    deadline = time.monotonic() + 10
    while "up" not in (tmp_path / "d.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert daemon.running()
    daemon.check()
    assert daemon.stop() == 3 and not daemon.running()
    with pytest.raises(RuntimeError, match=r"sleeper exited with status 3; last lines of .*\nup"):
        daemon.check()


def test_controller_lines_of_the_collector_log(tmp_path: Path) -> None:
    t0 = datetime.datetime(2026, 1, 2, 3, 4, 5).timestamp()
    log = tmp_path / "collector.log"
    log.write_text(
        "ts=2026-01-02T03:04:05 level=info logger=sflowlab.collector event=started\n"
        "ts=2026-01-02T03:04:07 level=info logger=sflowlab.controller.elb event=scale "
        "service=apache from=1 to=2 reason='util 2 > 1'\n"
        "ts=2026-01-02T03:04:09 level=warning logger=sflowlab.controller.elb event=x\n")
    assert controller_log(log, t0) == [
        "    2.000 INFO    elb: event=scale service=apache from=1 to=2 reason='util 2 > 1'",
        "    4.000 WARNING elb: event=x"]


def test_merged_recordings_keep_every_datagram_on_the_sflow_port(tmp_path: Path) -> None:
    for i in (1, 2):
        with PcapWriter(tmp_path / f"sflow-{i:06d}.pcap") as w:
            for j in range(3):
                w.write(bytes([i, j]), 1000.0 + i * 10 + j, ("10.0.0.9", 40000 + i),
                        ("127.0.0.1", 39999))
    out = tmp_path / "sflow.pcap"
    assert merge_pcaps(sorted(tmp_path.glob("sflow-*.pcap")), out, 39999) == 6
    got = [(d.payload, d.timestamp, d.src, d.dst) for d in read_sflow(out)]
    assert got == [(bytes([i, j]), 1000.0 + i * 10 + j, ("10.0.0.9", 40000 + i),
                    ("127.0.0.1", 6343)) for i in (1, 2) for j in range(3)]


def test_a_live_run_drives_one_loaded_service() -> None:
    one = Scenario("s", services=[ScenarioService("apache", load=[LoadPhase(clients=4)])])
    assert loaded_service(one).name == "apache"
    two = Scenario("s", services=[ScenarioService("a", load=[LoadPhase(clients=4)]),
                                  ScenarioService("b")])
    with pytest.raises(ValueError, match=r"exactly one service, with load; the scenario has "
                                         r"\['a', 'b'\]"):
        loaded_service(two)


def test_the_engine_lock_is_exclusive_across_processes_and_reentrant_within_one(
        tmp_path: Path) -> None:
    path = tmp_path / "engine.lock"
    probe = ("import fcntl, sys\n"
             "with open(sys.argv[1], 'a') as f:\n"
             "    try:\n"
             "        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "    except BlockingIOError:\n"
             "        sys.exit(1)\n")

    def free() -> bool:
        return subprocess.run([sys.executable, "-c", probe, str(path)]).returncode == 0

    with engine_lock(5.0, path):
        with engine_lock(5.0, path):  # the same process again: no wait
            assert not free()
        assert not free()  # still held by the outer one
    assert free()
