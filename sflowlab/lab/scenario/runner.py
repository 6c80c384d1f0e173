"""The scenario runner: builds a scenario's lab on one clock and replays it.

``LabRun(scenario, out_dir)`` composes everything: agent_sim's hosts (hsflowd doubles), their
services and the fabric; the swarm double (the source of truth for replicas: its tasks start
and stop containers on the hosts its nodes name) served over HTTP; the switch ACL double
(committing into the fabric, mirroring ERSPAN into the analyser's pcap); the collector engine
and its controller runtime with the scenario's controllers, which reach the doubles over real
HTTP (the docker SDK, the ACL client). ``run()`` steps it; each step:

1. advance the clock (the doubles' timers fire: tasks start or stop, ACLs commit, scheduled
   controller requests and scalings run);
2. set each service's offered load for the step; ``lab.tick`` serves it and emits sFlow;
3. feed every datagram to the engine (and to ``sflow.pcap``), ``engine.tick``, hand the events
   to the controllers (``runtime.tick``);
4. once per simulated second, record the timeline (``outputs.RunRecorder``).

Simulated (default): a ``SimClock`` stepped as fast as the CPU goes; the same seed gives the
same timeline. ``realtime=True``: the same lab paced by the wall clock, the agents' datagrams
sent over UDP to the collector's ``Listener`` on a loopback port, whose analytics thread runs
the engine's ticks and the controllers.
"""

from __future__ import annotations

import inspect
import logging
import random
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sflowlab.agent_sim.simulation import Lab, LabSpec
from sflowlab.agent_sim.sinks import MemorySink, PcapSink, Sink, TeeSink, UdpSink
from sflowlab.clock import SimClock
from sflowlab.collector.engine import Engine, TickResult
from sflowlab.collector.listener import Listener, ListenerConfig
from sflowlab.collector.runtime import (
    ControllerError,
    HttpError,
    HttpRequest,
    Runtime,
    resolve,
)
from sflowlab.lab.doubles.acl_fabric import ErspanCapture, FabricAclTarget, switches_for
from sflowlab.lab.doubles.acl_rules import ParsedRule
from sflowlab.lab.doubles.swarm_api import SwarmApi
from sflowlab.lab.doubles.swarm_model import ContainerStarted, ContainerStopped, Swarm, SwarmEvent
from sflowlab.lab.doubles.switch_api import AclSwitch, SwitchApi
from sflowlab.lab.scenario.assertions import evaluate
from sflowlab.lab.scenario.kinds import Outcome
from sflowlab.lab.scenario.model import ControllerSpec, HttpCall, Scenario
from sflowlab.lab.scenario.outputs import (
    Recording,
    RunRecorder,
    accounting,
    received,
    write_outputs,
)

__all__ = ["LabRun", "RunResult", "run_scenario", "summary"]

log = logging.getLogger("sflowlab.lab.scenario.runner")

Progress = Callable[[float, float], None]
"""``progress(simulated_now, duration)``, called once per simulated second."""


@dataclass
class RunResult:
    """What a run produced: the recording, each assertion's outcome, the out folder."""

    recording: Recording
    outcomes: list[Outcome]
    out_dir: Path
    wall_s: float

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)


class _RecordingTarget:
    """An ``AclTarget`` that records each commit, then passes it to the fabric."""

    def __init__(self, inner: FabricAclTarget, recorder: RunRecorder, clock: SimClock) -> None:
        self.inner, self.recorder, self.clock = inner, recorder, clock
        self.lines: dict[tuple[str, str], list[str]] = {}

    def apply(self, switch: str, rule_id: str, rules: list[ParsedRule]) -> None:
        self.inner.apply(switch, rule_id, rules)
        self.recorder.acl_change(self.clock.now(), switch, rule_id, "put",
                                 [r.line for r in rules])

    def withdraw(self, switch: str, rule_id: str) -> None:
        self.inner.withdraw(switch, rule_id)
        self.recorder.acl_change(self.clock.now(), switch, rule_id, "delete", [])


class _LogCapture(logging.Handler):
    """Controller log records, stamped with the lab's time, into the recorder."""

    def __init__(self, recorder: RunRecorder, clock: SimClock) -> None:
        super().__init__(logging.INFO)
        self.recorder, self.clock = recorder, clock

    def emit(self, record: logging.LogRecord) -> None:
        self.recorder.log(self.clock.now(), record.levelname, record.name.rpartition(".")[2],
                          record.getMessage())


class LabRun:
    """A scenario's lab, built and ready to step; ``close()`` stops its servers."""

    def __init__(self, scenario: Scenario, out_dir: Path, realtime: bool = False,
                 clock: SimClock | None = None, engine: Engine | None = None) -> None:
        """``clock`` and ``engine`` (fresh ones when None) let tests share their fixtures."""
        self.scenario, self.out_dir, self.realtime = scenario, out_dir, realtime
        out_dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock or SimClock()
        self.engine = engine or Engine(self.clock)
        self.recorder = RunRecorder(scenario)
        self._wall0: float | None = None
        self._steps = 0
        self._next_second = 1.0
        self._closers: list[Callable[[], None]] = []
        try:
            self._build(out_dir)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ building

    def _build(self, out_dir: Path) -> None:
        s, clock = self.scenario, self.clock
        self.pcap = PcapSink(str(out_dir / "sflow.pcap"))
        self._closers.append(self.pcap.close)
        self.memory = MemorySink()
        self.listener: Listener | None = None
        if self.realtime:
            self.listener = Listener(self.engine, clock, ListenerConfig(port=0,
                                     hosts=("127.0.0.1",), tick_s=min(s.step, 1.0)),
                                     on_tick=self._on_tick)
            self.listener.bind()
            udp = UdpSink([self.listener.ports[0]])
            self._closers.append(udp.close)
            sink: Sink = TeeSink(udp, self.pcap)
        else:
            sink = TeeSink(self.memory, self.pcap)
        self.lab = Lab(LabSpec(seed=s.seed, hosts=s.hosts, containers=0, sampling=s.sampling,
                               polling_s=s.polling, fabric=s.fabric,
                               services=[svc.spec() for svc in s.services]), sink)
        self.swarm = Swarm(clock, random.Random(s.seed + 7919),
                           {name: h.spec.address for name, h in self.lab.hosts.items()},
                           start_delay_s=s.swarm.start_delay, stop_delay_s=s.swarm.stop_delay)
        self.swarm.subscribe(self._on_swarm)
        for svc in s.services:
            self.swarm.create_service({
                "Name": svc.name, "Mode": {"Replicated": {"Replicas": svc.replicas}},
                "TaskTemplate": {"ContainerSpec": {"Image": svc.image}},
                "EndpointSpec": {"Ports": [{"TargetPort": svc.spec().port}]}})
            for change in svc.schedule:
                clock.call_at(change.at, self._scaler(svc.name, change.replicas))
        self.swarm_api = SwarmApi(self.swarm).start()
        self._closers.append(self.swarm_api.stop)
        self.endpoints: dict[str, Any] = {"docker_url": self.swarm_api.url}
        self.acl_switches: list[AclSwitch] = []
        self.analyser_pcap: Path | None = None
        if self.lab.fabric is not None:
            self._build_fabric(out_dir)
        self.runtime = Runtime(self.engine, clock)
        self.runtime.subscribe(self.recorder.published)
        self.controllers: dict[str, Any] = {}
        controller_log = logging.getLogger("sflowlab.controller")
        self._log_handler = _LogCapture(self.recorder, clock)
        self._saved_level = controller_log.level
        controller_log.addHandler(self._log_handler)
        controller_log.setLevel(logging.INFO)
        self._closers.append(self._detach_log)
        for spec in s.controllers:
            self._add_controller(spec)

    def _build_fabric(self, out_dir: Path) -> None:
        fabric = self.lab.fabric
        assert fabric is not None
        self.analyser_pcap = out_dir / "analyser.pcap"
        capture = ErspanCapture(str(self.analyser_pcap))
        self._closers.append(capture.close)
        target = _RecordingTarget(FabricAclTarget(fabric, capture), self.recorder, self.clock)
        self.acl_switches = switches_for(fabric, self.clock, target)
        self.switch_api = SwitchApi(self.acl_switches).start()
        self._closers.append(self.switch_api.stop)
        self.endpoints["switches"] = self.switch_api.acl_urls()
        for traffic in self.scenario.traffic:
            for flow in traffic.flows():
                fabric.add_flow(flow)

    def _add_controller(self, spec: ControllerSpec) -> None:
        try:
            factory = resolve(spec.use)
        except ControllerError as e:
            raise ValueError(f"controller {spec.name!r}: {e}") from e
        params = dict(spec.params)
        accepted = _parameters(factory)
        for key, value in self.endpoints.items():
            if key in accepted and key not in params:
                params[key] = value
        if isinstance(params.get("switches"), list):  # names: only these switches' ACL APIs
            params["switches"] = self._acl_urls(spec.name, params["switches"])
        base = str(self.scenario.source.parent) if self.scenario.source else "."
        params = {k: _substitute(v, base) for k, v in params.items()}
        try:
            controller = factory(**params)
        except (TypeError, ValueError) as e:
            raise ValueError(f"controller {spec.name!r}: bad params: {e}") from e
        self.controllers[spec.name] = controller
        api = self.runtime.add(spec.name, controller)
        if api.stats.errors:
            raise ValueError(f"controller {spec.name!r} failed to start: "
                             f"{api.stats.last_error}")
        for call in spec.http:
            self.clock.call_at(call.at, self._caller(spec.name, call))

    def _acl_urls(self, controller: str, names: list[Any]) -> dict[str, str]:
        """{agent address: ACL API URL} of the named fabric switches."""
        by_name = {s.name: s for s in self.acl_switches}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"controller {controller!r}: unknown switches {unknown}; the "
                             f"fabric has {sorted(by_name)}")
        return {by_name[n].agent: self.switch_api.url_for(by_name[n]) for n in names}

    def _scaler(self, service: str, replicas: int) -> Callable[[float], None]:
        def scale(_now: float) -> None:
            self.swarm.scale(service, replicas)
        return scale

    def _caller(self, name: str, call: HttpCall) -> Callable[[float], None]:
        return lambda _now: self._http(name, call)

    def _http(self, name: str, call: HttpCall) -> None:
        request = HttpRequest(call.method, tuple(call.path),
                              {k: [v] for k, v in call.query.items()}, call.body)
        try:
            answer = self.runtime.http(name, request)
        except HttpError as e:
            answer = f"HTTP {e.status}: {e.message}"
        query = f"?{urllib.parse.urlencode(call.query)}" if call.query else ""
        self.recorder.log(self.clock.now(), "INFO", name, f"event=http request='{call.method} "
                          f"/{'/'.join(call.path)}{query}' answer={answer!r}")

    def _detach_log(self) -> None:
        controller_log = logging.getLogger("sflowlab.controller")
        controller_log.removeHandler(self._log_handler)
        controller_log.setLevel(self._saved_level)

    # ------------------------------------------------------------------ events

    def _on_swarm(self, event: SwarmEvent) -> None:
        if not isinstance(event, ContainerStarted | ContainerStopped):
            return
        self.recorder.container_event(event)
        if event.service not in self.lab.services:
            return
        if isinstance(event, ContainerStarted):
            self.lab.start_replica(event.service, event.name, event.node, max(event.at,
                                   self.lab.now), event.container_id)
        else:
            self.lab.stop_replica(event.container_id, max(event.at, self.lab.now))

    def _on_tick(self, result: TickResult) -> None:
        now = self.clock.now()
        self.recorder.events(now, result.events)
        self.runtime.tick(now, result)

    # ------------------------------------------------------------------ running

    def step_to(self, t: float) -> None:
        """Advance the lab by one step, to ``t``."""
        start = self.lab.now
        self.clock.advance_to(t)
        for svc in self.scenario.services:
            self.lab.services[svc.name].set_load(*svc.offered(start))
        self.lab.tick(t)
        if self.listener is None:
            ingest = self.engine.ingest
            for now, agent, data in self.memory.drain():
                ingest(data, (agent, 6343), now)
            self._on_tick(self.engine.tick(t))

    def run_until(self, end: float, progress: Progress | None = None) -> None:
        """Step to ``end`` (simulated seconds), recording a timeline row every second;
        with ``realtime``, each step waits for its wall-clock time."""
        s = self.scenario
        if self._wall0 is None:
            self._wall0 = time.monotonic()
            if self.listener is not None:
                self.listener.start()
                self._closers.append(self.listener.stop)
        while self.lab.now < end - 1e-9:
            self._steps += 1
            t = min(round(self._steps * s.step, 9), end)
            if self.realtime:
                _sleep_until(self._wall0 + t)
            self.step_to(t)
            while t + 1e-9 >= self._next_second:
                self.recorder.sample(self._next_second, self.engine, self.swarm, self._served())
                self._next_second += 1.0
                if progress is not None:
                    progress(t, s.duration)

    def _served(self) -> dict[str, int]:
        """Requests each service has served so far."""
        return {name: sum(s.requests for s in model.served.values())
                for name, model in self.lab.services.items()}

    def run(self, progress: Progress | None = None) -> Recording:
        """Replay the whole scenario; returns the recording."""
        self.run_until(self.scenario.duration, progress)
        if self.listener is not None:
            self._drain_listener()
        return self.finish()

    def finish(self) -> Recording:
        """What has been recorded so far."""
        wall = time.monotonic() - self._wall0 if self._wall0 is not None else 0.0
        return self.recorder.finish(wall, accounting(self.engine, self._sent()), self.analyser_pcap,
                                    self.out_dir / "sflow.pcap", self.runtime.status())

    def _sent(self) -> int:
        """Datagrams the lab's agents have sent."""
        return sum(a.datagrams_sent for a in self.lab.agents())

    def _drain_listener(self) -> None:
        """Wait (at most 2 s) until the engine has ingested what the agents sent or the
        listener dropped the rest: what is still missing then is lost."""
        assert self.listener is not None
        deadline = time.monotonic() + 2.0
        sent = self._sent()
        while (received(self.engine) + self.listener.dropped < sent
               and time.monotonic() < deadline):
            time.sleep(0.01)

    def close(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception:  # closing must not hide the run's own error
                log.exception("event=close_failed closer=%r", close)
        self._closers.clear()


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _parameters(factory: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return set()


def _substitute(value: Any, scenario_dir: str) -> Any:
    """``${scenario_dir}`` in string parameters (lists and tables too) -> the file's folder."""
    if isinstance(value, str):
        return value.replace("${scenario_dir}", scenario_dir)
    if isinstance(value, list):
        return [_substitute(v, scenario_dir) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, scenario_dir) for k, v in value.items()}
    return value


def summary(result: RunResult) -> str:
    """The assertion table and the run's figures."""
    rec = result.recording
    lines = [f"scenario {rec.scenario.name}: {rec.scenario.duration:g} s of lab time in "
             f"{rec.wall_s:.2f} s wall; out folder {result.out_dir}"]
    for svc in rec.scenario.services:
        series = rec.series(f"{svc.name}.replicas")
        if series:
            peak_t, peak = max(series, key=lambda p: (p[1], -p[0]))
            steps = sum(1 for d in rec.decisions if d.service == svc.name)
            lines.append(f"  {svc.name}: replicas {series[0][1]:.0f}, peak {peak:.0f} at "
                         f"t={peak_t:.1f} s, {series[-1][1]:.0f} at the end; {steps} scaling "
                         "decisions")
    for o in result.outcomes:
        lines.append(f"  {'PASS' if o.passed else 'FAIL'}  {o.name}")
        lines.append(f"        {o.message}")
    for name, stats in rec.controllers.items():
        if stats["errors"]:
            lines.append(f"  controller {name}: handler errors {stats['errors']}, last: "
                         f"{stats['lastError']}")
    passed = sum(o.passed for o in result.outcomes)
    lines.append(f"{passed}/{len(result.outcomes)} assertions passed")
    return "\n".join(lines)


def run_scenario(scenario: Scenario, out_dir: Path, realtime: bool = False,
                 progress: Progress | None = None, chart: bool = True) -> RunResult:
    """Build, run, evaluate and write the out folder (chart included when ``chart``)."""
    wall0 = time.monotonic()
    lab = LabRun(scenario, out_dir, realtime)
    try:
        recording = lab.run(progress)
    finally:
        lab.close()
    outcomes = evaluate(scenario, recording)
    write_outputs(out_dir, recording, outcomes)
    if chart:
        from sflowlab.lab.scenario.chart import (
            render_chart,  # matplotlib and pandas: only when drawing
        )

        render_chart(out_dir)
    return RunResult(recording, outcomes, out_dir, time.monotonic() - wall0)
