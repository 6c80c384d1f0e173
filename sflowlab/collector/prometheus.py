"""Prometheus text exposition of the metric table (``/prometheus/metrics/{agents}/{metrics}/txt``).

Numeric metrics only (strings have no Prometheus value), one sample per data source, labels
``agent`` and ``datasource``; ``ALL`` as the metric list exports every metric; query
parameters filter data sources by their string metrics as in metric queries
(``?host_name=web.*``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from .api import Filter
from .engine_api import EngineApi
from .query import split_list

_BAD = re.compile(r"[^a-zA-Z0-9_:]")


def metric_name(name: str) -> str:
    clean = _BAD.sub("_", name)
    return clean if not clean[:1].isdigit() else "_" + clean


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def analyzer_exposition(stats: Mapping[str, object]) -> str:
    """``/prometheus/analyzer/txt``: the numeric ``/analyzer/json`` statistics as gauges
    named ``sflow_<snake case>`` (``sFlowDatagramsReceived`` -> ``sflow_datagrams_received``,
    ``flowsGenerated`` -> ``sflow_flows_generated``)."""
    lines = []
    for key in sorted(stats):
        value = stats[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        name = "sflow_" + metric_name(_snake(key.removeprefix("sFlow")).lstrip("_"))
        lines += [f"# TYPE {name} gauge", f"{name} {_number(float(value))}"]
    return "\n".join(lines) + ("\n" if lines else "")


def _number(v: float) -> str:
    return "NaN" if math.isnan(v) else repr(v) if not math.isinf(v) else (
        "+Inf" if v > 0 else "-Inf")


def exposition(engine: EngineApi, agents: str, metrics: str,
               filter: Filter | None = None) -> str:
    """The text format for the selected agents, metrics and data sources."""
    names = None
    if metrics.strip() not in ("ALL", ""):
        names = set(split_list(metrics, ",", ";"))
    series: dict[str, list[str]] = {}
    for name, agent, ds, v in engine.numeric_series(agents, names, filter=filter):
        text = _number(v)
        series.setdefault(name, []).append(
            f'{metric_name(name)}{{agent="{_label(agent)}",datasource="{_label(ds)}"}} {text}')
    lines: list[str] = []
    for name in sorted(series):
        lines.append(f"# TYPE {metric_name(name)} gauge")
        lines.extend(sorted(series[name]))
    return "\n".join(lines) + ("\n" if lines else "")
