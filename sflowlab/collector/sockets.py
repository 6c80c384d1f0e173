"""UDP receive sockets, and steering of datagrams by sFlow agent address over worker sockets.

``open_udp`` binds one socket with a large receive buffer, beyond ``net.core.rmem_max`` when the
process may (``SO_RCVBUFFORCE``, CAP_NET_ADMIN: a burst or a pause in analysis then has room
to wait instead of being dropped), else up to that limit (``shared=True``: with
``SO_REUSEPORT``, so several worker processes can bind the same port). ``steer_by_agent``
attaches a classic BPF program to such a group: the kernel hands each datagram to socket
number ``agent % n`` of the group (sockets are numbered in bind order), where ``agent`` is the
last 32 bits of the sFlow agent address read from the datagram itself (bytes 8-11 of an IPv4
agent's header, 20-23 of an IPv6 one's). Every datagram of one agent therefore reaches one
worker, whatever source port or address family it comes from: the rule ``shard_of`` states.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

from sflowlab import accel

_recv = accel.load("sflowlab.collector._recv")  # recvmmsg in C, or None: one recvfrom each
RECV_BATCH = 32
"""Datagrams taken per receive call when ``_recv`` is built."""

SO_ATTACH_REUSEPORT_CBPF = getattr(socket, "SO_ATTACH_REUSEPORT_CBPF", 51)  # Linux >= 4.5
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux: ignores rmem_max, CAP_NET_ADMIN


def shard_of(agent: bytes | str, shards: int) -> int:
    """The worker of an agent (packed address bytes or text): its last 32 bits mod ``shards``."""
    packed = agent if isinstance(agent, bytes) else ipaddress.ip_address(agent).packed
    return int.from_bytes(packed[-4:], "big") % shards


def shard_of_datagram(data: bytes, shards: int) -> int:
    """``shard_of`` the agent address in an sFlow datagram's header (0 if too short)."""
    if len(data) < 24:
        return 0
    return int.from_bytes(data[20:24] if data[7] == 2 else data[8:12], "big") % shards


def _agent_program(shards: int) -> bytes:
    """cBPF: A = the agent address's last word (offsets in the UDP payload); return A % n."""
    insns = [
        (0x20, 0, 0, 4),       # ld  [4]            address type
        (0x15, 0, 2, 2),       # jeq #2 (IPv6), else skip 2
        (0x20, 0, 0, 20),      # ld  [20]           IPv6: last word of the address
        (0x05, 0, 0, 1),       # ja  +1
        (0x20, 0, 0, 8),       # ld  [8]            IPv4 address
        (0x94, 0, 0, shards),  # mod #shards
        (0x16, 0, 0, 0),       # ret a
    ]
    return b"".join(struct.pack("=HBBI", *i) for i in insns)


def steer_by_agent(sock: socket.socket, shards: int) -> None:
    """Attach the agent-address program to ``sock``'s SO_REUSEPORT group (OSError if the
    kernel refuses: the group then spreads datagrams by 4-tuple hash)."""
    program = ctypes.create_string_buffer(_agent_program(shards))
    fprog = struct.pack("@HP", len(program.raw) // 8, ctypes.addressof(program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def open_udp(host: str, port: int, rcvbuf: int, *, shared: bool = False) -> socket.socket:
    """A bound UDP socket (IPv6: v6-only) with ``rcvbuf`` asked for; OSError if it fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except PermissionError:  # unprivileged: what net.core.rmem_max allows
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def kernel_drops(socks: Iterable[socket.socket]) -> int:
    """Datagrams the kernel dropped for these sockets (receive buffer full, the per-socket
    share of ``RcvbufErrors``): the ``drops`` column of ``/proc/net/udp`` and ``udp6`` for
    their inodes; 0 where there is no such file."""
    inodes = set()
    for sock in socks:
        with contextlib.suppress(OSError):  # closed meanwhile: no longer listed
            inodes.add(os.fstat(sock.fileno()).st_ino)
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:  # sl local remote st tx:rx tr:when retrnsmt uid timeout inode ref ptr drops
            fields = row.split()
            if len(fields) > 12 and int(fields[9]) in inodes:
                total += int(fields[12])
    return total


def stop_receiving(sock: socket.socket, reader: threading.Thread | None) -> None:
    """Wake ``reader`` blocked in ``recvfrom`` on ``sock`` (it gets ``(b"", None)``), wait for
    it, then close the socket. Receive loops block with no timeout: one system call per
    datagram (a timeout costs a poll and clock reads before every receive)."""
    with contextlib.suppress(OSError):  # ENOTCONN on UDP, yet the shutdown wakes readers
        sock.shutdown(socket.SHUT_RDWR)
    if reader is not None:
        reader.join(timeout=2.0)
    sock.close()


__all__ = ["kernel_drops", "open_udp", "shard_of", "shard_of_datagram", "steer_by_agent",
           "stop_receiving"]
