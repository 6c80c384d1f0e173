"""The engine's API: what the listener, the REST layer, the controller runtime, Prometheus and
the lab call, whether the analytics run in-process (:class:`~sflowlab.collector.engine.Engine`)
or sharded over worker processes (:class:`~sflowlab.collector.shards.ShardedEngine`).

Both classes implement :class:`EngineApi` (mypy checks them against it); callers are typed
with it, never with one class or the union of both. ``now`` arguments default to the engine's
clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .api import Agents, Event, Filter, FlowRecord, Groups
from .flows import FlowSpec
from .thresholds import ThresholdSpec


@dataclass
class TickResult:
    """What one ``tick`` produced, for dispatch to controllers."""

    events: list[Event] = field(default_factory=list)
    flows: list[FlowRecord] = field(default_factory=list)


class EngineApi(Protocol):
    """sFlow analytics fed datagram by datagram and queried as sFlow-RT is."""

    on_change: Callable[[], None] | None
    """Called after a definition changed (the daemon persists with ``take_changes``)."""

    # ingest and tick
    def ingest(self, data: bytes, source: tuple[str, int], received_at: float) -> bool: ...

    def tick(self, now: float) -> TickResult: ...

    def count_discarded(self, n: int = 1) -> None: ...

    # metric queries
    def metric(self, agents: Agents, metrics: str | Collection[str], filter: Filter | None = None,
               now: float | None = None) -> list[dict[str, object]]: ...

    def dump(self, agents: Agents, metrics: str | Collection[str], filter: Filter | None = None,
             now: float | None = None) -> list[dict[str, object]]: ...

    def table(self, agents: Agents, metrics: str | Collection[str], filter: Filter | None = None,
              now: float | None = None) -> list[list[dict[str, object]]]: ...

    def metric_names(self, now: float | None = None) -> dict[str, int]: ...

    def agent_metrics(self, agent: str, now: float | None = None) -> dict[str, object] | None: ...

    def numeric_series(self, agents: Agents, names: Collection[str] | None,
                       now: float | None = None, filter: Filter | None = None
                       ) -> list[tuple[str, str, str, float]]: ...

    def agents_json(self, now: float | None = None) -> dict[str, dict[str, object]]: ...

    def analyzer_json(self, now: float | None = None) -> dict[str, object]: ...

    # flows and events
    def active_flows(self, agents: Agents, name: str, max_flows: int = 100,
                     min_value: float = 0.0, agg_mode: str | None = None,
                     now: float | None = None) -> list[dict[str, Any]]: ...

    def flow_value(self, agent: str, name: str, key: str, now: float | None = None) -> float: ...

    def flow_keys(self, now: float | None = None) -> dict[str, int]: ...

    def logged_flows(self, name: str | None = None, max_flows: int = 100,
                     after_id: int = -1) -> list[FlowRecord]: ...

    def wait_logged(self, after_id: int, timeout_s: float, name: str | None = None) -> bool: ...

    def query_events(self, threshold_id: str | None = None, max_events: int = 100,
                     after_id: int = -1) -> list[Event]: ...

    def wait_events(self, after_id: int, timeout_s: float,
                    threshold_id: str | None = None) -> bool: ...

    # definitions
    def flow_specs(self) -> dict[str, dict[str, Any]]: ...

    def threshold_specs(self) -> dict[str, dict[str, Any]]: ...

    def group_specs(self) -> dict[str, Groups]: ...

    def set_flow(self, name: str, spec: FlowSpec) -> None: ...

    def remove_flow(self, name: str) -> bool: ...

    def set_threshold(self, name: str, spec: ThresholdSpec) -> None: ...

    def remove_threshold(self, name: str) -> bool: ...

    def set_group(self, name: str, groups: Groups | list[str]) -> None: ...

    def set_groups(self, sets: Mapping[str, Groups | list[str]]) -> None: ...

    def remove_group(self, name: str) -> bool: ...

    def topology_json(self) -> dict[str, Any]: ...

    def set_topology(self, obj: Any) -> None: ...

    def export_state(self) -> dict[str, Any]: ...

    def import_state(self, state: Mapping[str, Any]) -> None: ...

    def take_changes(self) -> dict[tuple[str, str], Any]: ...


__all__ = ["EngineApi", "TickResult"]
