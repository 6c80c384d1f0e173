"""What a scenario run records, and the out folder it writes (all but the chart).

``RunRecorder`` collects during the run: one timeline row per simulated second (per service:
its offered load, the swarm's replicas and running tasks, the running containers the collector
knows (``seen``: from their first sample) and counts in its averages (``running``: metricN,
from their second, once rates exist), the requests served, the collector's per-container
averages), per-container metrics, controller decisions (the ``ServiceScaled`` events they
publish), ACL commits, threshold events, container lifecycles and the controllers' log. ``finish`` freezes it into a ``Recording``
(what assertions read); ``write_outputs`` writes ``timeline.csv``, ``containers.csv``,
``decisions.csv``, ``acl.csv``, ``events.csv``, ``lifecycles.csv``, ``assertions.json``,
``summary.json`` and ``controller.log`` (``sflow.pcap`` and ``analyser.pcap`` are written while
the lab runs).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sflowlab.collector.engine_api import EngineApi
from sflowlab.collector.events import Event
from sflowlab.controllers.decisions import ServiceScaled
from sflowlab.lab.doubles.swarm_model import ContainerEvent, ContainerStarted, Swarm
from sflowlab.lab.scenario.kinds import Outcome
from sflowlab.lab.scenario.model import Scenario

__all__ = ["Accounting", "AclChange", "Decision", "Lifecycle", "Recording", "RunRecorder",
           "accounting", "container_rows", "data_sources", "received", "write_outputs"]

METRICS = "avg:vir_cpu_utilization,avg:vir_bytes_in,avg:vir_bytes_out"
SERVICE_COLUMNS = ("load", "replicas", "tasks", "seen", "running", "rps",
                   "avg_vir_cpu_utilization", "avg_vir_bytes")
CONTAINER_METRICS = ("vir_host_name", "vir_cpu_state", "vir_cpu_utilization", "vir_bytes_in",
                     "vir_bytes_out")
"""What ``container_rows`` reads of each data source."""
CONTAINER_COLUMNS = ("time_s", "container", "service", "vir_cpu_utilization", "vir_bytes_in",
                     "vir_bytes_out", "state")


@dataclass(frozen=True)
class Decision:
    time_s: float
    controller: str
    service: str
    from_: int
    to: int
    reason: str


@dataclass(frozen=True)
class AclChange:
    time_s: float
    switch: str
    acl: str
    action: str  # put | delete
    lines: tuple[str, ...]

    @property
    def targets(self) -> set[str]:
        """The rule targets in the lines (``DROP``, ``ERSPAN``)."""
        return {m.group(1) for m in (re.search(r"-j (\w+)", x) for x in self.lines) if m}


@dataclass
class Lifecycle:
    """A container as the swarm ran it (stopped None: still running at the end)."""

    name: str
    service: str
    node: str
    started: float
    stopped: float | None = None


@dataclass(frozen=True)
class Accounting:
    """Datagrams the agents sent and what the collector made of them."""

    sent: int
    received: int
    parse_errors: int
    lost: int  # sequence gaps, summed over agents
    duplicates: int
    discarded: int


@dataclass
class Recording:
    """Everything recorded during a run (times in simulated seconds)."""

    scenario: Scenario
    timeline: list[dict[str, float]]
    containers: list[tuple[Any, ...]]
    decisions: list[Decision]
    acl: list[AclChange]
    events: list[dict[str, Any]]
    lifecycles: list[Lifecycle]
    log: list[str]
    accounting: Accounting
    analyser_pcap: Path | None
    wall_s: float
    sflow_pcap: Path | None = None  # what the agents sent (complete once the run is closed)
    controllers: dict[str, Any] = field(default_factory=dict)
    """Per controller: handler calls, errors and the last error (``Runtime.status``)."""

    def series(self, column: str) -> list[tuple[float, float]]:
        """(time_s, value) of one timeline column."""
        return [(row["time_s"], row[column]) for row in self.timeline]

    def moment(self, ref: str | float) -> float:
        """A named moment (``Scenario.moments``) or a number of seconds; ValueError when the
        scenario has no such moment."""
        if not isinstance(ref, str):
            return float(ref)
        moments = self.scenario.moments()
        if ref not in moments:
            raise ValueError(f"the scenario has no moment {ref!r}; it has {sorted(moments)}")
        return moments[ref]


class RunRecorder:
    """Collects a run's records (see the module docstring)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.rows: list[dict[str, float]] = []
        self.containers: list[tuple[Any, ...]] = []
        self.decisions: list[Decision] = []
        self.acl: list[AclChange] = []
        self.event_rows: list[dict[str, Any]] = []
        self.lifecycles: dict[str, Lifecycle] = {}
        self.lines: list[str] = []
        self._served: dict[str, int] = {}
        self._filters = {s.name: {"vir_host_name": [re.escape(s.name) + r"\..*"],
                                  "vir_cpu_state": ["running"]} for s in scenario.services}

    # ------------------------------------------------------------------ during the run

    def log(self, now: float, level: str, controller: str, message: str) -> None:
        self.lines.append(f"{now:9.3f} {level:<7} {controller}: {message}")

    def published(self, controller: str, event: object) -> None:
        """A controller's published event (``Runtime.subscribe``): scalings are decisions."""
        if isinstance(event, ServiceScaled):
            self.decisions.append(Decision(event.at, controller, event.service,
                                           event.from_replicas, event.to_replicas, event.reason))

    def acl_change(self, now: float, switch: str, acl: str, action: str,
                   lines: Sequence[str]) -> None:
        self.acl.append(AclChange(now, switch, acl, action, tuple(lines)))

    def events(self, now: float, events: Iterable[Event]) -> None:
        for e in events:
            self.event_rows.append({"time_s": now, "eventID": e.eventID,
                                    "thresholdID": e.thresholdID, "agent": e.agent,
                                    "dataSource": e.dataSource, "flowKey": e.flowKey or "",
                                    "value": e.value})

    def container_event(self, event: ContainerEvent) -> None:
        if isinstance(event, ContainerStarted):
            self.lifecycles[event.container_id] = Lifecycle(event.name, event.service,
                                                            event.node, event.at)
        elif event.container_id in self.lifecycles:
            self.lifecycles[event.container_id].stopped = event.at

    def sample(self, t: float, engine: EngineApi, swarm: Swarm,
               served: Mapping[str, int]) -> None:
        """One timeline row at simulated second ``t``, and the per-container rows, from the
        collector's ``engine``, the ``swarm`` and the requests each service has ``served``."""
        row = {"time_s": t}
        seen = container_rows(t, data_sources(engine.dump("ALL", CONTAINER_METRICS, now=t)),
                              self.containers)
        for svc in self.scenario.services:
            name = svc.name
            rps, clients = svc.offered(t - 1e-9)
            util, b_in, b_out = engine.metric("ALL", METRICS, self._filters[name], now=t)
            row.update({
                f"{name}.load": float(clients if clients is not None else rps or 0.0),
                f"{name}.replicas": float(swarm.service(name).replicas),
                f"{name}.tasks": float(len(swarm.running(name))),
                f"{name}.seen": float(seen.get(name, 0)),
                f"{name}.running": _value(util, "metricN"),
                f"{name}.rps": float(served[name] - self._served.get(name, 0)),
                f"{name}.avg_vir_cpu_utilization": _value(util),
                f"{name}.avg_vir_bytes": _value(b_in) + _value(b_out),
            })
            self._served[name] = served[name]
        self.rows.append(row)

    def finish(self, wall_s: float, accounting: Accounting, analyser_pcap: Path | None,
               sflow_pcap: Path | None, controllers: dict[str, Any]) -> Recording:
        """The records so far, with the run's figures, as a ``Recording``."""
        return Recording(self.scenario, self.rows, self.containers, self.decisions, self.acl,
                         self.event_rows, sorted(self.lifecycles.values(),
                                                 key=lambda c: (c.started, c.name)),
                         self.lines, accounting, analyser_pcap, wall_s, sflow_pcap, controllers)


def accounting(engine: EngineApi, sent: int) -> Accounting:
    """The collector's datagram accounting (``analyzer_json``, sequence gaps summed over
    ``agents_json``) against the ``sent`` datagrams."""
    totals = engine.analyzer_json()
    return Accounting(sent=sent, received=_count(totals, "sFlowDatagramsReceived"),
                      parse_errors=_count(totals, "sFlowParseErrors"),
                      lost=sum(_count(a, "sFlowDatagramsLost")
                               for a in engine.agents_json().values()),
                      duplicates=_count(totals, "sFlowDatagramsDuplicates"),
                      discarded=_count(totals, "sFlowDatagramsDiscarded"))


def received(engine: EngineApi) -> int:
    """Datagrams the collector has received (``analyzer_json``)."""
    return _count(engine.analyzer_json(), "sFlowDatagramsReceived")


def _count(counters: Mapping[str, object], key: str) -> int:
    value = counters[key]
    if not isinstance(value, int):
        raise TypeError(f"{key} is {value!r}, not a count")
    return value


def data_sources(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each data source's metric values from ``dump`` entries, in the order they come."""
    sources: dict[tuple[Any, Any], dict[str, Any]] = {}
    for e in entries:
        sources.setdefault((e["agent"], e["dataSource"]), {})[e["metricName"]] = e["metricValue"]
    return list(sources.values())


def container_rows(t: float, sources: Iterable[Mapping[str, Any]],
                   rows: list[tuple[Any, ...]]) -> dict[str, int]:
    """Append to ``rows`` the ``containers.csv`` row at ``t`` of each data source (its
    metric values) naming a container (``vir_host_name``); the running ones per service."""
    seen: dict[str, int] = {}
    for v in sources:
        host = v.get("vir_host_name")
        if host is None:
            continue
        service, state = str(host).partition(".")[0], v.get("vir_cpu_state", "")
        if state == "running":
            seen[service] = seen.get(service, 0) + 1
        rows.append((t, host, service, v.get("vir_cpu_utilization", ""),
                     v.get("vir_bytes_in", ""), v.get("vir_bytes_out", ""), state))
    return seen


def _value(result: dict[str, Any], key: str = "metricValue") -> float:
    v = result.get(key)
    return float(v) if isinstance(v, int | float) else 0.0


# ---------------------------------------------------------------------- the out folder


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows([_cell(v) for v in row] for row in rows)


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}" if not v.is_integer() else f"{v:.1f}"
    return v


def write_outputs(out_dir: Path, rec: Recording, outcomes: Sequence[Outcome]) -> None:
    """Write the recording's files into ``out_dir`` (see the module docstring)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = ["time_s"] + [f"{s.name}.{c}" for s in rec.scenario.services
                            for c in SERVICE_COLUMNS]
    _write_csv(out_dir / "timeline.csv", columns, ([r[c] for c in columns] for r in rec.timeline))
    _write_csv(out_dir / "containers.csv", CONTAINER_COLUMNS, rec.containers)
    _write_csv(out_dir / "decisions.csv", ("time_s", "controller", "service", "from", "to",
                                           "reason"),
               ((d.time_s, d.controller, d.service, d.from_, d.to, d.reason)
                for d in rec.decisions))
    _write_csv(out_dir / "acl.csv", ("time_s", "switch", "acl", "action", "lines"),
               ((a.time_s, a.switch, a.acl, a.action, "\n".join(a.lines)) for a in rec.acl))
    event_cols = ("time_s", "eventID", "thresholdID", "agent", "dataSource", "flowKey", "value")
    _write_csv(out_dir / "events.csv", event_cols,
               ([e[c] for c in event_cols] for e in rec.events))
    _write_csv(out_dir / "lifecycles.csv", ("container", "service", "node", "started",
                                            "stopped"),
               ((c.name, c.service, c.node, c.started, "" if c.stopped is None else c.stopped)
                for c in rec.lifecycles))
    (out_dir / "assertions.json").write_text(json.dumps(
        [{"name": o.name, "passed": o.passed, "message": o.message, "at": o.at}
         for o in outcomes], indent=2) + "\n")
    (out_dir / "summary.json").write_text(json.dumps({
        "scenario": rec.scenario.name, "seed": rec.scenario.seed,
        "duration_s": rec.scenario.duration, "wall_s": round(rec.wall_s, 3),
        "accounting": asdict(rec.accounting), "controllers": rec.controllers,
        "passed": all(o.passed for o in outcomes)}, indent=2) + "\n")
    (out_dir / "controller.log").write_text("".join(line + "\n" for line in rec.log))

