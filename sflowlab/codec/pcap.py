"""Packet captures: write sFlow datagrams to classic pcap, read them back from pcap or pcapng.

``PcapWriter`` wraps each payload in Ethernet + IPv4/IPv6 + UDP with exact lengths and
checksums (microsecond classic pcap, LINKTYPE_ETHERNET), so Wireshark and pmacct read the file.
``read_sflow`` walks classic pcap (either byte order, micro- or nanosecond) and pcapng (SHB,
IDB, EPB, SPB and the obsolete packet block; per-interface link type and ``if_tsresol``) and
yields the UDP payloads to or from one port. Frames that are not UDP are skipped quietly; a
file that cannot be read raises ``PcapError`` (a ``CodecError``) with the file offset
(``PcapTruncatedError`` when it ends inside a record, every record before it yielded).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ._errors import CodecError

__all__ = [
    "LINKTYPE_ETHERNET", "CapturedDatagram", "PcapError", "PcapTruncatedError", "PcapWriter",
    "internet_checksum", "read_sflow",
]

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LOOP = 108
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_BOM = 0x1A2B3C4D
_MAX_RECORD = 16 << 20  # larger lengths mean a corrupt file, not a packet

_ETH_IPV4, _ETH_IPV6 = 0x0800, 0x86DD
_VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100))
_AF_INET6_VALUES = frozenset((10, 24, 28, 30))  # Linux, OpenBSD/NetBSD, FreeBSD, macOS
_IPV6_EXTENSIONS = frozenset((0, 43, 60, 51))  # hop-by-hop, routing, destination options, AH
_UDP = 17

_WRITER_SRC_MAC = bytes.fromhex("020000000001")
_WRITER_DST_MAC = bytes.fromhex("020000000002")


class PcapError(CodecError):
    """A capture file that cannot be read: bad magic, truncated header or record, bad length.

    ``offset`` is the file offset of the failing header or record; ``path`` names it.
    """


class PcapTruncatedError(PcapError):
    """The file ends inside a header or record (a capture cut short, e.g. by a kill): every
    record before the cut was read."""


@dataclass(frozen=True)
class CapturedDatagram:
    """One UDP payload from a capture, with the capture time and both endpoints."""

    timestamp: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def internet_checksum(data: bytes) -> int:
    """The 16-bit ones' complement checksum of IP, UDP, TCP and ICMP (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# ---------------------------------------------------------------- writing


def udp_frame(payload: bytes, src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    """An Ethernet frame carrying ``payload`` in UDP over IPv4 or IPv6, checksums filled in."""
    v6 = ":" in src[0]
    if v6 != (":" in dst[0]):
        raise ValueError(f"source {src[0]} and destination {dst[0]} differ in address family")
    family = socket.AF_INET6 if v6 else socket.AF_INET
    s_ip, d_ip = socket.inet_pton(family, src[0]), socket.inet_pton(family, dst[0])
    udp_len = 8 + len(payload)
    if udp_len > 0xFFFF - (0 if v6 else 20):
        raise ValueError(f"payload of {len(payload)} bytes does not fit one UDP datagram")
    pseudo = s_ip + d_ip + (struct.pack("!IxxxB", udp_len, _UDP) if v6
                            else struct.pack("!xBH", _UDP, udp_len))
    udp = struct.pack("!HHHH", src[1], dst[1], udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", internet_checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    if v6:
        ip = struct.pack("!IHBB", 6 << 28, udp_len, _UDP, 64) + s_ip + d_ip
        ethertype = _ETH_IPV6
    else:
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, _UDP, 0,
                           s_ip, d_ip)
        ip = head[:10] + struct.pack("!H", internet_checksum(head)) + head[12:]
        ethertype = _ETH_IPV4
    return _WRITER_DST_MAC + _WRITER_SRC_MAC + struct.pack("!H", ethertype) + ip + udp


class PcapWriter:
    """Writes UDP datagrams to a classic pcap file (little-endian, microseconds, Ethernet).

    ``target`` is a path (opened, and closed by ``close``) or a binary stream (flushed, left
    open). Frames longer than ``snaplen`` are cut to it, their original length kept.
    """

    def __init__(self, target: str | os.PathLike[str] | BinaryIO, snaplen: int = 65535) -> None:
        if isinstance(target, str | os.PathLike):
            self._out: BinaryIO = open(target, "wb")  # noqa: SIM115 - closed by close()
            self._owned = True
        else:
            self._out, self._owned = target, False
        self.snaplen = snaplen
        self.count = 0
        self._out.write(struct.pack("<IHHiIII", _PCAP_MAGIC_US, 2, 4, 0, 0, snaplen,
                                    LINKTYPE_ETHERNET))

    def write(self, payload: bytes, timestamp: float,
              src: tuple[str, int] = ("127.0.0.1", 6343),
              dst: tuple[str, int] = ("127.0.0.1", 6343)) -> None:
        """Append one datagram captured at ``timestamp`` (seconds since the epoch)."""
        self.write_frame(udp_frame(bytes(payload), src, dst), timestamp)

    def write_frame(self, frame: bytes, timestamp: float) -> None:
        """Append one whole Ethernet frame as a pcap record."""
        sec, usec = divmod(round(timestamp * 1_000_000), 1_000_000)
        if not 0 <= sec <= 0xFFFFFFFF:
            raise ValueError(f"timestamp {timestamp} is outside the pcap range (1970-2106)")
        kept = frame[: self.snaplen]
        self._out.write(struct.pack("<IIII", sec, usec, len(kept), len(frame)))
        self._out.write(kept)
        self.count += 1

    def flush(self) -> None:
        """Hand what was written to the operating system (it survives the process)."""
        self._out.flush()

    def close(self) -> None:
        if self._owned:
            self._out.close()
        else:
            self._out.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- reading: file structure


class _Stream:
    """Exact reads from a binary stream, tracking the file offset for error messages."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.offset = 0

    def read(self, n: int, what: str, at_eof_ok: bool = False) -> bytes:
        """``n`` bytes, or ``b""`` at a clean end of file when ``at_eof_ok``."""
        chunks = []
        got = 0
        while got < n:
            chunk = self._stream.read(n - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        data = b"".join(chunks)
        if got < n and not (at_eof_ok and got == 0):
            raise PcapTruncatedError(f"file truncated: {what} needs {n} bytes, {got} left",
                            self.offset, what)
        self.offset += got
        return data


@dataclass
class _Interface:
    linktype: int
    snaplen: int
    units_per_second: int = 1_000_000
    offset_s: int = 0


_Frame = tuple[float, int, bytes]  # timestamp, link type, frame bytes


def _classic_frames(stream: _Stream, magic_raw: bytes) -> Iterator[_Frame]:
    magic_le = struct.unpack("<I", magic_raw)[0]
    order = "<" if magic_le in (_PCAP_MAGIC_US, _PCAP_MAGIC_NS) else ">"
    magic = struct.unpack(order + "I", magic_raw)[0]
    divisor = 1e9 if magic == _PCAP_MAGIC_NS else 1e6
    rest = stream.read(20, "pcap file header")
    major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack(order + "HHiIII", rest)
    if major != 2:
        raise PcapError(f"unsupported pcap version {major}", 4, "pcap file header")
    linktype = network & 0xFFFF  # the upper bits may carry the FCS length
    record = struct.Struct(order + "IIII")
    index = 0
    while True:
        at = stream.offset
        head = stream.read(16, f"pcap record {index} header", at_eof_ok=True)
        if not head:
            return
        sec, frac, incl, _orig = record.unpack(head)
        if incl > _MAX_RECORD:
            raise PcapError(f"implausible captured length {incl}", at, f"pcap record {index}")
        data = stream.read(incl, f"pcap record {index} data")
        yield sec + frac / divisor, linktype, data
        index += 1


def _tsresol(value: int) -> int:
    exponent = value & 0x7F
    return 1 << exponent if value & 0x80 else 10**exponent


def _pcapng_options(body: bytes, start: int, order: str) -> Iterator[tuple[int, bytes]]:
    off = start
    while off + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, off)
        if code == 0:
            return
        yield code, body[off + 4 : off + 4 + length]
        off += 4 + ((length + 3) & ~3)


def _pcapng_frames(stream: _Stream, first_type: bytes) -> Iterator[_Frame]:
    order = "<"
    interfaces: list[_Interface] = []
    pending_type: bytes | None = first_type
    index = 0
    while True:
        at = stream.offset - (4 if pending_type is not None else 0)
        raw_type = pending_type if pending_type is not None else stream.read(
            4, f"pcapng block {index} type", at_eof_ok=True)
        pending_type = None
        if not raw_type:
            return
        where = f"pcapng block {index}"
        if struct.unpack("<I", raw_type)[0] == _PCAPNG_SHB:
            raw_len, bom = stream.read(4, where + " length"), stream.read(4, where + " magic")
            if struct.unpack("<I", bom)[0] == _PCAPNG_BOM:
                order = "<"
            elif struct.unpack(">I", bom)[0] == _PCAPNG_BOM:
                order = ">"
            else:
                raise PcapError("bad pcapng byte-order magic", at + 8, where)
            total = struct.unpack(order + "I", raw_len)[0]
            body_len = total - 16
            if total < 28 or total % 4 or total > _MAX_RECORD:
                raise PcapError(f"bad section header length {total}", at + 4, where)
            body = bom + stream.read(body_len, where + " body")
            interfaces = []  # interface ids are per section
        else:
            total = struct.unpack(order + "I", stream.read(4, where + " length"))[0]
            if total < 12 or total % 4 or total > _MAX_RECORD:
                raise PcapError(f"bad block length {total}", at + 4, where)
            body = stream.read(total - 12, where + " body")
        trailer = struct.unpack(order + "I", stream.read(4, where + " trailing length"))[0]
        if trailer != total:
            raise PcapError(f"block length {total} does not match trailing length {trailer}",
                            at, where)
        block_type = struct.unpack(order + "I", raw_type)[0]
        try:
            frame = _pcapng_block(block_type, body, order, interfaces)
        except (struct.error, IndexError) as e:
            raise PcapError(f"malformed block of type {block_type:#x}: {e}", at, where) from None
        if frame is not None:
            yield frame
        index += 1


def _pcapng_block(block_type: int, body: bytes, order: str,
                  interfaces: list[_Interface]) -> _Frame | None:
    if block_type == 1:  # interface description
        linktype, _res, snaplen = struct.unpack_from(order + "HHI", body, 0)
        iface = _Interface(linktype, snaplen)
        for code, value in _pcapng_options(body, 8, order):
            if code == 9 and value:
                iface.units_per_second = _tsresol(value[0])
            elif code == 14 and len(value) == 8:
                iface.offset_s = struct.unpack(order + "q", value)[0]
        interfaces.append(iface)
        return None
    if block_type == 6:  # enhanced packet
        if_id, hi, lo, caplen, _orig = struct.unpack_from(order + "IIIII", body, 0)
        data = body[20 : 20 + caplen]
    elif block_type == 2:  # obsolete packet block
        if_id, _drops, hi, lo, caplen, _orig = struct.unpack_from(order + "HHIIII", body, 0)
        data = body[20 : 20 + caplen]
    elif block_type == 3:  # simple packet: interface 0, no timestamp
        (orig,) = struct.unpack_from(order + "I", body, 0)
        iface = interfaces[0]
        data = body[4 : 4 + min(orig, iface.snaplen or orig)]
        return 0.0, iface.linktype, data
    else:
        return None
    if if_id >= len(interfaces):
        raise IndexError(f"packet names interface {if_id}, {len(interfaces)} described")
    iface = interfaces[if_id]
    return iface.offset_s + ((hi << 32) | lo) / iface.units_per_second, iface.linktype, data


def _frames(stream: _Stream) -> Iterator[_Frame]:
    magic = stream.read(4, "file magic", at_eof_ok=True)
    if not magic:
        raise PcapError("empty input: not a pcap or pcapng file", 0, "file magic")
    if struct.unpack("<I", magic)[0] == _PCAPNG_SHB:
        return _pcapng_frames(stream, magic)
    if {struct.unpack("<I", magic)[0], struct.unpack(">I", magic)[0]} & {
        _PCAP_MAGIC_US, _PCAP_MAGIC_NS
    }:
        return _classic_frames(stream, magic)
    raise PcapError(f"not a pcap or pcapng file (magic {magic.hex()})", 0, "file magic")


# ---------------------------------------------------------------- reading: packet layers


def _ip_from_link(linktype: int, frame: bytes) -> tuple[int, int] | None:
    """(ethertype-like protocol, offset of the IP header) for a frame, or None."""
    if linktype == LINKTYPE_ETHERNET:
        off, proto = 14, int.from_bytes(frame[12:14], "big")
        while proto in _VLAN_TYPES and len(frame) >= off + 4:
            proto = int.from_bytes(frame[off + 2 : off + 4], "big")
            off += 4
        return proto, off
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        version = frame[0] >> 4 if frame else 0
        return (_ETH_IPV4 if version == 4 else _ETH_IPV6 if version == 6 else 0), 0
    if linktype == LINKTYPE_LINUX_SLL:
        return int.from_bytes(frame[14:16], "big"), 16
    if linktype == LINKTYPE_LINUX_SLL2:
        return int.from_bytes(frame[0:2], "big"), 20
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(frame) < 4:
            return None
        family = int.from_bytes(frame[:4], "big")
        if linktype == LINKTYPE_NULL and family > 0xFFFF:  # written in the capturer's order
            family = int.from_bytes(frame[:4], "little")
        proto = _ETH_IPV4 if family == 2 else _ETH_IPV6 if family in _AF_INET6_VALUES else 0
        return proto, 4
    return None


def _udp_from_ip(proto: int, frame: bytes, off: int) -> tuple[str, str, int] | None:
    """(source, destination, UDP header offset) of a UDP packet, else None."""
    if proto == _ETH_IPV4:
        if len(frame) < off + 20 or frame[off] >> 4 != 4:
            return None
        ihl = (frame[off] & 0x0F) * 4
        if ihl < 20 or frame[off + 9] != _UDP:
            return None
        if int.from_bytes(frame[off + 6 : off + 8], "big") & 0x1FFF:
            return None  # a later fragment: no UDP header
        src = socket.inet_ntop(socket.AF_INET, frame[off + 12 : off + 16])
        dst = socket.inet_ntop(socket.AF_INET, frame[off + 16 : off + 20])
        return src, dst, off + ihl
    if proto == _ETH_IPV6:
        if len(frame) < off + 40 or frame[off] >> 4 != 6:
            return None
        src = socket.inet_ntop(socket.AF_INET6, frame[off + 8 : off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, frame[off + 24 : off + 40])
        nxt, off = frame[off + 6], off + 40
        while nxt != _UDP:
            if len(frame) < off + 8:
                return None
            if nxt == 44:  # fragment header
                if int.from_bytes(frame[off + 2 : off + 4], "big") & 0xFFF8:
                    return None
                nxt, off = frame[off], off + 8
            elif nxt == 51:  # AH counts its length in 4-byte units
                nxt, off = frame[off], off + (frame[off + 1] + 2) * 4
            elif nxt in _IPV6_EXTENSIONS:
                nxt, off = frame[off], off + (frame[off + 1] + 1) * 8
            else:
                return None
        return src, dst, off
    return None


def _udp_datagram(timestamp: float, linktype: int, frame: bytes,
                  port: int | None) -> CapturedDatagram | None:
    link = _ip_from_link(linktype, frame)
    if link is None:
        return None
    found = _udp_from_ip(link[0], frame, link[1])
    if found is None:
        return None
    src, dst, off = found
    if len(frame) < off + 8:
        return None
    sport, dport, length = struct.unpack_from("!HHH", frame, off)
    if port is not None and port not in (sport, dport):
        return None
    stop = off + length if length >= 8 else len(frame)  # a first fragment keeps what it holds
    return CapturedDatagram(timestamp, (src, sport), (dst, dport), frame[off + 8 : stop])


def read_sflow(source: str | os.PathLike[str] | BinaryIO,
               port: int | None = 6343) -> Iterator[CapturedDatagram]:
    """Yield the UDP datagrams to or from ``port`` (every UDP datagram when ``None``).

    ``source`` is a path or a binary stream (a pipe works: nothing seeks). Raises
    ``PcapError`` when the file structure is unreadable; datagrams before the fault are
    yielded first.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            yield from read_sflow(f, port)
        return
    stream = _Stream(source)
    for timestamp, linktype, frame in _frames(stream):
        found = _udp_datagram(timestamp, linktype, frame, port)
        if found is not None:
            yield found
