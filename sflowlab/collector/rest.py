"""sFlow-RT's REST API on the shared HTTP layer (:mod:`sflowlab.http`): routes that only translate.

Every handler calls the engine's Python API (``metric``, ``dump``, ``active_flows``, ...) and
shapes JSON; bad input answers 4xx with ``{"error": message}`` (unknown path 404, wrong
method 405 with ``Allow``, bad JSON or query 400, missing token 401, read-only 403). Every
request that changes state (PUT/POST/DELETE, and a controller's GET that declares itself
mutating, e.g. ``/app/elb/json?state=disabled``) needs ``Authorization: Bearer <token>`` when
a token is set, and is refused when ``readonly``. Long polls (``/events/json``,
``/flows/json`` with ``eventID``/``flowID`` and ``timeout``) wait outside the engine lock.
``/`` serves the status pages (package data in ``ui/``: plain HTML, JavaScript and CSS over
this API, no build step).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sflowlab import __version__
from sflowlab.http import Access, HttpError, Request, Response, Router, template

from .api import HttpRequest
from .engine_api import EngineApi
from .filters import FilterError
from .flows import FlowSpec
from .forwarding import Destination, Forwarder
from .prometheus import analyzer_exposition, exposition
from .query import QueryError
from .runtime import Runtime
from .static import static_file
from .thresholds import ThresholdSpec

MAX_POLL_S = 60.0

Handler = Callable[[Request], Any]


def _text(text: str, ctype: str = "text/plain") -> Response:
    return Response(200, text.encode(), {"Content-Type": ctype})


@dataclass
class Api:
    """sFlow-RT's routes over an engine; ``router`` is what an ``HttpServer`` serves."""

    engine: EngineApi
    forwarder: Forwarder = field(default_factory=Forwarder)
    token: str | None = None
    readonly: bool = False
    analyzer_extra: Callable[[], dict[str, Any]] | None = None
    runtime: Runtime | None = None
    router: Router = field(init=False)

    def __post_init__(self) -> None:
        self.router = Router(access=Access(self.token, self.readonly),
                             client_errors=(QueryError, FilterError, ValueError, TypeError,
                                            KeyError))
        r = self._route
        r("/version", GET=lambda q: _text(__version__))
        ui = resources.files(__package__) / "ui"  # the status pages (package data)
        self.router.add("GET", r"/(?:index\.html)?", lambda q: static_file(ui, []))
        self.router.add("GET", r"/ui/(?P<rest>[^?]+)",
                        lambda q: static_file(ui, q.params["rest"].split("/")))
        r("/analyzer/json", GET=lambda q: self._analyzer())
        r("/agents/json", GET=self._agents)
        r("/metrics/json", GET=lambda q: self.engine.metric_names())
        r("/metric/{agent}/json", GET=self._agent_metrics)
        r("/metric/{agents}/{metrics}/json", GET=lambda q: self.engine.metric(
            q.params["agents"], q.params["metrics"], q.query))
        r("/dump/{agents}/{metrics}/json", GET=lambda q: self.engine.dump(
            q.params["agents"], q.params["metrics"], q.query))
        r("/table/{agents}/{metrics}/json", GET=lambda q: self.engine.table(
            q.params["agents"], q.params["metrics"], q.query))
        r("/prometheus/metrics/{agents}/{metrics}/txt", GET=lambda q: _text(
            exposition(self.engine, q.params["agents"], q.params["metrics"], q.query),
            "text/plain; version=0.0.4"))
        r("/topology/json", GET=lambda q: self.engine.topology_json(), PUT=self._put_topology)
        r("/flowkeys/json", GET=lambda q: self.engine.flow_keys())
        r("/flow/json", GET=lambda q: self.engine.flow_specs())
        self._resource("/flow/{name}/json", "flow", self.engine.flow_specs, self.engine.remove_flow,
                       lambda n, obj: self.engine.set_flow(
                           n, FlowSpec.from_json(_object(obj), check=False)))
        r("/activeflows/{agents}/{name}/json", GET=self._active_flows)
        r("/flowvalue/{agent}/{name}/json", GET=self._flow_value)
        r("/flows/json", GET=self._logged_flows)
        for every in ("/group/json", "/groups/json"):  # sFlow-RT's, and this API's older name
            r(every, GET=lambda q: self.engine.group_specs(), PUT=self._put_groups)
        self._resource("/group/{name}/json", "group set", self.engine.group_specs,
                       self.engine.remove_group, self.engine.set_group)
        r("/threshold/json", GET=lambda q: self.engine.threshold_specs())
        self._resource("/threshold/{name}/json", "threshold", self.engine.threshold_specs,
                       self.engine.remove_threshold,
                       lambda n, obj: self.engine.set_threshold(n, ThresholdSpec.from_json(_object(obj))))
        r("/events/json", GET=self._events)
        r("/app/json", GET=lambda q: self.runtime.status() if self.runtime else {})
        r("/scripts/json", GET=lambda q: self.runtime.scripts() if self.runtime else {})
        r("/prometheus/analyzer/txt", GET=lambda q: _text(
            analyzer_exposition(self._analyzer()), "text/plain; version=0.0.4"))
        for pattern in (r"/app/(?!json/?$)(?P<name>[^/]+)(?P<rest>/.*)?", r"/script/(?P<name>[^/]+)/json/?"):
            for method in ("GET", "PUT", "POST", "DELETE"):
                self.router.add(method, pattern, self._app)
        r("/forwarding/json", GET=lambda q: self._forwarding())
        self._resource("/forwarding/{name}/json", "forwarding", self._forwarding,
                       self.forwarder.delete,
                       lambda n, obj: self.forwarder.set(n, Destination.from_json(obj)))

    def _route(self, path: str, **methods: Handler) -> None:
        for method, handler in methods.items():
            self.router.add(method, template(path) + "/?", handler)

    def _resource(self, path: str, kind: str, specs: Callable[[], Mapping[str, Any]],
                  remove: Callable[[str], bool], put: Callable[[str, Any], None]) -> None:
        """GET/PUT/DELETE of one named definition; PUT answers with what was stored."""

        def get(q: Request) -> Any:
            value = specs().get(q.params["name"])
            if value is None:
                raise HttpError(404, f"no {kind} named {q.params['name']!r}")
            return value

        def store(q: Request) -> Any:
            put(q.params["name"], q.json())
            return get(q)

        def delete(q: Request) -> Any:
            if not remove(q.params["name"]):
                raise HttpError(404, f"no {kind} named {q.params['name']!r}")
            return {}

        self._route(path, GET=get, PUT=store, DELETE=delete)

    def _forwarding(self) -> dict[str, Any]:
        return {n: d.to_json() for n, d in self.forwarder.destinations.items()}

    def handle(self, method: str, target: str, headers: Mapping[str, str],
               body: bytes) -> tuple[int, str, bytes]:
        """Answer one request without a server: (status, content type, body)."""
        url = urlsplit(target)
        message = Message()
        for name, value in headers.items():
            message[name] = value
        response = self.router.dispatch(Request(method, url.path, parse_qs(
            url.query, keep_blank_values=True), message, body))
        return response.status, response.headers.get("Content-Type", ""), response.body

    # ---------------------------------------------------------------- controllers

    def _analyzer(self) -> dict[str, Any]:
        return {**self.engine.analyzer_json(),
                **(self.analyzer_extra() if self.analyzer_extra else {})}

    def _app(self, q: Request) -> Any:
        """A controller's HTTP handler: ``/app/{name}/...``, sFlow-RT's
        ``/app/{name}/scripts/{script}/{path}/json`` (``script``'s own handler if it has one)
        and ``/script/{name}/json``; the ``json`` or ``txt`` suffix is not part of the path:
        the answer is JSON, or with ``txt`` the handler's str as text/plain.
        ``/app/{name}/html/...``: the app's static files."""
        if self.runtime is None:
            raise HttpError(404, "no controllers are loaded")
        path = [p for p in (q.params.get("rest") or "").split("/") if p]
        if path and path[0] == "html" and q.method in ("GET", "HEAD"):
            return static_file(self.runtime.html(q.params["name"]), path[1:])
        script = None
        if len(path) >= 2 and path[0] == "scripts":
            script, path = path[1], path[2:]
        text = bool(path) and path[-1] == "txt"
        if path and path[-1] in ("json", "txt"):
            path = path[:-1]
        body = q.json() if q.body else None
        method = "GET" if q.method == "HEAD" else q.method
        result = self.runtime.http(q.params["name"], HttpRequest(
            method, tuple(path), q.query, body, q.mutating), script)
        if text:
            return _text(result if isinstance(result, str) else json.dumps(result))
        return result

    # ---------------------------------------------------------------- flows

    def _agent_metrics(self, q: Request) -> Any:
        found = self.engine.agent_metrics(q.params["agent"])
        if found is None:
            raise HttpError(404, f"no agent {q.params['agent']!r}")
        return found

    def _put_topology(self, q: Request) -> Any:
        self.engine.set_topology(q.json())
        return self.engine.topology_json()

    def _agents(self, q: Request) -> Any:
        agents = self.engine.agents_json()
        wanted = q.query.get("agent")
        return agents if not wanted else {a: v for a, v in agents.items() if a in wanted}

    def _active_flows(self, q: Request) -> Any:
        return self.engine.active_flows(
            q.params["agents"], q.params["name"], max_flows=q.arg_as("maxFlows", int, 100),
            min_value=q.arg_as("minValue", float, 0.0), agg_mode=q.arg("aggMode"))

    def _flow_value(self, q: Request) -> Any:
        key = q.arg("key")
        if key is None:
            raise HttpError(400, "flowvalue needs ?key=")
        return self.engine.flow_value(q.params["agent"], q.params["name"], key)

    def _logged_flows(self, q: Request) -> Any:
        name = q.arg("name")
        max_flows = q.arg_as("maxFlows", int, 100)
        after = q.arg_as("flowID", int, -1)
        timeout = min(q.arg_as("timeout", float, 0.0), MAX_POLL_S)
        if "flowID" in q.query and timeout > 0:
            self.engine.wait_logged(after, timeout, name)
        return [r.to_json() for r in self.engine.logged_flows(name, max_flows, after)]

    # ---------------------------------------------------------------- groups

    def _put_groups(self, q: Request) -> Any:
        obj = q.json()
        if not isinstance(obj, dict):
            raise HttpError(400, 'group sets are {"set": {"group": ["cidr", ...]}, ...}')
        self.engine.set_groups(obj)
        return self.engine.group_specs()

    # ---------------------------------------------------------------- events

    def _events(self, q: Request) -> Any:
        after = q.arg_as("eventID", int, -1)
        threshold_id = q.arg("thresholdID")
        timeout = min(q.arg_as("timeout", float, 0.0), MAX_POLL_S)
        if "eventID" in q.query and timeout > 0:
            self.engine.wait_events(after, timeout, threshold_id)
        events = self.engine.query_events(threshold_id, q.arg_as("maxEvents", int, 100), after)
        return [e.to_json() for e in events]


def _object(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise HttpError(400, "a definition is a JSON object")
    return obj
