"""sFlow-RT's REST API over ``http.server``: a small router that only translates.

Every handler calls the engine's Python API (``metric``, ``dump``, ``active_flows``, ...) and
shapes JSON; bad input answers 4xx with ``{"error": message}`` (unknown path 404, wrong
method 405, bad JSON or query 400, missing token 401, read-only 403). When a token is set,
PUT/POST/DELETE need ``Authorization: Bearer <token>``. Long polls (``/events/json``,
``/flows/json`` with ``eventID``/``flowID`` and ``timeout``) wait outside the engine lock.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sflowlab import __version__

from .engine import Engine
from .filters import FilterError
from .flows import FlowSpec
from .forwarding import Destination, Forwarder
from .prometheus import exposition
from .query import QueryError
from .runtime import HttpError, HttpRequest, Runtime
from .shards import ShardedEngine
from .thresholds import ThresholdSpec

log = logging.getLogger("sflowlab.collector")

MAX_BODY = 16 * 1024 * 1024
MAX_POLL_S = 60.0
JSON = "application/json"


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes = b""

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as e:
            raise HttpError(400, f"bad JSON body: {e}") from None

    def arg(self, name: str, kind: Callable[[str], Any], default: Any) -> Any:
        values = self.query.get(name)
        if not values:
            return default
        try:
            return kind(values[-1])
        except ValueError:
            raise HttpError(400, f"bad value for {name}: {values[-1]!r}") from None

    def filter(self, *reserved: str) -> dict[str, list[str]]:
        """Query parameters that are not options: string-metric filters."""
        return {k: v for k, v in self.query.items() if k not in reserved}


Response = tuple[int, str, bytes]
Handler = Callable[[Request], Any]


def _ok(obj: Any) -> Response:
    return 200, JSON, json.dumps(obj).encode()


@dataclass
class Api:
    """Routes requests to the engine; ``handle`` is independent of the HTTP server."""

    engine: Engine | ShardedEngine
    forwarder: Forwarder = field(default_factory=Forwarder)
    token: str | None = None
    readonly: bool = False
    analyzer_extra: Callable[[], dict[str, Any]] | None = None
    runtime: Runtime | None = None
    routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        r = self._route
        r("/version", GET=lambda q: (200, "text/plain", __version__.encode()))
        r("/analyzer/json", GET=lambda q: {
            **self.engine.analyzer_json(), **(self.analyzer_extra() if self.analyzer_extra else {})})
        r("/agents/json", GET=self._agents)
        r("/metrics/json", GET=lambda q: self.engine.metric_names())
        r("/metric/{agent}/json", GET=self._agent_metrics)
        r("/metric/{agents}/{metrics}/json", GET=lambda q: self.engine.metric(
            q.params["agents"], q.params["metrics"], q.filter()))
        r("/dump/{agents}/{metrics}/json", GET=lambda q: self.engine.dump(
            q.params["agents"], q.params["metrics"], q.filter()))
        r("/table/{agents}/{metrics}/json", GET=lambda q: self.engine.table(
            q.params["agents"], q.params["metrics"], q.filter()))
        r("/prometheus/metrics/{agents}/{metrics}/txt", GET=lambda q: (
            200, "text/plain; version=0.0.4",
            exposition(self.engine, q.params["agents"], q.params["metrics"],
                       q.filter()).encode()))
        r("/topology/json", GET=lambda q: self.engine.topology_json(), PUT=self._put_topology)
        r("/flowkeys/json", GET=lambda q: self.engine.flow_keys())
        r("/flow/json", GET=lambda q: self.engine.flow_specs())
        self._resource("/flow/{name}/json", "flow", self.engine.flow_specs, self.engine.remove_flow,
                       lambda n, obj: self.engine.set_flow(n, FlowSpec.from_json(_object(obj))))
        r("/activeflows/{agents}/{name}/json", GET=self._active_flows)
        r("/flowvalue/{agent}/{name}/json", GET=self._flow_value)
        r("/flows/json", GET=self._logged_flows)
        r("/groups/json", GET=lambda q: self.engine.group_specs(), PUT=self._put_groups)
        self._resource("/group/{name}/json", "group", self.engine.group_specs,
                       self.engine.remove_group, lambda n, obj: self.engine.set_group(n, _cidrs(obj)))
        r("/threshold/json", GET=lambda q: self.engine.threshold_specs())
        self._resource("/threshold/{name}/json", "threshold", self.engine.threshold_specs,
                       self.engine.remove_threshold,
                       lambda n, obj: self.engine.set_threshold(n, ThresholdSpec.from_json(_object(obj))))
        r("/events/json", GET=self._events)
        r("/app/json", GET=lambda q: self.runtime.status() if self.runtime else {})
        app: dict[str, Handler] = dict.fromkeys(("GET", "PUT", "POST", "DELETE"), self._app)
        self.routes.append((re.compile(r"/app/(?P<name>[^/]+)(?P<rest>/.*)?$"), app))
        self.routes.append((re.compile(r"/script/(?P<name>[^/]+)/json$"), app))
        r("/forwarding/json", GET=lambda q: self._forwarding())
        self._resource("/forwarding/{name}/json", "forwarding", self._forwarding,
                       self.forwarder.delete,
                       lambda n, obj: self.forwarder.set(n, Destination.from_json(obj)),
                       guarded=False)

    def _route(self, template: str, **methods: Handler) -> None:
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(template).replace(r"\{", "{")
                         .replace(r"\}", "}"))
        self.routes.append((re.compile(pattern + "$"), methods))

    def _resource(self, template: str, kind: str, specs: Callable[[], Mapping[str, Any]],
                  remove: Callable[[str], bool], put: Callable[[str, Any], None],
                  guarded: bool = True) -> None:
        """GET/PUT/DELETE of one named definition; PUT answers with what was stored."""

        def get(q: Request) -> Any:
            value = specs().get(q.params["name"])
            if value is None:
                raise HttpError(404, f"no {kind} named {q.params['name']!r}")
            return value

        def store(q: Request) -> Any:
            if guarded:
                self._writable()
            put(q.params["name"], q.json())
            return get(q)

        def delete(q: Request) -> Any:
            if guarded:
                self._writable()
            if not remove(q.params["name"]):
                raise HttpError(404, f"no {kind} named {q.params['name']!r}")
            return {}

        self._route(template, GET=get, PUT=store, DELETE=delete)

    def _forwarding(self) -> dict[str, Any]:
        return {n: d.to_json() for n, d in self.forwarder.destinations.items()}

    # ---------------------------------------------------------------- dispatch

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """Answer one request: (status, content type, body)."""
        try:
            return self._dispatch(method, target, headers, body)
        except HttpError as e:
            return e.status, JSON, json.dumps({"error": e.message}).encode()
        except (QueryError, FilterError, ValueError, TypeError, KeyError) as e:
            return 400, JSON, json.dumps({"error": str(e)}).encode()
        except Exception as e:
            log.exception("event=rest_handler_failed method=%s target=%s", method, target)
            return 500, JSON, json.dumps({"error": f"internal error: {e}"}).encode()

    def _dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        query = parse_qs(url.query, keep_blank_values=True)
        for pattern, methods in self.routes:
            m = pattern.match(path)
            if m is None:
                continue
            handler = methods.get(method)
            if handler is None:
                raise HttpError(405, f"{method} not allowed on {path}; allowed: "
                                + ", ".join(sorted(methods)))
            if method != "GET":
                self._authorise(headers)
            params = {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
            result = handler(Request(method, path, params, query, body))
            if isinstance(result, tuple):
                return result
            return _ok(result)
        raise HttpError(404, f"no such resource: {path}")

    def _authorise(self, headers: dict[str, str]) -> None:
        if self.token is None:
            return
        given = headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise HttpError(401, "this call needs 'Authorization: Bearer <token>'")

    def _writable(self) -> None:
        if self.readonly:
            raise HttpError(403, "read-only: flows, thresholds and groups cannot be changed")

    # ---------------------------------------------------------------- controllers

    def _app(self, q: Request) -> Any:
        """A controller's HTTP handler: ``/app/{name}/...`` (sFlow-RT's
        ``/app/{name}/scripts/{script}/{path}/json`` too) and ``/script/{name}/json``."""
        if self.runtime is None:
            raise HttpError(404, "no controllers are loaded")
        path = [p for p in (q.params.get("rest") or "").split("/") if p]
        if len(path) >= 2 and path[0] == "scripts":
            path = path[2:]
        if path and path[-1] == "json":
            path = path[:-1]
        body = q.json() if q.body else None
        return self.runtime.http(q.params["name"], HttpRequest(q.method, tuple(path), q.query,
                                                                 body))

    # ---------------------------------------------------------------- flows

    def _agent_metrics(self, q: Request) -> Any:
        found = self.engine.agent_metrics(q.params["agent"])
        if found is None:
            raise HttpError(404, f"no agent {q.params['agent']!r}")
        return found

    def _put_topology(self, q: Request) -> Any:
        self._writable()
        self.engine.set_topology(q.json())
        return self.engine.topology_json()

    def _agents(self, q: Request) -> Any:
        agents = self.engine.agents_json()
        wanted = q.query.get("agent")
        return agents if not wanted else {a: v for a, v in agents.items() if a in wanted}

    def _active_flows(self, q: Request) -> Any:
        return self.engine.active_flows(
            q.params["agents"], q.params["name"], max_flows=q.arg("maxFlows", int, 100),
            min_value=q.arg("minValue", float, 0.0), agg_mode=q.arg("aggMode", str, None))

    def _flow_value(self, q: Request) -> Any:
        key = q.arg("key", str, None)
        if key is None:
            raise HttpError(400, "flowvalue needs ?key=")
        return self.engine.flow_value(q.params["agent"], q.params["name"], key)

    def _logged_flows(self, q: Request) -> Any:
        name = q.arg("name", str, None)
        max_flows = q.arg("maxFlows", int, 100)
        after = q.arg("flowID", int, -1)
        timeout = min(q.arg("timeout", float, 0.0), MAX_POLL_S)
        if "flowID" in q.query and timeout > 0:
            self.engine.wait_logged(after, timeout, name)
        return self.engine.logged_flows(name, max_flows, after)

    # ---------------------------------------------------------------- groups

    def _put_groups(self, q: Request) -> Any:
        self._writable()
        obj = q.json()
        if not isinstance(obj, dict) or not all(isinstance(v, list) for v in obj.values()):
            raise HttpError(400, 'groups are {"name": ["cidr", ...], ...}')
        self.engine.set_groups({str(k): [str(c) for c in v] for k, v in obj.items()})
        return self.engine.group_specs()

    # ---------------------------------------------------------------- events

    def _events(self, q: Request) -> Any:
        after = q.arg("eventID", int, -1)
        threshold_id = q.arg("thresholdID", str, None)
        timeout = min(q.arg("timeout", float, 0.0), MAX_POLL_S)
        if "eventID" in q.query and timeout > 0:
            self.engine.wait_events(after, timeout, threshold_id)
        events = self.engine.query_events(threshold_id, q.arg("maxEvents", int, 100), after)
        return [e.to_json() for e in events]

def _object(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise HttpError(400, "a definition is a JSON object")
    return obj


def _cidrs(obj: Any) -> list[str]:
    if not isinstance(obj, list) or not all(isinstance(c, str) for c in obj):
        raise HttpError(400, 'a group is a JSON list of CIDR strings: ["10.0.0.0/8", ...]')
    return obj


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send((413, JSON, json.dumps({"error": "request body too large"}).encode()))
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._send(self.server.api.handle(self.command, self.path, headers, body))

    def _send(self, response: Response) -> None:
        status, ctype, body = response
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("event=http client=%s " + format, self.client_address[0], *args)


class ApiServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` serving an :class:`Api` (IPv6 hosts supported)."""

    daemon_threads = True

    def __init__(self, api: Api, host: str, port: int) -> None:
        self.api = api
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)
