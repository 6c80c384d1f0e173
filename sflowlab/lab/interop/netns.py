"""Network namespaces, veth pairs and routers for lab tests (needs root and iproute2's ``ip``).

``namespace()``, ``veth_pair()`` and ``router()`` are context managers that create uniquely
named namespaces and always remove them (and end the processes still running inside them,
which can only be the caller's) on the way out, even after a failure. ``router()`` is a
routing namespace with named ports (``swp1``, ``swp2``...), each cabled to a host namespace of
its own. ``bridged_pair()`` is two host namespaces on a Linux bridge in a third. ``cabled_host()`` is a host namespace cabled to a port left in the caller's namespace,
for a switch running there (Open vSwitch) to take. ``Namespace.socket`` opens a socket inside a
namespace from this process (the socket keeps its namespace), so a test can receive, send or
connect there without a helper process;
``Namespace.call`` runs any function there the same way.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import fcntl
import itertools
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["BridgedPair", "Namespace", "Router", "RouterPort", "VethPair", "bridged_pair",
           "cabled_host", "namespace", "router", "unavailable_reason", "veth_pair"]

_T = TypeVar("_T")

_CLONE_NEWNET = 0x40000000
_SIOCETHTOOL, _ETHTOOL_STXCSUM = 0x8946, 0x17  # <linux/sockios.h>, <linux/ethtool.h>
_NETNS_DIR = "/run/netns"
_serial = itertools.count(1)


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (for ``pytest.skip``), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's ip command is missing"
    return None


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


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

    def ip(self, *args: str) -> str:
        """``ip -n NAME ARGS...`` (its output); raises RuntimeError with ip's message on failure."""
        return _ip("-n", self.name, *args)

    def mac(self, interface: str) -> str:
        """The MAC address of one of the namespace's interfaces."""
        return str(json.loads(self.ip("-j", "link", "show", "dev", interface))[0]["address"])

    def sysctl(self, key: str, value: str) -> None:
        """Set a ``net.*`` sysctl of this namespace (``net.ipv4.ip_forward``, ``1``)."""
        path = Path("/proc/sys", *key.split("."))
        self.call(lambda: path.write_text(value))

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed to run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        return subprocess.run(self.command(argv), check=kwargs.pop("check", False), **kwargs)

    def tx_checksum_off(self, interface: str) -> None:
        """``ethtool -K INTERFACE tx off`` without ethtool. A veth hands frames on with the
        transport checksum left to the receiver's kernel; a userspace switch reading them from a
        packet socket (Open vSwitch's netdev datapath) forwards them so, and receivers drop them.
        """
        value = array.array("I", [_ETHTOOL_STXCSUM, 0])  # struct ethtool_value {cmd, data}
        request = struct.pack("16sP", interface.encode(), value.buffer_info()[0])  # struct ifreq
        with self.socket() as s:
            fcntl.ioctl(s, _SIOCETHTOOL, request)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process inside the namespace (ended at teardown if still running)."""
        process = subprocess.Popen(self.command(argv), **kwargs)
        self._started.append(process)
        return process

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM,
               proto: int = 0) -> socket.socket:
        """A socket created inside this namespace (sockets keep their namespace for life)."""
        return self.call(lambda: socket.socket(family, kind, proto))

    def call(self, function: Callable[[], _T]) -> _T:
        """``function()`` run inside this namespace; its result, or its exception raised here."""
        result: list[_T] = []
        failure: list[BaseException] = []

        def run() -> None:  # a throwaway thread: setns changes only the calling thread
            try:
                _setns(f"{_NETNS_DIR}/{self.name}")
                result.append(function())
            except BaseException as e:  # handed back to the caller below
                failure.append(e)

        thread = threading.Thread(target=run, name=f"setns-{self.name}")
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
        _configure(a, a_if, [a_cidr])
        _configure(b, b_if, [b_cidr])
        yield VethPair(a, b, a_if, b_if, _address(a_cidr), _address(b_cidr))


@dataclass(frozen=True)
class BridgedPair:
    """Namespaces ``a`` and ``b`` whose ``eth0`` are cabled to ports ``pa`` and ``pb`` of a
    bridge in namespace ``host``."""

    host: Namespace
    a: Namespace
    b: Namespace
    a_mac: str
    b_mac: str


@contextlib.contextmanager
def bridged_pair(a_ip: str, b_ip: str, bridge: str = "br0",
                 prefix: str = "sfl") -> Iterator[BridgedPair]:
    """Bridge ``bridge`` in namespace ``host``, its ports ``pa`` and ``pb`` cabled to ``eth0``
    in namespaces ``a`` (at ``a_ip``/24) and ``b`` (``b_ip``/24). IPv6 is off and the
    neighbours are permanent, so the only frames on the bridge are those the caller sends."""
    with namespace(prefix) as host, namespace(prefix) as a, namespace(prefix) as b:
        for ns in (host, a, b):
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
        host.ip("link", "add", bridge, "type", "bridge")
        for ns, port, ip in ((a, "pa", a_ip), (b, "pb", b_ip)):
            host.ip("link", "add", port, "type", "veth", "peer", "name", "eth0",
                    "netns", ns.name)
            host.ip("link", "set", port, "master", bridge)
            host.ip("link", "set", port, "up")
            ns.ip("addr", "add", f"{ip}/24", "dev", "eth0")
            ns.ip("link", "set", "eth0", "up")
        host.ip("link", "set", bridge, "up")
        a_mac, b_mac = a.mac("eth0"), b.mac("eth0")
        a.ip("neigh", "replace", b_ip, "lladdr", b_mac, "dev", "eth0", "nud", "permanent")
        b.ip("neigh", "replace", a_ip, "lladdr", a_mac, "dev", "eth0", "nud", "permanent")
        yield BridgedPair(host, a, b, a_mac, b_mac)


@contextlib.contextmanager
def cabled_host(port: str, cidrs: Sequence[str], prefix: str = "sfl") -> Iterator[Namespace]:
    """A fresh IPv4 host namespace whose ``eth0`` (at ``cidrs``) is cabled to ``port``.

    ``port`` is the veth's other end, in the caller's namespace: up, without addresses and with
    IPv6 off, as is the host (so only what the host is made to send crosses the cable, apart
    from ARP). The pair is deleted on exit, then the namespace.
    """
    with namespace(prefix) as host:
        host.sysctl("net.ipv6.conf.default.disable_ipv6", "1")  # before eth0 exists
        _ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host.name)
        try:
            Path("/proc/sys/net/ipv6/conf", port, "disable_ipv6").write_text("1")
            _ip("link", "set", port, "up")
            _configure(host, "eth0", cidrs)
            yield host
        finally:  # at once: a namespace's devices go some time after it is deleted
            _ip("link", "del", port)


def _configure(ns: Namespace, interface: str, cidrs: Sequence[str]) -> None:
    """Add the addresses (IPv6 with ``nodad``, usable at once) and bring the interface up."""
    for cidr in cidrs:
        ns.ip("addr", "add", cidr, "dev", interface, *(("nodad",) if ":" in cidr else ()))
    ns.ip("link", "set", interface, "up")


def _address(cidr: str) -> str:
    return cidr.split("/")[0]


@dataclass(frozen=True)
class RouterPort:
    """A router port (``name``, ``mac``, ``addresses``) and the host namespace cabled to it."""

    name: str
    mac: str
    addresses: tuple[str, ...]
    host: Namespace
    host_interface: str
    host_mac: str
    host_addresses: tuple[str, ...]


@dataclass(frozen=True)
class Router:
    """A namespace forwarding IPv4 and IPv6 between its ``ports`` (by name)."""

    ns: Namespace
    ports: dict[str, RouterPort]


@contextlib.contextmanager
def router(
    ports: Mapping[str, tuple[Sequence[str], Sequence[str]]], prefix: str = "sfl"
) -> Iterator[Router]:
    """A router namespace with IPv4 and IPv6 forwarding on and a host namespace per port.

    ``ports`` maps a port's name to (its CIDRs, its host's CIDRs). The host's side is ``eth0``
    with a default route via the port's first address of each family. Each side holds
    permanent neighbour entries for the other's addresses, so the first packet is forwarded
    without address resolution. All the namespaces are removed on exit.
    """
    with contextlib.ExitStack() as stack:
        core = stack.enter_context(namespace(prefix))
        core.sysctl("net.ipv4.ip_forward", "1")
        core.sysctl("net.ipv6.conf.all.forwarding", "1")
        made: dict[str, RouterPort] = {}
        for name, (cidrs, host_cidrs) in ports.items():
            host = stack.enter_context(namespace(prefix))
            core.ip("link", "add", name, "type", "veth", "peer", "name", "eth0",
                    "netns", host.name)
            _configure(core, name, cidrs)
            _configure(host, "eth0", host_cidrs)
            port = made[name] = RouterPort(
                name, core.mac(name), tuple(map(_address, cidrs)), host, "eth0",
                host.mac("eth0"), tuple(map(_address, host_cidrs)))
            for ns, interface, mac, addresses in (
                (core, name, port.host_mac, port.host_addresses),
                (host, "eth0", port.mac, port.addresses),
            ):
                for address in addresses:
                    ns.ip("neigh", "replace", address, "lladdr", mac, "dev", interface,
                          "nud", "permanent")
            first_by_family = {":" in a: a for a in reversed(port.addresses)}
            for gateway in first_by_family.values():
                host.ip("route", "add", "default", "via", gateway)
        yield Router(core, made)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """End a daemon a lab started (SIGTERM, then SIGKILL after 5 s) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
