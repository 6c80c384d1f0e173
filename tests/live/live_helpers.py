"""Helpers for the tests against a real Docker engine: the test image's build context, waiting
for a condition, the labelled leftovers' cleanup, taking turns on the engine (``engine_lock``),
and ``Endpoint`` (an engine the docker SDK talks to). The fixtures are in conftest.py.

The image is built here, not pulled: ``FROM scratch`` with Debian's static busybox serving
HTTP (``busybox httpd -f -p 80``), STOPSIGNAL SIGKILL (busybox as PID 1 ignores SIGTERM, and
swarm would wait the 10 s grace period for every stopped task).
"""

from __future__ import annotations

import fcntl
import io
import os
import struct
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import docker
import pytest

T = TypeVar("T")

DOCKER_URL = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
BUSYBOX = Path("/bin/busybox")
IMAGE = "sflowlab/busybox-httpd:live"
LABELS = {"sflowlab.live": "1"}
LABEL_FILTER = "sflowlab.live=1"
DOCKERFILE = b"""FROM scratch
COPY busybox /bin/busybox
COPY index.html /www/index.html
STOPSIGNAL SIGKILL
CMD ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"]
"""
POLL_S = 0.05  # how often a wait on the real engine looks again
ENGINE_LOCK = Path(tempfile.gettempdir()) / "sflowlab-live.lock"


def is_static_elf(path: Path) -> bool:
    """A 64-bit ELF executable without a PT_INTERP program header (no dynamic loader)."""
    data = path.read_bytes()
    if data[:5] != b"\x7fELF\x02":
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


def build_context() -> io.BytesIO:
    """The image's build context as an in-memory tar: Dockerfile, busybox, index.html."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in (("Dockerfile", DOCKERFILE, 0o644),
                                 ("busybox", BUSYBOX.read_bytes(), 0o755),
                                 ("index.html", b"<h1>sflowlab</h1>\n", 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def wait_for(what: str, check: Callable[[], T], settle: Callable[[], None],
             timeout_s: float) -> T:
    """``check()`` until it returns something true (returned), ``settle()`` between tries;
    fails the test after ``timeout_s`` seconds of wall time."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what} (last: {value!r})")
        settle()


def remove_labelled(client: docker.DockerClient, wait_s: float | None = None) -> None:
    """Remove the services the tests made; with ``wait_s``, wait until their containers are
    gone (between tests that would cost about 1.5 s each: swarm reaps them asynchronously, so
    they are listed with one call: ``containers.list`` inspects each, racing the reaper)."""
    for service in client.services.list(filters={"label": LABEL_FILTER}):
        service.remove()
    if wait_s is None:
        return
    wait_for("the test containers to go",
             lambda: not client.api.containers(all=True, filters={"label": LABEL_FILTER}),
             lambda: time.sleep(POLL_S), wait_s)


@contextmanager
def engine_lock(timeout_s: float, path: Path = ENGINE_LOCK) -> Iterator[None]:
    """The engine to this test session alone: sessions on one machine take turns (an exclusive
    ``flock``, waited for up to ``timeout_s``), since one session's cleanup removes the other's
    services and the one that initialised the swarm leaves it at its end."""
    with path.open("a") as lock:

        def taken() -> bool:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        wait_for("another test session to finish with the engine", taken,
                 lambda: time.sleep(POLL_S), timeout_s)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class Endpoint:
    """A Docker Engine API the docker SDK talks to, and how to let it make progress."""

    kind: str
    client: docker.DockerClient
    settle: Callable[[], None]
    """Let time pass: the real engine's wall time, or the double's SimClock (1 s a call)."""

    def wait_for(self, what: str, check: Callable[[], T], timeout_s: float = 20.0) -> T:
        return wait_for(what, check, self.settle, timeout_s)
