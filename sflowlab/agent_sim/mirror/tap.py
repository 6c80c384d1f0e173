"""Kernel-sampled packets of one interface, as hsflowd's mod_pcap takes them on docker0.

An AF_PACKET socket bound to the interface with hsflowd's classic BPF program attached
(``ld rand; mod #N; jeq #1 ? ret -1 : ret 0``: the kernel keeps 1-in-N frames at random, the
rest never reach user space), no filter at rate 1. The interface is made promiscuous through
the socket's membership (PACKET_MR_PROMISC; undone by the kernel when the socket closes): a
bridge passes frames between its ports up to its own device only when promiscuous, so
container-to-container traffic is seen only so. Drops (frames the filter kept that the
socket had no room for) come from PACKET_STATISTICS.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from dataclasses import dataclass

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC, PACKET_STATISTICS = 1, 1, 6
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SKF_AD_RANDOM = 0xFFFFF000 + 56  # SKF_AD_OFF (-4096) + SKF_AD_RANDOM
_BPF_LD_W_ABS, _BPF_ALU_MOD_K, _BPF_JMP_JEQ_K, _BPF_RET_K = 0x20, 0x94, 0x15, 0x06
_INSN = struct.Struct("HBBI")  # struct sock_filter {u16 code; u8 jt; u8 jf; u32 k;}
_STATS = struct.Struct("II")  # struct tpacket_stats {tp_packets; tp_drops}
RCVBUF_BYTES = 4 << 20


def random_filter(rate: int) -> bytes:
    """hsflowd's five instructions keeping 1-in-``rate`` frames (``rate`` > 1)."""
    if rate < 2:
        raise ValueError("a random filter needs a sampling rate of at least 2")
    program = ((_BPF_LD_W_ABS, 0, 0, SKF_AD_RANDOM), (_BPF_ALU_MOD_K, 0, 0, rate),
               (_BPF_JMP_JEQ_K, 0, 1, 1), (_BPF_RET_K, 0, 0, 0xFFFFFFFF), (_BPF_RET_K, 0, 0, 0))
    return b"".join(_INSN.pack(*insn) for insn in program)


def attach_filter(sock: socket.socket, program: bytes) -> None:
    """SO_ATTACH_FILTER with a classic BPF program (the kernel copies it)."""
    buf = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // _INSN.size, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


@dataclass(frozen=True)
class Frame:
    """One sampled frame: its first bytes, its length on the wire (no FCS), and whether the
    interface sent it (PACKET_OUTGOING) rather than received it."""

    header: bytes
    length: int
    outgoing: bool


class Tap:
    """A sampling packet socket on one interface; ``fileno()`` for select, ``read()`` frames."""

    def __init__(self, interface: str, sampling_rate: int, header_bytes: int = 128) -> None:
        if sampling_rate < 1:
            raise ValueError("sampling_rate must be >= 1")
        self.interface = interface
        self.sampling_rate = sampling_rate
        self.header_bytes = header_bytes
        self.drops = 0
        self.errors = 0
        """Receive errors (ENETDOWN when the interface went down)."""
        self._buf = bytearray(header_bytes)
        # protocol 0 receives nothing until bound: the filter is in place before any frame
        try:
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError as e:
            raise PermissionError(e.errno, f"sampling {interface} needs root (CAP_NET_RAW)") from e
        try:
            if sampling_rate > 1:
                attach_filter(self._sock, random_filter(sampling_rate))
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            self._sock.bind((interface, ETH_P_ALL))
            index = socket.if_nametoindex(interface)
            mreq = struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b"")
            self._sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self, limit: int = 256) -> list[Frame]:
        """The frames waiting (at most ``limit``), without blocking."""
        frames: list[Frame] = []
        buf, size, recv = self._buf, self.header_bytes, self._sock.recvfrom_into
        for _ in range(limit):
            try:
                length, address = recv(buf, size, socket.MSG_TRUNC)
            except BlockingIOError:
                break
            except OSError:  # ENETDOWN, once, when the interface goes down; it resumes when up
                self.errors += 1
                break
            frames.append(Frame(bytes(buf[:min(length, size)]), length,
                                address[2] == PACKET_OUTGOING))
        return frames

    def update_drops(self) -> int:
        """Add the kernel's drops since the last call (PACKET_STATISTICS resets on read)."""
        raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
        self.drops += _STATS.unpack(raw)[1]
        return self.drops

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Tap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
