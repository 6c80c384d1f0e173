"""Helpers for the mirror agent's tests: a bridge lab in namespaces, the agent run as the real
command inside it, its datagrams received and decoded.

``bridge_lab()``: namespace ``host`` holds bridge ``br0`` with ports ``pa`` and ``pb``, cabled
to ``eth0`` in namespaces ``a`` (10.213.0.1) and ``b`` (10.213.0.2). IPv6 is off and the
neighbours are permanent, so the only frames on the bridge are those a test sends.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from sflowlab.codec import Datagram, decode_datagram
from sflowlab.lab.interop.netns import Namespace, bridged_pair

T = TypeVar("T")
A_IP, B_IP = "10.213.0.1", "10.213.0.2"
BRIDGE = "br0"


@dataclass(frozen=True)
class BridgeLab:
    host: Namespace
    a: Namespace
    b: Namespace
    a_mac: str
    b_mac: str

    def link_stats(self, name: str) -> dict[str, int]:
        """The kernel's IFLA_STATS64 of one of the host namespace's links."""
        from pyroute2 import IPRoute

        def read() -> dict[str, int]:
            with IPRoute() as ipr:
                (msg,) = ipr.get_links(ifname=name)
                return dict(msg.get("IFLA_STATS64"))

        return self.host.call(read)

    def promiscuity(self, name: str) -> int:
        """IFLA_PROMISCUITY of one of the host namespace's links."""
        from pyroute2 import IPRoute

        def read() -> int:
            with IPRoute() as ipr:
                (msg,) = ipr.get_links(ifname=name)
                return int(msg.get("IFLA_PROMISCUITY"))

        return self.host.call(read)

    def index(self, name: str) -> int:
        return self.host.call(lambda: socket.if_nametoindex(name))

    def udp(self, src: Namespace, dst_ip: str, port: int, count: int,
            payload: int = 1400) -> None:
        """``count`` UDP datagrams of ``payload`` bytes from ``src`` to ``dst_ip``."""
        data = bytes(payload)
        with contextlib.closing(src.socket()) as s:
            for _ in range(count):
                s.sendto(data, (dst_ip, port))


@contextlib.contextmanager
def bridge_lab() -> Iterator[BridgeLab]:
    with bridged_pair(A_IP, B_IP, BRIDGE, prefix="agent") as pair:
        yield BridgeLab(pair.host, pair.a, pair.b, pair.a_mac, pair.b_mac)


def wait_until(what: str, check: Callable[[], T], timeout_s: float) -> T:
    """``check()`` until it returns something true (returned); fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)
    return value


@dataclass
class Received:
    """Datagrams received (decoded with the codec: any error fails the test) and when."""

    items: list[tuple[float, Datagram]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)

    def samples(self, kinds: tuple[type, ...]) -> Iterator[tuple[float, Any]]:
        for at, dg in self.items:
            for s in dg.samples:
                if isinstance(s, kinds):
                    yield at, s


@dataclass
class RunningAgent:
    """``sflowlab agent`` running in a namespace, sending to a socket there."""

    process: subprocess.Popen[str]
    receiver: socket.socket
    received: Received = field(default_factory=Received)

    def receive(self, timeout_s: float) -> None:
        """Take what arrives for up to ``timeout_s`` (less when the socket stays quiet)."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            self.receiver.settimeout(left)
            try:
                data = self.receiver.recv(65535)
            except TimeoutError:
                return
            self.received.raw.append(data)
            self.received.items.append((time.monotonic(), decode_datagram(data)))

    def until(self, what: str, check: Callable[[Received], T], timeout_s: float) -> T:
        """Receive until ``check(received)`` is true (returned); fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = check(self.received)
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}; agent "
                            f"stderr: {self.stop_output()[1][-2000:]}")
            self.receive(min(0.2, max(deadline - time.monotonic(), 0.01)))

    def stop(self, timeout_s: float = 10.0) -> tuple[int, str, str]:
        """SIGTERM; the exit status, stdout and stderr (datagrams sent meanwhile received)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=timeout_s)
        self.receive(0.3)
        return self.process.returncode, out, err

    def stop_output(self) -> tuple[int, str, str]:
        if self.process.poll() is None:
            self.process.kill()
        out, err = self.process.communicate(timeout=10)
        return self.process.returncode, out, err


@contextlib.contextmanager
def running_agent(ns: Namespace | None, *options: str) -> Iterator[RunningAgent]:
    """``sflowlab agent --collector <a socket in ns> OPTIONS`` inside ``ns`` (None: this
    namespace); killed at exit if the test has not stopped it."""
    receiver = ns.socket() if ns else socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    port = receiver.getsockname()[1]
    argv = [sys.executable, "-m", "sflowlab.cli", "agent", "--collector", f"127.0.0.1:{port}",
            *options]
    popen = ns.popen if ns else subprocess.Popen
    process = popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    agent = RunningAgent(process, receiver)
    try:
        yield agent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
        receiver.close()
