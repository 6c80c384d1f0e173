"""``run_live``: a scenario on the local Docker engine's swarm (``sflowlab run --live``).

Under the engine lock: the swarm (initialised on 127.0.0.1 when there is none, left at the
end), the service image built locally (``image``), ``sflowlab collector`` with the
scenario's controllers (the ELB scaling through the Docker API), ``sflowlab agent`` sampling
docker0 (the default bridge, where host-mode published tasks sit) at the scenario's
sampling rate and polling the host and containers at its polling interval, then the
service (dnsrr, host-mode publish; see ``swarm``). The run's clock starts (t=0) once the
collector has the service's first containers; locust runs the load profile on that clock,
spread over the running tasks' ports; the scenario's controller requests (``http``) go to
the collector's REST API at their times; ``LiveSampler`` records a row every second.
Afterwards everything is stopped and removed (locust, the services, the agent, the
collector, the swarm it made), the out folder written as a simulated run's (``sflow.pcap``:
what the collector received) plus locust's CSVs, ``live.json`` and ``compare.csv``: the
scenario simulated (into ``simulated/``) and compared (``compare``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from sflowlab.codec.pcap import PcapWriter, read_sflow
from sflowlab.lab.live.compare import CompareRow, compare, table, write_compare
from sflowlab.lab.live.lab import BRIDGES, LiveLab
from sflowlab.lab.live.load import CSV_PREFIX, LoadProfile, Locust, TargetsFile, requests_per_second
from sflowlab.lab.live.processes import DOCKER_URL
from sflowlab.lab.live.sampler import CollectorApi, LiveSampler, controller_log
from sflowlab.lab.live.swarm import engine_lock, wait_until
from sflowlab.lab.scenario.assertions import evaluate
from sflowlab.lab.scenario.kinds import Outcome
from sflowlab.lab.scenario.model import Scenario, Tolerances
from sflowlab.lab.scenario.outputs import Recording, write_outputs
from sflowlab.lab.scenario.runner import RunResult, run_scenario

__all__ = ["LiveResult", "live_summary", "merge_pcaps", "run_live"]

SFLOW_PORT = 6343
LOCK_WAIT_S = 300.0
Progress = Callable[[float, float], None]


@dataclass
class LiveResult:
    """A live run: its recording and assertions, the comparison with the simulated run."""

    recording: Recording
    outcomes: list[Outcome]
    out_dir: Path
    wall_s: float
    comparison: list[CompareRow] = field(default_factory=list)
    simulated: RunResult | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return (all(o.passed for o in self.outcomes)
                and all(r.within is not False for r in self.comparison))


def merge_pcaps(files: Sequence[Path], out: Path, port: int) -> int:
    """The datagrams to ``port`` in ``files`` (the collector's rotated recordings, in
    order) written to ``out`` as sent to the standard sFlow port, 6343 (where notebooks and
    tshark look for sFlow), with their capture times and sources; how many."""
    with PcapWriter(out) as writer:
        for path in sorted(files):
            for d in read_sflow(path, port):
                writer.write(d.payload, d.timestamp, d.src, (d.dst[0], SFLOW_PORT))
    return writer.count


def _locust_totals(stats: Path) -> dict[str, float]:
    if not stats.exists():
        return {}
    with stats.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("Name") == "Aggregated":
                return {"requests": float(row["Request Count"]),
                        "failures": float(row["Failure Count"]),
                        "requests_per_s": float(row["Requests/s"]),
                        "mean_response_ms": float(row["Average Response Time"])}
    return {}


def run_live(scenario: Scenario, out_dir: Path, progress: Progress | None = None,
             chart: bool = True, agent: Sequence[str] | None = None,
             http_port: int | None = None) -> LiveResult:
    """Run ``scenario`` live (see the module docstring); ``agent``: another agent command
    (``{collector}`` in it replaced by the collector's HOST:PORT; default ``sflowlab
    agent``); ``http_port``: the collector's REST port (default a free one)."""
    wall0 = time.monotonic()
    live = scenario.for_live()
    out_dir.mkdir(parents=True, exist_ok=True)
    lab = LiveLab(live, out_dir, agent, http_port)
    profile = LoadProfile.of(lab.service, live.duration)
    pace_s = scenario.live.pace_s if scenario.live else None
    targets = TargetsFile(out_dir / "targets.txt")
    client = docker.DockerClient(base_url=DOCKER_URL, version="auto", timeout=30)
    with contextlib.closing(client), engine_lock(LOCK_WAIT_S), lab.infra, lab.parts:
        lab.up(client)
        t0 = time.time()
        sampler = LiveSampler(live, client, lab.api, targets, profile, t0, time.time)
        locust = Locust(out_dir, targets, profile, t0, pace_s=pace_s).start()
        lab.parts.callback(locust.stop)
        _drive(live, sampler, lab, t0, progress)
        locust.wait(30.0)
        lab.parts.close()  # locust stopped, services removed, agent stopped (last samples sent)
        wait_until("the collector to take the agent's last datagrams",
                   lambda: _settled(lab.api), 5.0, lambda: time.sleep(0.2))
        decisions, accounting = sampler.decisions(), sampler.accounting()
        controllers = lab.api.request("/app/json")
        lab.collector.stop()
    merge_pcaps(sorted(lab.record_dir.glob("sflow-*.pcap")), out_dir / "sflow.pcap",
                lab.sflow_port)
    shutil.rmtree(lab.record_dir, ignore_errors=True)
    rps = {lab.service.name: requests_per_second(out_dir / f"{CSV_PREFIX}_stats_history.csv",
                                                 t0, int(live.duration))}
    recording = sampler.finish(out_dir, time.monotonic() - wall0, rps, accounting, decisions,
                               controllers, controller_log(out_dir / "collector.log", t0))
    outcomes = evaluate(live, recording)
    write_outputs(out_dir, recording, outcomes)
    figures = {**lab.figures, **_locust_totals(out_dir / f"{CSV_PREFIX}_stats.csv"),
               "t0_epoch": t0, "image": lab.image, "agent": lab.agent.argv,
               "collector_http_port": lab.http_port, "sflow_port": lab.sflow_port,
               "bridges": list(BRIDGES), "pace_s": pace_s}
    simulated = run_scenario(scenario, out_dir / "simulated", chart=False)
    tolerances = scenario.live.compare if scenario.live else Tolerances()
    comparison = compare(simulated.recording, recording, tolerances)
    write_compare(out_dir / "compare.csv", comparison)
    figures["wall_s"] = round(time.monotonic() - wall0, 1)
    (out_dir / "live.json").write_text(json.dumps(figures, indent=2) + "\n")
    if chart:
        from sflowlab.lab.scenario.chart import render_chart

        render_chart(out_dir)
    return LiveResult(recording, outcomes, out_dir, time.monotonic() - wall0, comparison,
                      simulated, figures)


def _settled(api: CollectorApi) -> bool:
    """Nothing received for half a second."""
    before = api.request("/analyzer/json")["sFlowDatagramsReceived"]
    time.sleep(0.5)
    return bool(api.request("/analyzer/json")["sFlowDatagramsReceived"] == before)


def _drive(scenario: Scenario, sampler: LiveSampler, lab: LiveLab, t0: float,
           progress: Progress | None) -> None:
    """Each second until the end: the controller requests due, then the timeline row."""
    calls = sorted(((c.at, i, spec.name, c) for spec in scenario.controllers
                    for i, c in enumerate(spec.http)), key=lambda x: (x[0], x[1]))
    for second in range(1, int(scenario.duration) + 1):
        while calls and calls[0][0] <= second:
            at, _, name, call = calls.pop(0)
            _sleep_until(t0 + at)
            answer = lab.api.controller(name, call)
            sampler.log(time.time() - t0, name, f"event=http request='{call.method} "
                        f"/{'/'.join(call.path)}' query={call.query} answer={answer}")
        _sleep_until(t0 + second)
        lab.alive()
        sampler.sample(float(second))
        if progress is not None:
            progress(float(second), scenario.duration)


def _sleep_until(epoch: float) -> None:
    delay = epoch - time.time()
    if delay > 0:
        time.sleep(delay)


def live_summary(result: LiveResult) -> str:
    """The live run's figures and the comparison table."""
    f = result.figures
    lines = [f"live: setup {f.get('setup_s', 0):g} s, whole run {result.wall_s:.1f} s wall; "
             f"locust {f.get('requests', 0):.0f} requests ({f.get('failures', 0):.0f} failed), "
             f"{f.get('requests_per_s', 0):.1f}/s, mean response "
             f"{f.get('mean_response_ms', 0):.1f} ms",
             "simulated vs live (compare.csv):", table(result.comparison)]
    bad = [r for r in result.comparison if r.within is False]
    lines.append(f"{len(result.comparison) - len(bad)}/{len(result.comparison)} comparisons "
                 "within tolerance or informative" if not bad else
                 f"{len(bad)} comparisons out of tolerance")
    return "\n".join(lines)
