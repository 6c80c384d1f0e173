"""Query vocabulary shared by REST, controllers and scenario assertions.

Agent lists (``ALL``, ``a;b``: addresses or agents' host names, ``TOPOLOGY``, ``EDGE`` and
``CORE`` once a topology is set), metric lists (``,`` or ``;`` separated, ``ALL`` for every
metric in ``dump``; a name may be prefixed by its data source: ``2.1.load_one``,
``12.ifinoctets``) with aggregations (``max:`` default, ``min:``,
``sum:``, ``avg:``, ``var:``, ``sdev:``, ``med:``, ``q1:``, ``q2:``, ``q3:``, ``iqr:``,
``any:``: the freshest value, ties going to the first agent and data source in text order, so
the answer does not depend on how data sources are spread over workers), string-metric filters (``{"vir_host_name": ["apache.*"]}``: each regex must match a
whole value, a leading ``*`` as ``.*``; alternatives for one key OR, different keys AND),
and the result shapes of
``metric``, ``dump`` and ``table``. ``var`` and ``sdev`` are population statistics;
quartiles use linear interpolation between the closest ranks (``statistics.quantiles``,
inclusive method). The engine supplies rows; these functions only shape them.
"""

from __future__ import annotations

import re
import socket
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .api import Filter

Value = float | int | str


class QueryError(ValueError):
    """A malformed query (bad aggregation, bad regex, bad sort); REST answers 400."""


@dataclass(frozen=True, slots=True)
class Row:
    """One data source's value of one metric."""

    agent: str
    data_source: str
    value: Value
    last_update_ms: int


def _quartile(q: int) -> Callable[[list[float]], float]:
    def f(v: list[float]) -> float:
        return v[0] if len(v) == 1 else statistics.quantiles(v, n=4, method="inclusive")[q - 1]
    return f


AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "max": max, "min": min, "sum": lambda v: float(sum(v)), "avg": statistics.fmean,
    "var": statistics.pvariance, "sdev": statistics.pstdev, "med": statistics.median,
    "q1": _quartile(1), "q2": _quartile(2), "q3": _quartile(3),
    "iqr": lambda v: _quartile(3)(v) - _quartile(1)(v), "any": lambda v: v[0],
}


TOPOLOGY_TOKENS = ("TOPOLOGY", "EDGE", "CORE")


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """A parsed agent list: addresses, host names and topology tokens (``ALL``: ``None``)."""

    addresses: frozenset[str]
    names: frozenset[str]
    tokens: frozenset[str]


def parse_agents(spec: str | Iterable[str] | None) -> AgentSpec | None:
    """``None`` for every agent (``ALL``), else what the list names."""
    if spec is None:
        return None
    parts = split_list(spec, ";")
    if not parts or "ALL" in parts:
        return None
    tokens = frozenset(p for p in parts if p in TOPOLOGY_TOKENS)
    addresses: set[str] = set()
    names: set[str] = set()
    for p in parts:
        if p not in tokens:
            (addresses if _is_address(p) else names).add(p)
    return AgentSpec(frozenset(addresses), frozenset(names), tokens)


def _is_address(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except OSError:
        return False
    return True


def split_list(spec: str | Iterable[str], *seps: str) -> list[str]:
    """The non-empty, stripped items of a list given as text (split on ``seps``) or items."""
    if isinstance(spec, str):
        for sep in seps[1:]:
            spec = spec.replace(sep, seps[0])
        items: Iterable[str] = spec.split(seps[0])
    else:
        items = spec
    return [t.strip() for t in items if t.strip()]


@dataclass(frozen=True)
class Scope:
    """The data sources a query covers: ``every`` one, or those of ``agents`` and those
    ``ports`` accepts (``(agent, data source)``: topology edge or core ports)."""

    every: bool = False
    agents: frozenset[str] = frozenset()
    ports: Callable[[str, str], bool] | None = None

    def covers(self, agent: str, data_source: str) -> bool:
        return self.every or agent in self.agents or (
            self.ports is not None and self.ports(agent, data_source))

    def covers_agent(self, agent: str) -> bool:
        """Whether some data source of ``agent`` may be covered."""
        return self.every or agent in self.agents or self.ports is not None


EVERYWHERE = Scope(every=True)

_DS_PREFIX = re.compile(r"(\d+(?:\.\d+)?)\.([A-Za-z_].*)")


@dataclass(frozen=True, slots=True)
class MetricRef:
    """One requested metric: the token as written (``metricName``), its aggregation, the
    metric name and, for ``2.1.load_one``, the data source it is limited to."""

    token: str
    agg: str
    name: str
    data_source: str | None = None


def parse_metric(token: str) -> MetricRef:
    """``"avg:2.1.load_one"`` -> MetricRef(token, "avg", "load_one", "2.1"); the aggregation
    defaults to max."""
    token = token.strip()
    agg, sep, name = token.partition(":")
    if not sep:
        agg, name = "max", token
    elif agg not in AGGREGATIONS:
        raise QueryError(f"unknown aggregation {agg!r} in {token!r}; use one of "
                         + ", ".join(AGGREGATIONS))
    if not name:
        raise QueryError(f"missing metric name in {token!r}")
    ds = _DS_PREFIX.fullmatch(name)
    if ds is not None:
        return MetricRef(token, agg, ds.group(2), ds.group(1))
    return MetricRef(token, agg, name)


def parse_metrics(spec: str | Iterable[str]) -> list[MetricRef]:
    """A metric list, ``,`` or ``;`` separated."""
    return [parse_metric(t) for t in split_list(spec, ",", ";")]




def compile_filter(flt: Filter | None) -> Callable[[Mapping[str, Value]], bool] | None:
    """A predicate over a data source's metrics, or ``None`` when there is nothing to check."""
    if not flt:
        return None
    compiled = [(k, [_pattern(p) for p in ([pats] if isinstance(pats, str) else pats)])
                for k, pats in flt.items()]

    def match(values: Mapping[str, Value]) -> bool:
        for key, pats in compiled:
            v = values.get(key)
            if v is None:
                return False
            text = str(v)
            if not any(p.fullmatch(text) for p in pats):
                return False
        return True

    return match


def _pattern(text: str) -> re.Pattern[str]:
    """A filter regex; sFlow-RT's documented ``*web.*`` (a leading ``*``) means ``.*web.*``."""
    try:
        return re.compile(text)
    except re.error as e:
        if text.startswith("*"):
            return _pattern("." + text)
        raise QueryError(f"bad filter regex {text!r}: {e}") from e


def metric_result(ref: MetricRef, rows: list[Row]) -> dict[str, object]:
    """One entry of ``/metric/{agents}/{metrics}/json``; ``metricName`` is the token as
    requested (``max:load_one`` stays ``max:load_one``)."""
    agg = ref.agg
    out: dict[str, object] = {"metricName": ref.token, "metricN": 0}
    usable = rows if agg == "any" else [r for r in rows if isinstance(r.value, int | float)]
    if not usable:
        return out
    ages = [r.last_update_ms for r in usable]
    out.update(metricN=len(usable), lastUpdateMin=min(ages), lastUpdateMax=max(ages))
    if agg in ("max", "min", "any"):
        if agg == "any":
            pick = min(usable, key=lambda r: (r.last_update_ms, r.agent, r.data_source))
        else:
            pick = (max if agg == "max" else min)(usable, key=lambda r: r.value)
        out.update(metricValue=pick.value, agent=pick.agent, dataSource=pick.data_source,
                   lastUpdate=pick.last_update_ms)
    else:
        out["metricValue"] = AGGREGATIONS[agg]([float(r.value) for r in usable])
    return out


def dump_entry(name: str, r: Row) -> dict[str, object]:
    return {"agent": r.agent, "dataSource": r.data_source, "metricName": name,
            "metricValue": r.value, "lastUpdate": r.last_update_ms}


@dataclass(frozen=True)
class TableSort:
    column: int
    descending: bool
    limit: int


def parse_table_columns(spec: str | Iterable[str]) -> tuple[list[str], TableSort | None]:
    """Columns of ``/table``; a ``sort:name:N`` token sorts by that column (N<0 descending)."""
    tokens = split_list(spec, ",", ";")
    cols: list[str] = []
    sort = None
    for t in tokens:
        if t.startswith("sort:"):
            _, name, *rest = t.split(":")
            try:
                n = int(rest[0]) if rest else -100
            except ValueError:
                raise QueryError(f"bad sort count in {t!r}") from None
            if not name:
                raise QueryError(f"missing sort column in {t!r}")
            if name not in cols:
                cols.append(name)
            sort = TableSort(cols.index(name), n < 0, abs(n))
        else:
            cols.append(t)
    return cols, sort


def sort_table(rows: list[list[dict[str, object]]], sort: TableSort | None) -> list[list[dict[str, object]]]:
    if sort is None:
        return rows

    def key(row: list[dict[str, object]]) -> tuple[int, object]:
        v = row[sort.column]["metricValue"]
        return (0, v) if isinstance(v, int | float) else (1, str(v))

    return sorted(rows, key=key, reverse=sort.descending)[: sort.limit]
