"""Address groups, two-level as in sFlow-RT: named group sets, each mapping group names to
CIDR lists (IPv4 and IPv6), with fast longest-prefix lookup.

``PUT /group/{set}/json {"external": ["0.0.0.0/0"], "private": ["10.0.0.0/8"]}`` defines the
set; the key function ``group:ipsource:{set}`` gives the name of the group in that set holding
the most specific prefix containing the address (``external`` or ``private``). A plain CIDR
list for a set is shorthand for one group named like the set (``group:ipsource:blocklist``
then gives ``blocklist`` for a listed address).

Each set compiles into a ``_PrefixTable``: per address family, one dict per prefix length
present, mapping the integer network address to a group name. A lookup shifts the address once
per length present, longest first, and probes a dict: a 300,000-prefix blocklist has at most
33 lengths (129 for IPv6), so a lookup costs a few microseconds; recent answers are
remembered, so a repeated address costs a dict probe. On an identical prefix in two groups of
a set, the group defined first wins. ``lookup`` searches one combined table of all sets (the
most specific prefix wins; on an identical prefix, the set first in name order), built lazily
after a change.

Host bits in a CIDR are ignored (``10.1.2.3/24`` is ``10.1.2.0/24``); an address without a
length is a host prefix (/32 or /128).
"""

from __future__ import annotations

import socket
from collections.abc import Collection, Mapping
from typing import Any

from .api import Groups

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


def normalise_set(name: str, spec: Any) -> Groups:
    """A group set as ``{group: [cidr, ...]}``: a plain list is one group named ``name``;
    ``ValueError`` naming the first bad group or CIDR."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"bad group set name {name!r}: expected a non-empty string")
    if isinstance(spec, list | tuple):
        spec = {name: spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"group set {name!r}: expected {{\"group\": [\"cidr\", ...]}} or a"
                         " list of CIDR strings")
    groups = {str(g): list(cidrs) if isinstance(cidrs, list | tuple) else cidrs
              for g, cidrs in spec.items()}
    for group, cidrs in groups.items():
        _parse_group(group, cidrs)
    return groups


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
    """Named group sets, as sFlow-RT's ``/group/json``; not thread-safe (the engine locks)."""

    def __init__(self) -> None:
        self._sets: dict[str, Groups] = {}
        self._tables: dict[str, _PrefixTable] = {}
        self._combined: _PrefixTable | None = None

    @staticmethod
    def _table(groups: Groups) -> _PrefixTable:
        return _PrefixTable.build([(prefix, group) for group, cidrs in groups.items()
                                   for prefix in _parse_group(group, cidrs)])

    def set(self, name: str, spec: Groups | list[str]) -> None:
        """Define or replace set ``name`` (``{group: cidrs}``, or a CIDR list: one group named
        ``name``); ``ValueError`` naming the first bad group or CIDR."""
        groups = normalise_set(name, spec)
        self._tables[name] = self._table(groups)
        self._sets[name] = groups
        self._combined = None

    def set_all(self, sets: Mapping[str, Any]) -> None:
        """Replace every set at once; nothing changes if any is bad."""
        if not isinstance(sets, Mapping):
            raise ValueError("groups must be an object mapping set names to groups")
        parsed = {name: normalise_set(name, spec) for name, spec in sets.items()}
        tables = {name: self._table(groups) for name, groups in parsed.items()}
        self._sets, self._tables, self._combined = parsed, tables, None

    def delete(self, name: str) -> None:
        """Remove set ``name`` (no error if absent)."""
        self._sets.pop(name, None)
        self._tables.pop(name, None)
        self._combined = None

    def get(self, name: str) -> Groups | None:
        groups = self._sets.get(name)
        return None if groups is None else {g: list(c) for g, c in groups.items()}

    def all(self) -> dict[str, Groups]:
        return {name: {g: list(c) for g, c in groups.items()}
                for name, groups in self._sets.items()}

    def names(self) -> Collection[str]:
        return self._sets.keys()

    def match(self, name: str, address: str) -> str | None:
        """The group of set ``name`` holding ``address`` (most specific prefix), else None
        (also for a bad address)."""
        table = self._tables.get(name)
        return None if table is None else table.find(address)

    def lookup(self, address: str) -> str | None:
        """The group holding the most specific prefix containing ``address`` in any set."""
        if self._combined is None:
            self._combined = _PrefixTable.build([
                (prefix, group) for name in sorted(self._sets)
                for group, cidrs in self._sets[name].items()
                for prefix in _parse_group(group, cidrs)])
        return self._combined.find(address)
