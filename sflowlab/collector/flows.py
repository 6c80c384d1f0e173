"""sFlow-RT flows: definitions, per-sample accounting, top flows, logged flows.

A flow definition (``FlowSpec``, the REST JSON shape) compiles once into a filter, key
getters and a value extractor (``filters.py``); a ``rate:`` definition without logging (the
usual kind) also into one generated loop with all of that inlined. A datagram's flow samples
go through each definition in one call (``FlowEngine.ingest_all``). Each flow sample is tested
against each definition once; a sample missing any key of a definition does not count for it.
The optional C accelerator ``_rates`` (``_rates.c``) runs that loop and the building of a
datagram's rows with exactly the same results; without it the Python code here runs.

Values, per (agent, data source, key), all scaled by each sample's own sampling rate ``r``:

- ``rate:<v>`` (the default prefix): an exponentially weighted per-second rate with time
  constant ``t``. Each entry stores the rate ``R`` and the time of its last update; a sample
  bringing quantity ``q`` (``bytes``: frame_length x r, ``frames``: r, a numeric key k: k x r)
  at time ``s`` makes ``R = R * exp(-(s - last)/t) + q/t``, and a read at ``now`` sees
  ``R * exp(-(now - last)/t)``. A steady stream of Q units/s converges to Q; one sample alone
  reads q/t at once, decaying with time constant t.
- ``avg:<k>``: the sampling-weighted mean of numeric key k, each sample weighted
  ``r * exp(-age/t)``.
- ``count:<k>``: the number of distinct values of key k seen in the last ``t`` seconds.
- ``min:<k>`` / ``max:<k>``: the extreme value of k since it was set, a value older than
  ``t`` being replaced by the next sample.

HTTP request records (0,2206) give the keys of ``codec.http_keys`` (``httphost``,
``httpurl``, ``httpstatus``, ``duration``, ``requests``...; ``value: requests`` is requests per
second). Every datagram that carries one has them decoded (``codec.http_keys.with_http``; a
switch's datagram costs only a scan for the record's tag), so what a flow counts never depends
on what other flows are defined: a transaction sample without a sampled header counts its
request and response bytes as ``bytes`` in every flow.

Memory: an entry silent for ``EXPIRE_T`` x t (rate decayed by e**-10) is dropped by ``tick``
(within a further quarter of that, as flows without logging are swept at that pace, in slices:
``expire_some``); each
(flow, data source) keeps at most ``max_keys`` entries, the smallest evicted first (a
``count:`` entry also bounds its distinct values to 2 x ``max_keys``).

Logged flows (``log: true``): a flow starts with its first sample and ends when silent for
``LOG_IDLE_T`` x t; at the end (or every ``activeTimeout`` seconds while active) a record is
logged (a ``FlowRecord``): flowID, name, flowKeys, value, start, end (ms), agent, dataSource. Its value is the
flow's total quantity for ``rate:`` (e.g. bytes), the current value for other prefixes. With
``flowStart: true`` the record is logged at the first sample instead (value: that sample's
quantity), once per flow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from types import ModuleType
from typing import Any

from .. import accel
from ..codec import data_source
from ..codec.fast import FlowSampleView
from .events import DEFAULT_CAPACITY, FlowRecord, LongPollLog
from .filters import (
    MAX_EXPRESSION_CHARS,
    CompiledFilter,
    CompiledKey,
    FilterError,
    compile_filter,
    compile_keys,
)
from .groups import GroupSet
from .lookups import Lookups
from .query import EVERYWHERE, Scope

_exp = math.exp
_rates = accel.load("sflowlab.collector._rates")  # the C rate loop, or None: Python's

EXPIRE_T = 10.0
LOG_IDLE_T = 5.0
DEFAULT_MAX_KEYS = 1000
PRUNE_SLACK = 1.25  # prune a table back to max_keys when it grows past max_keys * this
SWEEP_SLICE = 20_000
"""Entries looked at per ``expire_some`` call: the collector expires a pass slice by slice,
releasing its lock in between, so a pass over millions of entries (hundreds of milliseconds,
mostly freeing them) never stops ingest for long (socket buffers would overflow meanwhile)."""

_PREFIXES = ("rate", "avg", "count", "min", "max")
_NUMERIC_FROM_SAMPLE = {"bytes", "frames"}
_UNITS = {"bps": ("bytes", 8.0), "Bps": ("bytes", 1.0), "fps": ("frames", 1.0)}
"""Rate units sFlow-RT's apps use as values: bits, bytes and frames per second."""
AGG_MODES = ("max", "sum", "edge", "core")


def finite_number(value: Any, what: str) -> float:
    """A JSON number (or numeric string) as a float; ``ValueError`` naming ``what`` if not."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} must be a number, not {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{what} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, not {value!r}")
    return number


def _number(obj: Mapping[str, Any], name: str, low: float, high: float) -> float:
    return min(max(finite_number(obj[name], f"flow attribute {name!r}"), low), high)


def parse_value(value: str) -> tuple[str, str, float]:
    """``(prefix, base, scale)`` of a flow value such as ``bytes``, ``avg:ipbytes`` or ``bps``
    (``rate:bytes`` read x 8)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"flow value must be a non-empty string, not {value!r}")
    if value.strip() in _UNITS:
        base, scale = _UNITS[value.strip()]
        return "rate", base, scale
    prefix, _, base = value.strip().rpartition(":")
    prefix = prefix or "rate"
    if prefix not in _PREFIXES:
        raise ValueError(f"flow value prefix {prefix!r} is not one of {', '.join(_PREFIXES)}")
    if prefix == "count" or base not in _NUMERIC_FROM_SAMPLE:
        compile_keys(base, GroupSet())  # a key name: syntax check
    return prefix, base, 1.0


@dataclass
class FlowSpec:
    """One flow definition, as ``PUT /flow/{name}/json`` takes it."""

    keys: str = ""
    value: str = "bytes"
    filter: str = ""
    t: float = 2
    n: int = 5
    fs: str = ","
    log: bool = False
    flowStart: bool = False
    activeTimeout: float = 60
    dropped: bool = False  # analyse discarded-packet samples instead of packet samples
    values: list[str] = field(default_factory=list)
    """More values to compute per flow key; top flows carry them as ``values``, in order."""
    aggMode: str = "max"
    """How top-flow queries that do not say combine data sources (``AGG_MODES``)."""

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], check: bool = True) -> FlowSpec:
        """Validate a JSON definition; ``ValueError`` says what is wrong. Like sFlow-RT,
        ``t`` is clamped to 0.2-600 s and ``n`` to 5-20. ``check=False`` leaves the syntax
        of keys, value and filter to the caller's compile (``FlowEngine.compile``), for a
        definition about to be installed: it is compiled once."""
        if not isinstance(obj, Mapping):
            raise ValueError("a flow definition must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known - {"name"})
        if unknown:
            raise ValueError(f"unsupported flow attribute(s) {', '.join(unknown)}; supported:"
                             f" {', '.join(sorted(known))}")
        spec = cls()
        keys = obj.get("keys", "")
        if isinstance(keys, list | tuple) and all(isinstance(k, str) for k in keys):
            keys = ",".join(keys)
        if not isinstance(keys, str):
            raise ValueError(f"flow keys must be a comma list string, not {keys!r}")
        spec.keys = keys.strip()
        spec.value = obj.get("value", "bytes")
        spec.filter = obj.get("filter") or ""
        if not isinstance(spec.filter, str):
            raise ValueError(f"flow filter must be a string, not {spec.filter!r}")
        if "t" in obj:
            spec.t = _number(obj, "t", 0.2, 600)
        if "n" in obj:
            spec.n = int(_number(obj, "n", 5, 20))
        if "activeTimeout" in obj:
            spec.activeTimeout = _number(obj, "activeTimeout", 1, 86400)
        spec.fs = obj.get("fs", ",")
        if not isinstance(spec.fs, str) or not spec.fs:
            raise ValueError(f"flow fs must be a non-empty string, not {spec.fs!r}")
        for name in ("log", "flowStart", "dropped"):
            flag = obj.get(name, False)
            if not isinstance(flag, bool):
                raise ValueError(f"flow attribute {name!r} must be true or false, not {flag!r}")
            setattr(spec, name, flag)
        values = obj.get("values") or []
        if isinstance(values, str):
            values = [v for v in values.split(",") if v.strip()]
        if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"flow values must be a list of values, not {values!r}")
        spec.values = [v.strip() for v in values]
        size = sum(len(t) for t in (spec.keys, spec.filter, str(spec.value), *spec.values))
        if size > MAX_EXPRESSION_CHARS:
            raise ValueError(f"flow definition too large: {size} characters of keys, values "
                             f"and filter, at most {MAX_EXPRESSION_CHARS}")
        for v in spec.values:
            parse_value(v)
        spec.aggMode = obj.get("aggMode", "max")
        if spec.aggMode not in AGG_MODES:
            raise ValueError(f"flow aggMode {spec.aggMode!r} is not one of {', '.join(AGG_MODES)}")
        if check:
            _CompiledFlow("<check>", spec, GroupSet())  # keys, value and filter syntax
        return spec

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def companions(self) -> list[FlowSpec]:
        """One plain definition per extra value (same keys and filter, not logged)."""
        return [replace(self, value=v, values=[], log=False, flowStart=False)
                for v in self.values]


class UnknownFlowError(KeyError):
    """A query named a flow that is not defined (a KeyError whose text reads plainly)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown flow"


class _Entry:
    """One (agent, data source, key): value state plus the logged flow in progress.

    ``_rates.c`` makes entries without calling ``__init__``: it copies the slots of one entry
    made here (``last`` excepted), so every value set here but ``last`` must be immutable.
    """

    __slots__ = ("a", "b", "last", "log_start", "seen", "total")

    def __init__(self, now: float) -> None:
        self.a = 0.0  # rate, weighted sum (avg) or extreme (min/max)
        self.b = 0.0  # weight (avg); time the extreme was set (min/max)
        self.last = now
        self.log_start: float | None = None
        self.total = 0.0
        self.seen: dict[Any, float] | None = None  # count: value -> last seen


def _key_builder(compiled: list[CompiledKey], fs: str
                 ) -> Callable[[Mapping[str, Any]], str | None]:
    """The flow key of a sample's keys (None if a key is missing), built for speed."""
    getters = [k.get for k in compiled]
    if not getters:
        return lambda keys: ""
    if all(k.keys == {k.expr} for k in compiled):  # plain key names: read the dict directly
        names = [k.expr for k in compiled]
        if len(names) == 1:
            (name,) = names

            def plain(keys: Mapping[str, Any]) -> str | None:
                v = keys.get(name)
                return v if v.__class__ is str else None if v is None else str(v)
            return plain
        if len(names) == 2:
            n1, n2 = names

            def plain_two(keys: Mapping[str, Any]) -> str | None:
                a, b = keys.get(n1), keys.get(n2)
                if a is None or b is None:
                    return None
                return ((a if a.__class__ is str else str(a)) + fs
                        + (b if b.__class__ is str else str(b)))
            return plain_two
    if len(getters) == 1:
        (get,) = getters

        def one(keys: Mapping[str, Any]) -> str | None:
            v = get(keys)
            return v if v.__class__ is str else None if v is None else str(v)
        return one

    if len(getters) == 2:
        first, second = getters

        def two(keys: Mapping[str, Any]) -> str | None:
            a = first(keys)
            if a is None:
                return None
            b = second(keys)
            if b is None:
                return None
            return ((a if a.__class__ is str else str(a)) + fs
                    + (b if b.__class__ is str else str(b)))
        return two

    def many(keys: Mapping[str, Any]) -> str | None:
        parts = [get(keys) for get in getters]
        if None in parts:
            return None
        return fs.join([v if v.__class__ is str else str(v) for v in parts])
    return many


Row = tuple[tuple[str, str], Mapping[str, Any], Any, int, int]
"""One flow sample as flows read it: (agent, data source), keys, the sample, its frame length x
sampling rate, its sampling rate."""


def _rate_ingester(flow: _CompiledFlow) -> Callable[[list[Row], float, int], None]:
    """``flow``'s ingest of rows for ``rate:`` without logging, generated as one loop with
    the filter, the key expressions (plain key names read inline), the value and the entry
    update inlined: this runs per sample per definition."""
    env: dict[str, Any] = {"test": flow.test, "str": str, "exp": _exp, "Entry": _Entry,
                           "tables": flow.tables, "inv_t": flow.inv_t, "prune": flow._prune,
                           "PRUNE_SLACK": PRUNE_SLACK}
    body, parts = [], []
    for i, key in enumerate(flow.keys):
        if key.keys == {key.expr}:
            body.append(f"k{i} = keys.get({key.expr!r})")
        else:
            env[f"get{i}"] = key.get
            body.append(f"k{i} = get{i}(keys)")
        body += [f"if k{i} is None: continue",
                 f"if k{i}.__class__ is not str: k{i} = str(k{i})"]
        parts.append(f"k{i}")
    if flow.base == "bytes":
        quantity = "nbytes"
    elif flow.base == "frames":
        quantity = "rate"
    else:
        body += [f"x = keys.get({flow.base!r})", "if x is None or x.__class__ is str: continue"]
        quantity = "x * rate"
    flow_key = f" + {flow.spec.fs!r} + ".join(parts) if parts else "''"
    lines = [
        "def ingest(rows, now, max_keys):",
        "    limit = max_keys * PRUNE_SLACK",
        "    last_src = table = None",
        "    for src, keys, _, nbytes, rate in rows:",
        *(["        if not test(keys): continue"] if flow.test is not None else []),
        *(f"        {line}" for line in body),
        f"        flow_key = {flow_key}",
        "        if src is not last_src:",
        "            last_src, table = src, tables.get(src)",
        "            if table is None:",
        "                table = tables[src] = {}",
        "        entry = table.get(flow_key)",
        "        if entry is None:",
        "            entry = table[flow_key] = Entry(now)",
        f"            entry.a = {quantity} * inv_t",
        "            if len(table) > limit:",
        "                prune(src, table, now, max_keys, [], int)  # not logged: no records",
        "            continue",
        "        dt = now - entry.last",
        "        if dt > 0:",
        f"            entry.a = entry.a * exp(-dt * inv_t) + {quantity} * inv_t",
        "            entry.last = now",
        "        else:",
        f"            entry.a += {quantity} * inv_t",
    ]
    code = compile("\n".join(lines), f"<flow {flow.name}>", "exec")  # named for profiles
    exec(code, env)  # noqa: S102 - source built above from compiled keys only
    ingest: Callable[[list[Row], float, int], None] = env["ingest"]
    return ingest


def _c_rate_ingester(flow: _CompiledFlow, rates: ModuleType
                     ) -> Callable[[list[Row], float, int], None]:
    """The loop of ``_rate_ingester(flow)`` run by the C accelerator ``rates`` (the
    ``_rates`` extension): the same state bit for bit, the same calls of the filter, the key
    getters and prune, the same exceptions."""
    keys = tuple(key.expr if key.keys == {key.expr} else key.get for key in flow.keys)
    ingest: Callable[[list[Row], float, int], None] = rates.RateIngester(
        keys, flow.spec.fs, flow.base, flow.test, flow.tables, _Entry, flow.inv_t,
        flow._prune, PRUNE_SLACK)
    return ingest


class _CompiledFlow:
    """A FlowSpec compiled for ingest, plus its tables of entries per (agent, data source)."""

    def __init__(self, name: str, spec: FlowSpec, groups: GroupSet,
                 lookups: Lookups | None = None) -> None:
        self.name, self.spec = name, replace(spec)  # a copy: callers may reuse theirs
        if not (isinstance(spec.t, int | float) and spec.t > 0 and math.isfinite(spec.t)):
            raise ValueError(f"flow {name!r}: t must be a positive number of seconds")
        if not (isinstance(spec.n, int) and spec.n > 0):
            raise ValueError(f"flow {name!r}: n must be a positive integer")
        try:
            self.keys: list[CompiledKey] = compile_keys(spec.keys, groups, lookups)
            self.filter: CompiledFilter | None = (
                compile_filter(spec.filter, groups, lookups) if spec.filter.strip() else None)
        except FilterError as exc:
            raise ValueError(f"flow {name!r}: {exc}") from None
        self.prefix, self.base, self.scale = parse_value(spec.value)
        self.extras = [_CompiledFlow(name, extra, groups, lookups)
                       for extra in spec.companions()]
        self.refs = frozenset().union(*(k.keys for k in self.keys),
                                      self.filter.keys if self.filter else ())
        self.tables: dict[tuple[str, str], dict[str, _Entry]] = {}
        self.t = float(spec.t)
        self.inv_t = 1.0 / self.t
        self.next_sweep = -math.inf
        self._sweeping: list[tuple[str, str]] = []  # tables still to expire in this pass
        self.dropped, self.log = spec.dropped, spec.log
        self.test = self.filter.test if self.filter is not None else None
        self.key_of = _key_builder(self.keys, spec.fs)
        self._rates: Callable[[list[Row], float, int], None] | None = None
        if self.prefix == "rate" and not self.log:  # one loop: in C when the accelerator is built
            self._rates = _rate_ingester(self) if _rates is None else _c_rate_ingester(self, _rates)

    def ingest_rows(self, rows: list[Row], now: float, max_keys: int,
                    logged: list[FlowRecord], next_id: Callable[[], int]) -> None:
        """Account rows (all received at ``now``) of samples of this flow's kind (packet or
        discarded, ``FlowEngine.ingest_all`` splits them)."""
        if self._rates is not None:
            self._rates(rows, now, max_keys)
            return
        ingest = self.ingest
        for src, keys, sample, _, _ in rows:
            ingest(src, keys, sample, now, max_keys, logged, next_id)

    def ingest(self, src: tuple[str, str], keys: Mapping[str, Any], sample: Any, now: float,
               max_keys: int, logged: list[FlowRecord], next_id: Callable[[], int]) -> None:
        if sample.discarded != self.dropped:
            return
        test = self.test
        if test is not None and not test(keys):
            return
        flow_key = self.key_of(keys)
        if flow_key is None:
            return
        prefix, base = self.prefix, self.base
        if prefix == "rate":
            if base == "bytes":
                q = sample.frame_length * sample.sampling_rate
            elif base == "frames":
                q = sample.sampling_rate
            else:
                x = keys.get(base)
                if x is None or x.__class__ is str:
                    return
                q = x * sample.sampling_rate
        else:
            x = keys.get(base) if base != "bytes" else sample.frame_length
            if x is None or (prefix != "count" and x.__class__ is str):
                return
            q = 0
        table = self.tables.get(src)
        if table is None:
            table = self.tables[src] = {}
        entry = table.get(flow_key)
        if entry is None:
            entry = table[flow_key] = _Entry(now)
            if prefix == "min" or prefix == "max":
                entry.b = -math.inf  # no extreme yet
        dt = now - entry.last
        if prefix == "rate":
            if dt > 0:
                entry.a = entry.a * _exp(-dt * self.inv_t) + q * self.inv_t
                entry.last = now
            else:
                entry.a += q * self.inv_t
            entry.total += q
        else:
            self._update_other(entry, x, sample.sampling_rate, now, dt, max_keys)
        if len(table) > max_keys * PRUNE_SLACK:
            self._prune(src, table, now, max_keys, logged, next_id)
            if flow_key not in table:
                return
        if self.log and entry.log_start is None:
            entry.log_start = now
            entry.total = q
            if self.spec.flowStart:
                value = q * self.scale if prefix == "rate" else self.value(entry, now)
                logged.append(self._record(next_id(), src, flow_key, value, now, now))

    def _update_other(self, entry: _Entry, x: Any, rate: int, now: float, dt: float,
                      max_keys: int) -> None:
        """avg, count, min and max updates (rate is inlined in ``ingest``)."""
        prefix, t = self.prefix, self.t
        if prefix == "avg":
            decay = math.exp(-dt / t) if dt > 0 else 1.0
            entry.a = entry.a * decay + x * rate
            entry.b = entry.b * decay + rate
        elif prefix == "count":
            seen = entry.seen
            if seen is None:
                seen = entry.seen = {}
            seen[x] = now
            if len(seen) > 2 * max_keys:
                entry.seen = {v: s for v, s in seen.items() if now - s <= t}
        elif (prefix == "max") == (x >= entry.a) or now - entry.b > t:
            entry.a, entry.b = x, now
        if dt > 0:
            entry.last = now

    def _prune(self, src: tuple[str, str], table: dict[str, _Entry], now: float, max_keys: int,
               logged: list[FlowRecord], next_id: Callable[[], int]) -> None:
        ranked = sorted(table.items(), key=lambda kv: self.value(kv[1], now), reverse=True)
        for flow_key, entry in ranked[max_keys:]:
            self._end(src, flow_key, entry, logged, next_id)
            del table[flow_key]

    # ---------------------------------------------------------------- reading

    def value(self, entry: _Entry, now: float) -> float:
        prefix = self.prefix
        if prefix == "rate":
            dt = now - entry.last
            return (entry.a * math.exp(-dt / self.t) if dt > 0 else entry.a) * self.scale
        if prefix == "avg":
            return entry.a / entry.b if entry.b else 0.0
        if prefix == "count":
            return float(sum(1 for s in (entry.seen or {}).values() if now - s <= self.t))
        return float(entry.a)

    def rows(self, scope: Scope, now: float, ports: Callable[[str, str], bool] | None = None
             ) -> list[tuple[str, str, str, float]]:
        """(agent, data source, key, value) of the data sources in ``scope`` (and ``ports``)."""
        return [(agent, ds, key, self.value(entry, now))
                for (agent, ds), table in self.tables.items()
                if scope.covers(agent, ds) and (ports is None or ports(agent, ds))
                for key, entry in table.items()]

    # ---------------------------------------------------------------- logging and expiry

    def _record(self, flow_id: int, src: tuple[str, str], flow_key: str, value: float,
                start: float, end: float) -> FlowRecord:
        return FlowRecord(flow_id, self.name, flow_key, float(value), int(start * 1000),
                          int(end * 1000), src[0], src[1])

    def _end(self, src: tuple[str, str], flow_key: str, entry: _Entry,
             logged: list[FlowRecord], next_id: Callable[[], int]) -> None:
        """Close the logged flow in progress (a record unless logged at its start)."""
        if entry.log_start is None:
            return
        if not self.spec.flowStart:
            value = (entry.total * self.scale if self.prefix == "rate"
                     else self.value(entry, entry.last))
            logged.append(self._record(next_id(), src, flow_key, value, entry.log_start,
                                       entry.last))
        entry.log_start = None

    def sweep(self, now: float, logged: list[FlowRecord], next_id: Callable[[], int]) -> None:
        """Logged flows: end idle or long-active flows, drop expired entries and empty tables.
        Others: start a pass of expiry every EXPIRE_T x t / 4 seconds (``expire_some``)."""
        expire, idle = EXPIRE_T * self.t, LOG_IDLE_T * self.t
        if not self.log:
            if not self._sweeping and now >= self.next_sweep:
                self.next_sweep = now + expire / 4
                self._sweeping = list(self.tables)
                self._sweeping.reverse()  # popped from the end: oldest tables first
            return
        active_timeout, flow_start = self.spec.activeTimeout, self.spec.flowStart
        for src, table in list(self.tables.items()):
            for flow_key, entry in list(table.items()):
                silent = now - entry.last
                if entry.log_start is not None and (
                        silent > idle or (not flow_start
                                          and now - entry.log_start >= active_timeout)):
                    self._end(src, flow_key, entry, logged, next_id)
                if silent > expire:
                    del table[flow_key]
            if not table:
                del self.tables[src]

    def expire_some(self, now: float, budget: int) -> int:
        """Expire tables of the pass in progress until ``budget`` entries were looked at (or
        the pass ends); how many were."""
        expire = EXPIRE_T * self.t
        tables, pending, seen = self.tables, self._sweeping, 0
        while pending and seen < budget:
            src = pending.pop()
            table = tables.get(src)
            if table is None:
                continue
            seen += len(table)
            _expire_table(table, now, expire)
            if not table:
                del tables[src]
        return seen


def _aggregate(rows: list[tuple[str, str, str, float]], total: bool) -> dict[str, list[Any]]:
    """Per key: [combined value (sum if ``total``, else largest), largest value, its agent,
    its data source]."""
    best: dict[str, list[Any]] = {}
    for agent, ds, key, value in rows:
        row = best.get(key)
        if row is None:
            best[key] = [value, value, agent, ds]
            continue
        if value > row[1]:
            row[1:] = [value, agent, ds]
        row[0] = row[0] + value if total else row[1]
    return best


def _py_expire_table(table: dict[str, _Entry], now: float, limit: float) -> int:
    """Delete the entries silent for more than ``limit`` seconds; how many (``_rates.expire``
    in C)."""
    dead = [k for k, entry in table.items() if now - entry.last > limit]
    for flow_key in dead:
        del table[flow_key]
    return len(dead)


_expire_table: Callable[[dict[str, _Entry], float, float], int] = (
    _py_expire_table if _rates is None else _rates.expire)


def _py_sample_rows(agent: str, samples: Collection[Any], now: float,
                    key_names: dict[tuple[Any, int], tuple[str, ...]],
                    key_sets: dict[tuple[Any, int], float], with_rows: bool, needs_agent: bool,
                    data_source: Callable[[Any], str] = data_source
                    ) -> tuple[list[Row], list[Row]]:
    """One datagram's flow samples (all from ``agent`` at ``now``) as rows (packet samples)
    and dropped (discarded-packet samples), none unless ``with_rows``; each new key set
    (``stack`` and number of keys) noted in ``key_names`` and ``key_sets``. The C accelerator's
    ``sample_rows`` does the same."""
    rows: list[Row] = []
    dropped: list[Row] = []
    sources: dict[int, tuple[str, str]] = {}  # ifIndex data sources of this datagram
    stack, size = None, -1
    for sample in samples:
        keys = sample.keys()
        if keys.get("stack") is not stack or len(keys) != size:  # another key set
            stack, size = keys.get("stack"), len(keys)
            signature = (stack, size)
            if signature not in key_names:
                key_names[signature] = (*keys, "agent")
            key_sets[signature] = now
        if not with_rows:
            continue
        if needs_agent:
            keys = {**keys, "agent": agent}
        index = sample.source_id_index
        if sample.source_id_type == 0:
            src = sources.get(index)
            if src is None:
                src = sources[index] = (agent, str(index))
        else:
            src = (agent, data_source(sample))
        rate = sample.sampling_rate
        (dropped if sample.discarded else rows).append(
            (src, keys, sample, sample.frame_length * rate, rate))
    return rows, dropped


_sample_rows = _py_sample_rows if _rates is None else _rates.sample_rows
if _rates is not None:
    _rates.set_view(FlowSampleView)  # its samples' fields read by position in C


CompiledFlow = _CompiledFlow
"""A compiled flow definition (opaque outside this module)."""


class FlowEngine:
    """All flow definitions and their state; not thread-safe (the collector engine locks)."""

    def __init__(self, groups: GroupSet, max_keys: int = DEFAULT_MAX_KEYS,
                 log_capacity: int = DEFAULT_CAPACITY, lookups: Lookups | None = None) -> None:
        self.groups, self.lookups = groups, lookups or Lookups()
        self.max_keys = max_keys
        self._flows: dict[str, _CompiledFlow] = {}
        self._flow_list: tuple[_CompiledFlow, ...] = ()
        self._needs_agent = False
        self._logged: LongPollLog[FlowRecord] = LongPollLog(lambda r: r.flowID,
                                                                log_capacity)
        self._pending: list[FlowRecord] = []
        self._last_flow_id = 0
        self._key_sets: dict[tuple[Any, int], float] = {}
        self._key_names: dict[tuple[Any, int], tuple[str, ...]] = {}

    # ---------------------------------------------------------------- definitions

    def define(self, name: str, spec: FlowSpec) -> None:
        """Add or replace a flow; ``ValueError`` if the spec is bad. A changed definition
        restarts the flow's state, an identical one keeps it."""
        self.install(self.compile(name, spec))

    def compile(self, name: str, spec: FlowSpec) -> CompiledFlow:
        """A flow ready to ``install``; touches no state, so the caller need not lock (the
        compiled flow reads the groups when it runs, not now)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"bad flow name {name!r}")
        return _CompiledFlow(name, spec, self.groups, self.lookups)

    def install(self, flow: CompiledFlow) -> None:
        """Add or replace a compiled flow (see ``define``)."""
        current = self._flows.get(flow.name)
        if current is not None and current.spec == flow.spec:
            return  # an identical re-definition keeps the flow's state
        self._flows[flow.name] = flow
        self._changed()

    def remove(self, name: str) -> bool:
        found = self._flows.pop(name, None) is not None
        self._changed()
        return found

    def _changed(self) -> None:
        self._flow_list = tuple(f for main in self._flows.values() for f in (main, *main.extras))
        self._needs_agent = any("agent" in f.refs for f in self._flow_list)

    def specs(self) -> dict[str, FlowSpec]:
        return {name: replace(flow.spec) for name, flow in self._flows.items()}

    def names(self) -> Collection[str]:
        return self._flows.keys()

    def get(self, name: str) -> FlowSpec | None:
        flow = self._flows.get(name)
        return None if flow is None else replace(flow.spec)

    def _flow(self, name: str) -> _CompiledFlow:
        flow = self._flows.get(name)
        if flow is None:
            raise UnknownFlowError(f"no flow named {name!r}")
        return flow

    # ---------------------------------------------------------------- ingest and tick

    def _next_id(self) -> int:
        self._last_flow_id += 1
        return self._last_flow_id

    def ingest(self, agent: str, sample: Any, now: float) -> None:
        """Account one FlowSampleView from ``agent`` (an address string) at ``now``."""
        self.ingest_all(agent, (sample,), now)

    def ingest_all(self, agent: str, samples: Collection[Any], now: float) -> None:
        """Account FlowSampleViews all from ``agent`` at ``now`` (one datagram's)."""
        flows = self._flow_list
        rows, dropped = _sample_rows(agent, samples, now, self._key_names, self._key_sets,
                                     bool(flows), self._needs_agent, data_source)
        if not (rows or dropped):
            return
        pending = self._pending
        before = len(pending)
        for flow in flows:
            mine = dropped if flow.dropped else rows
            if mine:
                flow.ingest_rows(mine, now, self.max_keys, pending, self._next_id)
        if len(pending) > before:
            self._logged.append(pending[before:])

    def tick(self, now: float, *, expire: bool = True) -> list[FlowRecord]:
        """End and expire flows; the logged-flow records produced since the last tick. With
        ``expire=False`` the passes of expiry due are only started: the caller runs them
        slice by slice (``expire_some``)."""
        before = len(self._pending)
        for flow in self._flow_list:  # extra values' flows too
            flow.sweep(now, self._pending, self._next_id)
        if len(self._pending) > before:
            self._logged.append(self._pending[before:])
        produced, self._pending = self._pending, []
        if expire:
            while self.expire_some(now):
                pass
        return produced

    def expire_some(self, now: float, budget: int = SWEEP_SLICE) -> bool:
        """A slice of the expiry passes in progress (``budget`` entries looked at); True while
        some remain."""
        for flow in self._flow_list:
            if flow._sweeping:
                budget -= flow.expire_some(now, budget)
                if budget <= 0:
                    break
        return any(flow._sweeping for flow in self._flow_list)

    # ---------------------------------------------------------------- queries

    def agg_mode(self, name: str) -> str:
        """The ``aggMode`` flow ``name`` was defined with."""
        return self._flow(name).spec.aggMode

    def active_flows(self, scope: Scope | None, name: str, now: float, max_flows: int = 100,
                     min_value: float = 0.0, agg_mode: str = "max",
                     ports: Callable[[str, str], bool] | None = None) -> list[dict[str, Any]]:
        """Top flows ``[{key, value, agent, dataSource}]`` (and ``values`` when the flow has
        extra values). ``max``: one flow seen by several data sources counts once, at its
        largest value; ``sum``: values add up (agent and dataSource of the largest
        contributor); ``edge``: the sum over the data sources ``ports`` accepts (the
        engine's topology edge ports); ``core``: the largest on those ports (core ports)."""
        if agg_mode not in AGG_MODES:
            raise ValueError(f"aggMode {agg_mode!r} is not supported; use one of"
                             f" {', '.join(AGG_MODES)}")
        flow, scope = self._flow(name), scope or EVERYWHERE
        total = agg_mode in ("sum", "edge")
        best = _aggregate(flow.rows(scope, now, ports), total)
        top = sorted(((v[0], key, v[2], v[3]) for key, v in best.items() if v[0] >= min_value),
                     key=lambda r: (-r[0], r[1]))[:max(max_flows, 0)]
        out = [{"key": key, "value": value, "agent": agent, "dataSource": ds}
               for value, key, agent, ds in top]
        if flow.extras:
            extras = [_aggregate(extra.rows(scope, now, ports), total) for extra in flow.extras]
            for entry in out:
                entry["values"] = [e[entry["key"]][0] if entry["key"] in e else 0.0
                                   for e in extras]
        return out

    def flow_value(self, agent: str, name: str, key: str, now: float) -> float:
        """One flow's value at ``agent``: the largest over its data sources, 0 if unseen."""
        flow = self._flow(name)
        values = [flow.value(table[key], now) for (a, _), table in flow.tables.items()
                  if a == agent and key in table]
        return max(values, default=0.0)

    def flow_keys(self, now: float) -> dict[str, int]:
        """Flow key names seen in samples -> ms since last seen (``agent`` included)."""
        out: dict[str, int] = {}
        for signature, seen in self._key_sets.items():
            age = max(int((now - seen) * 1000), 0)
            for key in self._key_names[signature]:
                if key not in out or age < out[key]:
                    out[key] = age
        return out

    def dump(self, scope: Scope | None, name: str, now: float) -> list[dict[str, Any]]:
        """One row per data source: metricValue the largest flow's value, topKeys its top n."""
        flow = self._flow(name)
        out = []
        for (agent, ds), table in flow.tables.items():
            if scope is not None and not scope.covers(agent, ds):
                continue
            ranked = sorted(((flow.value(e, now), k, e.last) for k, e in table.items()),
                            key=lambda r: (-r[0], r[1]))[:flow.spec.n]
            if not ranked:
                continue
            out.append({
                "agent": agent, "dataSource": ds, "metricName": name,
                "metricValue": ranked[0][0],
                "lastUpdate": max(int((now - max(e.last for e in table.values())) * 1000), 0),
                "topKeys": [{"key": k, "value": v, "lastUpdate": max(int((now - s) * 1000), 0)}
                            for v, k, s in ranked],
            })
        return out

    def metric_values(self, name: str, now: float) -> list[tuple[str, str, float]]:
        """A keyless flow as a metric: ``(agent, dataSource, value)``; [] for anything else."""
        flow = self._flows.get(name)
        if flow is None or flow.keys:
            return []
        return [(agent, ds, value) for agent, ds, _, value in flow.rows(EVERYWHERE, now)]

    def flow_values(self, name: str, now: float) -> list[tuple[str, str, str, float]]:
        """Every tracked ``(agent, dataSource, key, value)`` of a flow; [] if undefined."""
        flow = self._flows.get(name)
        return [] if flow is None else flow.rows(EVERYWHERE, now)

    # ---------------------------------------------------------------- logged flows

    def logged(self, name: str | None = None, max_flows: int = 100, after_id: int = -1
               ) -> list[FlowRecord]:
        """Logged flow records newer than ``after_id``, newest first."""
        return self._logged.query(max_flows, after_id, of_flow(name))

    def last_logged_id(self) -> int:
        return self._logged.last_id()

    def wait_logged(self, after_id: int, timeout_s: float, name: str | None = None) -> bool:
        """Block until a record newer than ``after_id`` (of flow ``name`` if given) exists
        (True) or timeout (False). Call without holding the engine's lock: records arrive
        through ingest and tick."""
        return self._logged.wait(after_id, timeout_s, of_flow(name))


def of_flow(name: str | None) -> Callable[[FlowRecord], bool] | None:
    """A logged-record predicate selecting flow ``name`` (None: every record)."""
    return None if name is None else (lambda r: r.name == name)
