"""Hypothesis strategies derived from the codec's declarations.

Two families, both read each class's declared wire fields (``cls._sflow_fields``):

- ``objects(cls)``: values of the declared Python types (``decode(encode(x)) == x``).
- ``wire(cls)``: canonical bytes written here field by field from the field types, without
  the codec's encoder (``encode(decode(b)) == b``): big-endian integers, IEEE floats,
  zero padding, length words, TLV headers with exact body lengths.
"""

from __future__ import annotations

import math
import struct
from functools import cache
from typing import Any

from hypothesis import strategies as st

from sflowlab.codec import REGISTRY, Datagram, Raw
from sflowlab.codec._fields import (
    IPV4,
    IPV6,
    MAC,
    UUID,
    Address,
    Array,
    Fixed,
    Opaque,
    String,
    Tlv,
    ipv4_to_str,
    ipv6_to_str,
    mac_to_str,
    uuid_to_str,
)

MAX_ITEMS = 3  # elements per array or TLV list: enough to cover counts, small enough to run fast
UNBOUNDED = 40  # byte length drawn for string<> / opaque<> without a maximum

_INTS = {"I": (0, 2**32 - 1), "i": (-(2**31), 2**31 - 1), "Q": (0, 2**64 - 1)}
_FIXED_TEXT = {id(MAC): (6, mac_to_str), id(IPV4): (4, ipv4_to_str), id(IPV6): (16, ipv6_to_str),
               id(UUID): (16, uuid_to_str)}


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _u32(n: int) -> bytes:
    return struct.pack(">I", n)


@cache
def _unknown_tag(namespace: str) -> st.SearchStrategy[int]:
    """A ``data_format`` the namespace does not declare (enterprise 0 or a vendor's)."""
    return st.integers(0, 2**32 - 1).filter(lambda t: t not in REGISTRY[namespace])


# ---------------------------------------------------------------- objects


def _byte_len(ftype: String | Opaque) -> int:
    return ftype.max or UNBOUNDED


def _text(limit: int) -> st.SearchStrategy[str]:
    """Text whose UTF-8 form fits ``limit`` bytes: valid Unicode, or any bytes as surrogates."""
    valid = st.text(st.characters(blacklist_categories=("Cs",)), max_size=limit // 4)
    escaped = st.binary(max_size=limit).map(lambda b: b.decode("utf-8", "surrogateescape"))
    return st.one_of(valid, escaped)


@cache
def value_of(ftype: Any) -> st.SearchStrategy[Any]:
    """Values of one field type, as the decoder returns them."""
    if isinstance(ftype, Fixed):
        if ftype.fmt in _INTS:
            return st.integers(*_INTS[ftype.fmt])
        if ftype.fmt == "f":
            return st.floats(width=32, allow_nan=False, allow_infinity=False)
        size, to_text = _FIXED_TEXT[id(ftype)]
        return st.binary(min_size=size, max_size=size).map(to_text)
    if isinstance(ftype, String):
        return _text(_byte_len(ftype))
    if isinstance(ftype, Opaque):
        return st.binary(max_size=_byte_len(ftype))
    if isinstance(ftype, Address):
        return st.one_of(value_of(IPV4), value_of(IPV6), st.just(""))
    if isinstance(ftype, Array):
        elem = ftype.element
        inner = value_of(elem) if isinstance(elem, Fixed) else objects(elem)
        return st.lists(inner, max_size=MAX_ITEMS).map(tuple)
    if isinstance(ftype, Tlv):
        return st.lists(element_objects(ftype.namespace), max_size=MAX_ITEMS).map(tuple)
    raise TypeError(f"no strategy for {ftype!r}")


@cache
def objects(cls: type) -> st.SearchStrategy[Any]:
    """Instances of a declared structure; an optional tail is either all ``None`` or all set."""
    fields = cls._sflow_fields  # type: ignore[attr-defined]
    tail_at = next((i for i, f in enumerate(fields) if f.tail), len(fields))
    head = st.tuples(*(value_of(f.type) for f in fields[:tail_at]))
    tail_fields = fields[tail_at:]
    tail = st.one_of(
        st.just((None,) * len(tail_fields)), st.tuples(*(value_of(f.type) for f in tail_fields))
    ) if tail_fields else st.just(())
    return st.builds(lambda h, t: cls(*h, *t), head, tail)


@cache
def raw_objects(namespace: str) -> st.SearchStrategy[Raw]:
    """Unknown elements: a tag the namespace does not declare and a body of whole words."""
    body = st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))
    return st.builds(lambda tag, data: Raw(tag, data), _unknown_tag(namespace), body)


@cache
def element_objects(namespace: str) -> st.SearchStrategy[Any]:
    """Any element of a TLV list in ``namespace``: a declared one or an unknown ``Raw``."""
    classes = sorted(REGISTRY[namespace].values(), key=lambda c: c.data_format)
    return st.one_of(*(objects(c) for c in classes), raw_objects(namespace))


def datagrams() -> st.SearchStrategy[Datagram]:
    return objects(Datagram).map(lambda d: d._replace(version=5))


# ---------------------------------------------------------------- canonical bytes


def _finite_f32(raw: bytes) -> bool:
    return not math.isnan(struct.unpack(">f", raw)[0])


@cache
def wire_of(ftype: Any) -> st.SearchStrategy[bytes]:
    """Canonical bytes of one field type."""
    if isinstance(ftype, Fixed):
        if ftype.fmt == "f":  # NaN payloads do not survive a float round trip
            return st.binary(min_size=4, max_size=4).filter(_finite_f32)
        size = _FIXED_TEXT[id(ftype)][0] if id(ftype) in _FIXED_TEXT else ftype.size
        return st.binary(min_size=size, max_size=size).map(lambda b: b + _pad(len(b)))
    if isinstance(ftype, String | Opaque):
        return st.binary(max_size=_byte_len(ftype)).map(lambda b: _u32(len(b)) + b + _pad(len(b)))
    if isinstance(ftype, Address):
        return st.one_of(
            st.binary(min_size=4, max_size=4).map(lambda b: _u32(1) + b),
            st.binary(min_size=16, max_size=16).map(lambda b: _u32(2) + b),
            st.just(_u32(0)),
        )
    if isinstance(ftype, Array):
        elem = ftype.element
        inner = wire_of(elem) if isinstance(elem, Fixed) else wire(elem)
        return st.lists(inner, max_size=MAX_ITEMS).map(lambda xs: _u32(len(xs)) + b"".join(xs))
    if isinstance(ftype, Tlv):
        return st.lists(element_wire(ftype.namespace), max_size=MAX_ITEMS).map(
            lambda xs: _u32(len(xs)) + b"".join(xs)
        )
    raise TypeError(f"no strategy for {ftype!r}")


@cache
def wire(cls: type) -> st.SearchStrategy[bytes]:
    """Canonical bytes of a declared structure (with or without its optional tail)."""
    fields = cls._sflow_fields  # type: ignore[attr-defined]
    tail_at = next((i for i, f in enumerate(fields) if f.tail), len(fields))
    head = st.tuples(*(wire_of(f.type) for f in fields[:tail_at]))
    tail = st.one_of(st.just(()), st.tuples(*(wire_of(f.type) for f in fields[tail_at:])))
    return st.builds(lambda h, t: b"".join(h) + b"".join(t), head, tail)


def _tlv(tag: int, body: bytes) -> bytes:
    return struct.pack(">II", tag, len(body)) + body


@cache
def element_wire(namespace: str) -> st.SearchStrategy[bytes]:
    """One TLV element of ``namespace``: header plus a declared or an unknown body."""
    classes = sorted(REGISTRY[namespace].values(), key=lambda c: c.data_format)
    known = [wire(c).map(lambda b, tag=c.data_format: _tlv(tag, b)) for c in classes]
    unknown = st.builds(_tlv, _unknown_tag(namespace),
                        st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n,
                                                                      max_size=4 * n)))
    return st.one_of(*known, unknown)


def datagram_wire() -> st.SearchStrategy[bytes]:
    """A whole datagram: version 5 and the rest of the header from the Datagram declaration."""
    return wire(Datagram).map(lambda b: _u32(5) + b[4:])
