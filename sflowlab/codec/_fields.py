"""XDR field types used in structure declarations (``Annotated[int, U32]``).

A field type says how one field sits on the wire. Fixed-size types merge into precompiled
``struct.Struct`` runs; the others (strings, opaques, address unions, counted arrays, TLV
lists) are decoded by the compiler in ``_compile``. MAC padding lives here and only here.
"""

from __future__ import annotations

import socket
import uuid as _uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def mac_to_str(raw: bytes) -> str:
    """``b'\\x00\\x0c...'`` -> ``'00:0c:29:a1:b2:c3'``."""
    return raw.hex(":")


def mac_from_str(text: str) -> bytes:
    """``'00:0c:29:a1:b2:c3'`` (or without separators) -> 6 bytes."""
    raw = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"MAC address must have 6 bytes: {text!r}")
    return raw


def ipv4_to_str(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, raw)


def ipv4_from_str(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, text)


def ipv6_to_str(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


def ipv6_from_str(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def uuid_to_str(raw: bytes) -> str:
    """16 raw bytes -> ``str(uuid.UUID(bytes=raw))``, built from hex, which is cheaper
    (``bench/bench_decode.py`` times both)."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid_from_str(text: str) -> bytes:
    return _uuid.UUID(text).bytes


@dataclass(frozen=True)
class Fixed:
    """A fixed-size field: a ``struct`` format plus optional converters for richer values."""

    fmt: str
    size: int
    default: Any
    to_value: Callable[[Any], Any] | None = None
    from_value: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class String:
    """XDR ``string<max>``: u32 length, UTF-8 bytes, zero padding. Decoded to ``str``."""

    max: int = 0
    default: Any = ""


@dataclass(frozen=True)
class Opaque:
    """XDR ``opaque<max>``: u32 length, bytes, zero padding. Decoded to ``bytes``."""

    max: int = 0
    default: Any = b""


@dataclass(frozen=True)
class Address:
    """sFlow ``address`` union: u32 type (1 IPv4, 2 IPv6) then 4 or 16 bytes, as text."""

    default: Any = "0.0.0.0"


@dataclass(frozen=True)
class Array:
    """Counted array: u32 count then elements of a fixed type or a declared structure."""

    element: Any
    default: Any = ()


@dataclass(frozen=True)
class Tlv:
    """Counted list of ``(data_format, length, body)`` elements dispatched in a namespace."""

    namespace: str
    default: Any = ()


@dataclass(frozen=True)
class Tail:
    """Marks the first field of an optional trailing run (fields appended by a later spec).

    The decoder fills the run with ``None`` when the declared length stops before it; the
    encoder omits it when its first field is ``None`` (e.g. host_cpu's 68- and 80-byte forms).
    """


TAIL = Tail()

U32 = Fixed("I", 4, 0)
I32 = Fixed("i", 4, 0)
U64 = Fixed("Q", 8, 0)
F32 = Fixed("f", 4, 0.0)
MAC = Fixed("6s2x", 8, "00:00:00:00:00:00", mac_to_str, mac_from_str)
IPV4 = Fixed("4s", 4, "0.0.0.0", ipv4_to_str, ipv4_from_str)
IPV6 = Fixed("16s", 16, "::", ipv6_to_str, ipv6_from_str)
UUID = Fixed("16s", 16, "00000000-0000-0000-0000-000000000000", uuid_to_str, uuid_from_str)

FieldType = Fixed | String | Opaque | Address | Array | Tlv
