"""The swarm double and the ELB against a real Docker engine.

Conformance: one test body runs the docker SDK calls the controllers make against the real
engine and against the double (``endpoint``), so a divergence fails one of the two. Then the
production path: the ELB, in a Runtime over an Engine fed counter samples named after the
real tasks' containers, scales the real swarm service up under load and down after it, and
never replaces the task it started with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.types import ServiceMode
from elb_helpers import ContainerFeed, Load
from live_helpers import DOCKER_URL, IMAGE, LABEL_FILTER, LABELS, POLL_S, Endpoint, wait_for

from sflowlab.clock import SimClock
from sflowlab.collector.engine import Engine
from sflowlab.collector.runtime import Runtime
from sflowlab.controllers.docker_client import SwarmServices
from sflowlab.controllers.elb import ElasticLoadBalancer
from sflowlab.lab.doubles.swarm_model import ContainerStarted, ContainerStopped, SwarmEvent

pytestmark = pytest.mark.docker

NAME = "apache"
OUT_OF_SEQUENCE = "update out of sequence"


def create(client: docker.DockerClient, replicas: int = 1) -> Any:
    return client.services.create(IMAGE, name=NAME, labels=LABELS, container_labels=LABELS,
                                  mode=ServiceMode("replicated", replicas=replicas))


def running_tasks(client: docker.DockerClient, replicas: int) -> list[dict[str, Any]] | None:
    """The service's tasks meant to run, once exactly ``replicas`` of them run."""
    tasks = client.api.tasks(filters={"service": NAME, "desired-state": "running"})
    if len(tasks) == replicas and all(t["Status"]["State"] == "running" for t in tasks):
        return sorted(tasks, key=lambda t: t["Slot"])
    return None


def update(client: docker.DockerClient, service_id: str, version: int, spec: dict[str, Any],
           replicas: int) -> Any:
    """``POST /services/{id}/update?version=N`` with ``spec`` (as read) and a new count."""
    return client.api.update_service(service_id, version, task_template=spec["TaskTemplate"],
                                     name=spec["Name"], labels=spec["Labels"],
                                     mode=ServiceMode("replicated", replicas=replicas))


# -- conformance: the same SDK calls against the real engine and the double --------------------


def test_services_tasks_scaling_and_conflicts_agree(endpoint: Endpoint) -> None:
    client = endpoint.client
    created = create(client)
    (node,) = client.nodes.list()

    assert [s.id for s in client.services.list(filters={"name": NAME})] == [created.id]
    assert [s.id for s in client.services.list(filters={"label": LABEL_FILTER})] == [created.id]
    assert client.services.list(filters={"name": "no-such-service"}) == []
    service = client.services.get(NAME)
    assert (service.id, service.name) == (created.id, NAME)
    assert client.services.get(created.id).name == NAME
    attrs = service.attrs
    v1 = attrs["Version"]["Index"]
    assert isinstance(v1, int) and v1 > 0
    spec = attrs["Spec"]
    assert spec["Name"] == NAME
    assert spec["Labels"] == LABELS
    assert spec["Mode"] == {"Replicated": {"Replicas": 1}}
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == IMAGE
    assert spec["TaskTemplate"]["ContainerSpec"]["Labels"] == LABELS

    (task,) = endpoint.wait_for("one running task", lambda: running_tasks(client, 1))
    assert (task["ServiceID"], task["Slot"], task["NodeID"]) == (created.id, 1, node.id)
    assert task["DesiredState"] == "running"
    assert len(task["Status"]["ContainerStatus"]["ContainerID"]) == 64
    assert task["Spec"]["ContainerSpec"]["Image"] == IMAGE
    assert [t["ID"] for t in service.tasks(filters={"desired-state": "running"})] == [task["ID"]]
    assert [t["ID"] for t in client.api.tasks(filters={"service": created.id})] == [task["ID"]]

    assert update(client, created.id, v1, spec, 2) is not None
    service.reload()
    v2 = service.attrs["Version"]["Index"]
    assert v2 > v1
    assert service.attrs["Spec"]["Mode"] == {"Replicated": {"Replicas": 2}}
    tasks = endpoint.wait_for("two running tasks", lambda: running_tasks(client, 2))
    assert [t["Slot"] for t in tasks] == [1, 2]

    with pytest.raises(docker.errors.APIError) as stale:
        update(client, created.id, v1, spec, 3)
    assert stale.value.status_code == 500
    assert OUT_OF_SEQUENCE in str(stale.value.explanation)
    service.reload()
    assert service.attrs["Version"]["Index"] == v2
    assert service.attrs["Spec"]["Mode"] == {"Replicated": {"Replicas": 2}}

    with pytest.raises(docker.errors.NotFound) as missing:
        client.services.get("no-such-service")
    assert missing.value.status_code == 404
    assert missing.value.explanation == "service no-such-service not found"
    with pytest.raises(docker.errors.APIError) as bad_filter:
        client.services.list(filters={"bogus": "x"})
    assert bad_filter.value.status_code == 400
    assert str(bad_filter.value.explanation).lower() == "invalid filter 'bogus'"

    service.remove()
    with pytest.raises(docker.errors.NotFound):
        client.services.get(NAME)
    endpoint.wait_for("no tasks meant to run",
                      lambda: not client.api.tasks(filters={"desired-state": "running"}))


def test_inspect_with_defaults_fills_the_task_template(endpoint: Endpoint) -> None:
    """``GET /services/{id}?insertDefaults=true`` (what the SDK's ``Service.update`` and
    ``Service.scale`` read) adds the defaults swarm applies; the spec as stored has none, nor
    the null fields the SDK creates with."""
    client = endpoint.client
    created = create(client)
    stored = client.api.inspect_service(created.id)["Spec"]["TaskTemplate"]
    assert "RestartPolicy" not in stored
    assert stored["ContainerSpec"] == {"Image": IMAGE, "Labels": LABELS, "Isolation": "default"}
    filled = client.api.inspect_service(created.id, insert_defaults=True)["Spec"]["TaskTemplate"]
    assert filled["RestartPolicy"] == {"Condition": "any", "Delay": 5_000_000_000,
                                       "MaxAttempts": 0}
    assert filled["ContainerSpec"]["StopGracePeriod"] == 10_000_000_000


def test_service_status_counts_running_and_desired_tasks(endpoint: Endpoint) -> None:
    """The docker SDK sends ``status=True``: dockerd reads it with Go's strconv.ParseBool."""
    client = endpoint.client
    create(client, replicas=2)
    endpoint.wait_for("two running tasks", lambda: running_tasks(client, 2))
    (listed,) = client.services.list(filters={"name": NAME}, status=True)
    status = listed.attrs["ServiceStatus"]
    assert (status["RunningTasks"], status["DesiredTasks"]) == (2, 2)


def _update_as_read(client: docker.DockerClient) -> None:
    service = client.services.get(NAME)
    update(client, service.id, service.attrs["Version"]["Index"], service.attrs["Spec"], 2)


def _elb_client_scale(client: docker.DockerClient) -> None:
    swarm = SwarmServices(client=client)
    swarm.scale(swarm.read(NAME), 2)


SCALINGS: dict[str, Callable[[docker.DockerClient], None]] = {
    "update_as_read": _update_as_read,  # a template posted back as read is no change
    "elb_client_scale": _elb_client_scale,
}


@pytest.mark.parametrize("how", SCALINGS)
def test_scaling_changes_the_count_and_keeps_running_tasks(endpoint: Endpoint, how: str) -> None:
    scale = SCALINGS[how]
    client = endpoint.client
    create(client)
    (task,) = endpoint.wait_for("one running task", lambda: running_tasks(client, 1))
    scale(client)
    tasks = endpoint.wait_for("two running tasks", lambda: running_tasks(client, 2))
    assert tasks[0]["ID"] == task["ID"]


def test_scaling_down_removes_the_highest_slot_s_task(endpoint: Endpoint) -> None:
    """Its desired state is ``remove`` (not ``shutdown``), and it is deleted once stopped."""
    client = endpoint.client
    create(client, replicas=2)
    tasks = endpoint.wait_for("two running tasks", lambda: running_tasks(client, 2))
    service = client.services.get(NAME)
    update(client, service.id, service.attrs["Version"]["Index"], service.attrs["Spec"], 1)
    (removing,) = endpoint.wait_for("a task to remove", lambda: client.api.tasks(
        filters={"service": NAME, "desired-state": "remove"}))
    assert removing["ID"] == tasks[1]["ID"]
    endpoint.wait_for("only slot 1's task", lambda: [
        t["ID"] for t in client.api.tasks(filters={"service": NAME})] == [tasks[0]["ID"]])


def test_the_sdk_s_service_scale_replaces_the_running_tasks_one_at_a_time(
        endpoint: Endpoint) -> None:
    """Why SwarmServices does not use it: ``Service.scale`` posts back the spec it read with
    ``insertDefaults=true``; the template changed, so swarm replaces the running tasks, as
    its default UpdateConfig says: one slot at a time, the old task stopped first."""
    client = endpoint.client
    create(client, replicas=2)
    old = endpoint.wait_for("two running tasks", lambda: running_tasks(client, 2))
    client.services.get(NAME).scale(3)
    serving: list[set[int]] = []  # slots 1 and 2 with a running task meant to run, each look

    def three_new() -> list[dict[str, Any]] | None:
        tasks = client.api.tasks(filters={"service": NAME, "desired-state": "running"})
        serving.append({t["Slot"] for t in tasks if t["Status"]["State"] == "running"} & {1, 2})
        new = running_tasks(client, 3)
        return new if new and not {t["ID"] for t in old} & {t["ID"] for t in new} else None

    tasks = endpoint.wait_for("three new running tasks", three_new)
    assert all(serving) and {1} in serving and {2} in serving
    assert [t["Spec"]["RestartPolicy"]["Condition"] for t in tasks] == ["any"] * 3


# -- the ELB drives the real swarm ---------------------------------------------------------------


@dataclass(frozen=True)
class NodeAddress:
    hostname: str
    addr: str


class RealSwarmWatch:
    """One real service's containers as the swarm double's container events.

    ``poll(now)`` lists the service's tasks; a task whose container runs (newly) is a
    ContainerStarted named ``service.slot.taskid``, one that no longer runs a ContainerStopped.
    ``nodes`` and ``subscribe`` are what ContainerFeed needs of a swarm.
    """

    def __init__(self, client: docker.DockerClient, service: str) -> None:
        self.client, self.service = client, service
        self.nodes = [NodeAddress(n.attrs["Description"]["Hostname"], n.attrs["Status"]["Addr"])
                      for n in client.nodes.list()]
        self._hostnames = {n.id: n.attrs["Description"]["Hostname"] for n in client.nodes.list()}
        self._observers: list[Callable[[SwarmEvent], None]] = []
        self.running: dict[str, ContainerStarted] = {}

    def subscribe(self, callback: Callable[[SwarmEvent], None]) -> None:
        self._observers.append(callback)

    def poll(self, now: float) -> None:
        tasks = self.client.api.tasks(filters={"service": self.service})
        running = {t["ID"]: t for t in tasks if t["Status"]["State"] == "running"}
        events: list[SwarmEvent] = []
        for task_id, started in list(self.running.items()):
            if task_id not in running:
                del self.running[task_id]
                events.append(ContainerStopped(**{**vars(started), "at": now}))
        for task_id, t in running.items():
            if task_id not in self.running:
                started = self.running[task_id] = ContainerStarted(
                    self.service, t["Slot"], task_id, t["Status"]["ContainerStatus"]["ContainerID"],
                    f"{self.service}.{t['Slot']}.{task_id}", self._hostnames[t["NodeID"]],
                    t["Spec"]["ContainerSpec"]["Image"], now)
                events.append(started)
        for event in events:
            for callback in self._observers:
                callback(event)


@dataclass
class RealElbLab:
    """The ELB in a Runtime over an Engine on a SimClock (one simulated second per step),
    fed each step the counters of the real service's running containers at ``feed.loads``."""

    client: docker.DockerClient
    state_dir: Path

    def __post_init__(self) -> None:
        self.clock = SimClock(start=1000.0)
        self.engine = Engine(self.clock)
        self.runtime = Runtime(self.engine, self.clock, self.state_dir)
        self.watch = RealSwarmWatch(self.client, NAME)
        self.feed = ContainerFeed(self.watch, self.engine)  # the watch stands for the swarm

    def step(self) -> None:
        now = self.clock.now() + 1
        self.clock.advance_to(now)
        self.watch.poll(now)
        self.feed.send(now)
        self.runtime.tick(now, self.engine.tick(now))

    def run_until(self, what: str, check: Callable[[], Any], timeout_s: float = 20.0) -> None:
        """Step until ``check()``, one simulated second per ``POLL_S`` of wall time (the real
        engine starts and stops containers meanwhile)."""

        def advance() -> None:
            self.step()
            time.sleep(POLL_S)

        wait_for(what, check, advance, timeout_s)


BUSY = Load(util=2.0, bytes_in=1_000, bytes_out=1_000)
IDLE = Load(util=0.1, bytes_in=500, bytes_out=500)


def test_the_elb_scales_the_real_service_up_under_load_and_down_after(
        real_engine: docker.DockerClient, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    client = real_engine
    create(client)
    (first,) = wait_for("one running task", lambda: running_tasks(client, 1),
                        lambda: time.sleep(POLL_S), 20.0)
    lab = RealElbLab(client, tmp_path)
    lab.feed.loads[NAME] = BUSY
    elb = ElasticLoadBalancer({NAME: {"replicas_max": 2}}, enabled=True, docker_url=DOCKER_URL)
    lab.runtime.add("elb", elb)
    request.addfinalizer(elb.swarm.close)

    def moves() -> list[tuple[int, int, str]]:
        return [(d["from"], d["to"], d["reason"]) for d in elb.decisions]

    def reporting(replicas: int) -> bool:
        """``replicas`` tasks run, exactly their containers report, the ELB has seen them."""
        tasks = running_tasks(client, replicas)
        metrics = elb.services[NAME].metrics
        return (tasks is not None and {t["ID"] for t in tasks} == set(lab.watch.running)
                and metrics is not None and metrics["n"] == replicas)

    lab.run_until("the ELB to scale up", lambda: moves())
    assert moves() == [(1, 2, "util 2 > 1")]
    assert client.services.get(NAME).attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 2
    lab.run_until("two containers reporting", lambda: reporting(2))
    assert set(lab.watch.running) >= {first["ID"]}  # scaling up kept the running task
    for started in lab.watch.running.values():  # the samples carry the real containers' names
        assert client.containers.get(started.container_id).name == started.name

    lab.feed.loads[NAME] = IDLE
    lab.run_until("the ELB to scale down", lambda: len(moves()) == 2)
    assert moves()[1] == (2, 1, "util 0.1 < 0.5 and bytes 1000 < 50000")
    lab.run_until("one container reporting", lambda: reporting(1))
    assert client.services.get(NAME).attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 1
    assert len(moves()) == 2
    assert (elb.docker.errors, elb.docker.conflicts) == (0, 0)
    # slot 1 never had another task: the first one still runs
    tasks = client.api.tasks(filters={"service": NAME})
    assert [(t["ID"], t["DesiredState"]) for t in tasks if t["Slot"] == 1] == [
        (first["ID"], "running")]
