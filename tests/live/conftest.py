"""Fixtures for the tests against a real Docker engine (marker ``docker``).

- ``real_engine`` (session): a docker SDK client of the engine at ``$DOCKER_HOST`` (default
  the local socket) in swarm mode, with the test image built. Skips, saying why, when no
  engine answers (``ci/start_dockerd.sh`` starts one) or no static busybox is installed. A
  swarm it had to initialise it leaves again at the end; services and containers it made
  (label ``sflowlab.live=1``) are removed after each test.
- ``endpoint``: parametrised over ``real`` (that engine) and ``double`` (the swarm double on a
  SimClock, served over HTTP): the same docker SDK calls run against both.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "controllers"))  # elb_helpers

from live_helpers import (
    BUSYBOX,
    DOCKER_URL,
    IMAGE,
    POLL_S,
    Endpoint,
    build_context,
    is_static_elf,
    remove_labelled,
)

from sflowlab.clock import SimClock
from sflowlab.lab.swarm_api import SwarmApi
from sflowlab.lab.swarm_model import Swarm


@pytest.fixture(scope="session")
def real_engine() -> Iterator[docker.DockerClient]:
    try:
        client = docker.DockerClient(base_url=DOCKER_URL, version="auto", timeout=30)
        client.ping()
    except docker.errors.DockerException as e:
        pytest.skip(f"no Docker engine answers at {DOCKER_URL} ({e}); ci/start_dockerd.sh "
                    "starts one")
    if not BUSYBOX.is_file() or not is_static_elf(BUSYBOX):
        pytest.skip(f"{BUSYBOX} is not a static busybox (install busybox-static) to build "
                    f"{IMAGE} from")
    client.images.build(fileobj=build_context(), custom_context=True, tag=IMAGE, rm=True)
    swarm = client.info()["Swarm"]
    joined = swarm["LocalNodeState"] != "active"
    if joined:
        client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    elif not swarm.get("ControlAvailable"):
        pytest.skip(f"the engine at {DOCKER_URL} is in a swarm but not a manager")
    remove_labelled(client)  # left by an interrupted run
    try:
        yield client
    finally:
        remove_labelled(client)
        if joined:
            client.swarm.leave(force=True)
        client.close()


@pytest.fixture(params=["real", "double"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    if request.param == "real":
        client = request.getfixturevalue("real_engine")
        try:
            yield Endpoint("real", client, lambda: time.sleep(POLL_S))
        finally:
            remove_labelled(client)
        return
    clock = SimClock(start=1_000_000.0)
    api = SwarmApi(Swarm(clock, random.Random(1))).start()
    client = docker.DockerClient(base_url=api.url.replace("http://", "tcp://"), version="auto")
    try:
        yield Endpoint("double", client, lambda: clock.advance(1.0))
    finally:
        client.close()
        api.stop()
