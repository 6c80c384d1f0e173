"""Network namespaces and veth pairs for lab tests (needs root and iproute2's ``ip``).

``namespace()`` and ``veth_pair()`` are context managers that create uniquely named
namespaces and always remove them (and end the processes still running inside them, which
can only be the caller's) on the way out, even after a failure. ``Namespace.socket`` opens a
socket inside a namespace from this process (the socket keeps its namespace), so a test can
receive or connect there without a helper process.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Namespace", "VethPair", "namespace", "unavailable_reason", "veth_pair"]

_CLONE_NEWNET = 0x40000000
_NETNS_DIR = "/run/netns"
_serial = itertools.count(1)


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (for ``pytest.skip``), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's ip command is missing"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Namespace:
    """A named network namespace: run commands in it, open sockets in it."""

    name: str
    _started: list[subprocess.Popen[Any]] = field(default_factory=list, compare=False, repr=False)

    def ip(self, *args: str) -> None:
        """``ip -n NAME ARGS...``; raises RuntimeError with ip's message on failure."""
        _ip("-n", self.name, *args)

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed to run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        return subprocess.run(self.command(argv), check=kwargs.pop("check", False), **kwargs)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process inside the namespace (ended at teardown if still running)."""
        process = subprocess.Popen(self.command(argv), **kwargs)
        self._started.append(process)
        return process

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM) -> socket.socket:
        """A socket created inside this namespace (sockets keep their namespace for life)."""
        result: list[socket.socket] = []
        failure: list[BaseException] = []

        def make() -> None:  # a throwaway thread: setns changes only the calling thread
            try:
                _setns(f"{_NETNS_DIR}/{self.name}")
                result.append(socket.socket(family, kind))
            except BaseException as e:  # handed back to the caller below
                failure.append(e)

        thread = threading.Thread(target=make, name=f"setns-{self.name}")
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
        return result[0]

    def pids(self) -> list[int]:
        done = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True, check=False
        )
        return [int(p) for p in done.stdout.split()]


def _end_processes(ns: Namespace) -> None:
    """Kill what runs inside, and what ``popen`` started that may not have entered it yet
    (``ip netns exec`` joins the namespace only after it started)."""
    for pid in ns.pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for process in ns._started:
        if process.poll() is None:
            process.kill()
            process.wait()


@contextlib.contextmanager
def namespace(prefix: str = "sfl") -> Iterator[Namespace]:
    """A fresh namespace with loopback up; deleted on exit with any process left inside."""
    ns = Namespace(f"{prefix}-{os.getpid()}-{next(_serial)}")
    _ip("netns", "add", ns.name)
    try:
        ns.ip("link", "set", "lo", "up")
        yield ns
    finally:
        _end_processes(ns)
        _ip("netns", "del", ns.name)


@dataclass(frozen=True)
class VethPair:
    """Two namespaces joined by a veth pair: ``a`` at ``a_address``, ``b`` at ``b_address``."""

    a: Namespace
    b: Namespace
    a_interface: str
    b_interface: str
    a_address: str
    b_address: str


@contextlib.contextmanager
def veth_pair(
    a_cidr: str = "10.199.0.1/24", b_cidr: str = "10.199.0.2/24", prefix: str = "sfl"
) -> Iterator[VethPair]:
    """Two fresh namespaces joined by a veth pair with the given addresses (IPv4 or IPv6).

    IPv6 addresses are added with ``nodad`` so they are usable at once.
    """
    with namespace(prefix) as a, namespace(prefix) as b:
        serial = a.name.rsplit("-", 1)[1]
        a_if, b_if = f"veth{serial}a", f"veth{serial}b"
        a.ip("link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b.name)
        for ns, ifname, cidr in ((a, a_if, a_cidr), (b, b_if, b_cidr)):
            extra = ("nodad",) if ":" in cidr else ()
            ns.ip("addr", "add", cidr, "dev", ifname, *extra)
            ns.ip("link", "set", ifname, "up")
        yield VethPair(a, b, a_if, b_if, a_cidr.split("/")[0], b_cidr.split("/")[0])
