"""Namespace and veth helpers: traffic flows between the pair, and everything is removed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sflowlab.lab.interop.netns import cabled_host, namespace, router, unavailable_reason, veth_pair

pytestmark = [pytest.mark.root, pytest.mark.netns]


@pytest.fixture(autouse=True)
def _need_namespaces() -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout_s} s"
        time.sleep(0.01)


def names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


@pytest.mark.parametrize(("a_cidr", "b_cidr", "family"), [
    ("10.199.7.1/24", "10.199.7.2/24", socket.AF_INET),
    ("fd00:199::1/64", "fd00:199::2/64", socket.AF_INET6),
])
def test_udp_between_the_pair_through_namespaced_sockets(a_cidr: str, b_cidr: str,
                                                         family: int) -> None:
    with veth_pair(a_cidr, b_cidr) as pair:
        assert {pair.a.name, pair.b.name} <= names()
        with pair.a.socket(family) as rx, pair.b.socket(family) as tx:
            rx.bind((pair.a_address, 0))
            rx.settimeout(10)
            port = rx.getsockname()[1]
            tx.sendto(b"ping", (pair.a_address, port))
            data, source = rx.recvfrom(100)
        assert (data, source[0]) == (b"ping", pair.b_address)
        # this process's own namespace never had those addresses
        with socket.socket(family, socket.SOCK_DGRAM) as here, pytest.raises(OSError):
            here.bind((pair.a_address, 0))
    assert not {pair.a.name, pair.b.name} & names()


def test_a_cabled_host_leaves_its_port_here_bare_and_takes_it_away() -> None:
    port = f"sflcab{os.getpid()}"
    with cabled_host(port, ["10.199.8.1/24"]) as host:
        here = Path("/sys/class/net", port)
        assert (here / "operstate").exists()
        assert Path("/proc/sys/net/ipv6/conf", port, "disable_ipv6").read_text().strip() == "1"
        assert "inet" not in subprocess.run(["ip", "addr", "show", "dev", port],
                                            capture_output=True, text=True, check=True).stdout
        assert "10.199.8.1/24" in host.ip("-4", "addr", "show", "dev", "eth0")
        host.tx_checksum_off("eth0")
    assert not here.exists()
    assert host.name not in names()


def test_teardown_after_a_failure_ends_processes_and_removes_the_namespace() -> None:
    with pytest.raises(RuntimeError, match="boom"), namespace("sfltest") as ns:
        sleeper = ns.popen([sys.executable, "-c", "import time; time.sleep(300)"])
        wait_for(lambda: ns.pids() == [sleeper.pid])  # once ip netns exec has joined it
        raise RuntimeError("boom")
    assert sleeper.wait(timeout=10) != 0  # killed by the teardown
    assert ns.name not in names()


def test_a_process_started_just_before_teardown_is_ended_too() -> None:
    """Even one whose ``ip netns exec`` has not joined the namespace yet."""
    with namespace() as ns:
        late = ns.popen([sys.executable, "-c", "import time; time.sleep(300)"])
    assert late.returncode == -9  # killed and reaped by the teardown


def test_ip_errors_carry_ip_s_message() -> None:
    expected = r"ip -n \S+ link set no-such-device up failed: \S"
    with namespace() as ns, pytest.raises(RuntimeError, match=expected):
        ns.ip("link", "set", "no-such-device", "up")


@pytest.mark.parametrize(("family", "left", "right"), [
    (socket.AF_INET, "10.199.8.2", "10.199.9.2"),
    (socket.AF_INET6, "fd00:198::2", "fd00:199::2"),
])
def test_a_router_forwards_between_hosts_on_its_named_ports(family: int, left: str,
                                                             right: str) -> None:
    ports = {"swp1": (["10.199.8.1/24", "fd00:198::1/64"], ["10.199.8.2/24", "fd00:198::2/64"]),
             "swp2": (["10.199.9.1/24", "fd00:199::1/64"], ["10.199.9.2/24", "fd00:199::2/64"])}
    with router(ports) as r:
        a, b = r.ports["swp1"], r.ports["swp2"]
        assert (a.host_addresses, b.addresses) == (("10.199.8.2", "fd00:198::2"),
                                                   ("10.199.9.1", "fd00:199::1"))
        assert r.ns.mac("swp1") == a.mac and a.host.mac("eth0") == a.host_mac
        with b.host.socket(family) as rx, a.host.socket(family) as tx:
            rx.bind((right, 0))
            rx.settimeout(10)
            tx.sendto(b"routed", (right, rx.getsockname()[1]))
            data, source = rx.recvfrom(100)
        assert (data, source[0]) == (b"routed", left)
        made = {r.ns.name, a.host.name, b.host.name}
        assert made <= names()
    assert not made & names()
