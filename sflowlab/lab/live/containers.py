"""Containers on docker0 seen from the host (root): a container's network namespace under a
name, so this process can open sockets in it (the image's busybox has no UDP client), and its
host-side veth, whose counters say what the bridge got from it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sflowlab.lab.interop.netns import Namespace

__all__ = ["container_netns", "host_veth", "rx_packets"]


@contextlib.contextmanager
def container_netns(container: Any, name: str) -> Iterator[Namespace]:
    """The container's network namespace as ``name`` (``ip netns attach``); the name is removed
    on exit (the namespace stays with the container)."""
    container.reload()
    subprocess.run(["ip", "netns", "attach", name, str(container.attrs["State"]["Pid"])],
                   check=True)
    try:
        yield Namespace(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def host_veth(container: Any) -> str:
    """The name of the container's host-side veth (its ``eth0``'s peer, a docker0 port)."""
    _, iflink = container.exec_run(["/bin/busybox", "cat", "/sys/class/net/eth0/iflink"])
    return socket.if_indextoname(int(iflink))


def rx_packets(interface: str) -> int:
    """The frames a host interface received (a bridge port: what the bridge got from it)."""
    return int(Path(f"/sys/class/net/{interface}/statistics/rx_packets").read_text())
