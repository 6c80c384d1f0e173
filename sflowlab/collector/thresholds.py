"""Thresholds on metrics and flows, evaluated on each engine tick into events.

A threshold fires when a value goes above ``value``; it then stays quiet for that
(agent, data source) until the value has stayed at or below the threshold for ``timeout``
seconds (sFlow-RT's "seconds of hysteresis before re-arming"; 0 re-arms as soon as it drops).

What is compared:

- ``byFlow: false``: each data source's value of ``metric``, from counters or a keyless flow
  (``MetricSource.metric_values``, with the threshold's string-metric ``filter``). When the
  metric is a keyed flow (no metric of that name, no filter), each data source's largest
  flow: only the first flow over the threshold raises an event, carrying its ``flowKey``.
- ``byFlow: true``: every flow key of flow ``metric``; each key fires (and re-arms) on its
  own. A ``filter`` on string metrics does not apply to flows and is refused.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .events import Event
from .filters import MAX_EXPRESSION_CHARS
from .flows import finite_number


class MetricSource(Protocol):
    """What thresholds read; the collector engine implements it."""

    def metric_values(self, metric: str, now: float,
                      filter: Mapping[str, list[str]] | None) -> list[tuple[str, str, float]]: ...

    def flow_values(self, name: str, now: float) -> list[tuple[str, str, str, float]]: ...


@dataclass
class ThresholdSpec:
    """One threshold, as ``PUT /threshold/{name}/json`` takes it."""

    metric: str
    value: float
    byFlow: bool = False
    timeout: float = 60
    filter: dict[str, list[str]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric.strip():
            raise ValueError(f"threshold metric must be a non-empty string, not {self.metric!r}")
        self.value = finite_number(self.value, "threshold value")
        self.timeout = finite_number(self.timeout, "threshold timeout")
        if self.timeout < 0:
            raise ValueError("threshold timeout must not be negative")
        if not isinstance(self.byFlow, bool):
            raise ValueError(f"threshold byFlow must be true or false, not {self.byFlow!r}")
        if self.filter is not None:
            if not isinstance(self.filter, Mapping):
                raise ValueError("threshold filter must be an object such as"
                                 ' {"vir_host_name": ["apache.*"]}')
            self.filter = {str(k): [v] if isinstance(v, str) else list(v)
                           for k, v in self.filter.items()}
            if not all(isinstance(v, str) for vs in self.filter.values() for v in vs):
                raise ValueError("threshold filter values must be strings or lists of strings")
            size = sum(len(k) + sum(map(len, vs)) for k, vs in self.filter.items())
            if size > MAX_EXPRESSION_CHARS:
                raise ValueError(f"threshold filter too large: {size} characters, at most "
                                 f"{MAX_EXPRESSION_CHARS}")
            if self.byFlow:
                raise ValueError("a threshold filter selects data sources by string metrics;"
                                 " it cannot apply to byFlow thresholds")

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ThresholdSpec:
        """Validate a JSON threshold; ``ValueError`` says what is wrong."""
        if not isinstance(obj, Mapping):
            raise ValueError("a threshold must be a JSON object")
        known = {"metric", "value", "byFlow", "timeout", "filter"}
        unknown = sorted(set(obj) - known - {"name"})
        if unknown:
            raise ValueError(f"unsupported threshold attribute(s) {', '.join(unknown)};"
                             f" supported: {', '.join(sorted(known))}")
        for required in ("metric", "value"):
            if required not in obj:
                raise ValueError(f"threshold needs {required!r}")
        return cls(**{k: obj[k] for k in known if k in obj and obj[k] is not None})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric, "value": self.value,
                               "byFlow": self.byFlow, "timeout": self.timeout}
        if self.filter is not None:
            out["filter"] = {k: list(v) for k, v in self.filter.items()}
        return out


class ThresholdEngine:
    """Threshold definitions and their armed/disarmed state; event ids increase from 1."""

    def __init__(self) -> None:
        self._specs: dict[str, ThresholdSpec] = {}
        self._disarmed: dict[str, dict[tuple[str, ...], float]] = {}  # key -> last exceeded
        self._last_event_id = 0

    def set(self, name: str, spec: ThresholdSpec) -> None:
        """Add or replace a threshold (a changed one starts armed)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"bad threshold name {name!r}")
        if self._specs.get(name) != spec:
            self._disarmed[name] = {}
        self._specs[name] = replace(spec)  # a copy: callers may reuse theirs

    def delete(self, name: str) -> None:
        self._specs.pop(name, None)
        self._disarmed.pop(name, None)

    def specs(self) -> dict[str, ThresholdSpec]:
        return {name: replace(spec) for name, spec in self._specs.items()}

    def names(self) -> Collection[str]:
        return self._specs.keys()

    def get(self, name: str) -> ThresholdSpec | None:
        spec = self._specs.get(name)
        return None if spec is None else replace(spec)

    def evaluate(self, now: float, metrics: MetricSource) -> list[Event]:
        """Compare every threshold with current values; the events that fired, in order."""
        events: list[Event] = []
        for name, spec in self._specs.items():
            disarmed = self._disarmed[name]
            exceeded = set()
            for agent, ds, key, value in sorted(_rows(spec, now, metrics)):
                if value <= spec.value:
                    continue
                state: tuple[str, ...] = (agent, ds, key) if spec.byFlow else (agent, ds)
                exceeded.add(state)
                if state not in disarmed:
                    self._last_event_id += 1
                    events.append(Event(self._last_event_id, int(now * 1000), name, spec.metric,
                                        spec.value, value, agent, ds, key or None))
                disarmed[state] = now
            for state, last in list(disarmed.items()):
                if state not in exceeded and now - last >= spec.timeout:
                    del disarmed[state]
        return events


def _rows(spec: ThresholdSpec, now: float, metrics: MetricSource
          ) -> list[tuple[str, str, str, float]]:
    if spec.byFlow:
        return metrics.flow_values(spec.metric, now)
    rows = [(agent, ds, "", value)
            for agent, ds, value in metrics.metric_values(spec.metric, now, spec.filter)]
    if rows or spec.filter is not None:
        return rows
    largest: dict[tuple[str, str], tuple[str, str, str, float]] = {}
    for agent, ds, key, value in metrics.flow_values(spec.metric, now):
        best = largest.get((agent, ds))
        if best is None or value > best[3]:
            largest[(agent, ds)] = (agent, ds, key, value)
    return list(largest.values())
