"""The swarm double: its model under a simulated clock, the real docker SDK and the Docker CLI."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
import requests

from sflowlab.clock import SimClock
from sflowlab.lab.doubles.scheduler import RealTimeScheduler
from sflowlab.lab.doubles.swarm_api import SwarmApi
from sflowlab.lab.doubles.swarm_model import (
    ContainerStarted,
    ContainerStopped,
    ServiceCreated,
    ServiceRemoved,
    ServiceUpdated,
    Swarm,
    SwarmError,
    SwarmEvent,
)

NODES = {"node1": "10.0.0.1", "node2": "10.0.0.2"}
OUT_OF_SEQUENCE = "rpc error: code = Unknown desc = update out of sequence"


def apache_spec(replicas: int = 1, image: str = "httpd:2.4") -> dict[str, Any]:
    return {
        "Name": "apache",
        "TaskTemplate": {"ContainerSpec": {"Image": image}},
        "Mode": {"Replicated": {"Replicas": replicas}},
        "EndpointSpec": {"Ports": [{"TargetPort": 80, "PublishedPort": 80}]},
    }


def wait_for(condition: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.02)


class Recorder:
    def __init__(self) -> None:
        self.events: list[SwarmEvent] = []

    def __call__(self, event: SwarmEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def sim() -> tuple[SimClock, Swarm, Recorder]:
    clock = SimClock(start=1000.0)
    swarm = Swarm(clock, random.Random(7), NODES, start_delay_s=2.0, stop_delay_s=1.0)
    recorder = Recorder()
    swarm.subscribe(recorder)
    return clock, swarm, recorder


@pytest.fixture
def live() -> Iterator[tuple[Swarm, SwarmApi]]:
    """A swarm on the wall clock (tasks start in 50 ms) served on a free loopback port."""
    scheduler = RealTimeScheduler()
    swarm = Swarm(scheduler, random.Random(3), NODES, start_delay_s=0.05, stop_delay_s=0.05)
    swarm.create_service(apache_spec())
    api = SwarmApi(swarm).start()
    try:
        yield swarm, api
    finally:
        api.stop()
        scheduler.close()


@pytest.fixture
def client(live: tuple[Swarm, SwarmApi]) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=live[1].url.replace("http://", "tcp://"), timeout=10)
    try:
        yield c
    finally:
        c.close()


# -- the model, on simulated time ---------------------------------------------------------------


def test_tasks_start_after_the_delay_spread_over_nodes(
    sim: tuple[SimClock, Swarm, Recorder],
) -> None:
    clock, swarm, rec = sim
    service = swarm.create_service(apache_spec(replicas=2))
    assert [e.service for e in rec.of(ServiceCreated)] == ["apache"]
    tasks = swarm.tasks()
    assert [(t.slot, t.state, t.desired_state) for t in tasks] == [
        (1, "starting", "running"),
        (2, "starting", "running"),
    ]
    assert {t.node.hostname for t in tasks} == {"node1", "node2"}
    clock.advance_to(1001.9)
    assert not rec.of(ContainerStarted)
    clock.advance_to(1002.0)
    started = rec.of(ContainerStarted)
    assert [(e.slot, e.at) for e in started] == [(1, 1002.0), (2, 1002.0)]
    for event, task in zip(started, tasks, strict=True):
        assert event.name == f"apache.{task.slot}.{task.id}"
        assert (event.task_id, event.container_id, event.node, event.image) == (
            task.id,
            task.container_id,
            task.node.hostname,
            "httpd:2.4",
        )
        assert len(task.id) == 25 and len(task.container_id) == 64
        int(task.container_id, 16)
    assert [t.state for t in swarm.running("apache")] == ["running", "running"]
    assert swarm.service_status(service) == {
        "RunningTasks": 2,
        "DesiredTasks": 2,
        "CompletedTasks": 0,
    }


def test_scale_down_stops_the_highest_slots_first(sim: tuple[SimClock, Swarm, Recorder]) -> None:
    clock, swarm, rec = sim
    swarm.create_service(apache_spec(replicas=4))
    clock.advance_to(1002.0)
    swarm.scale("apache", 2)
    by_slot = {t.slot: t for t in swarm.tasks()}
    assert [(s, by_slot[s].desired_state, by_slot[s].state) for s in sorted(by_slot)] == [
        (1, "running", "running"),
        (2, "running", "running"),
        (3, "remove", "running"),
        (4, "remove", "running"),
    ]
    assert not rec.of(ContainerStopped)
    clock.advance_to(1003.0)
    assert [e.slot for e in rec.of(ContainerStopped)] == [4, 3]
    assert [t.slot for t in swarm.running()] == [1, 2]
    assert [t.slot for t in swarm.tasks()] == [1, 2]  # removed once stopped, as swarm does
    updated = rec.of(ServiceUpdated)
    assert [(e.replicas_old, e.replicas_new) for e in updated] == [(4, 2)]


def test_scale_up_refills_free_slots_with_new_tasks(sim: tuple[SimClock, Swarm, Recorder]) -> None:
    clock, swarm, _ = sim
    swarm.create_service(apache_spec(replicas=3))
    clock.advance_to(1002.0)
    old = {t.slot: t.id for t in swarm.tasks()}
    swarm.scale("apache", 1)
    clock.advance_to(1004.0)
    swarm.scale("apache", 3)
    clock.advance_to(1006.0)
    running = {t.slot: t.id for t in swarm.running()}
    assert sorted(running) == [1, 2, 3]
    assert running[1] == old[1] and running[2] != old[2] and running[3] != old[3]
    assert [t.id for t in swarm.tasks() if t.slot == 2] == [running[2]]


def test_a_task_shut_down_before_it_runs_never_reports_a_container(
    sim: tuple[SimClock, Swarm, Recorder],
) -> None:
    clock, swarm, rec = sim
    swarm.create_service(apache_spec(replicas=2))
    swarm.scale("apache", 1)
    clock.advance_to(1010.0)
    assert [e.slot for e in rec.of(ContainerStarted)] == [1]
    assert not rec.of(ContainerStopped)


def test_ids_come_from_the_seeded_rng() -> None:
    def ids(seed: int) -> list[str]:
        swarm = Swarm(SimClock(), random.Random(seed), NODES, start_delay_s=0)
        swarm.create_service(apache_spec(replicas=2))
        return [swarm.services()[0].id] + [
            x for t in swarm.tasks() for x in (t.id, t.container_id, t.node.id)
        ]

    assert ids(5) == ids(5)
    assert ids(5) != ids(6)


def test_versions_and_the_out_of_sequence_error(sim: tuple[SimClock, Swarm, Recorder]) -> None:
    _, swarm, _ = sim
    service = swarm.create_service(apache_spec())
    stale = service.version
    swarm.scale("apache", 2)
    assert service.version > stale
    with pytest.raises(SwarmError) as info:
        swarm.update_service("apache", stale, apache_spec(replicas=5))
    assert (info.value.status, info.value.message) == (500, OUT_OF_SEQUENCE)
    assert swarm.service("apache").replicas == 2


@pytest.mark.parametrize(
    ("spec", "status", "message"),
    [
        (
            {"Name": "x", "TaskTemplate": {"ContainerSpec": {}}},
            400,
            "image reference must be provided",
        ),
        (
            {"Name": "bad name", "TaskTemplate": {"ContainerSpec": {"Image": "a"}}},
            400,
            "valid as a DNS name",
        ),
        (
            {
                "Name": "x",
                "Mode": {"Global": {}},
                "TaskTemplate": {"ContainerSpec": {"Image": "a"}},
            },
            400,
            "only replicated",
        ),
        (apache_spec(), 409, "code = AlreadyExists desc = service apache already exists"),
    ],
)
def test_bad_specs_are_refused(
    sim: tuple[SimClock, Swarm, Recorder], spec: dict[str, Any], status: int, message: str
) -> None:
    _, swarm, _ = sim
    swarm.create_service(apache_spec())
    with pytest.raises(SwarmError) as info:
        swarm.create_service(spec)
    assert info.value.status == status and message in info.value.message
    assert [s.name for s in swarm.services()] == ["apache"]


def test_published_ports_dynamic_taken_and_refused(sim: tuple[SimClock, Swarm, Recorder]) -> None:
    _, swarm, _ = sim
    apache = swarm.create_service(apache_spec())
    web = {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "nginx"}}}
    dynamic = swarm.create_service({**web, "EndpointSpec": {"Ports": [{"TargetPort": 8080}]}})
    assert [p["PublishedPort"] for p in dynamic.ports] == [30000]
    taken = {**web, "EndpointSpec": {"Ports": [{"TargetPort": 80, "PublishedPort": 80}]}}
    with pytest.raises(SwarmError, match="port '80' is already in use"):
        swarm.update_service("web", dynamic.version, taken)
    with pytest.raises(SwarmError, match="bad port"):
        swarm.update_service("web", dynamic.version, {**web, "EndpointSpec": {"Ports": ["80:80"]}})
    assert swarm.service("web").spec["EndpointSpec"]["Ports"] == [{"TargetPort": 8080}]
    assert [p["PublishedPort"] for p in swarm.service("web").ports] == [30000]
    assert [p["PublishedPort"] for p in apache.ports] == [80]


def test_lookup_by_id_name_and_prefix(sim: tuple[SimClock, Swarm, Recorder]) -> None:
    _, swarm, _ = sim
    service = swarm.create_service(apache_spec())
    assert swarm.service(service.id) is swarm.service("apache") is swarm.service(service.id[:5])
    with pytest.raises(SwarmError) as info:
        swarm.service("nope")
    assert (info.value.status, info.value.message) == (404, "service nope not found")


def test_a_new_image_replaces_every_task(sim: tuple[SimClock, Swarm, Recorder]) -> None:
    clock, swarm, rec = sim
    service = swarm.create_service(apache_spec(replicas=2))
    clock.advance_to(1002.0)
    swarm.update_service("apache", service.version, apache_spec(replicas=2, image="httpd:2.5"))
    clock.advance_to(1010.0)
    assert [(t.slot, t.image) for t in swarm.running()] == [(1, "httpd:2.5"), (2, "httpd:2.5")]
    assert sorted((e.slot, e.image) for e in rec.of(ContainerStopped)) == [
        (1, "httpd:2.4"),
        (2, "httpd:2.4"),
    ]
    assert [(e.image_old, e.image_new) for e in rec.of(ServiceUpdated)] == [
        ("httpd:2.4", "httpd:2.5")
    ]


def stops_and_starts(rec: Recorder, image: str) -> tuple[list[Any], list[Any]]:
    return (
        [(e.slot, e.at) for e in rec.of(ContainerStopped)],
        [(e.slot, e.at) for e in rec.of(ContainerStarted) if e.image == image],
    )


def test_a_new_template_rolls_one_slot_at_a_time_stop_first(
    sim: tuple[SimClock, Swarm, Recorder],
) -> None:
    clock, swarm, rec = sim  # tasks start in 2 s, stop in 1 s
    service = swarm.create_service(apache_spec(replicas=3))
    clock.advance_to(1002.0)
    swarm.update_service("apache", service.version, apache_spec(replicas=3, image="httpd:2.5"))
    running = []
    for t in range(1003, 1013):
        clock.advance_to(float(t))
        running.append(len(swarm.running("apache")))
    assert running == [2] * 8 + [3, 3]  # one slot at a time is out of service
    # each slot's replacement starts once the old task stopped, the next slot's turn once it runs
    assert stops_and_starts(rec, "httpd:2.5") == (
        [(1, 1003.0), (2, 1006.0), (3, 1009.0)],
        [(1, 1005.0), (2, 1008.0), (3, 1011.0)],
    )
    assert [(t.slot, t.image, t.desired_state) for t in swarm.tasks()] == [
        (1, "httpd:2.4", "shutdown"),
        (1, "httpd:2.5", "running"),
        (2, "httpd:2.4", "shutdown"),
        (2, "httpd:2.5", "running"),
        (3, "httpd:2.4", "shutdown"),
        (3, "httpd:2.5", "running"),
    ]


def test_parallelism_zero_replaces_all_at_once_and_a_scale_down_mid_roll_ends_it(
    sim: tuple[SimClock, Swarm, Recorder],
) -> None:
    clock, swarm, rec = sim
    service = swarm.create_service(apache_spec(replicas=3))
    clock.advance_to(1002.0)
    spec = {**apache_spec(replicas=3, image="httpd:2.5"), "UpdateConfig": {"Parallelism": 0}}
    swarm.update_service("apache", service.version, spec)
    clock.advance_to(1010.0)
    assert stops_and_starts(rec, "httpd:2.5") == (
        [(1, 1003.0), (2, 1003.0), (3, 1003.0)],
        [(1, 1005.0), (2, 1005.0), (3, 1005.0)],
    )
    swarm.update_service("apache", service.version, apache_spec(replicas=3, image="httpd:2.6"))
    clock.advance_to(1010.5)  # slot 1 is stopping for its replacement: scale to 1
    swarm.scale("apache", 1)
    clock.advance_to(1020.0)
    assert [(t.slot, t.image) for t in swarm.running("apache")] == [(1, "httpd:2.6")]
    assert [t.slot for t in swarm.tasks() if t.desired_state != "shutdown"] == [1]
    swarm.update_service("apache", swarm.service("apache").version, apache_spec(image="httpd:2.7"))
    clock.advance_to(1020.5)  # the last task is stopping for its replacement: scale to 0
    swarm.scale("apache", 0)
    clock.advance_to(1030.0)
    assert swarm.running("apache") == []
    assert not [e for e in rec.of(ContainerStarted) if e.image == "httpd:2.7"]


def test_removing_a_service_mid_roll_forgets_every_task(
    sim: tuple[SimClock, Swarm, Recorder],
) -> None:
    clock, swarm, rec = sim
    service = swarm.create_service(apache_spec(replicas=2))
    clock.advance_to(1002.0)
    swarm.update_service("apache", service.version, apache_spec(replicas=2, image="httpd:2.5"))
    clock.advance_to(1002.5)  # slot 1's old task is stopping
    swarm.remove_service("apache")
    clock.advance_to(1010.0)
    assert swarm.tasks() == []
    assert not [e for e in rec.of(ContainerStarted) if e.image == "httpd:2.5"]


def test_without_delays_a_rolling_update_completes_at_once() -> None:
    swarm = Swarm(SimClock(start=1000.0), random.Random(7), NODES, start_delay_s=0, stop_delay_s=0)
    service = swarm.create_service(apache_spec(replicas=3))
    swarm.update_service("apache", service.version, apache_spec(replicas=3, image="httpd:2.5"))
    assert [(t.slot, t.image) for t in swarm.running("apache")] == [
        (1, "httpd:2.5"),
        (2, "httpd:2.5"),
        (3, "httpd:2.5"),
    ]
    assert len(swarm.tasks()) == 6


def test_task_history_keeps_five_tasks_per_slot(sim: tuple[SimClock, Swarm, Recorder]) -> None:
    clock, swarm, _ = sim
    swarm.create_service(apache_spec())
    for n in range(8):
        service = swarm.service("apache")
        swarm.update_service("apache", service.version, apache_spec(image=f"httpd:{n}"))
        clock.advance(5.0)
    tasks = swarm.tasks()
    assert [t.image for t in tasks] == ["httpd:3", "httpd:4", "httpd:5", "httpd:6", "httpd:7"]
    assert [t.state for t in tasks] == ["shutdown"] * 4 + ["running"]


def test_removing_a_service_stops_its_containers_and_forgets_its_tasks(
    sim: tuple[SimClock, Swarm, Recorder],
) -> None:
    clock, swarm, rec = sim
    swarm.create_service(apache_spec(replicas=2))
    clock.advance_to(1002.0)
    swarm.remove_service("apache")
    assert [e.service for e in rec.of(ServiceRemoved)] == ["apache"]
    clock.advance_to(1003.0)
    assert sorted(e.slot for e in rec.of(ContainerStopped)) == [1, 2]
    assert swarm.tasks() == [] and swarm.services() == []


def test_an_observer_that_raises_does_not_stop_the_others(
    sim: tuple[SimClock, Swarm, Recorder],
) -> None:
    clock, swarm, rec = sim

    def broken(event: SwarmEvent) -> None:
        raise RuntimeError("observer bug")

    swarm.subscribe(broken)
    late = Recorder()
    unsubscribe = swarm.subscribe(late)
    swarm.create_service(apache_spec())
    clock.advance_to(1002.0)
    assert [type(e) for e in late.events] == [ServiceCreated, ContainerStarted]
    unsubscribe()
    swarm.scale("apache", 0)
    clock.advance_to(1005.0)
    assert len(late.events) == 2
    assert [type(e) for e in rec.events] == [
        ServiceCreated,
        ContainerStarted,
        ServiceUpdated,
        ContainerStopped,
    ]


# -- the real docker SDK over HTTP --------------------------------------------------------------


def test_sdk_lists_gets_scales_and_reloads(
    live: tuple[Swarm, SwarmApi], client: docker.DockerClient
) -> None:
    swarm, _ = live
    assert [s.name for s in client.services.list()] == ["apache"]
    service = client.services.get("apache")
    assert service.attrs["Spec"]["Mode"] == {"Replicated": {"Replicas": 1}}
    assert service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == "httpd:2.4"
    assert service.attrs["Endpoint"]["Ports"] == [
        {"Protocol": "tcp", "PublishMode": "ingress", "TargetPort": 80, "PublishedPort": 80}
    ]
    version = service.version
    service.scale(3)
    service.reload()
    assert service.version > version
    assert service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 3

    def three_running() -> bool:
        tasks = service.tasks(filters={"desired-state": "running"})
        return len(tasks) == 3 and all(t["Status"]["State"] == "running" for t in tasks)

    wait_for(three_running)
    tasks = service.tasks(filters={"desired-state": "running"})
    assert sorted(t["Slot"] for t in tasks) == [1, 2, 3]
    # Service.scale posts back the spec read with insertDefaults: as on a real swarm, the
    # template gained RestartPolicy and StopGracePeriod, so slot 1's task was replaced
    (replaced,) = service.tasks(filters={"desired-state": "shutdown"})
    assert replaced["Slot"] == 1 and "RestartPolicy" not in replaced["Spec"]
    assert all(t["Spec"]["RestartPolicy"]["Condition"] == "any" for t in tasks)
    for task in tasks:
        assert task["ServiceID"] == service.id
        assert task["Status"]["ContainerStatus"]["ContainerID"] in {
            t.container_id for t in swarm.tasks()
        }
        assert task["NodeID"] in {n.id for n in swarm.nodes}


def test_sdk_update_with_a_stale_version_raises_the_real_error(client: docker.DockerClient) -> None:
    service = client.services.get("apache")
    service.scale(2)  # service.version is now stale
    with pytest.raises(docker.errors.APIError) as info:
        service.scale(4)
    assert info.value.status_code == 500
    assert info.value.explanation == OUT_OF_SEQUENCE
    service.reload()
    assert service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 2


def test_sdk_create_with_a_taken_name_conflicts(client: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.APIError) as info:
        client.services.create("httpd:2.4", name="apache")
    assert info.value.status_code == 409
    assert (
        info.value.explanation
        == "rpc error: code = AlreadyExists desc = service apache already exists"
    )


def test_sdk_unknown_service_is_not_found(client: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.NotFound) as info:
        client.services.get("nope")
    assert info.value.explanation == "service nope not found"


def test_sdk_create_and_remove(live: tuple[Swarm, SwarmApi], client: docker.DockerClient) -> None:
    swarm, _ = live
    service = client.services.create(
        "nginx:1.27", name="web", mode=docker.types.ServiceMode("replicated", 2)
    )
    assert service.name == "web"
    wait_for(lambda: len(swarm.running("web")) == 2)
    service.remove()
    wait_for(lambda: not swarm.running("web"))
    assert [s.name for s in client.services.list()] == ["apache"]


def test_api_versions_ping_and_filters(live: tuple[Swarm, SwarmApi]) -> None:
    _, api = live
    ping = requests.head(f"{api.url}/_ping", timeout=5)
    assert (
        ping.status_code == 200
        and ping.headers["Api-Version"] == "1.50"
        and ping.headers["Swarm"] == "active/manager"
    )
    assert (
        requests.get(f"{api.url}/v1.24/services/apache", timeout=5).json()["Spec"]["Name"]
        == "apache"
    )
    too_new = requests.get(f"{api.url}/v1.99/services", timeout=5)
    assert (too_new.status_code, too_new.json()) == (
        400,
        {"message": "client version 1.99 is too new. Maximum supported API version is 1.50"},
    )
    assert requests.get(f"{api.url}/v1.12/info", timeout=5).status_code == 400
    info = requests.get(f"{api.url}/v1.41/info", timeout=5).json()["Swarm"]
    assert (info["LocalNodeState"], info["ControlAvailable"], info["Nodes"]) == ("active", True, 2)
    by_name = requests.get(
        f"{api.url}/services", params={"filters": '{"name": ["apa"]}', "status": "true"}, timeout=5
    ).json()
    assert [s["Spec"]["Name"] for s in by_name] == ["apache"] and by_name[0]["ServiceStatus"][
        "DesiredTasks"
    ] == 1
    go_style = requests.get(
        f"{api.url}/services", params={"filters": '{"name": {"web": true}}'}, timeout=5
    ).json()
    assert go_style == []
    bad = requests.get(f"{api.url}/tasks", params={"filters": '{"colour": ["red"]}'}, timeout=5)
    assert (bad.status_code, bad.json()["message"]) == (400, "invalid filter 'colour'")
    deep = requests.get(f"{api.url}/tasks", params={"filters": "[" * 20_000}, timeout=5)
    assert deep.status_code == 400 and deep.json()["message"].startswith("invalid filter")
    unknown = requests.get(
        f"{api.url}/tasks", params={"filters": '{"service": ["nope"]}'}, timeout=5
    )
    assert unknown.status_code == 404


def test_boolean_parameters_parse_like_go_and_defaults_are_inserted_on_request(
    live: tuple[Swarm, SwarmApi],
) -> None:
    _, api = live

    def get(path: str, **params: str) -> requests.Response:
        return requests.get(f"{api.url}{path}", params=params, timeout=5)

    for value in ("1", "t", "T", "TRUE", "true", "True"):
        assert "ServiceStatus" in get("/services", status=value).json()[0]
        assert (
            "RestartPolicy"
            in get("/services/apache", insertDefaults=value).json()["Spec"]["TaskTemplate"]
        )
    for value in ("", "0", "f", "F", "FALSE", "false", "False"):
        assert "ServiceStatus" not in get("/services", status=value).json()[0]
        assert (
            "RestartPolicy"
            not in get("/services/apache", insertDefaults=value).json()["Spec"]["TaskTemplate"]
        )
    bad = get("/services/nope", insertDefaults="yes")  # refused before the lookup, as dockerd
    assert (bad.status_code, bad.json()["message"]) == (
        400,
        'invalid value for insertDefaults: yes: strconv.ParseBool: parsing "yes": invalid syntax',
    )
    assert get("/services", status="on").status_code == 400
    filled = get("/services/apache", insertDefaults="true").json()["Spec"]
    assert (
        filled["UpdateConfig"]
        == filled["RollbackConfig"]
        == {
            "Parallelism": 1,
            "FailureAction": "pause",
            "Monitor": 5_000_000_000,
            "MaxFailureRatio": 0,
            "Order": "stop-first",
        }
    )
    assert filled["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"] == 10_000_000_000


def test_null_fields_are_not_stored_and_only_a_new_template_replaces_tasks(
    sim: tuple[SimClock, Swarm, Recorder],
) -> None:
    clock, swarm, rec = sim
    sent = apache_spec(replicas=1)
    sent["TaskTemplate"]["ContainerSpec"] |= {"Command": None, "Args": None}
    service = swarm.create_service(sent)
    assert service.spec["TaskTemplate"]["ContainerSpec"] == {
        "Image": "httpd:2.4",
        "Isolation": "default",
    }
    clock.advance_to(1003.0)
    (first,) = swarm.running("apache")
    swarm.update_service(
        "apache", service.version, {**service.to_json()["Spec"], "Labels": {"a": "b"}}
    )
    swarm.scale("apache", 2)
    clock.advance_to(1006.0)
    assert [t.id for t in swarm.running("apache")] == [
        first.id,
        rec.of(ContainerStarted)[1].task_id,
    ]
    assert not rec.of(ContainerStopped)
    forced = service.to_json()["Spec"]
    forced["TaskTemplate"]["ForceUpdate"] = 1
    swarm.update_service("apache", service.version, forced)
    clock.advance_to(1010.0)
    assert first.id not in [t.id for t in swarm.running("apache")]
    assert sorted(e.slot for e in rec.of(ContainerStopped)) == [1, 2]


def test_events_stream_follows_the_swarm_and_ends_when_the_server_stops(
    live: tuple[Swarm, SwarmApi], client: docker.DockerClient
) -> None:
    swarm, api = live
    wait_for(lambda: swarm.running("apache"))
    received: list[dict[str, Any]] = []
    stream = client.events(decode=True, filters={"type": "container", "event": "start"})
    reader = threading.Thread(target=lambda: received.extend(stream), daemon=True)
    reader.start()
    swarm.scale("apache", 3)
    wait_for(lambda: len(received) == 2)
    names = {t.name for t in swarm.running("apache") if t.slot > 1}
    assert {e["Actor"]["Attributes"]["name"] for e in received} == names
    assert {e["Action"] for e in received} == {"start"}
    api.stop()
    reader.join(timeout=5)
    assert not reader.is_alive()


def test_an_events_stream_ends_when_its_client_leaves(live: tuple[Swarm, SwarmApi]) -> None:
    swarm, api = live
    observers = len(swarm._observers)
    response = requests.get(
        f"{api.url}/events", params={"filters": '{"type": ["node"]}'}, stream=True, timeout=5
    )
    wait_for(lambda: len(swarm._observers) == observers + 1)
    response.close()
    wait_for(lambda: len(swarm._observers) == observers)


def test_events_since_replays_and_until_ends_the_stream() -> None:
    clock = SimClock(start=100.0)
    swarm = Swarm(clock, random.Random(1), NODES, start_delay_s=1.0, stop_delay_s=1.0)
    swarm.create_service(apache_spec(replicas=1))
    clock.advance_to(101.0)
    swarm.scale("apache", 0)
    clock.advance_to(105.0)
    with SwarmApi(swarm) as api:
        c = docker.DockerClient(base_url=api.url.replace("http://", "tcp://"), timeout=10)
        try:
            replay = list(c.events(since=100, until=104, decode=True))
        finally:
            c.close()
    assert [(e["Type"], e["Action"]) for e in replay] == [
        ("service", "create"),
        ("container", "start"),
        ("service", "update"),
        ("container", "die"),
        ("container", "destroy"),
    ]
    assert replay[2]["Actor"]["Attributes"] == {
        "name": "apache",
        "replicas.old": "1",
        "replicas.new": "0",
    }


# -- the real Docker CLI -------------------------------------------------------------------------

DOCKER = shutil.which("docker")


def docker_cli(api: SwarmApi, tmp_path: Any, *args: str) -> str:
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path)}
    env.pop("DOCKER_CONTEXT", None)
    done = subprocess.run(
        [DOCKER or "docker", "-H", api.url.replace("http://", "tcp://"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(DOCKER is None, reason="the Docker CLI is not installed")
def test_docker_cli_service_ls_scale_and_ps(live: tuple[Swarm, SwarmApi], tmp_path: Any) -> None:
    swarm, api = live
    wait_for(lambda: swarm.running("apache"))
    listing = docker_cli(api, tmp_path, "service", "ls").splitlines()
    assert listing[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    assert listing[1].split()[1:5] == ["apache", "replicated", "1/1", "httpd:2.4"]
    assert (
        docker_cli(api, tmp_path, "service", "scale", "--detach", "apache=3").strip()
        == "apache scaled to 3"
    )
    wait_for(lambda: len(swarm.running("apache")) == 3)
    rows = [
        line.split()
        for line in docker_cli(api, tmp_path, "service", "ps", "apache").splitlines()[1:]
    ]
    assert sorted((r[1], r[3], r[4]) for r in rows) == [
        ("apache.1", swarm.running()[0].node.hostname, "Running"),
        ("apache.2", swarm.running()[1].node.hostname, "Running"),
        ("apache.3", swarm.running()[2].node.hostname, "Running"),
    ]
    assert {r[0] for r in rows} == {t.id[:12] for t in swarm.running()}
