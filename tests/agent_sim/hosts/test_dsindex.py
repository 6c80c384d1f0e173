"""Container indexes as hsflowd computes them (golden values from the same C compiled on x86_64)."""

from __future__ import annotations

import pytest

from sflowlab.agent_sim.dsindex import (
    FIRST_INDEX,
    LAST_INDEX,
    DsIndexTable,
    container_uuid,
    hash_uuid,
    uuid_text,
)

# hash_fnv1a over the 16 UUID bytes as signed chars, compiled with gcc on x86_64:
# (container id, hashUUID, 100000 + hash % 50000)
GOLDEN = [
    ("2e781c0358b9940f7bc8399903b5af0d2e09f0b60714ef62f961280986467724", 193645325, 145325),
    ("0123456789abcdef0123456789abcdef", 2380134981, 134981),
    ("ffffffffffffffffffffffffffffffff", 2711842293, 142293),
    ("7f807f807f807f807f807f807f807f80", 4104319141, 119141),
]


@pytest.mark.parametrize(("cid", "hashed", "index"), GOLDEN)
def test_hash_and_preferred_index_match_hsflowd(cid: str, hashed: int, index: int) -> None:
    raw = container_uuid(cid)
    assert hash_uuid(raw) == hashed
    assert DsIndexTable().assign(raw) == index


def test_uuid_is_the_first_32_hex_digits() -> None:
    raw = container_uuid(GOLDEN[0][0])
    assert uuid_text(raw) == "2e781c03-58b9-940f-7bc8-399903b5af0d"
    with pytest.raises(ValueError, match="32 hex digits"):
        container_uuid("abc123")


def test_collisions_probe_upward_and_wrap_and_release_frees() -> None:
    table = DsIndexTable(first=10, last=12)
    a, b, c = (bytes([i]) * 16 for i in (1, 2, 3))
    preferred = 10 + hash_uuid(a) % 3
    table._owner[preferred] = b"x" * 16  # someone holds a's preferred index
    got = table.assign(a)
    assert got == (preferred + 1 if preferred < 12 else 10)
    assert table.assign(a) == got  # stable while it exists
    table.assign(b)
    with pytest.raises(RuntimeError, match="full"):
        table.assign(c)
    table.release(got)
    assert table.assign(c) in range(10, 13) and len(table) == 3


def test_default_range_is_hsflowds() -> None:
    assert (FIRST_INDEX, LAST_INDEX) == (100000, 149999)
