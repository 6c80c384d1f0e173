"""Property tests: every declared structure round-trips both ways; bad bytes raise DecodeError."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sflowlab.codec import (
    REGISTRY,
    AsPathSegment,
    Datagram,
    DecodeError,
    HostAdapter,
    decode_datagram,
    encode_datagram,
)

from .strategies import datagram_wire, datagrams, objects, wire

REGISTERED = sorted(
    (c for table in REGISTRY.values() for c in table.values()),
    key=lambda c: (c.namespace, c.data_format),
)
STRUCTURES = [*REGISTERED, AsPathSegment, HostAdapter, Datagram]
IDS = [getattr(c, "sflow_name", c.__name__) for c in STRUCTURES]

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WHOLE = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encode(obj: Any) -> bytes:
    out = bytearray()
    type(obj)._sflow_encode(obj, out)
    return bytes(out)


def decode(cls: type, data: bytes) -> Any:
    obj, end = cls._sflow_decode(data, 0, len(data))  # type: ignore[attr-defined]
    assert end == len(data)
    return obj


@pytest.mark.parametrize("cls", STRUCTURES, ids=IDS)
@FAST
@given(data=st.data())
def test_objects_survive_encode_then_decode(cls: type, data: st.DataObject) -> None:
    obj = data.draw(objects(cls))
    raw = encode(obj)
    assert len(raw) % 4 == 0
    assert decode(cls, raw) == obj


@pytest.mark.parametrize("cls", STRUCTURES, ids=IDS)
@FAST
@given(data=st.data())
def test_canonical_bytes_survive_decode_then_encode(cls: type, data: st.DataObject) -> None:
    raw = data.draw(wire(cls))
    assert encode(decode(cls, raw)) == raw


@pytest.mark.parametrize("cls", STRUCTURES, ids=IDS)
@FAST
@given(raw=st.binary(max_size=200))
def test_random_bytes_decode_or_raise_decode_error(cls: type, raw: bytes) -> None:
    try:
        cls._sflow_decode(raw, 0, len(raw))  # type: ignore[attr-defined]
    except DecodeError as e:
        assert e.offset <= len(raw)
        assert e.path


@pytest.mark.parametrize("cls", STRUCTURES, ids=IDS)
@FAST
@given(data=st.data())
def test_decoders_read_nothing_past_the_end_they_are_given(cls: type,
                                                           data: st.DataObject) -> None:
    raw = data.draw(wire(cls))
    cut = data.draw(st.integers(0, len(raw)))
    beyond = data.draw(st.binary(min_size=1, max_size=64))

    def outcome(buf: bytes) -> Any:
        try:
            return cls._sflow_decode(buf, 0, cut)  # type: ignore[attr-defined]
        except DecodeError as e:
            return (e.message, e.offset, e.path)

    assert outcome(raw[:cut] + beyond) == outcome(raw[:cut])


@WHOLE
@given(dg=datagrams())
def test_datagrams_survive_encode_then_decode(dg: Datagram) -> None:
    assert decode_datagram(encode_datagram(dg)) == dg


@WHOLE
@given(raw=datagram_wire())
def test_datagram_bytes_survive_decode_then_encode(raw: bytes) -> None:
    assert encode_datagram(decode_datagram(raw)) == raw


def _mutations() -> st.SearchStrategy[list[tuple[str, int, int]]]:
    op = st.sampled_from(["flip", "word", "cut", "insert"])
    return st.lists(st.tuples(op, st.integers(0, 10_000), st.integers(0, 2**32 - 1)),
                    min_size=1, max_size=4)


def _mutate(raw: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    b = bytearray(raw)
    for op, where, value in edits:
        at = where % (len(b) + 1)
        if op == "flip" and at < len(b):
            b[at] ^= 1 << (value % 8)
        elif op == "word" and at + 4 <= len(b):  # lengths and counts are whole words
            struct.pack_into(">I", b, at & ~3, value)
        elif op == "cut":
            del b[at:]
        else:
            b[at:at] = struct.pack(">I", value)
    return bytes(b)


@WHOLE
@given(raw=datagram_wire(), edits=_mutations())
def test_mutated_datagrams_decode_or_raise_decode_error(raw: bytes, edits: Any) -> None:
    bad = _mutate(raw, edits)
    try:
        dg = decode_datagram(bad)
    except DecodeError as e:
        assert e.path.startswith("datagram")
        assert -1 <= e.offset <= len(bad)
    else:
        assert isinstance(dg, Datagram)


@WHOLE
@given(raw=st.binary(max_size=300))
def test_random_datagrams_decode_or_raise_decode_error(raw: bytes) -> None:
    try:
        decode_datagram(b"\0\0\0\x05" + raw)
    except DecodeError as e:
        assert e.path.startswith("datagram")
