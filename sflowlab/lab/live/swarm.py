"""The swarm side of the live lab: the engine lock, the swarm, the service and its tasks.

No IPVS on this kernel, so no VIP and no routing mesh: the service uses endpoint mode
``dnsrr`` (swarm then never programs IPVS) and publishes port 80 in ``host`` mode without a
fixed port, so each task gets its own port on the host (an ordinary Docker port mapping: the
container sits on the default bridge, docker0, where the agent samples). ``running_tasks``
reads each running task's published port from the Docker API; the load goes to
``127.0.0.1:<port>`` (docker-proxy), spread over the tasks and refreshed as they come and go.

Everything made carries ``LABELS`` and its maker's ``OWNER`` label; ``remove_labelled``
removes it (and waits for the containers). ``engine_lock`` makes sessions on one machine take turns on the engine: one
session's cleanup would remove another's services, and the one that initialised the swarm
leaves it at its end.
"""

from __future__ import annotations

import fcntl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import docker
from docker.types import EndpointSpec, ServiceMode

__all__ = ["ENGINE_LOCK", "LABELS", "LABEL_FILTER", "SwarmSession", "TaskEndpoint",
           "create_service", "engine_lock", "owner_filter", "remove_labelled", "running_tasks",
           "wait_until"]

LABELS = {"sflowlab.live": "1"}
LABEL_FILTER = "sflowlab.live=1"
OWNER = "sflowlab.live.owner"
ENGINE_LOCK = Path(tempfile.gettempdir()) / "sflowlab-live.lock"
GWBRIDGE = "docker_gwbridge"
POLL_S = 0.05
T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T], timeout_s: float,
               settle: Callable[[], None] = lambda: time.sleep(POLL_S)) -> T:
    """``check()`` until it returns something true (returned), ``settle()`` between tries;
    TimeoutError after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what} "
                               f"(last: {value!r})")
        settle()


_HELD = threading.RLock()
_depth = 0


@contextmanager
def engine_lock(timeout_s: float, path: Path = ENGINE_LOCK) -> Iterator[None]:
    """The engine to this session alone (an exclusive ``flock`` on ``path``, waited for up
    to ``timeout_s``); reentrant within a process (a test holding it can call ``run_live``,
    which takes it too)."""
    global _depth
    with _HELD:
        if _depth:
            _depth += 1
            try:
                yield
            finally:
                _depth -= 1
            return
        with path.open("a") as lock:

            def taken() -> bool:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            wait_until("another session to finish with the Docker engine", taken, timeout_s)
            _depth = 1
            try:
                yield
            finally:
                _depth = 0
                fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class SwarmSession:
    """The engine in swarm mode for a while: ``join`` initialises a swarm when there is
    none (on 127.0.0.1), ``leave`` leaves only such a swarm and removes the docker_gwbridge
    network swarm made for it."""

    client: docker.DockerClient
    initialised: bool
    gwbridge_existed: bool

    @classmethod
    def join(cls, client: docker.DockerClient) -> SwarmSession:
        swarm = client.info()["Swarm"]
        gwbridge = bool(client.networks.list(names=[GWBRIDGE]))
        if swarm["LocalNodeState"] != "active":
            client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
            return cls(client, True, gwbridge)
        if not swarm.get("ControlAvailable"):
            raise RuntimeError("the engine is in a swarm but not a manager")
        return cls(client, False, gwbridge)

    def leave(self) -> None:
        if not self.initialised:
            return
        self.client.swarm.leave(force=True)
        if not self.gwbridge_existed:
            for network in self.client.networks.list(names=[GWBRIDGE]):
                network.remove()
        self.initialised = False


def owner_filter(owner: str) -> str:
    return f"{OWNER}={owner}"


def create_service(client: docker.DockerClient, name: str, image: str, replicas: int,
                   owner: str, port: int = 80) -> Any:
    """A replicated service, endpoint mode dnsrr, ``port`` published in host mode on a port
    the engine picks per task; it and its containers carry ``LABELS`` and ``owner`` (the
    run or lab that made them: what it removes, and only that, with ``owner_filter``)."""
    ports: Any = [{"Protocol": "tcp", "TargetPort": port, "PublishMode": "host"}]
    labels = {**LABELS, OWNER: owner}
    return client.services.create(  # type: ignore[no-untyped-call]
        image, name=name, labels=labels, container_labels=labels,
        mode=ServiceMode("replicated", replicas=replicas),
        endpoint_spec=EndpointSpec(mode="dnsrr", ports=ports))


@dataclass(frozen=True)
class TaskEndpoint:
    """A running task: its container's name (``service.slot.taskid``) and host port."""

    task_id: str
    slot: int
    container_id: str
    name: str
    port: int | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def running_tasks(client: docker.DockerClient, service: str,
                  target_port: int = 80) -> list[TaskEndpoint]:
    """The service's tasks meant to run whose containers run, by slot, with their published
    ports (a task being stopped no longer counts: swarm reports it running for a second or
    two after its container was killed)."""
    out = []
    tasks = client.api.tasks(  # type: ignore[no-untyped-call]
        filters={"service": service, "desired-state": "running"})
    for t in tasks:
        status = t["Status"]
        if status["State"] != "running":
            continue
        ports = [p.get("PublishedPort") for p in (status.get("PortStatus") or {}).get("Ports", [])
                 if p.get("TargetPort") == target_port]
        out.append(TaskEndpoint(t["ID"], int(t.get("Slot", 0)),
                                status.get("ContainerStatus", {}).get("ContainerID", ""),
                                f"{service}.{t.get('Slot', 0)}.{t['ID']}",
                                int(ports[0]) if ports and ports[0] else None))
    return sorted(out, key=lambda e: (e.slot, e.task_id))


def remove_labelled(client: docker.DockerClient, wait_s: float | None = None,
                    label: str = LABEL_FILTER) -> None:
    """Remove the services carrying ``label`` (default: every one the live lab and the tests
    make); with ``wait_s``, wait until their containers are gone (listed with one call:
    ``containers.list`` inspects each, racing the reaper)."""
    for service in client.services.list(filters={"label": label}):
        service.remove()  # type: ignore[no-untyped-call]
    if wait_s is None:
        return
    wait_until("the labelled containers to go",
               lambda: not client.api.containers(all=True, filters={"label": label}), wait_s)
