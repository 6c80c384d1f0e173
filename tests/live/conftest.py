"""Fixtures for the tests against a real Docker engine (marker ``docker``).

- ``real_engine`` (module): a docker SDK client of the engine at ``$DOCKER_HOST`` (default
  the local socket) in swarm mode, with the test image built. Skips, saying why, when no
  engine answers (``ci/start_dockerd.sh`` starts one) or no static busybox is installed.
  Test sessions on one machine take turns on the engine (``engine_lock``, from setup to
  teardown). A swarm it had to initialise it leaves again at the end; services and
  containers it made (label ``sflowlab.live=1``) are removed after each test.
- ``endpoint``: parametrised over ``real`` (that engine) and ``double`` (the swarm double on a
  SimClock, served over HTTP): the same docker SDK calls run against both.
- ``live_lab_possible``: skips unless the live lab can run (engine, static busybox, root).
"""

from __future__ import annotations

import os
import random
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "controllers"))  # elb_helpers

from live_helpers import (
    BUSYBOX,
    DOCKER_URL,
    IMAGE,
    POLL_S,
    Endpoint,
    engine_lock,
    is_static_elf,
    remove_labelled,
)

from sflowlab.clock import SimClock
from sflowlab.lab.doubles.swarm_api import MIN_API_VERSION, SwarmApi
from sflowlab.lab.doubles.swarm_model import Swarm
from sflowlab.lab.live.image import build_small_image


def engine_problem(url: str) -> str | None:
    """Why no engine answers at ``url`` (None: it does). A unix socket is tried with the
    stdlib first: the SDK leaks the socket of a failed connection."""
    if url.startswith("unix://"):
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(url.removeprefix("unix://"))
            except OSError as e:
                return str(e)
    probe = docker.APIClient(base_url=url, version=MIN_API_VERSION, timeout=5)
    try:
        probe.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        return str(e)
    finally:
        probe.close()
    return None


ENGINE_WAIT_S = 120.0  # how long a session waits for another one to finish with the engine


@pytest.fixture
def live_lab_possible() -> None:
    """Skips, saying why, unless a live lab can run here: an engine, a static busybox, root
    (the agent's packet sampling)."""
    problem = engine_problem(DOCKER_URL)
    if problem:
        pytest.skip(f"no Docker engine answers at {DOCKER_URL} ({problem}); "
                    "ci/start_dockerd.sh starts one")
    if not BUSYBOX.is_file() or not is_static_elf(BUSYBOX):
        pytest.skip(f"{BUSYBOX} is not a static busybox (install busybox-static)")
    if os.geteuid() != 0:
        pytest.skip("the live lab's agent samples packets: needs root")


@pytest.fixture(scope="module")
def real_engine() -> Iterator[docker.DockerClient]:
    problem = engine_problem(DOCKER_URL)
    if problem:
        pytest.skip(f"no Docker engine answers at {DOCKER_URL} ({problem}); "
                    "ci/start_dockerd.sh starts one")
    if not BUSYBOX.is_file() or not is_static_elf(BUSYBOX):
        pytest.skip(f"{BUSYBOX} is not a static busybox (install busybox-static) to build "
                    f"{IMAGE} from")
    with engine_lock(ENGINE_WAIT_S):
        client = docker.DockerClient(base_url=DOCKER_URL, version="auto", timeout=30)
        try:
            build_small_image(client)
            swarm = client.info()["Swarm"]
            joined = swarm["LocalNodeState"] != "active"
            if joined:
                client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
            elif not swarm.get("ControlAvailable"):
                pytest.skip(f"the engine at {DOCKER_URL} is in a swarm but not a manager")
            remove_labelled(client, wait_s=15)  # left by an interrupted run
            try:
                yield client
            finally:
                remove_labelled(client, wait_s=15)
                if joined:
                    client.swarm.leave(force=True)
        finally:
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
