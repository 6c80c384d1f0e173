"""The Docker Engine API double: the swarm-service subset the docker SDK and the Docker CLI use.

Serves a ``Swarm`` (``swarm_model``) over HTTP: ``/_ping`` (GET, HEAD), ``/version``,
``/info``, ``/services`` (filters ``id``, ``name``, ``label``, ``mode``; ``status``),
``/services/{id|name}`` (``insertDefaults``), ``POST /services/create``,
``POST /services/{id}/update?version=N``, ``DELETE /services/{id}``, ``/tasks`` (filters
``service``, ``node``, ``id``, ``name``, ``desired-state``, ``label``, ``_up-to-date``),
``/tasks/{id}``, ``/nodes``, ``/nodes/{id}`` and ``/events`` (a chunked stream of JSON lines: filters ``type``, ``event``, ``service``,
``container``; ``since`` replays recent events; ``until`` ends the stream; it also ends when
the server stops). Every path may carry an API version prefix ``/v1.24`` .. ``/v1.50``;
errors are dockerd's ``{"message": ...}`` with dockerd's status codes. Boolean query
parameters are read as Go's ``strconv.ParseBool`` reads them.

``SwarmApi(swarm).start()`` listens on a free loopback port; ``url`` is the ``base_url`` for
``docker.DockerClient`` and ``docker -H``.
"""

from __future__ import annotations

import json
import math
import queue
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from sflowlab.http import (
    HttpError,
    HttpServer,
    Request,
    Response,
    Router,
    ServedApi,
    json_error,
    json_response,
)
from sflowlab.lab.doubles.swarm_model import (
    ENGINE_VERSION,
    ContainerEvent,
    ContainerStarted,
    Service,
    ServiceCreated,
    ServiceRemoved,
    ServiceUpdated,
    Swarm,
    SwarmError,
    SwarmEvent,
    Task,
)

T = TypeVar("T")

__all__ = ["API_VERSION", "MIN_API_VERSION", "SwarmApi", "docker_events"]

API_VERSION = "1.50"
MIN_API_VERSION = "1.24"
_V = r"(?:/v(?P<api_version>[0-9]+\.[0-9]+))?"

_SERVICE_FILTERS = {"id", "name", "label", "mode"}
_TASK_FILTERS = {
    "id",
    "name",
    "service",
    "node",
    "desired-state",
    "label",
    "_up-to-date",
    "runtime",
}
_EVENT_FILTERS = {"type", "event", "service", "container", "scope"}


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _bool_arg(request: Request, name: str) -> bool:
    """A boolean query parameter as dockerd reads it (absent or empty: false)."""
    raw = request.arg(name) or ""
    if raw in _TRUE:
        return True
    if raw in _FALSE or raw == "":
        return False
    raise HttpError(
        400, f'invalid value for {name}: {raw}: strconv.ParseBool: parsing "{raw}": invalid syntax'
    )


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _filters(request: Request, accepted: set[str]) -> dict[str, list[str]]:
    """Docker's ``filters`` parameter: ``{"key": ["v"]}`` or the older ``{"key": {"v": true}}``."""
    raw = request.arg("filters")
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise HttpError(400, f"invalid filter: {exc}") from exc
    if not isinstance(decoded, dict):
        raise HttpError(400, "invalid filter: expected a JSON object")
    filters: dict[str, list[str]] = {}
    for key, values in decoded.items():
        if key not in accepted:
            raise HttpError(400, f"invalid filter '{key}'")
        if isinstance(values, dict):
            filters[key] = [v for v, on in values.items() if on]
        elif isinstance(values, list):
            filters[key] = [str(v) for v in values]
        else:
            filters[key] = [str(values)]
    return filters


def _labels_match(labels: dict[str, str], label: str) -> bool:
    key, eq, value = label.partition("=")
    return key in labels and (not eq or labels[key] == value)


def _select(
    items: Iterable[T], filters: dict[str, list[str]], checks: dict[str, Callable[[T, str], bool]]
) -> list[T]:
    """Docker filter semantics: values of one key are alternatives (labels must all match)."""
    return [
        item
        for item in items
        if all(
            (all if key == "label" else any)(checks[key](item, v) for v in values)
            for key, values in filters.items()
        )
    ]


def docker_events(event: SwarmEvent) -> list[dict[str, Any]]:
    """The Docker ``/events`` messages dockerd sends for one swarm event."""
    time_nano = round(event.at * 1e9)
    common = {"time": int(event.at), "timeNano": time_nano}
    if isinstance(event, ContainerEvent):
        attributes = {
            "com.docker.swarm.service.name": event.service,
            "com.docker.swarm.task.id": event.task_id,
            "com.docker.swarm.task.name": f"{event.service}.{event.slot}",
            "image": event.image,
            "name": event.name,
        }
        actions = ["start"] if isinstance(event, ContainerStarted) else ["die", "destroy"]
        return [
            {
                "status": action,
                "id": event.container_id,
                "from": event.image,
                "Type": "container",
                "Action": action,
                "Actor": {
                    "ID": event.container_id,
                    "Attributes": {**attributes, **({"exitCode": "0"} if action == "die" else {})},
                },
                "scope": "local",
                **common,
            }
            for action in actions
        ]
    attributes = {"name": event.service}
    if isinstance(event, ServiceCreated):
        action = "create"
    elif isinstance(event, ServiceUpdated):
        action = "update"
        if event.replicas_old != event.replicas_new:
            attributes |= {
                "replicas.old": str(event.replicas_old),
                "replicas.new": str(event.replicas_new),
            }
        if event.image_old != event.image_new:
            attributes |= {"image.old": event.image_old, "image.new": event.image_new}
    else:
        assert isinstance(event, ServiceRemoved)
        action = "remove"
    return [
        {
            "Type": "service",
            "Action": action,
            "Actor": {"ID": event.service_id, "Attributes": attributes},
            "scope": "swarm",
            **common,
        }
    ]


_EVENT_CHECKS: dict[str, Callable[[dict[str, Any], str], bool]] = {
    "type": lambda m, v: m["Type"] == v,
    "event": lambda m, v: m["Action"] == v,
    "scope": lambda m, v: m["scope"] == v,
    "container": lambda m, v: (
        m["Type"] == "container"
        and (m["Actor"]["ID"].startswith(v) or m["Actor"]["Attributes"].get("name") == v)
    ),
    "service": lambda m, v: (
        m["Type"] == "service" and v in (m["Actor"]["ID"], m["Actor"]["Attributes"]["name"])
    ),
}


class SwarmApi(ServedApi):
    """The Docker Engine API double for ``swarm``, served on ``host:port`` (0: a free port)."""

    poll_s = 0.1  # how often an idle event stream checks whether to end

    def __init__(self, swarm: Swarm, host: str = "127.0.0.1", port: int = 0) -> None:
        self.swarm = swarm
        router = Router(json_error("message"), self._headers, not_found="page not found")
        routes: list[tuple[str, str, Callable[[Request], Response]]] = [
            ("GET", "/_ping", self._ping),
            ("GET", "/version", self._version),
            ("GET", "/info", self._info),
            ("GET", "/services", self._list_services),
            ("POST", "/services/create", self._create_service),
            ("GET", "/services/(?P<ref>[^/]+)", self._inspect_service),
            ("POST", "/services/(?P<ref>[^/]+)/update", self._update_service),
            ("DELETE", "/services/(?P<ref>[^/]+)", self._remove_service),
            ("GET", "/tasks", self._list_tasks),
            ("GET", "/tasks/(?P<ref>[^/]+)", self._inspect_task),
            ("GET", "/nodes", self._list_nodes),
            ("GET", "/nodes/(?P<ref>[^/]+)", self._inspect_node),
            ("GET", "/events", self._stream_events),
        ]
        for method, path, handler in routes:
            router.add(method, _V + path, self._versioned(handler))
        self._server = HttpServer(router, host, port)

    # -- plumbing

    @staticmethod
    def _headers() -> dict[str, str]:
        return {
            "Api-Version": API_VERSION,
            "Docker-Experimental": "false",
            "Ostype": "linux",
            "Server": f"Docker/{ENGINE_VERSION} (linux)",
        }

    @staticmethod
    def _versioned(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """Check the path's API version like dockerd, and turn SwarmErrors into answers."""

        def handle(request: Request) -> Response:
            version = request.params.get("api_version")
            if version is not None:
                if _version_tuple(version) > _version_tuple(API_VERSION):
                    raise HttpError(
                        400,
                        f"client version {version} is too new. Maximum supported API version is {API_VERSION}",
                    )
                if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
                    raise HttpError(
                        400,
                        f"client version {version} is too old. Minimum supported API version is "
                        f"{MIN_API_VERSION}, please upgrade your client to a newer version",
                    )
            try:
                return handler(request)
            except SwarmError as exc:
                raise HttpError(exc.status, exc.message) from exc

        return handle

    # -- system

    def _ping(self, request: Request) -> Response:
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "Cache-Control": "no-cache, no-store, must-revalidate",
            "Pragma": "no-cache",
            "Swarm": "active/manager",
        }
        return Response(200, b"OK", headers)

    def _version(self, request: Request) -> Response:
        return json_response(
            {
                "Platform": {"Name": "sflowlab swarm double"},
                "Version": ENGINE_VERSION,
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "GitCommit": "sflowlab",
                "GoVersion": "",
                "Os": "linux",
                "Arch": "amd64",
                "KernelVersion": "",
                "Components": [
                    {
                        "Name": "Engine",
                        "Version": ENGINE_VERSION,
                        "Details": {"ApiVersion": API_VERSION},
                    }
                ],
            }
        )

    def _info(self, request: Request) -> Response:
        swarm = self.swarm
        leader = swarm.nodes[0]
        running = len(swarm.running())
        return json_response(
            {
                "ID": leader.id,
                "Name": leader.hostname,
                "Containers": running,
                "ContainersRunning": running,
                "ContainersPaused": 0,
                "ContainersStopped": 0,
                "ServerVersion": ENGINE_VERSION,
                "OperatingSystem": "sflowlab swarm double",
                "OSType": "linux",
                "Architecture": "x86_64",
                "NCPU": 4,
                "MemTotal": 8 * 2**30,
                "Swarm": {
                    "NodeID": leader.id,
                    "NodeAddr": leader.addr,
                    "LocalNodeState": "active",
                    "ControlAvailable": True,
                    "Error": "",
                    "RemoteManagers": [
                        {"NodeID": n.id, "Addr": f"{n.addr}:2377"} for n in swarm.nodes if n.manager
                    ],
                    "Nodes": len(swarm.nodes),
                    "Managers": sum(1 for n in swarm.nodes if n.manager),
                    "Cluster": {"ID": swarm.cluster_id, "Spec": {"Name": "default"}},
                },
            }
        )

    # -- services

    def _service_json(
        self, service: Service, status: bool, insert_defaults: bool
    ) -> dict[str, Any]:
        body = service.to_json(insert_defaults)
        if status:
            body["ServiceStatus"] = self.swarm.service_status(service)
        return body

    def _list_services(self, request: Request) -> Response:
        checks: dict[str, Callable[[Service, str], bool]] = {
            "id": lambda s, v: s.id.startswith(v),
            "name": lambda s, v: s.name.startswith(v),
            "mode": lambda s, v: v == "replicated",
            "label": lambda s, v: _labels_match(s.spec["Labels"], v),
        }
        status = _bool_arg(request, "status")
        services = _select(self.swarm.services(), _filters(request, _SERVICE_FILTERS), checks)
        return json_response([self._service_json(s, status, False) for s in services])

    def _inspect_service(self, request: Request) -> Response:
        status, insert_defaults = _bool_arg(request, "status"), _bool_arg(request, "insertDefaults")
        service = self.swarm.service(request.params["ref"])
        return json_response(self._service_json(service, status, insert_defaults))

    def _create_service(self, request: Request) -> Response:
        service = self.swarm.create_service(request.json())
        return json_response({"ID": service.id}, 201)

    def _update_service(self, request: Request) -> Response:
        raw = request.arg("version", "")
        try:
            version = int(raw or "")
        except ValueError as exc:
            raise HttpError(400, f"invalid service version: {raw!r}") from exc
        self.swarm.update_service(request.params["ref"], version, request.json())
        return json_response({})

    def _remove_service(self, request: Request) -> Response:
        self.swarm.remove_service(request.params["ref"])
        return Response(200)

    # -- tasks and nodes

    def _list_tasks(self, request: Request) -> Response:
        filters = _filters(request, _TASK_FILTERS)
        if "service" in filters:
            filters["service"] = [self.swarm.service(ref).id for ref in filters["service"]]
        if "node" in filters:
            filters["node"] = [self.swarm.node(ref).id for ref in filters["node"]]
        for state in filters.get("desired-state", []):
            if state not in ("running", "shutdown", "accepted", "remove"):
                raise HttpError(400, f"Invalid task desired state: {state}")
        checks: dict[str, Callable[[Task, str], bool]] = {
            "id": lambda t, v: t.id.startswith(v),
            "name": lambda t, v: f"{t.service_name}.{t.slot}".startswith(v),
            "service": lambda t, v: t.service_id == v,
            "node": lambda t, v: t.node.id == v,
            "desired-state": lambda t, v: t.desired_state == ("running" if v == "accepted" else v),
            "label": lambda t, v: _labels_match({}, v),
            "runtime": lambda t, v: v == "container",
            "_up-to-date": lambda t, v: self._up_to_date(t),
        }
        return json_response([t.to_json() for t in _select(self.swarm.tasks(), filters, checks)])

    def _up_to_date(self, task: Task) -> bool:
        try:
            return bool(task.spec == self.swarm.service(task.service_id).spec["TaskTemplate"])
        except SwarmError:
            return False

    def _inspect_task(self, request: Request) -> Response:
        ref = request.params["ref"]
        for task in self.swarm.tasks():
            if task.id == ref:
                return json_response(task.to_json())
        raise HttpError(404, f"task {ref} not found")

    def _list_nodes(self, request: Request) -> Response:
        return json_response([n.to_json() for n in self.swarm.nodes])

    def _inspect_node(self, request: Request) -> Response:
        return json_response(self.swarm.node(request.params["ref"]).to_json())

    # -- events

    def _stream_events(self, request: Request) -> Response:
        filters = _filters(request, _EVENT_FILTERS)
        try:
            since = float(request.arg("since") or "-inf")
            until = float(request.arg("until") or "inf")
        except ValueError as exc:
            raise HttpError(400, f"invalid since/until: {exc}") from exc
        stream: queue.SimpleQueue[SwarmEvent] = queue.SimpleQueue()
        unsubscribe = self.swarm.subscribe(stream.put, replay=since > -math.inf)
        now = self.swarm.now

        def lines() -> Iterator[bytes]:
            try:
                while not request.closing.is_set():
                    try:
                        event = stream.get(timeout=self.poll_s if now() < until else 0)
                    except queue.Empty:
                        if now() >= until:
                            return
                        yield b""  # a heartbeat: ends the stream if the client has left
                        continue
                    if event.at > until:
                        return
                    for message in docker_events(event):
                        if event.at >= since and _select([message], filters, _EVENT_CHECKS):
                            yield json.dumps(message).encode() + b"\n"
            finally:
                unsubscribe()

        return Response(200, headers={"Content-Type": "application/json"}, stream=lines())
