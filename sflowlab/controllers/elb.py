"""The elastic load balancer: scales Docker swarm services to the load sFlow shows.

The seed's elb.js, for several services, each with its own policy (``seed`` or ``hpa``, see
:mod:`.policies`) and parameters. Every ``interval_s`` (2 s), for each service:

1. read it through the Docker API (replicas, version); a failed read means no decision;
2. ``metric("ALL", "avg:vir_cpu_utilization,avg:vir_bytes_in,avg:vir_bytes_out",
   {"vir_host_name": ["<service>\\..*"], "vir_cpu_state": ["running"]})``: the service's
   containers are named ``service.slot.taskid``; the filter's regexes match whole values;
3. act only when every metricN equals the replica count. New containers report their first
   counters seconds after they start and rates only from their second sample; stopping ones
   report until they stop. Until then the average describes another population than the one
   the replica count does: the old containers still carry the old share of the load, so
   acting on it would step twice for one change in load (and the HPA's
   ``ceil(replicas * avg / target)`` would multiply the wrong average by the new count);
4. ask the policy; when enabled and the target differs, scale (the update names the version
   just read). "update out of sequence" (someone changed the service meanwhile): read it
   again, decide again from the fresh count, retry, at most ``conflict_attempts`` times.

An unreachable Docker API (refused, timeout, 5xx) is logged (at most once per
``log_every_s``), counted, and retried with exponential backoff: intervals are skipped until
the backoff expires; nothing is decided on a count that could not be read.

HTTP (``/app/elb/...``, or the seed's ``/script/elb.js/json``):

- ``?state=enabled`` / ``?state=disabled`` (``&service=NAME`` for one service): answers
  ``"enabled"`` or ``"disabled"``, as elb.js did (which, unlike this, disabled itself on any
  request without ``state``);
- ``GET`` (no path) or ``GET status``: per service its policy, parameters, replicas, last
  metrics, last decision and switch; the Docker API's error counts and backoff;
- ``GET decisions`` (``?service=``, ``?max=``): the scaling decisions taken, oldest first;
- ``GET params``; ``PUT``/``POST params[/NAME]`` with a JSON object (``service``, ``policy``
  and parameters; partial: the rest is kept): 400 with the reason when invalid.

Switches and parameters set over HTTP persist in the controller store and win over the
configuration after a restart. Scaling is published as a ``ServiceScaled`` event
(``ControllerApi.publish``) and logged as ``event=scale service=apache from=1 to=2 reason='...'``.

Handlers and HTTP requests are serialised by one lock (an HTTP request can wait for the
Docker calls of a running interval, at most ``timeout_s`` each).
"""

from __future__ import annotations

import collections
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sflowlab.collector.api import ControllerApi, HttpError, HttpRequest

from .decisions import ServiceScaled
from .docker_client import (
    DEFAULT_DOCKER_URL,
    Backoff,
    DockerUnavailable,
    ServiceError,
    SwarmServices,
    VersionConflict,
)
from .policies import HpaPolicy, Observation, ParamError, SeedPolicy, make_policy

__all__ = ["METRICS", "ElasticLoadBalancer", "ServiceControl"]

METRICS = "avg:vir_cpu_utilization,avg:vir_bytes_in,avg:vir_bytes_out"
_STATES = ("enabled", "disabled")


def service_filter(name: str) -> dict[str, list[str]]:
    """The metric filter selecting a swarm service's running containers."""
    return {"vir_host_name": [re.escape(name) + r"\..*"], "vir_cpu_state": ["running"]}


@dataclass
class ServiceControl:
    """One service under control: its policy and switch, and what was last seen and decided."""

    name: str
    policy: SeedPolicy | HpaPolicy
    enabled: bool
    replicas: int | None = None
    version: int | None = None
    metrics: dict[str, Any] | None = None
    last_decision: dict[str, Any] | None = None
    problem: str = ""
    """The last problem logged (logged again only when it changes)."""

    def settings(self) -> dict[str, Any]:
        """What the store keeps."""
        return {"policy": self.policy.name, "params": self.policy.params.to_json(),
                "enabled": self.enabled}

    def to_json(self) -> dict[str, Any]:
        return {**self.settings(), "replicas": self.replicas, "version": self.version,
                "metrics": self.metrics, "last_decision": self.last_decision}


@dataclass
class DockerStats:
    """The Docker API's failures as the controller saw them."""

    errors: int = 0
    conflicts: int = 0
    skipped_intervals: int = 0
    last_error: str = ""
    last_logged: float = -math.inf
    held: int = 0


class ElasticLoadBalancer:
    """The controller (``start(api)``); see the module docstring.

    ``services``: names (seed policy, defaults) or ``{name: {"policy": "seed"|"hpa",
    "enabled": bool, <parameters>}}``. ``enabled`` is the initial switch of services that do
    not set their own (the seed started disabled).
    """

    def __init__(self, services: Mapping[str, Mapping[str, Any]] | Iterable[str] = ("apache",),
                 *, interval_s: float = 2.0, enabled: bool = False,
                 docker_url: str = DEFAULT_DOCKER_URL, tls_dir: str | Path | None = None,
                 timeout_s: float = 5.0, api_version: str | None = None,
                 conflict_attempts: int = 3, backoff_base_s: float = 2.0,
                 backoff_max_s: float = 60.0, log_every_s: float = 30.0,
                 decisions_kept: int = 200, client: Any = None) -> None:
        if interval_s <= 0 or conflict_attempts < 1 or decisions_kept < 1:
            raise ValueError("interval_s must be > 0, conflict_attempts and decisions_kept >= 1")
        if not 0 < backoff_base_s <= backoff_max_s:
            raise ValueError("need 0 < backoff_base_s <= backoff_max_s")
        if isinstance(services, str):
            raise ValueError("services: a list of names or a table of name -> settings")
        confs = (services if isinstance(services, Mapping)
                 else {name: {} for name in services})
        if not confs:
            raise ValueError("services: at least one service to control")
        self.services = {name: self._configure(name, conf, enabled)
                         for name, conf in confs.items()}
        self.interval_s = interval_s
        self.conflict_attempts = conflict_attempts
        self.log_every_s = log_every_s
        self.swarm = SwarmServices(docker_url, tls_dir, timeout_s, api_version, client)
        self.backoff = Backoff(backoff_base_s, backoff_max_s)
        self.docker = DockerStats()
        self.decisions: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=decisions_kept)
        self._lock = threading.Lock()
        self._api: ControllerApi | None = None

    @staticmethod
    def _configure(name: Any, conf: Any, enabled: bool) -> ServiceControl:
        if not isinstance(name, str) or not name:
            raise ValueError(f"service names must be non-empty strings, not {name!r}")
        if not isinstance(conf, Mapping):
            raise ValueError(f"service {name}: settings must be a table, not {conf!r}")
        params = dict(conf)
        policy = params.pop("policy", "seed")
        on = params.pop("enabled", enabled)
        if not isinstance(on, bool):
            raise ValueError(f"service {name}: enabled must be true or false, not {on!r}")
        try:
            return ServiceControl(name, make_policy(policy, params), on)
        except ParamError as e:
            raise ValueError(f"service {name}: {e}") from e

    @property
    def api(self) -> ControllerApi:
        if self._api is None:
            raise RuntimeError("the controller has not been started")
        return self._api

    # ---------------------------------------------------------------- start and store

    def start(self, api: ControllerApi) -> None:
        self._api = api
        stored = api.store_get("services", {})
        for name, saved in (stored.items() if isinstance(stored, dict) else ()):
            svc = self.services.get(name)
            if svc is None:
                continue
            try:
                policy, on = make_policy(saved["policy"], saved["params"]), saved["enabled"]
                if not isinstance(on, bool):
                    raise ParamError(f"enabled must be a boolean, not {on!r}")
            except (ParamError, KeyError, TypeError) as e:
                api.log.warning("event=elb_store_ignored service=%s error=%r", name, str(e))
                continue
            svc.policy, svc.enabled = policy, on
        api.set_interval_handler(self.interval, self.interval_s)
        api.set_http_handler(self.http)
        api.log.info("event=elb_started services=%s docker=%s", ",".join(self.services),
                     self.swarm.url)

    def _save(self) -> None:
        self.api.store_set("services", {n: s.settings() for n, s in self.services.items()})

    # ---------------------------------------------------------------- the control loop

    def interval(self, now: float) -> None:
        """One round over every service (the interval handler)."""
        with self._lock:
            if not self.backoff.ready(now):
                self.docker.skipped_intervals += 1
                return
            try:
                for svc in self.services.values():
                    self._evaluate(svc, now)
            except DockerUnavailable as e:
                self._unavailable(now, e)
                return
            failures = self.backoff.succeeded()
            if failures:
                self.api.log.info("event=docker_recovered url=%s failures=%d", self.swarm.url,
                                  failures)

    def _evaluate(self, svc: ServiceControl, now: float) -> None:
        for attempt in range(1, self.conflict_attempts + 1):
            try:
                state = self.swarm.read(svc.name)
            except ServiceError as e:
                self._problem(svc, now, str(e))
                return
            r = svc.replicas = state.replicas
            svc.version = state.version
            if r == 0:
                self._problem(svc, now, f"service {svc.name} has no replicas")
                return
            obs = self._observe(svc, r)
            if obs is None:
                assert svc.metrics is not None
                self._outcome(svc, now, r, f"waiting for metrics: metricN={svc.metrics['n']}, "
                                           f"replicas={r}")
                return
            decision = svc.policy.decide(obs, now)
            if decision.target == r:
                self._outcome(svc, now, r, f"no change: {decision.reason}")
                return
            if not svc.enabled:
                self._outcome(svc, now, r, f"disabled: would scale to {decision.target}: "
                                           f"{decision.reason}")
                return
            try:
                self.swarm.scale(state, decision.target)
            except VersionConflict:
                self.docker.conflicts += 1
                self.api.log.info("event=elb_version_conflict service=%s version=%d attempt=%d",
                                  svc.name, state.version, attempt)
                continue
            except ServiceError as e:
                self._problem(svc, now, str(e))
                return
            self._scaled(svc, now, r, decision.target, decision.reason)
            return
        self._problem(svc, now, f"service {svc.name}: gave up after {self.conflict_attempts} "
                                "version conflicts")

    def _observe(self, svc: ServiceControl, replicas: int) -> Observation | None:
        results = self.api.metric("ALL", METRICS, service_filter(svc.name))
        counts = [int(m["metricN"]) for m in results]
        util, b_in, b_out = (m.get("metricValue") for m in results)
        total = b_in + b_out if b_in is not None and b_out is not None else None
        svc.metrics = {"n": min(counts), "util": util, "bytes_in": b_in, "bytes_out": b_out,
                       "bytes": total}
        if set(counts) != {replicas} or util is None or total is None:
            return None
        return Observation(replicas, float(util), float(total))

    def _outcome(self, svc: ServiceControl, now: float, replicas: int, reason: str,
                 to: int | None = None) -> dict[str, Any]:
        svc.last_decision = {"time": now, "service": svc.name, "policy": svc.policy.name,
                             "from": replicas, "to": replicas if to is None else to,
                             "reason": reason, "metrics": svc.metrics}
        svc.problem = ""
        return svc.last_decision

    def _scaled(self, svc: ServiceControl, now: float, old: int, new: int, reason: str) -> None:
        self.decisions.append(self._outcome(svc, now, old, reason, new))
        svc.replicas = new
        self.api.publish(ServiceScaled(now, svc.name, svc.policy.name, old, new, reason))
        self.api.log.info("event=scale service=%s from=%d to=%d reason=%r", svc.name, old, new,
                          reason)

    def _problem(self, svc: ServiceControl, now: float, message: str) -> None:
        if message != svc.problem:
            self.api.log.warning("event=elb_no_decision service=%s reason=%r", svc.name, message)
        svc.last_decision = {"time": now, "service": svc.name, "policy": svc.policy.name,
                             "from": svc.replicas, "to": svc.replicas, "reason": message,
                             "error": True, "metrics": svc.metrics}
        svc.problem = message

    def _unavailable(self, now: float, e: DockerUnavailable) -> None:
        d = self.docker
        delay = self.backoff.failed(now)
        d.errors += 1
        d.last_error = str(e)
        if now - d.last_logged < self.log_every_s:
            d.held += 1
            return
        held = f" (+{d.held} failures not logged)" if d.held else ""
        self.api.log.warning("event=docker_unavailable url=%s failures=%d retry_in_s=%g "
                             "error=%r%s", self.swarm.url, self.backoff.failures, delay, str(e),
                             held)
        d.last_logged, d.held = now, 0

    # ---------------------------------------------------------------- HTTP

    def http(self, req: HttpRequest) -> Any:
        """The controller's HTTP handler (see the module docstring)."""
        with self._lock:
            state = req.arg("state")
            if state is not None:
                return self._set_state(req, state)
            head = req.path[0] if req.path else "status"
            if head == "params" and req.method in ("PUT", "POST"):
                return self._set_params(req)
            views: dict[str, Callable[[], Any]] = {
                "status": self.status, "decisions": lambda: self._decisions(req),
                "params": lambda: {n: s.settings() for n, s in self.services.items()}}
            view = views.get(head)
            if view is None or len(req.path) > 1:
                raise HttpError(404, f"unknown path {'/'.join(req.path)!r}: use status, "
                                     "decisions, params or ?state=enabled|disabled")
            if req.method not in ("GET", "HEAD"):
                also = ", PUT and POST" if head == "params" else ""
                raise HttpError(405, f"{head} answers GET{also}")
            return view()

    def status(self) -> dict[str, Any]:
        d, b = self.docker, self.backoff
        return {
            "interval_s": self.interval_s,
            "docker": {"url": self.swarm.url, "errors": d.errors, "conflicts": d.conflicts,
                       "consecutive_failures": b.failures,
                       "retry_at": b.retry_at if b.failures else None,
                       "skipped_intervals": d.skipped_intervals, "last_error": d.last_error},
            "services": {n: s.to_json() for n, s in self.services.items()},
        }

    def _service(self, name: str | None) -> ServiceControl:
        if name is None:
            if len(self.services) == 1:
                return next(iter(self.services.values()))
            raise HttpError(400, "name the service (one of " + ", ".join(self.services) + ")")
        svc = self.services.get(name)
        if svc is None:
            raise HttpError(404, f"no service {name!r} under control (have "
                                 + ", ".join(self.services) + ")")
        return svc

    def _set_state(self, req: HttpRequest, state: str) -> str:
        req.mutating()
        if state not in _STATES:
            raise HttpError(400, f"state must be enabled or disabled, not {state!r}")
        name = req.arg("service")
        targets = [self._service(name)] if name else list(self.services.values())
        for svc in targets:
            svc.enabled = state == "enabled"
        self._save()
        self.api.log.info("event=elb_state state=%s services=%s", state,
                          ",".join(s.name for s in targets))
        return state

    def _decisions(self, req: HttpRequest) -> list[dict[str, Any]]:
        name = req.arg("service")
        if name is not None:
            self._service(name)
        try:
            most = int(req.arg("max") or len(self.decisions))
        except ValueError:
            raise HttpError(400, f"max must be an integer, not {req.arg('max')!r}") from None
        out = [d for d in self.decisions if name is None or d["service"] == name]
        return out[-most:] if most > 0 else []

    def _set_params(self, req: HttpRequest) -> dict[str, Any]:
        req.mutating()
        body = _json_object(req.body)
        name = req.path[1] if len(req.path) > 1 else body.pop("service", None)
        if name is not None and not isinstance(name, str):
            raise HttpError(400, f"service must be a string, not {name!r}")
        if len(req.path) > 2:
            raise HttpError(404, "use params or params/<service>")
        svc = self._service(name)
        policy = body.pop("policy", svc.policy.name)
        try:
            new = make_policy(policy, body, svc.policy.params)
        except ParamError as e:
            raise HttpError(400, f"service {svc.name}: {e}") from None
        if new.name == svc.policy.name:
            svc.policy.params = new.params  # the HPA keeps its recommendation history
        else:
            svc.policy = new
        self._save()
        self.api.log.info("event=elb_params service=%s policy=%s params=%s", svc.name,
                          svc.policy.name, json.dumps(svc.policy.params.to_json()))
        return svc.to_json()


def _json_object(body: Any) -> dict[str, Any]:
    """A request body (bytes, text or already parsed) as a JSON object; 400 otherwise."""
    if isinstance(body, bytes | bytearray | str):
        try:
            body = json.loads(body or "null")
        except ValueError as e:
            raise HttpError(400, f"bad JSON body: {e}") from None
    if not isinstance(body, Mapping):
        raise HttpError(400, "expected a JSON object of parameters, e.g. "
                             '{"service": "apache", "policy": "hpa", "target_util": 1.0}')
    return dict(body)
