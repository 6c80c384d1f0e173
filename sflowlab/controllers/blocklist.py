"""Address blocklists (Emerging Threats, Spamhaus DROP...): fetch, parse, refresh.

Format: one IPv4 or IPv6 address or CIDR per line; ``#`` starts a comment (whole line or
trailing), as does ``;`` (Spamhaus writes ``1.10.16.0/20 ; SBL256894``); blank lines are
skipped; anything after the first field is ignored. A line that is not an address or CIDR is
counted as invalid (the first few are kept for the log) and skipped: one bad line never loses
the list. A text whose every entry is invalid (an HTML error page served with 200) is refused
as a whole. Parsing validates with ``socket.inet_pton`` only, so 300,000 lines take well
under a second (``bench/bench_blocklist.py``).

``Blocklists`` keeps the last good list of each source (a path, ``file://`` or ``http(s)://``
URL): a source that fails to load keeps its previous entries, and the group is the union of
all sources, in order, without duplicates.
"""

from __future__ import annotations

import logging
import socket
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BlocklistError", "Blocklists", "ParsedBlocklist", "fetch", "parse_blocklist"]

_V4, _V6 = socket.AF_INET, socket.AF_INET6
_EXAMPLES = 5  # invalid lines kept for the log
_SCHEMES = ("file://", "http://", "https://")


class BlocklistError(Exception):
    """A source could not be read or held no usable entry."""


@dataclass
class ParsedBlocklist:
    cidrs: list[str]
    invalid: int = 0
    examples: list[str] = field(default_factory=list)  # "line N: text" of the first invalid


def _valid(entry: str, pton: Any = socket.inet_pton) -> bool:
    address, slash, length = entry.partition("/")
    family = _V6 if ":" in address else _V4
    try:
        pton(family, address)
    except OSError:
        return False
    return not slash or (length.isdigit() and int(length) <= (128 if family == _V6 else 32))


def parse_blocklist(text: str) -> ParsedBlocklist:
    """Entries of a blocklist text (duplicates dropped, order kept) and its invalid lines."""
    cidrs: dict[str, None] = {}
    invalid, examples = 0, list[str]()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        entry = line.split(None, 1)[0]
        if _valid(entry):
            cidrs[entry] = None
        else:
            invalid += 1
            if len(examples) < _EXAMPLES:
                examples.append(f"line {number}: {raw.strip()[:80]!r}")
    return ParsedBlocklist(list(cidrs), invalid, examples)


def fetch(source: str, timeout_s: float = 30.0) -> str:
    """The text of a path or a ``file://``/``http://``/``https://`` URL; ``BlocklistError``."""
    try:
        if "://" not in source:
            return Path(source).read_text(encoding="utf-8", errors="replace")
        if not source.startswith(_SCHEMES):
            raise BlocklistError(f"cannot read {source}: use a path or a {'/'.join(_SCHEMES)} URL")
        with urllib.request.urlopen(source, timeout=timeout_s) as response:  # noqa: S310
            data: bytes = response.read()
    except (OSError, ValueError) as e:
        raise BlocklistError(f"cannot read {source}: {e}") from None
    return data.decode("utf-8", "replace")


@dataclass
class SourceState:
    """The last good list of one source and how its loads went."""

    source: str
    cidrs: list[str] = field(default_factory=list)
    loaded: bool = False
    invalid: int = 0
    refreshes: int = 0
    failures: int = 0
    last_error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "entries": len(self.cidrs), "loaded": self.loaded,
                "invalidLines": self.invalid, "refreshes": self.refreshes,
                "failures": self.failures, "lastError": self.last_error}


class Blocklists:
    """Several sources merged into one list; ``refresh`` reloads them all."""

    def __init__(self, sources: Iterable[str], log: logging.Logger,
                 timeout_s: float = 30.0) -> None:
        self.sources = [SourceState(s) for s in sources]
        self.log, self.timeout_s = log, timeout_s

    def refresh(self) -> bool:
        """Reload every source; True when the merged list changed. Failures keep the old."""
        before = self.cidrs()
        for state in self.sources:
            self._load(state)
        return self.cidrs() != before

    def _load(self, state: SourceState) -> None:
        try:
            text = fetch(state.source, self.timeout_s)
            parsed = parse_blocklist(text)
            if parsed.invalid and not parsed.cidrs:
                raise BlocklistError(f"{state.source}: no valid entry in {parsed.invalid} lines"
                                     f" ({'; '.join(parsed.examples)})")
        except BlocklistError as e:
            state.failures += 1
            state.last_error = str(e)
            self.log.warning("event=blocklist_failed source=%s kept=%d error=%r", state.source,
                             len(state.cidrs), str(e))
            return
        if parsed.invalid:
            self.log.warning("event=blocklist_invalid_lines source=%s invalid=%d first=%s",
                             state.source, parsed.invalid, "; ".join(parsed.examples))
        state.cidrs, state.invalid, state.loaded = parsed.cidrs, parsed.invalid, True
        state.refreshes += 1
        state.last_error = ""
        self.log.info("event=blocklist_loaded source=%s entries=%d invalid=%d", state.source,
                      len(parsed.cidrs), parsed.invalid)

    def cidrs(self) -> list[str]:
        if len(self.sources) == 1:
            return self.sources[0].cidrs
        return list(dict.fromkeys(c for s in self.sources for c in s.cidrs))

    def to_json(self) -> dict[str, Any]:
        return {"entries": len(self.cidrs()),
                "refreshes": sum(s.refreshes for s in self.sources),
                "failures": sum(s.failures for s in self.sources),
                "sources": [s.to_json() for s in self.sources]}
