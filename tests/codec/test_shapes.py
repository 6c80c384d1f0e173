"""Counter record lists decoded per learnt layout give exactly what decode_tlvs gives."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from sflowlab.codec import (
    DecodeError,
    HostAdapter,
    HostAdapters,
    HostCpu,
    HostDescr,
    HostParent,
    IfCounters,
    Raw,
    VirtNetIo,
    _compile,
    _shapes,
)
from sflowlab.codec._compile import decode_tlvs, encode_tlvs
from sflowlab.codec._shapes import ShapeCache

DESCRIPTIVE = (HostDescr.data_format, HostAdapters.data_format)


def record_list(records: tuple[Any, ...]) -> bytes:
    out = bytearray()
    encode_tlvs(out, records, "counter", "records")
    return bytes(out)


def fresh() -> ShapeCache:
    return ShapeCache({tag: {} for tag in DESCRIPTIVE})


def general(data: bytes) -> tuple[Any, ...]:
    return decode_tlvs(data, 0, len(data), "counter", "records", {tag: {} for tag in DESCRIPTIVE})[0]


def host(octets: int, name: str = "web.1", *, extra: bytes = b"") -> bytes:
    """A container's list: fixed, descriptive, unknown and tail-bearing records."""
    return record_list((
        VirtNetIo(octets, 2, 3, 4, 5, 6, 7, 8), HostDescr(name, machine_type=3),
        HostAdapters((HostAdapter(1, ("02:42:ac:11:00:02",)),)), HostParent(2, 1),
        Raw(4321, b"abcd"), HostCpu(load_one=0.5, proc_run=octets & 0xFFFF), IfCounters(octets & 0xFFFF),
    )) + extra


def test_a_layout_is_compiled_the_second_time_and_decodes_the_same() -> None:
    cache = fresh()
    first = host(1)
    assert cache.decode(first, 0, len(first)) == general(first)
    (key,) = cache.shapes
    assert cache.shapes[key] == []  # seen once: nothing compiled yet
    assert cache.decode(first, 0, len(first)) == general(first)
    assert len(cache.shapes[key]) == 1
    shape = cache.shapes[key][0]
    for octets in (2, 2**40, 2**64 - 1):
        data = host(octets)
        assert shape(data, 0) == general(data)  # the compiled decoder answers, not the fallback
        assert cache.decode(data, 0, len(data)) == general(data)
    for n in range(2, 10):  # new descriptions of the same length: the same layout
        data = host(n, f"web.{n}")
        assert shape(data, 0) == general(data)
    assert len(cache.shapes[key]) == 1


def test_descriptive_records_come_from_the_shared_memo() -> None:
    cache = fresh()
    data = host(1)
    cache.decode(data, 0, len(data))
    cache.decode(data, 0, len(data))
    remembered = cache.decode(data, 0, len(data))[1]
    assert cache.decode(host(5), 0, len(data))[1] is remembered
    assert list(cache.memo[HostDescr.data_format].values()) == [remembered]


def test_offsets_inside_a_larger_buffer() -> None:
    cache = fresh()
    data = host(1)
    framed = b"\xee" * 12 + data + b"\xff" * 8
    for _ in range(3):
        assert cache.decode(framed, 12, 12 + len(data)) == general(data)
    assert len(next(iter(cache.shapes.values()))) == 1


@pytest.mark.parametrize("at", range(4, 160, 4))
def test_a_different_layout_behind_the_same_key_goes_the_general_way(at: int) -> None:
    """Same length and first 12 bytes, one later word changed: the compiled layout refuses it."""
    cache = fresh()
    data = host(1)
    cache.decode(data, 0, len(data))
    cache.decode(data, 0, len(data))
    for value in (0, 16, 2000, 0xFFFFFFFF):
        changed = data[:at] + struct.pack(">I", value) + data[at + 4 :]
        try:
            expected = general(changed)
        except DecodeError:
            with pytest.raises(DecodeError):
                cache.decode(changed, 0, len(changed))
            continue
        assert cache.decode(changed, 0, len(changed)) == expected


def test_a_record_that_fails_becomes_raw_and_is_counted_as_decode_tlvs_does() -> None:
    cache = fresh()
    good = record_list((HostDescr("a" * 8), VirtNetIo(1)))
    cache.decode(good, 0, len(good))
    cache.decode(good, 0, len(good))
    # the hostname's length word says 60 bytes: runs past the record, same layout otherwise
    bad = good[:12] + struct.pack(">I", 60) + good[16:]
    before = _compile.FAILURES[0]
    (descr, netio) = cache.decode(bad, 0, len(bad))
    assert type(descr) is Raw and descr.error and netio == VirtNetIo(1)
    assert _compile.FAILURES[0] == before + 1


def test_layouts_per_key_and_keys_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = fresh()
    # same key (length, count, first tag and length), six layouts: the later lengths differ
    lists = [record_list((VirtNetIo(1), HostDescr("x" * 4 * n), Raw(9, bytes(4 * (6 - n)))))
             for n in range(1, 7)]
    for data in lists * 3:
        assert cache.decode(data, 0, len(data)) == general(data)
    (shapes,) = cache.shapes.values()
    assert len(shapes) == _shapes.PER_KEY
    monkeypatch.setattr(_shapes, "LIMIT", 3)
    for n in range(10):
        data = host(1, "h" * (n * 4 + 1))
        assert cache.decode(data, 0, len(data)) == general(data)
        assert len(cache.shapes) <= 3


def test_an_empty_list_and_unknown_records_only() -> None:
    cache = fresh()
    for records in ((), (Raw(7, b""), Raw(8, b"12345678"))):
        data = record_list(records)
        for _ in range(3):
            assert cache.decode(data, 0, len(data)) == records


def test_compiling_stops_when_the_budget_is_spent_and_resumes_as_it_refills(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_shapes, "BUDGET", 2 * _shapes.COMPILE_COST)
    cache = fresh()
    layouts = [host(1, "h" * (n * 4 + 1)) for n in range(4)]  # four keys
    for data in layouts * 2:
        assert cache.decode(data, 0, len(data)) == general(data)
    assert sorted(len(s) for s in cache.shapes.values()) == [0, 0, 1, 1]  # two compiled
    waiting, decoded = layouts[2], 0
    while sorted(len(s) for s in cache.shapes.values()) != [0, 1, 1, 1]:
        assert decoded < _shapes.COMPILE_COST  # each list decoded earns one unit back
        assert cache.decode(waiting, 0, len(waiting)) == general(waiting)
        decoded += 1
    assert decoded > _shapes.COMPILE_COST // 2
