"""The live lab's parts and ``sflowlab lab up`` / ``lab down``.

``LiveLab(scenario, out_dir)`` brings up, in order: the swarm (initialised on 127.0.0.1 when
there is none), the service image (built locally), ``sflowlab collector`` with the
scenario's controllers, ``sflowlab agent`` sampling docker0 (where the service's host-mode
published tasks sit) and polling the host and its containers, then the scenario's service;
``up`` returns once the collector has the service's first containers. It stops them in
reverse: ``parts`` (locust, the service, the agent) before ``infra`` (the collector, the
leftovers' cleanup, the swarm it made), so a run can still ask the collector about itself.

``serve`` is ``lab up --foreground``: under the engine lock, the lab with the collector on
:8008 and sFlow on :6343, the scenario's controller requests sent (the ELB enabled), the
service's task ports kept in ``targets.txt`` (and locust's web UI when asked), ``lab.json``
describing it all, until SIGTERM or SIGINT (or until ``lab.json`` is removed: a lab whose
folder is gone stops); then everything is stopped and removed.
``up`` starts it in the background and returns once it is ready; ``down`` stops it and
checks that nothing is left (services, containers, networks, processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker

from sflowlab.agent_sim.workload import ServiceSpec
from sflowlab.lab.live.image import build_image
from sflowlab.lab.live.load import Locust, TargetsFile
from sflowlab.lab.live.processes import (
    DOCKER_URL,
    Daemon,
    agent_argv,
    collector_argv,
    collector_config,
    free_port,
)
from sflowlab.lab.live.sampler import CollectorApi
from sflowlab.lab.live.swarm import (
    SwarmSession,
    create_service,
    engine_lock,
    owner_filter,
    remove_labelled,
    running_tasks,
    wait_until,
)
from sflowlab.lab.scenario.model import Scenario, ScenarioService

__all__ = ["BRIDGES", "LiveLab", "down", "loaded_service", "serve", "up"]

BRIDGES = ("docker0",)
"""What the agent samples: the default bridge, where the service's tasks sit."""
START_S = 60.0  # for the collector, the service's tasks, their first samples
LOCK_WAIT_S = 300.0
STATE = "lab.json"
PID = "lab.pid"


def loaded_service(scenario: Scenario) -> ScenarioService:
    """The one service with load (a live lab drives one); ValueError otherwise."""
    loaded = [s for s in scenario.services if s.load]
    if len(loaded) != 1 or len(scenario.services) != 1:
        raise ValueError("a live run needs exactly one service, with load; the scenario has "
                         f"{[s.name for s in scenario.services]}")
    if scenario.fabric is not None or scenario.traffic:
        raise ValueError("a live run has no fabric: remove fabric and traffic")
    return loaded[0]


class LiveLab:
    """The live lab's parts (see the module docstring)."""

    def __init__(self, scenario: Scenario, out_dir: Path, agent: Sequence[str] | None = None,
                 http_port: int | None = None, sflow_port: int | None = None) -> None:
        self.scenario, self.out_dir = scenario, out_dir
        self.service = loaded_service(scenario)
        self.infra, self.parts = contextlib.ExitStack(), contextlib.ExitStack()
        self.agent_override = agent
        self.http_port = http_port or free_port()
        self.sflow_port = sflow_port or free_port(socket.SOCK_DGRAM)
        self.record_dir = out_dir / "recording"
        self.owner = f"{os.getpid()}.{time.time_ns()}"
        """The owner label of what this lab makes: what it removes, and only that."""
        self.figures: dict[str, Any] = {}

    def up(self, client: docker.DockerClient) -> None:
        """Swarm, image, collector, agent, service; returns once the collector has the
        service's initial containers."""
        s, svc, infra, parts = self.scenario, self.service, self.infra, self.parts
        started = time.monotonic()
        session = SwarmSession.join(client)
        infra.callback(session.leave)
        remove_labelled(client, wait_s=30)  # left by an interrupted run (under the lock)
        mine = owner_filter(self.owner)
        infra.callback(remove_labelled, client, 30, mine)
        response = int(svc.workload.get("response_bytes", ServiceSpec.response_bytes))
        self.image = build_image(client, response)
        shutil.rmtree(self.record_dir, ignore_errors=True)
        config = collector_config(self.out_dir / "collector.toml", self.sflow_port,
                                  self.http_port, self.record_dir, s.controllers)
        self.collector = Daemon("sflowlab collector", collector_argv(config),
                                self.out_dir / "collector.log").start()
        infra.callback(self.collector.stop)
        self.api = CollectorApi(f"http://127.0.0.1:{self.http_port}")
        wait_until("the collector's REST API", lambda: self.alive() and self.api.ready(),
                   START_S, lambda: time.sleep(0.1))
        collector = f"127.0.0.1:{self.sflow_port}"
        argv = ([a.replace("{collector}", collector) for a in self.agent_override]
                if self.agent_override else agent_argv(collector, s.sampling, s.polling, BRIDGES))
        self.agent = Daemon("sflowlab agent", argv, self.out_dir / "agent.log").start()
        parts.callback(self.agent.stop)
        parts.callback(remove_labelled, client, 30, mine)  # before the agent stops: its
        create_service(client, svc.name, self.image, svc.replicas, self.owner)  # final samples
        wait_until(f"{svc.replicas} running tasks of {svc.name}",
                   lambda: self.alive() and len(running_tasks(client, svc.name)) >= svc.replicas,
                   START_S, lambda: time.sleep(0.2))
        wait_until(f"the collector to see {svc.name}'s containers", self._seen,
                   START_S, lambda: time.sleep(0.2))
        self.figures["setup_s"] = round(time.monotonic() - started, 1)

    def alive(self) -> bool:
        """True, or RuntimeError (with its log's tail) when the collector or agent exited."""
        self.collector.check()
        if hasattr(self, "agent"):
            self.agent.check()
        return True

    def _seen(self) -> bool:
        self.alive()
        rows = self.api.request("/dump/ALL/vir_host_name/json")
        names = [str(r["metricValue"]) for r in rows]
        return sum(n.startswith(self.service.name + ".") for n in names) >= self.service.replicas


def _follow(client: docker.DockerClient, service: str, targets: TargetsFile,
            stop: threading.Event) -> None:
    """The task ports into ``targets`` once a second until ``stop``."""
    while not stop.wait(1.0):
        with contextlib.suppress(docker.errors.DockerException, OSError):
            targets.write([t.url for t in running_tasks(client, service) if t.port])


def serve(scenario: Scenario, state_dir: Path, http_port: int = 8008, sflow_port: int = 6343,
          locust_ui: int | None = None) -> int:
    """``lab up --foreground`` (see the module docstring); returns when signalled."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / PID).write_text(f"{os.getpid()}\n")
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    lab = LiveLab(scenario, state_dir, http_port=http_port, sflow_port=sflow_port)
    client = docker.DockerClient(base_url=DOCKER_URL, version="auto", timeout=30)
    with contextlib.closing(client), engine_lock(LOCK_WAIT_S), lab.infra, lab.parts:
        lab.up(client)
        for spec in scenario.controllers:
            for call in spec.http:
                lab.api.controller(spec.name, call)
        targets = TargetsFile(state_dir / "targets.txt")
        targets.write([t.url for t in running_tasks(client, lab.service.name) if t.port])
        follower = threading.Thread(target=_follow, args=(client, lab.service.name, targets,
                                                          done), daemon=True)
        follower.start()
        lab.parts.callback(follower.join)
        lab.parts.callback(done.set)
        state: dict[str, Any] = {
            "pid": os.getpid(), "collector": lab.api.url, "sflow": f"127.0.0.1:{sflow_port}",
            "service": lab.service.name, "image": lab.image, "targets": str(targets.path),
            "agent_pid": lab.agent.pid, "collector_pid": lab.collector.pid, "locust": None,
            "owner": lab.owner}
        if locust_ui is not None:
            pace = scenario.live.pace_s if scenario.live else None
            locust = Locust(state_dir, targets, web_port=locust_ui, pace_s=pace).start()
            lab.parts.callback(locust.stop)
            state["locust"] = f"http://127.0.0.1:{locust_ui}"
        (state_dir / STATE).write_text(json.dumps(state, indent=2) + "\n")
        lab.infra.callback((state_dir / STATE).unlink, missing_ok=True)
        lab.infra.callback((state_dir / PID).unlink, missing_ok=True)
        print(f"lab up: collector {lab.api.url}, sFlow 127.0.0.1:{sflow_port}, service "
              f"{lab.service.name} ({lab.image}) at {', '.join(targets.urls or [])}"
              + (f", locust {state['locust']}" if state["locust"] else ""), flush=True)
        while not done.wait(1.0) and (state_dir / STATE).exists():
            lab.alive()  # lab.json is the lab's handle: gone (its folder removed), it stops
    return 0


_DETACH = ("import subprocess, sys\n"
           "with open(sys.argv[1], 'ab') as log:\n"
           "    p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log,\n"
           "                         stderr=log, start_new_session=True)\n"
           "print(p.pid)\n")
"""Starts a command detached (its parent exits at once, so init adopts it) and prints its pid."""


def up(scenario_file: Path, state_dir: Path, http_port: int = 8008, sflow_port: int = 6343,
       locust_ui: int | None = None, timeout_s: float = 180.0) -> dict[str, Any]:
    """Start ``serve`` detached (its output in ``lab.log``); its ``lab.json`` once ready.
    RuntimeError (with the log's tail) if it exits first."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state, log = state_dir / STATE, state_dir / "lab.log"
    if state.exists() and _alive(json.loads(state.read_text())["pid"]):
        raise RuntimeError(f"a lab is already up ({state}); `sflowlab lab down` first")
    state.unlink(missing_ok=True)
    (state_dir / PID).unlink(missing_ok=True)
    argv = [sys.executable, "-m", "sflowlab.cli", "lab", "up", "--foreground",
            "--scenario", str(scenario_file), "--state-dir", str(state_dir),
            "--http-port", str(http_port), "--sflow-port", str(sflow_port)]
    if locust_ui is not None:
        argv += ["--locust-ui", str(locust_ui)]
    pid = int(subprocess.run([sys.executable, "-c", _DETACH, str(log), *argv], check=True,
                             capture_output=True, text=True).stdout)

    def ready() -> bool:
        if state.exists():
            return True
        if not _alive(pid):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError("the lab exited before it was up; last lines of "
                               f"{log}:\n" + "\n".join(tail))
        return False

    try:
        wait_until("the lab to come up", ready, timeout_s, lambda: time.sleep(0.2))
    except BaseException:
        _stop(pid, timeout_s)  # a lab that came up late would hold the engine
        raise
    return dict(json.loads(state.read_text()))


def _stop(pid: int, timeout_s: float) -> None:
    """SIGTERM (the lab removes what it made), SIGKILL after ``timeout_s``."""
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
    try:
        wait_until(f"process {pid} to stop", lambda: not _alive(pid), timeout_s,
                   lambda: time.sleep(0.2))
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        raise


def _alive(pid: int) -> bool:
    """The process runs (a zombie does not: nobody may reap it here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def down(state_dir: Path, timeout_s: float = 90.0) -> list[str]:
    """Stop the lab ``up`` started (SIGTERM to it: it removes what it made), then check that
    nothing of it is left: its processes, its services and containers (by its owner label);
    what was found left over (and removed), if anything."""
    state, pid_file = state_dir / STATE, state_dir / PID
    if state.exists():
        info = json.loads(state.read_text())
    elif pid_file.exists():  # still coming up
        info = {"pid": int(pid_file.read_text())}
    else:
        raise RuntimeError(f"no lab is up ({state} not found)")
    _stop(info["pid"], timeout_s)
    left = []
    for key in ("agent_pid", "collector_pid"):
        if info.get(key) and _alive(info[key]):
            left.append(f"process {info[key]}")
            os.kill(info[key], signal.SIGKILL)
    state.unlink(missing_ok=True)
    pid_file.unlink(missing_ok=True)
    if "owner" in info:
        mine = owner_filter(info["owner"])
        client = docker.DockerClient(base_url=DOCKER_URL, version="auto", timeout=30)
        with contextlib.closing(client):
            if client.info()["Swarm"]["LocalNodeState"] == "active":
                left += [f"service {s.name}"
                         for s in client.services.list(filters={"label": mine})]
                remove_labelled(client, 30, mine)
            left += [f"container {c['Id'][:12]}"
                     for c in client.api.containers(all=True, filters={"label": mine})]
    return left
