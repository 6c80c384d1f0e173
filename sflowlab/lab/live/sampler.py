"""The live run's timeline: read once a second from the Docker engine and the collector.

``LiveSampler.sample(t)`` records one row with the simulated run's columns
(``outputs.SERVICE_COLUMNS``): per service the offered load (locust users), the service's
replicas and running tasks (Docker API), the containers the collector knows
(``seen``: running data sources named ``service.*``, from ``/dump``) and averages
(``running``: metricN), and its per-container averages (``/metric``, the ELB's query);
``rps`` comes from locust's history at the end. It also keeps the task endpoints file
current (the load follows the tasks) and each container's lifecycle. ``finish`` builds the
``Recording`` the assertions, the out folder and the chart read, like a simulated run's.
"""

from __future__ import annotations

import datetime
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker

from sflowlab.lab.live.load import LoadProfile, TargetsFile
from sflowlab.lab.live.swarm import running_tasks
from sflowlab.lab.scenario.model import HttpCall, Scenario
from sflowlab.lab.scenario.outputs import (
    METRICS,
    Accounting,
    Decision,
    Lifecycle,
    Recording,
    container_rows,
)

__all__ = ["CollectorApi", "LiveSampler", "controller_log"]

CONTAINER_METRICS = ("vir_host_name", "vir_cpu_state", "vir_cpu_utilization", "vir_bytes_in",
                     "vir_bytes_out")


class CollectorApi:
    """The collector's REST API (JSON over HTTP, stdlib client)."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url, self.timeout_s = url.rstrip("/"), timeout_s

    def request(self, path: str, query: Mapping[str, str] | None = None, method: str = "GET",
                body: Any = None) -> Any:
        url = self.url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method,  # noqa: S310 - http only
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout_s) as answer:  # noqa: S310
            return json.loads(answer.read() or b"null")

    def ready(self) -> bool:
        try:
            self.request("/analyzer/json")
        except (OSError, ValueError):
            return False
        return True

    def controller(self, name: str, call: HttpCall) -> str:
        """A scenario's request to a controller's handler; its answer or the error, as text."""
        path = "/app/" + "/".join(urllib.parse.quote(p) for p in [name, *call.path, "json"])
        try:
            return repr(self.request(path, call.query, call.method, call.body))
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code}: {e.read().decode(errors='replace')}"


def _number(result: Mapping[str, Any], key: str = "metricValue") -> float:
    v = result.get(key)
    return float(v) if isinstance(v, int | float) else 0.0


class LiveSampler:
    """The timeline of a live run (see the module docstring); times in seconds from ``t0``."""

    def __init__(self, scenario: Scenario, client: docker.DockerClient, api: CollectorApi,
                 targets: TargetsFile, profile: LoadProfile, t0: float,
                 clock: Callable[[], float]) -> None:
        self.scenario, self.client, self.api = scenario, client, api
        self.targets, self.profile, self.t0, self.clock = targets, profile, t0, clock
        self.rows: list[dict[str, float]] = []
        self.containers: list[tuple[Any, ...]] = []
        self.lifecycles: dict[str, Lifecycle] = {}
        self.lines: list[str] = []
        self.node = client.info().get("Name", "localhost")
        self._filters = {s.name: {"vir_host_name": re.escape(s.name) + r"\..*",
                                  "vir_cpu_state": "running"} for s in scenario.services}

    def log(self, t: float, controller: str, message: str) -> None:
        self.lines.append(f"{t:9.3f} {'INFO':<7} {controller}: {message}")

    def follow_tasks(self) -> dict[str, int]:
        """Running tasks per service; the targets file and the lifecycles brought up to date."""
        now = self.clock() - self.t0
        urls, counts, alive = [], {}, set()
        for svc in self.scenario.services:
            tasks = running_tasks(self.client, svc.name)
            counts[svc.name] = len(tasks)
            for task in tasks:
                alive.add(task.task_id)
                if task.port is not None:
                    urls.append(task.url)
                if task.task_id not in self.lifecycles:
                    self.lifecycles[task.task_id] = Lifecycle(task.name, svc.name, self.node,
                                                              round(now, 3))
        for task_id, life in self.lifecycles.items():
            if task_id not in alive and life.stopped is None:
                life.stopped = round(now, 3)
        self.targets.write(urls)
        return counts

    def sample(self, t: float) -> None:
        """The row at second ``t``, and the per-container rows."""
        tasks = self.follow_tasks()
        sources: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in self.api.request("/dump/ALL/" + ",".join(CONTAINER_METRICS) + "/json"):
            sources.setdefault((entry["agent"], entry["dataSource"]), {})[
                entry["metricName"]] = entry["metricValue"]
        seen = container_rows(t, sources.values(), self.containers)
        row = {"time_s": t}
        for svc in self.scenario.services:
            name = svc.name
            util, b_in, b_out = self.api.request(f"/metric/ALL/{METRICS}/json",
                                                 self._filters[name])
            spec = self.client.api.inspect_service(name)["Spec"]  # type: ignore[no-untyped-call]
            row.update({
                f"{name}.load": float(self.profile.users(t - 1e-9)),
                f"{name}.replicas": float(spec["Mode"]["Replicated"]["Replicas"]),
                f"{name}.tasks": float(tasks[name]),
                f"{name}.seen": float(seen.get(name, 0)),
                f"{name}.running": _number(util, "metricN"),
                f"{name}.rps": 0.0,
                f"{name}.avg_vir_cpu_utilization": _number(util),
                f"{name}.avg_vir_bytes": _number(b_in) + _number(b_out),
            })
        self.rows.append(row)

    def decisions(self) -> list[Decision]:
        """The controllers' scaling decisions (``GET /app/{name}/decisions``, when they
        answer it), in seconds from ``t0``."""
        out = []
        for spec in self.scenario.controllers:
            try:
                made = self.api.request(f"/app/{urllib.parse.quote(spec.name)}/decisions/json")
            except (urllib.error.HTTPError, ValueError):
                continue
            out += [Decision(round(d["time"] - self.t0, 3), spec.name, d["service"], d["from"],
                             d["to"], d["reason"]) for d in made if isinstance(d, dict)]
        return sorted(out, key=lambda d: d.time_s)

    def accounting(self) -> Accounting:
        """What the collector received; sent = received + the sequence gaps (the agent's
        own count is not exported)."""
        totals = self.api.request("/analyzer/json")
        agents = self.api.request("/agents/json").values()
        received = int(totals["sFlowDatagramsReceived"])
        lost = sum(int(a["sFlowDatagramsLost"]) for a in agents)
        return Accounting(received + lost, received, int(totals["sFlowParseErrors"]), lost,
                          int(totals["sFlowDatagramsDuplicates"]),
                          int(totals["sFlowDatagramsDiscarded"]))

    def finish(self, out_dir: Path, wall_s: float, rps: Mapping[str, list[float]],
               accounting: Accounting, decisions: list[Decision],
               controllers: dict[str, Any], log: list[str]) -> Recording:
        for svc, per_second in rps.items():
            for row in self.rows:
                i = int(row["time_s"]) - 1
                row[f"{svc}.rps"] = per_second[i] if 0 <= i < len(per_second) else 0.0
        return Recording(self.scenario, self.rows, self.containers, decisions, [], [],
                         sorted(self.lifecycles.values(), key=lambda c: (c.started, c.name)),
                         sorted(self.lines + log, key=_time_of), accounting, None, wall_s,
                         out_dir / "sflow.pcap", controllers)


def _time_of(line: str) -> float:
    return float(line.split()[0])


_LOG_LINE = re.compile(r"ts=(\S+) level=(\w+) logger=sflowlab\.controller\.(\S+) (.*)")


def controller_log(collector_log: Path, t0: float) -> list[str]:
    """The controllers' lines of the collector's log, as the simulated run writes them
    (seconds from ``t0``; the collector stamps whole seconds)."""
    out = []
    for line in collector_log.read_text(errors="replace").splitlines():
        m = _LOG_LINE.match(line)
        if m is None:
            continue
        ts, level, name, message = m.groups()
        t = datetime.datetime.fromisoformat(ts).timestamp() - t0
        out.append(f"{t:9.3f} {level.upper():<7} {name}: {message}")
    return out
