"""Query vocabulary shared by REST, controllers and scenario assertions.

Agent lists (``ALL``, ``a;b``), metric tokens with aggregations (``max:`` default, ``min:``,
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
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

Value = float | int | str
ALL_TOKENS = frozenset({"ALL", "TOPOLOGY", "EDGE", "CORE"})


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


def parse_agents(spec: str | Iterable[str] | None) -> set[str] | None:
    """``None`` for every agent, else the set of addresses."""
    if spec is None:
        return None
    parts = spec.split(";") if isinstance(spec, str) else list(spec)
    parts = [p.strip() for p in parts if p.strip()]
    if not parts or any(p in ALL_TOKENS for p in parts):
        return None
    return set(parts)


def parse_metric(token: str) -> tuple[str, str]:
    """``"avg:load_one"`` -> ("avg", "load_one"); the aggregation defaults to max."""
    agg, sep, name = token.strip().partition(":")
    if not sep:
        return "max", agg
    if agg not in AGGREGATIONS:
        raise QueryError(f"unknown aggregation {agg!r} in {token!r}; use one of "
                         + ", ".join(AGGREGATIONS))
    if not name:
        raise QueryError(f"missing metric name in {token!r}")
    return agg, name


def parse_metrics(spec: str | Iterable[str]) -> list[tuple[str, str]]:
    tokens = spec.split(",") if isinstance(spec, str) else list(spec)
    return [parse_metric(t) for t in tokens if t.strip()]


Filter = Mapping[str, Iterable[str]]


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


def metric_result(name: str, agg: str, rows: list[Row]) -> dict[str, object]:
    """One entry of ``/metric/{agents}/{metrics}/json``."""
    out: dict[str, object] = {"metricName": name, "metricN": 0}
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
    tokens = [t.strip() for t in (spec.split(",") if isinstance(spec, str) else spec) if t.strip()]
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
