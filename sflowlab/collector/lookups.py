"""What the key functions ``country:``, ``asn:``, ``dns:`` and ``oui:`` look up.

- ``country:<key>`` / ``asn:<key>``: a MaxMind-format database (GeoLite2/GeoIP2 Country or
  City, and ASN), read with the ``maxminddb`` package (extra ``geo``), configured as
  ``[lookups] country = path``, ``asn = path``. The country is the ISO code (the registered
  country when the location has none), the ASN its number as text; an address the database
  does not hold is missing (the sample does not count for the flow). A key function whose
  database is not configured, or without ``maxminddb``, is refused when the flow is defined.
- ``dns:<key>``: the address's name by reverse DNS (the system resolver, so /etc/hosts too).
  Lookups never wait on the ingest path: a miss is queued for a resolver thread and the key
  is the address itself until the name is known; answers (a name, or the address when there
  is none) are cached ``dns_ttl_s`` seconds, at most ``dns_cache`` of them, and at most
  ``dns_pending`` lookups wait (more are dropped and counted, tried again on a later sample).
- ``oui:<key>``: the vendor of a MAC address (12 hex digits, as the mac keys are) from the
  IEEE's registry as Debian's ieee-data ships it (``/usr/share/ieee-data/oui.csv``, or
  ``[lookups] oui = path``), read once when first used; an unregistered prefix is missing.
"""

from __future__ import annotations

import contextlib
import csv
import queue
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_OUI = Path("/usr/share/ieee-data/oui.csv")


class LookupUnavailable(ValueError):
    """A key function whose data is not available (no database configured, reader missing)."""


@dataclass(frozen=True)
class LookupConfig:
    """Where the lookups' data comes from (picklable: shard workers each open their own)."""

    country: Path | None = None
    asn: Path | None = None
    oui: Path = DEFAULT_OUI
    dns_ttl_s: float = 300.0
    dns_cache: int = 10_000
    dns_pending: int = 1_000
    dns_threads: int = 2


class GeoDatabase:
    """One MaxMind-format database, opened on first use."""

    def __init__(self, path: Path, what: str) -> None:
        try:
            import maxminddb
        except ImportError as e:
            raise LookupUnavailable(f"{what} lookups need the maxminddb package: pip install "
                               "'sflowlab[geo]'") from e
        try:
            self._reader = maxminddb.open_database(str(path))
        except (OSError, ValueError) as e:
            raise LookupUnavailable(f"cannot open the {what} database {str(path)!r}: {e}") from e
        self._memo: dict[str, Any] = {}

    def get(self, address: str) -> Any:
        memo = self._memo
        if address in memo:
            return memo[address]
        try:
            record = self._reader.get(address)
        except ValueError:
            record = None
        if len(memo) >= 65_536:
            memo.clear()
        memo[address] = record
        return record

    def country(self, address: str) -> str | None:
        record = self.get(address)
        if not isinstance(record, dict):
            return None
        for part in ("country", "registered_country"):
            code = (record.get(part) or {}).get("iso_code")
            if code:
                return str(code)
        return None

    def asn(self, address: str) -> str | None:
        record = self.get(address)
        number = record.get("autonomous_system_number") if isinstance(record, dict) else None
        return None if number is None else str(number)


class ReverseDns:
    """Cached, bounded reverse lookups answered by resolver threads (see the module doc)."""

    def __init__(self, ttl_s: float, cache: int, pending: int, threads: int) -> None:
        self.ttl_s, self.size = ttl_s, cache
        self._cache: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._queued: set[str] = set()
        self._queue: queue.Queue[str] = queue.Queue(pending)
        self._lock = threading.Lock()
        self.resolved = self.dropped = 0
        self._threads = threads  # started with the first lookup (a check compiles none)

    def name(self, address: str) -> str:
        """The cached name of ``address``, else the address (a lookup is queued)."""
        with self._lock:
            hit = self._cache.get(address)
            if hit is not None and hit[1] > time.monotonic():
                return hit[0]
            if address in self._queued:
                return address
            try:
                self._queue.put_nowait(address)
            except queue.Full:
                self.dropped += 1
                return address
            self._queued.add(address)
            for i in range(self._threads):
                threading.Thread(target=self._run, name=f"dns-{i}", daemon=True).start()
            self._threads = 0
        return address

    def _run(self) -> None:
        while True:
            address = self._queue.get()
            name = address
            with contextlib.suppress(OSError, UnicodeError):
                name = socket.gethostbyaddr(address)[0]
            with self._lock:
                self._queued.discard(address)
                self._cache[address] = (name, time.monotonic() + self.ttl_s)
                self._cache.move_to_end(address)
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
                self.resolved += 1


def read_oui(path: Path) -> dict[str, str]:
    """The IEEE MA-L registry as ``{"00D0EF": "IGT", ...}`` from ieee-data's oui.csv."""
    table: dict[str, str] = {}
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            for row in csv.reader(f):
                if len(row) >= 3 and len(row[1]) == 6:
                    table[row[1].upper()] = row[2].strip()
    except OSError as e:
        raise LookupUnavailable(f"oui lookups need the IEEE registry {str(path)!r} (Debian package "
                           f"ieee-data, or [lookups] oui = path): {e}") from e
    if not table:
        raise LookupUnavailable(f"no OUI assignments in {str(path)!r}")
    return table


@dataclass
class Lookups:
    """The lookups of one engine, each opened when a key function first needs it."""

    config: LookupConfig = field(default_factory=LookupConfig)
    _geo: dict[str, GeoDatabase] = field(default_factory=dict)
    _dns: ReverseDns | None = None
    _oui: dict[str, str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def geo(self, what: str) -> GeoDatabase:
        """The ``country`` or ``asn`` database; ``LookupUnavailable`` if unavailable."""
        with self._lock:
            db = self._geo.get(what)
            if db is None:
                path = getattr(self.config, what)
                if path is None:
                    raise LookupUnavailable(f"key function {what!r} needs a MaxMind {what} "
                                       f"database: set [lookups] {what} = path")
                db = self._geo[what] = GeoDatabase(Path(path), what)
            return db

    def dns(self) -> ReverseDns:
        with self._lock:
            if self._dns is None:
                c = self.config
                self._dns = ReverseDns(c.dns_ttl_s, c.dns_cache, c.dns_pending, c.dns_threads)
            return self._dns

    def oui(self) -> dict[str, str]:
        with self._lock:
            if self._oui is None:
                self._oui = read_oui(Path(self.config.oui))
            return self._oui
