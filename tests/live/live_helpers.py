"""Helpers for the tests against a real Docker engine: the test image's tag (built by
``sflowlab.lab.live.image.build_small_image``), waiting for a condition, and ``Endpoint`` (an
engine the docker SDK talks to); the labelled leftovers' cleanup and taking turns on the engine
(``engine_lock``) are the live lab's (``sflowlab.lab.live.swarm``). The fixtures are in
conftest.py.

The image is built locally, not pulled: ``FROM scratch`` with Debian's static busybox serving
HTTP (``busybox httpd -f -p 80``), STOPSIGNAL SIGKILL (busybox as PID 1 ignores SIGTERM, and
swarm would wait the 10 s grace period for every stopped task).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import docker
import pytest

from sflowlab.lab.live.image import BUSYBOX, SMALL_TAG, is_static_elf
from sflowlab.lab.live.swarm import (
    ENGINE_LOCK,
    LABEL_FILTER,
    LABELS,
    POLL_S,
    engine_lock,
    remove_labelled,
    wait_until,
)

__all__ = ["BUSYBOX", "DOCKER_URL", "ENGINE_LOCK", "IMAGE", "LABELS", "LABEL_FILTER", "POLL_S",
           "Endpoint", "engine_lock", "is_static_elf", "remove_labelled",
           "wait_for"]

T = TypeVar("T")

DOCKER_URL = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
IMAGE = SMALL_TAG


def wait_for(what: str, check: Callable[[], T], settle: Callable[[], None],
             timeout_s: float) -> T:
    """``check()`` until it returns something true (returned), ``settle()`` between tries;
    fails the test after ``timeout_s`` seconds of wall time."""
    try:
        return wait_until(what, check, timeout_s, settle)
    except TimeoutError as e:
        pytest.fail(str(e))


@dataclass
class Endpoint:
    """A Docker Engine API the docker SDK talks to, and how to let it make progress."""

    kind: str
    client: docker.DockerClient
    settle: Callable[[], None]
    """Let time pass: the real engine's wall time, or the double's SimClock (1 s a call)."""

    def wait_for(self, what: str, check: Callable[[], T], timeout_s: float = 20.0) -> T:
        return wait_for(what, check, self.settle, timeout_s)
