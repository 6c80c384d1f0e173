"""The state of a simulated Docker swarm: nodes, replicated services, their tasks, and events.

``Swarm`` is the domain behind the Docker Engine API double (``swarm_api``): services are kept
as the Docker API's own JSON spec, versions follow swarm's raft index (every change bumps one
global counter; an update naming an older version fails with swarm's "update out of
sequence"), and tasks live like swarm's: a new task is ``starting`` for ``start_delay_s``, then
``running``; scale-down removes the highest slots first (desired state ``remove``: the task
stays ``running`` until ``stop_delay_s`` has passed, then it is shut down and deleted); a
changed task template (a different spec or ForceUpdate) replaces every slot's task, a changed
replica count alone never does. Replacement is a rolling update as swarm's default
``UpdateConfig`` does it (stop-first; ``Parallelism`` slots at a time, default 1, 0 for all):
the old task's desired state is ``shutdown`` (it stays in the slot's history), its
replacement starts once it has stopped, and the next slot's turn comes once that runs. Removing a service removes its tasks the same way. Specs are stored as
dockerd stores them (null fields dropped) and read back with or without the defaults swarm
applies (``insertDefaults``). Task, container and service ids come from the seeded
``random.Random``, container names are ``service.slot.taskid``. Time and timers come from an injected ``Scheduler``.

Observers ``subscribe(callback)`` to the frozen events below (agent_sim's host agents follow
containers through them). Callbacks run in the thread that made the change, in order, with
the swarm locked (they may read the swarm); one that raises is logged and the others still
run.
"""

from __future__ import annotations

import collections
import copy
import datetime as dt
import itertools
import logging
import random
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sflowlab.lab.doubles.scheduler import Scheduler

_log = logging.getLogger(__name__)

__all__ = [
    "ContainerEvent",
    "ContainerStarted",
    "ContainerStopped",
    "Node",
    "Service",
    "ServiceCreated",
    "ServiceRemoved",
    "ServiceUpdated",
    "Swarm",
    "SwarmError",
    "SwarmEvent",
    "Task",
    "rfc3339",
    "with_defaults",
]

ENGINE_VERSION = "28.2.2"
_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_NAME = re.compile(r"[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*")
_FIRST_PUBLISHED_PORT = 30000  # swarm's dynamic published-port range starts here


class SwarmError(Exception):
    """A request the swarm refuses: ``status`` is the HTTP status the Docker daemon answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _rpc_error(status: int, code: str, desc: str) -> SwarmError:
    """An error the way dockerd relays a swarmkit gRPC error."""
    return SwarmError(status, f"rpc error: code = {code} desc = {desc}")


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerEvent:
    """A task's container changed state (the fields both container events share)."""

    service: str
    slot: int
    task_id: str
    container_id: str
    name: str  # service.slot.taskid
    node: str  # the node's hostname
    image: str
    at: float


@dataclass(frozen=True)
class ContainerStarted(ContainerEvent):
    """The container is running (its task reached ``running``)."""


@dataclass(frozen=True)
class ContainerStopped(ContainerEvent):
    """A container that had started has stopped (its task reached ``shutdown``)."""


@dataclass(frozen=True)
class ServiceCreated:
    service: str
    service_id: str
    replicas: int
    image: str
    at: float


@dataclass(frozen=True)
class ServiceUpdated:
    service: str
    service_id: str
    replicas_old: int
    replicas_new: int
    image_old: str
    image_new: str
    at: float


@dataclass(frozen=True)
class ServiceRemoved:
    service: str
    service_id: str
    at: float


SwarmEvent = ContainerStarted | ContainerStopped | ServiceCreated | ServiceUpdated | ServiceRemoved


# -- objects -----------------------------------------------------------------------------------


def rfc3339(t: float) -> str:
    """Docker's timestamp format (UTC, fractional seconds)."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Node:
    id: str
    hostname: str
    addr: str
    manager: bool
    created_at: float
    version: int

    def to_json(self) -> dict[str, Any]:
        node: dict[str, Any] = {
            "ID": self.id,
            "Version": {"Index": self.version},
            "CreatedAt": rfc3339(self.created_at),
            "UpdatedAt": rfc3339(self.created_at),
            "Spec": {
                "Labels": {},
                "Role": "manager" if self.manager else "worker",
                "Availability": "active",
            },
            "Description": {
                "Hostname": self.hostname,
                "Platform": {"Architecture": "x86_64", "OS": "linux"},
                "Resources": {"NanoCPUs": 4_000_000_000, "MemoryBytes": 8 * 2**30},
                "Engine": {"EngineVersion": ENGINE_VERSION},
            },
            "Status": {"State": "ready", "Addr": self.addr},
        }
        if self.manager:
            node["ManagerStatus"] = {
                "Leader": True,
                "Reachability": "reachable",
                "Addr": f"{self.addr}:2377",
            }
        return node


@dataclass
class Service:
    id: str
    spec: dict[str, Any]
    version: int
    created_at: float
    updated_at: float
    ports: list[dict[str, Any]]
    previous_spec: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return str(self.spec["Name"])

    @property
    def replicas(self) -> int:
        return int(self.spec["Mode"]["Replicated"]["Replicas"])

    @property
    def image(self) -> str:
        return str(self.spec["TaskTemplate"]["ContainerSpec"]["Image"])

    def to_json(self, insert_defaults: bool = False) -> dict[str, Any]:
        """The Docker API's service object; its ``Spec`` with swarm's defaults filled in if
        ``insert_defaults`` (``GET /services/{id}?insertDefaults=true``)."""
        service: dict[str, Any] = {
            "ID": self.id,
            "Version": {"Index": self.version},
            "CreatedAt": rfc3339(self.created_at),
            "UpdatedAt": rfc3339(self.updated_at),
            "Spec": with_defaults(self.spec) if insert_defaults else copy.deepcopy(self.spec),
            "Endpoint": {
                "Spec": copy.deepcopy(self.spec.get("EndpointSpec", {})),
                "Ports": copy.deepcopy(self.ports),
            },
        }
        if not self.ports:
            del service["Endpoint"]["Ports"]
        if self.previous_spec is not None:
            service["PreviousSpec"] = copy.deepcopy(self.previous_spec)
        return service


@dataclass
class Task:
    id: str
    service_id: str
    service_name: str
    slot: int
    node: Node
    spec: dict[str, Any]
    container_id: str
    created_at: float
    updated_at: float
    version: int
    desired_state: str = "running"
    state: str = "starting"
    message: str = "starting"
    started: bool = False  # the container reached running (a ContainerStarted was sent)
    rolling: bool = (
        False  # an update replaces it (until it stopped) or it replaces one (until it runs)
    )
    timer: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The container's name, as swarm names it."""
        return f"{self.service_name}.{self.slot}.{self.id}"

    @property
    def image(self) -> str:
        return str(self.spec["ContainerSpec"]["Image"])

    def to_json(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Version": {"Index": self.version},
            "CreatedAt": rfc3339(self.created_at),
            "UpdatedAt": rfc3339(self.updated_at),
            "Labels": {},
            "Spec": copy.deepcopy(self.spec),
            "ServiceID": self.service_id,
            "Slot": self.slot,
            "NodeID": self.node.id,
            "Status": {
                "Timestamp": rfc3339(self.updated_at),
                "State": self.state,
                "Message": self.message,
                "ContainerStatus": {"ContainerID": self.container_id, "ExitCode": 0},
                "PortStatus": {},
            },
            "DesiredState": self.desired_state,
        }

    def event_fields(self, at: float) -> dict[str, Any]:
        return {
            "service": self.service_name,
            "slot": self.slot,
            "task_id": self.id,
            "container_id": self.container_id,
            "name": self.name,
            "node": self.node.hostname,
            "image": self.image,
            "at": at,
        }


# -- the swarm ---------------------------------------------------------------------------------


# The spec fields the swarm reads, by their canonical names. dockerd decodes JSON with Go's
# case-insensitive field matching (the docker SDK sends ``{"replicated": ...}``), so keys are
# canonicalised along these paths; everything else is kept as sent.
_SPEC_FIELDS: dict[str, Any] = {
    "Name": None,
    "Labels": None,
    "Mode": {"Replicated": {"Replicas": None}, "Global": None},
    "TaskTemplate": {
        "ContainerSpec": {"Image": None, "Isolation": None},
        "ForceUpdate": None,
        "Runtime": None,
    },
    "EndpointSpec": {
        "Mode": None,
        "Ports": {"Protocol": None, "TargetPort": None, "PublishedPort": None, "PublishMode": None},
    },
}


def _canonical(value: Any, fields: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_canonical(item, fields) for item in value]
    if not isinstance(value, dict):
        return value
    names = {name.lower(): name for name in fields}
    out = {}
    for key, item in value.items():
        name: str = key if key in fields else names.get(str(key).lower(), str(key))
        sub = fields.get(name)
        out[name] = _canonical(item, sub) if sub else item
    return out


_UPDATE_DEFAULTS = {
    "Parallelism": 1,
    "FailureAction": "pause",
    "Monitor": 5_000_000_000,
    "MaxFailureRatio": 0,
    "Order": "stop-first",
}
# What swarm adds to a spec read with ``insertDefaults=true`` (swarmkit's
# ``defaults.Service``, as Docker 20.10 answers), under the values the spec sets.
_SPEC_DEFAULTS: dict[str, Any] = {
    "TaskTemplate": {
        "ContainerSpec": {"StopGracePeriod": 10_000_000_000, "DNSConfig": {}},
        "Resources": {},
        "RestartPolicy": {"Condition": "any", "Delay": 5_000_000_000, "MaxAttempts": 0},
        "Placement": {},
    },
    "UpdateConfig": _UPDATE_DEFAULTS,
    "RollbackConfig": _UPDATE_DEFAULTS,
}


def _merged(defaults: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(values)
    for key, default in defaults.items():
        if isinstance(default, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(default, out[key])
        elif out.get(key) is None:
            out[key] = copy.deepcopy(default)
    return out


def with_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored spec with the defaults swarm applies filled in where it sets none."""
    return _merged(_SPEC_DEFAULTS, spec)


def _without_nulls(value: Any) -> Any:
    """dockerd decodes a JSON null as the field's zero value and does not store it."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def _normalise(sent: Any) -> dict[str, Any]:
    """A service spec as swarm stores it (canonical keys, no nulls, swarm's stored defaults);
    SwarmError when invalid."""
    if not isinstance(sent, dict):
        raise SwarmError(400, "service spec must be a JSON object")
    spec: dict[str, Any] = _without_nulls(_canonical(sent, _SPEC_FIELDS))
    spec.setdefault("Labels", {})
    mode = spec.setdefault("Mode", {"Replicated": {"Replicas": 1}})
    if not isinstance(mode, dict) or set(mode) != {"Replicated"}:
        raise SwarmError(
            400, f"sflowlab swarm double: only replicated services are modelled, not {mode!r}"
        )
    replicated = mode["Replicated"] if isinstance(mode["Replicated"], dict) else {}
    mode["Replicated"] = replicated
    replicas = replicated.setdefault("Replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise SwarmError(400, f"invalid replicas value {replicas!r}")
    template = spec.setdefault("TaskTemplate", {})
    container = template.setdefault("ContainerSpec", {}) if isinstance(template, dict) else None
    if not isinstance(container, dict) or not container.get("Image"):
        raise _rpc_error(400, "InvalidArgument", "ContainerSpec: image reference must be provided")
    container.setdefault("Isolation", "default")
    template.setdefault("ForceUpdate", 0)
    template.setdefault("Runtime", "container")
    endpoint = spec.get("EndpointSpec")
    if endpoint is not None:
        if not isinstance(endpoint, dict):
            raise SwarmError(400, f"EndpointSpec must be a JSON object, not {endpoint!r}")
        endpoint.setdefault("Mode", "vip")
    return spec


_T = TypeVar("_T", Service, Node)


def _id(item: Service | Node) -> str:
    return item.id


class Swarm:
    """A simulated swarm of ``nodes`` (hostname -> address; the first one is the leader)."""

    HISTORY = 1000  # events kept for late subscribers (``/events?since=``)

    def __init__(
        self,
        scheduler: Scheduler,
        rng: random.Random | None = None,
        nodes: Mapping[str, str] | None = None,
        start_delay_s: float = 1.0,
        stop_delay_s: float = 0.5,
        history_per_slot: int = 5,
    ) -> None:
        self.scheduler = scheduler
        self.start_delay_s = start_delay_s
        self.stop_delay_s = stop_delay_s
        self.history_per_slot = history_per_slot
        self._rng = rng or random.Random(0)
        self._lock = threading.RLock()
        self._index = 0
        self._observers: list[Callable[[SwarmEvent], None]] = []
        self._pending: list[SwarmEvent] = []
        self._history: collections.deque[SwarmEvent] = collections.deque(maxlen=self.HISTORY)
        self._dispatching = False
        now = scheduler.now()
        self.cluster_id = self._new_id()
        self.nodes: list[Node] = [
            Node(self._new_id(), hostname, addr, i == 0, now, self._bump())
            for i, (hostname, addr) in enumerate((nodes or {"swarm-1": "127.0.0.1"}).items())
        ]
        if not self.nodes:
            raise ValueError("a swarm needs at least one node")
        self._services: dict[str, Service] = {}
        self._tasks: dict[str, Task] = {}
        self._converging: set[str] = set()  # services in _reconcile (ids)
        self._again: set[str] = set()  # services to converge once more when that returns

    # -- observers

    def subscribe(
        self, callback: Callable[[SwarmEvent], None], replay: bool = False
    ) -> Callable[[], None]:
        """Call ``callback(event)`` for every later event (first, with ``replay``, for the last
        ``HISTORY`` events, with no gap between the two); returns the unsubscribe function."""
        with self._lock:
            if replay:
                for event in self._history:
                    callback(event)
            self._observers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._observers:
                    self._observers.remove(callback)

        return unsubscribe

    def _emit(self, event: SwarmEvent) -> None:
        self._pending.append(event)
        self._history.append(event)

    def _dispatch(self) -> None:
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                event = self._pending.pop(0)
                for callback in list(self._observers):
                    try:
                        callback(event)
                    except Exception:
                        _log.exception("swarm observer %r failed on %r", callback, event)
        finally:
            self._dispatching = False

    # -- ids, versions, lookups

    def _new_id(self, length: int = 25) -> str:
        return "".join(self._rng.choice(_ID_ALPHABET) for _ in range(length))

    def _bump(self) -> int:
        self._index += 1
        return self._index

    def now(self) -> float:
        return self.scheduler.now()

    def services(self) -> list[Service]:
        with self._lock:
            return sorted(self._services.values(), key=lambda s: s.created_at)

    def tasks(self) -> list[Task]:
        with self._lock:
            return sorted(
                self._tasks.values(), key=lambda t: (t.service_name, t.slot, t.created_at)
            )

    def service(self, ref: str) -> Service:
        """By full id, then full name, then unique id prefix (as dockerd resolves services)."""
        with self._lock:
            return self._resolve("service", ref, list(self._services.values()), lambda s: s.name)

    def node(self, ref: str) -> Node:
        """By full id, then hostname, then unique id prefix."""
        with self._lock:
            return self._resolve("node", ref, self.nodes, lambda n: n.hostname)

    @staticmethod
    def _resolve(kind: str, ref: str, items: list[_T], name: Callable[[_T], str]) -> _T:
        for match in (
            [i for i in items if _id(i) == ref],
            [i for i in items if name(i) == ref],
            [i for i in items if _id(i).startswith(ref)] if ref else [],
        ):
            if len(match) == 1:
                return match[0]
            if len(match) > 1:
                raise SwarmError(400, f"{kind} {ref} is ambiguous ({len(match)} matches found)")
        raise SwarmError(404, f"{kind} {ref} not found")

    def running(self, service: str | None = None) -> list[Task]:
        """Tasks whose container is running (and meant to), optionally of one service name."""
        return [
            t
            for t in self.tasks()
            if t.state == "running"
            and t.desired_state == "running"
            and service in (None, t.service_name)
        ]

    # -- services

    def create_service(self, spec: Any) -> Service:
        with self._lock:
            spec = _normalise(spec)
            if not spec.get("Name"):
                spec["Name"] = f"service_{self._new_id(6)}"
            name = spec["Name"]
            if not isinstance(name, str) or len(name) > 63 or not _NAME.fullmatch(name):
                raise _rpc_error(
                    400, "InvalidArgument", "name must be valid as a DNS name component"
                )
            if any(s.name == name for s in self._services.values()):
                raise _rpc_error(409, "AlreadyExists", f"service {name} already exists")
            now = self.now()
            service = Service(self._new_id(), spec, self._bump(), now, now, self._ports(spec, []))
            self._services[service.id] = service
            self._emit(ServiceCreated(name, service.id, service.replicas, service.image, now))
            self._reconcile(service)
            self._dispatch()
            return service

    def update_service(self, ref: str, version: int, spec: Any) -> Service:
        with self._lock:
            service = self.service(ref)
            if version != service.version:
                raise _rpc_error(500, "Unknown", "update out of sequence")
            spec = _normalise(spec)
            if (spec.get("Name") or service.name) != service.name:
                raise _rpc_error(501, "Unimplemented", "renaming services is not supported")
            spec["Name"] = service.name
            ports = self._ports(spec, service.ports)  # may refuse: before changing anything
            old_replicas, old_image = service.replicas, service.image
            now = self.now()
            service.previous_spec, service.spec, service.ports = service.spec, spec, ports
            service.version, service.updated_at = self._bump(), now
            self._emit(
                ServiceUpdated(
                    service.name,
                    service.id,
                    old_replicas,
                    service.replicas,
                    old_image,
                    service.image,
                    now,
                )
            )
            self._reconcile(service)
            self._dispatch()
            return service

    def scale(self, ref: str, replicas: int) -> Service:
        """What ``docker service scale name=N`` does: read the spec, change the count, update."""
        with self._lock:
            service = self.service(ref)
            spec = copy.deepcopy(service.spec)
            spec["Mode"]["Replicated"]["Replicas"] = replicas
            return self.update_service(service.id, service.version, spec)

    def remove_service(self, ref: str) -> None:
        with self._lock:
            service = self._services.pop(self.service(ref).id)
            for task in self._tasks_of(service.id):
                if task.desired_state == "running":
                    self._shutdown(task, "remove")
                elif task.state == "shutdown":
                    del self._tasks[task.id]
                else:  # replaced by a rolling update, still stopping: deleted once stopped
                    task.desired_state, task.rolling = "remove", False
            self._emit(ServiceRemoved(service.name, service.id, self.now()))
            self._dispatch()

    def _ports(self, spec: dict[str, Any], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Endpoint ports: the spec's, defaults filled, unpublished ones given a dynamic port."""
        taken = {p["PublishedPort"] for s in self._services.values() for p in s.ports} - {
            p["PublishedPort"] for p in current
        }
        ports = []
        for port in spec.get("EndpointSpec", {}).get("Ports") or []:
            if not isinstance(port, dict) or not isinstance(port.get("TargetPort"), int):
                raise _rpc_error(400, "InvalidArgument", f"EndpointSpec: bad port {port!r}")
            port = {"Protocol": "tcp", "PublishMode": "ingress", **port}
            if not port.get("PublishedPort"):
                known = [p for p in current if p["TargetPort"] == port.get("TargetPort")]
                port["PublishedPort"] = (
                    known[0]["PublishedPort"]
                    if known
                    else min(p for p in range(_FIRST_PUBLISHED_PORT, 32768) if p not in taken)
                )
            if port["PublishedPort"] in taken:
                raise _rpc_error(
                    400,
                    "InvalidArgument",
                    f"port '{port['PublishedPort']}' is already in use by another service",
                )
            taken.add(port["PublishedPort"])
            ports.append(port)
        return ports

    # -- tasks

    def _tasks_of(self, service_id: str) -> list[Task]:
        return [t for t in self._tasks.values() if t.service_id == service_id]

    def _reconcile(self, service: Service) -> None:
        """Converge the service's tasks to its spec (see ``_converge``); a call made while it
        converges (a task stopping or starting at once) makes it converge once more."""
        if service.id in self._converging:
            self._again.add(service.id)
            return
        self._converging.add(service.id)
        try:
            self._converge(service)
            while service.id in self._again:
                self._again.discard(service.id)
                self._converge(service)
        finally:
            self._converging.discard(service.id)

    def _converge(self, service: Service) -> None:
        """Remove the excess (highest slots first), go on with the rolling update of an
        outdated template, fill free slots."""
        tasks = self._tasks_of(service.id)
        active = {t.slot: t for t in tasks if t.desired_state == "running"}
        stopping = {t.slot: t for t in tasks if t.rolling and t.desired_state == "shutdown"}
        occupied = sorted(set(active) | set(stopping), reverse=True)
        for slot in occupied[: max(0, len(occupied) - service.replicas)]:
            if slot in active:
                self._shutdown(active.pop(slot), "remove")
            else:
                stopping.pop(slot).rolling = False  # no replacement
        template = service.spec["TaskTemplate"]
        outdated = [t for _, t in sorted(active.items()) if t.spec != template and not t.rolling]
        in_flight = len(stopping) + sum(1 for t in active.values() if t.rolling)
        parallelism = service.spec.get("UpdateConfig", {}).get("Parallelism", 1)
        budget = len(outdated) if not parallelism else max(0, parallelism - in_flight)
        for task in outdated[:budget]:
            task.rolling = True
            stopping[active.pop(task.slot).slot] = task
            self._shutdown(task, "shutdown")  # its replacement starts once it has stopped
        free = (slot for slot in itertools.count(1) if slot not in active and slot not in stopping)
        for _ in range(service.replicas - len(active) - len(stopping)):
            self._start(service, next(free))

    def _place(self, service_id: str) -> Node:
        """Spread: the node with the fewest of this service's tasks, then fewest tasks at all."""
        active = [t for t in self._tasks.values() if t.desired_state == "running"]
        return min(
            self.nodes,
            key=lambda n: (
                sum(1 for t in active if t.node is n and t.service_id == service_id),
                sum(1 for t in active if t.node is n),
            ),
        )

    def _start(self, service: Service, slot: int, rolling: bool = False) -> None:
        now = self.now()
        task = Task(
            id=self._new_id(),
            service_id=service.id,
            service_name=service.name,
            slot=slot,
            node=self._place(service.id),
            spec=copy.deepcopy(service.spec["TaskTemplate"]),
            container_id="".join(self._rng.choice("0123456789abcdef") for _ in range(64)),
            created_at=now,
            updated_at=now,
            version=self._bump(),
            rolling=rolling,
        )
        self._tasks[task.id] = task
        if self.start_delay_s <= 0:
            self._running(task, now)
        else:
            task.timer = self.scheduler.call_later(
                self.start_delay_s, lambda t: self._on_timer(self._running, task, t)
            )

    def _on_timer(self, step: Callable[[Task, float], None], task: Task, now: float) -> None:
        with self._lock:
            task.timer = None
            step(task, now)
            self._dispatch()

    def _set_state(self, task: Task, state: str, message: str, now: float) -> None:
        task.state, task.message = state, message
        task.updated_at, task.version = now, self._bump()

    def _running(self, task: Task, now: float) -> None:
        self._set_state(task, "running", "started", now)
        task.started = True
        self._emit(ContainerStarted(**task.event_fields(now)))
        if task.rolling:  # a replacement runs: the rolling update goes on
            task.rolling = False
            self._reconcile(self._services[task.service_id])

    def _shutdown(self, task: Task, desired: str) -> None:
        """Desire ``shutdown`` (kept in the slot's history once stopped) or ``remove`` (deleted
        once stopped): a running container stops after ``stop_delay_s``, a starting one at
        once."""
        now = self.now()
        task.desired_state = desired
        task.updated_at, task.version = now, self._bump()
        if task.timer is not None:
            self.scheduler.cancel(task.timer)
            task.timer = None
        if not task.started or self.stop_delay_s <= 0:
            self._stopped(task, now)
        else:
            task.timer = self.scheduler.call_later(
                self.stop_delay_s, lambda t: self._on_timer(self._stopped, task, t)
            )

    def _stopped(self, task: Task, now: float) -> None:
        self._set_state(task, "shutdown", "shutdown", now)
        if task.started:
            self._emit(ContainerStopped(**task.event_fields(now)))
        if task.desired_state == "remove":
            del self._tasks[task.id]
            return
        if task.rolling:  # replaced by a rolling update: its replacement starts
            task.rolling = False
            self._start(self._services[task.service_id], task.slot, rolling=True)
        history = sorted(
            (
                t
                for t in self._tasks.values()
                if t.service_id == task.service_id and t.slot == task.slot
            ),
            key=lambda t: t.created_at,
        )
        for old in history[: max(0, len(history) - self.history_per_slot)]:
            if old.state == "shutdown":
                del self._tasks[old.id]

    # -- summaries

    def service_status(self, service: Service) -> dict[str, int]:
        """``ServiceStatus`` as dockerd reports it with ``status=true``."""
        with self._lock:
            tasks = self._tasks_of(service.id)
            return {
                "RunningTasks": sum(
                    1 for t in tasks if t.state == "running" and t.desired_state == "running"
                ),
                "DesiredTasks": service.replicas,
                "CompletedTasks": 0,
            }
