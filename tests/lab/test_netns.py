"""Namespace and veth helpers: traffic flows between the pair, and everything is removed."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from sflowlab.lab.netns import namespace, unavailable_reason, veth_pair

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
