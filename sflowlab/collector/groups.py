"""Address groups: named CIDR lists (IPv4 and IPv6) with fast longest-prefix lookup.

Each group compiles into a ``_PrefixTable``: per address family, one dict per prefix length
present, mapping the integer network address to a value. A lookup shifts the address once per
length present, longest first, and probes a dict: a 300,000-prefix blocklist has at most 33
lengths (129 for IPv6), so a lookup costs a few microseconds; recent answers are remembered,
so a repeated address costs a dict probe. ``lookup`` searches one combined
table of all groups (the most specific prefix wins; on an identical prefix, the group first in
name order), built lazily after a change.

Host bits in a CIDR are ignored (``10.1.2.3/24`` is ``10.1.2.0/24``); an address without a
length is a host prefix (/32 or /128).
"""

from __future__ import annotations

import socket

_V4, _V6 = socket.AF_INET, socket.AF_INET6
_WIDTH: dict[int, int] = {_V4: 32, _V6: 128}
MEMO_SIZE = 65_536  # answers remembered per table (cleared when full)


def parse_address(address: str) -> tuple[int, int]:
    """``(family, integer)`` of an IPv4 or IPv6 address string; ``ValueError`` if malformed."""
    family = _V6 if ":" in address else _V4
    try:
        return family, int.from_bytes(socket.inet_pton(family, address), "big")
    except (OSError, TypeError) as exc:
        raise ValueError(f"not an IP address: {address!r}") from exc


def format_address(family: int, value: int) -> str:
    """The string form of an integer address of ``family``."""
    return socket.inet_ntop(family, value.to_bytes(_WIDTH[family] // 8, "big"))


def parse_cidr(cidr: str) -> tuple[int, int, int]:
    """``(family, prefix length, integer network)``; ``ValueError`` with the reason if malformed."""
    text = cidr.strip() if isinstance(cidr, str) else cidr
    if not isinstance(text, str) or not text:
        raise ValueError(f"bad CIDR {cidr!r}: expected a string like '10.0.0.0/8'")
    address, slash, length_text = text.partition("/")
    try:
        family, value = parse_address(address)
    except ValueError as exc:
        raise ValueError(f"bad CIDR {cidr!r}: {exc}") from None
    width = _WIDTH[family]
    if not slash:
        return family, width, value
    if not length_text.isdigit() or int(length_text) > width:
        raise ValueError(f"bad CIDR {cidr!r}: prefix length must be 0-{width}")
    length = int(length_text)
    return family, length, value >> (width - length) << (width - length)


def _parse_group(name: str, cidrs: list[str]) -> list[tuple[int, int, int]]:
    if not isinstance(name, str) or not name:
        raise ValueError(f"bad group name {name!r}: expected a non-empty string")
    if not isinstance(cidrs, list | tuple):
        raise ValueError(f"group {name!r}: expected a list of CIDR strings")
    try:
        return [parse_cidr(cidr) for cidr in cidrs]
    except ValueError as exc:
        raise ValueError(f"group {name!r}: {exc}") from None


class _PrefixTable:
    """Longest-prefix match over prefixes of both families, each mapped to a value."""

    __slots__ = ("_levels", "_memo")

    def __init__(self) -> None:
        self._levels: dict[int, list[tuple[int, dict[int, str]]]] = {_V4: [], _V6: []}
        self._memo: dict[str, str | None] = {}

    @classmethod
    def build(cls, entries: list[tuple[tuple[int, int, int], str]]) -> _PrefixTable:
        """A table of ``((family, length, network), value)``; the first value of a prefix wins."""
        by_length: dict[tuple[int, int], dict[int, str]] = {}
        for (family, length, network), value in entries:
            shift = _WIDTH[family] - length
            by_length.setdefault((family, shift), {}).setdefault(network >> shift, value)
        table = cls()
        for (family, shift), networks in sorted(by_length.items()):
            table._levels[family].append((shift, networks))  # smallest shift = longest first
        return table

    def lookup(self, family: int, value: int) -> str | None:
        for shift, networks in self._levels[family]:
            hit = networks.get(value >> shift)
            if hit is not None:
                return hit
        return None

    def find(self, address: str) -> str | None:
        """``lookup`` of an address string (None if malformed), remembering recent answers:
        traffic repeats its addresses, and a changed group builds a new table."""
        memo = self._memo
        if address in memo:
            return memo[address]
        try:
            result = self.lookup(*parse_address(address))
        except ValueError:
            result = None
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[address] = result
        return result


class GroupSet:
    """Named CIDR lists, as sFlow-RT's ``/groups/json``; not thread-safe (the engine locks)."""

    def __init__(self) -> None:
        self._groups: dict[str, list[str]] = {}
        self._prefixes: dict[str, list[tuple[int, int, int]]] = {}
        self._tables: dict[str, _PrefixTable] = {}
        self._combined: _PrefixTable | None = None

    def set(self, name: str, cidrs: list[str]) -> None:
        """Define or replace group ``name``; ``ValueError`` naming the first bad CIDR."""
        prefixes = _parse_group(name, cidrs)
        self._groups[name] = list(cidrs)
        self._prefixes[name] = prefixes
        self._tables[name] = _PrefixTable.build([(prefix, name) for prefix in prefixes])
        self._combined = None

    def set_all(self, groups: dict[str, list[str]]) -> None:
        """Replace every group at once; nothing changes if any group is bad."""
        if not isinstance(groups, dict):
            raise ValueError("groups must be an object mapping group names to CIDR lists")
        parsed = {name: _parse_group(name, cidrs) for name, cidrs in groups.items()}
        self._groups, self._prefixes, self._tables = {}, {}, {}
        for name, cidrs in groups.items():
            self._groups[name] = list(cidrs)
            self._prefixes[name] = parsed[name]
            self._tables[name] = _PrefixTable.build([(prefix, name) for prefix in parsed[name]])
        self._combined = None

    def delete(self, name: str) -> None:
        """Remove group ``name`` (no error if absent)."""
        self._groups.pop(name, None)
        self._prefixes.pop(name, None)
        self._tables.pop(name, None)
        self._combined = None

    def get(self, name: str) -> list[str] | None:
        cidrs = self._groups.get(name)
        return None if cidrs is None else list(cidrs)

    def all(self) -> dict[str, list[str]]:
        return {name: list(cidrs) for name, cidrs in self._groups.items()}

    def match(self, name: str, address: str) -> str | None:
        """``name`` if ``address`` lies in group ``name``, else None (also for a bad address)."""
        table = self._tables.get(name)
        if table is None:
            return None
        return name if table.find(address) is not None else None

    def lookup(self, address: str) -> str | None:
        """The group holding the most specific prefix containing ``address``, or None."""
        if self._combined is None:
            self._combined = _PrefixTable.build([
                (prefix, name) for name in sorted(self._prefixes)
                for prefix in self._prefixes[name]
            ])
        return self._combined.find(address)
