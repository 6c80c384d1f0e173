"""Container data-source indexes exactly as hsflowd assigns them.

hsflowd (``getContainer`` in mod_docker.c, ``assignVM_dsIndex`` in hsflowd.c) turns a container
ID into a 16-byte UUID (the first 32 hex digits), hashes it with 32-bit FNV-1a (``hashUUID`` in
util.c), and claims ``100000 + hash % 50000``, probing upward (wrapping inside 100000-149999)
when another container on the same agent holds that index. The index is released when the
container is removed, so a container keeps its index while it exists.

FNV-1a there runs over ``const char *``: on x86 ``char`` is signed, so bytes >= 0x80 are
sign-extended before the XOR. We reproduce that (hsflowd is built for x86_64 in practice).
"""

from __future__ import annotations

import uuid as _uuid
from dataclasses import dataclass, field

FIRST_INDEX = 100000
"""HSP_DEFAULT_LOGICAL_DSINDEX_START"""
LAST_INDEX = 149999
"""HSP_DEFAULT_APP_DSINDEX_START - 1"""
_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619


def container_uuid(container_id: str) -> bytes:
    """The 16 UUID bytes hsflowd derives from a container ID (its first 32 hex digits)."""
    digits = container_id.replace("-", "")[:32]
    if len(digits) != 32:
        raise ValueError(f"container id {container_id!r} has fewer than 32 hex digits")
    return bytes.fromhex(digits)


def uuid_text(raw: bytes) -> str:
    """The canonical text form of 16 UUID bytes (as ``host_descr`` carries them)."""
    return str(_uuid.UUID(bytes=raw))


def hash_uuid(raw: bytes) -> int:
    """hsflowd's ``hashUUID``: FNV-1a over 16 bytes read as signed chars."""
    h = _FNV_OFFSET
    for b in raw[:16]:
        h ^= b if b < 0x80 else b | 0xFFFFFF00  # sign extension of a negative char
        h = (h * _FNV_PRIME) & 0xFFFFFFFF
    return h


@dataclass
class DsIndexTable:
    """One agent's container index table (``vmsByDsIndex``): assign with probing, release."""

    first: int = FIRST_INDEX
    last: int = LAST_INDEX
    _owner: dict[int, bytes] = field(default_factory=dict)

    def assign(self, raw_uuid: bytes) -> int:
        """The index for this UUID: its own if held, else the preferred one or the next free."""
        span = self.last - self.first + 1
        if len(self._owner) >= span:
            raise RuntimeError("container index table is full")
        preferred = self.first + hash_uuid(raw_uuid) % span
        index = preferred
        while True:
            holder = self._owner.get(index)
            if holder is None:
                self._owner[index] = raw_uuid
                return index
            if holder == raw_uuid:
                return index
            index = self.first if index == self.last else index + 1

    def release(self, index: int) -> None:
        self._owner.pop(index, None)

    def __len__(self) -> int:
        return len(self._owner)
