"""The collector engine: agent accounting, counter metrics, flows, groups, thresholds, events.

The whole in-process interface is ``ingest(data, source, received_at)`` and ``tick(now)``; the
same engine runs behind the UDP listener or fed by a scenario runner under a ``SimClock``.
Queries (``metric``, ``dump``, ``table``, ``active_flows``, ...) serve REST, controllers and
assertions alike. All shared state sits behind one re-entrant lock, held for one datagram or
one query at a time. ``tick`` returns the events and logged flows it produced
(:class:`TickResult`): the seam a controller runtime dispatches from.
"""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sflowlab.clock import Clock, SystemClock
from sflowlab.codec import DecodeError
from sflowlab.codec.fast import decode_for_collector

from .agents import AgentStats, SequenceTracker, agents_json, fresh_flow_samples, to_ms
from .events import Event, EventLog
from .flows import FlowEngine, FlowSpec
from .groups import GroupSet
from .logs import RateLimitedLog
from .metrics import MetricTable
from .query import (
    Filter,
    QueryError,
    Row,
    compile_filter,
    dump_entry,
    metric_result,
    parse_agents,
    parse_metrics,
    parse_table_columns,
    sort_table,
)
from .thresholds import ThresholdEngine, ThresholdSpec

Agents = str | Collection[str] | None

GC_THRESHOLDS = (20_000, 20, 20)
"""Cyclic GC thresholds for a process that ingests (the defaults are 700, 10, 10)."""


def collect_rarely() -> None:
    """Run the cyclic garbage collector less often, process-wide. Ingest makes next to no
    cyclic garbage, yet at the default thresholds the collector runs every 700 surviving
    objects (about one per flow sample: new flow entries) and each full collection walks every
    flow entry and data source: 5-10 % of ingest time on the bench capture, growing with the
    tables."""
    gc.set_threshold(*GC_THRESHOLDS)


@dataclass
class Totals:
    """Engine-wide counters (``/analyzer/json``)."""

    datagrams: int = 0
    bytes: int = 0
    parse_errors: int = 0
    duplicate_datagrams: int = 0
    bad_samples: int = 0
    flow_samples: int = 0
    counter_samples: int = 0
    discarded: int = 0
    no_agent_address: int = 0
    """Datagrams of address type 0 (no agent address), their agent keyed by UDP source."""
    flows_generated: int = 0
    events_generated: int = 0


@dataclass
class TickResult:
    """What one ``tick`` produced, for dispatch to controllers."""

    events: list[Event] = field(default_factory=list)
    flows: list[dict[str, Any]] = field(default_factory=list)


class Engine:
    """sFlow analytics fed datagram by datagram; see the module docstring."""

    def __init__(self, clock: Clock | None = None, *, metric_timeout_s: float = 60.0,
                 expire_intervals: float = 3.0) -> None:
        self.clock = clock or SystemClock()
        self.lock = threading.RLock()
        self.started = self.clock.now()
        self.totals = Totals()
        self.agents: dict[tuple[str, int], AgentStats] = {}
        self.parse_errors_by_source: dict[str, int] = {}
        self.metrics = MetricTable(metric_timeout_s, expire_intervals)
        self.groups = GroupSet()
        self.flows = FlowEngine(self.groups)
        self.thresholds = ThresholdEngine()
        self.events = EventLog()
        self.on_change: Callable[[], None] | None = None
        self._bad_log = RateLimitedLog()

    # ------------------------------------------------------------------ ingest and tick

    def ingest(self, data: bytes, source: tuple[str, int], received_at: float) -> bool:
        """Account and analyse one datagram; False if it could not be decoded."""
        with self.lock:
            totals = self.totals
            totals.datagrams += 1
            totals.bytes += len(data)
            try:
                dg = decode_for_collector(data)
            except DecodeError as e:
                totals.parse_errors += 1
                src = source[0]
                self.parse_errors_by_source[src] = self.parse_errors_by_source.get(src, 0) + 1
                known = self.agents.get(_header_agent(data))
                if known is not None:
                    known.parse_errors += 1
                self._bad_log.warn(received_at, "event=bad_datagram source=%s bytes=%d error=%r",
                                   src, len(data), str(e))
                return False
            addr = dg.agent_address
            if not addr:  # address type 0 ("unknown"): the agent is its UDP source
                addr = source[0]
                totals.no_agent_address += 1
            akey = (addr, dg.sub_agent_id)
            agent = self.agents.get(akey)
            if agent is None:
                agent = self.agents[akey] = AgentStats(addr, dg.sub_agent_id, received_at,
                                                       received_at)
            verdict = agent.datagram(dg.sequence_number, dg.uptime_ms, len(data), source[0],
                                     received_at)
            if dg.bad_samples:
                agent.bad_samples += dg.bad_samples
                totals.bad_samples += dg.bad_samples
            if verdict == "dup":
                totals.duplicate_datagrams += 1
                return True
            restart = verdict == "reset"
            samplers = agent.samplers
            counter_samples, flow_samples = dg.counter_samples, dg.flow_samples
            if counter_samples:
                update = self.metrics.update
                for cs in counter_samples:
                    ds_type, ds_index = cs.source_id_type, cs.source_id_index
                    key = ("counter", ds_type, ds_index)
                    tracker = samplers.get(key) or samplers.setdefault(key, SequenceTracker())
                    v = tracker.add(cs.sequence_number)
                    if v == "dup" or v == "ooo":
                        continue
                    update(addr, ds_type, ds_index, cs.records, dg.uptime_ms, received_at,
                           restart or v == "reset")
                agent.counter_samples += len(counter_samples)
                totals.counter_samples += len(counter_samples)
            if flow_samples:
                fresh = fresh_flow_samples(samplers, flow_samples)
                self.flows.ingest_all(addr, fresh, received_at)
                agent.flow_samples += len(flow_samples)
                totals.flow_samples += len(flow_samples)
            return True

    def tick(self, now: float) -> TickResult:
        """Advance flows and thresholds to ``now``; expire silent data sources."""
        with self.lock:
            flows = self.flows.tick(now, expire=False)
            events = self.thresholds.evaluate(now, self)
            if events:
                self.events.append(events)
            self.metrics.expire(now)
            self.totals.flows_generated += len(flows)
            self.totals.events_generated += len(events)
        more = True
        while more:  # flow expiry in slices, the lock free in between for the receivers
            with self.lock:
                more = self.flows.expire_some(now)
            if more:
                time.sleep(0)  # yield the GIL to a receiving thread waiting for the lock
        return TickResult(events, flows)

    def count_discarded(self, n: int = 1) -> None:
        """Datagrams the listener dropped before they reached the engine (queue full)."""
        with self.lock:
            self.totals.discarded += n

    # ------------------------------------------------------------------ metric queries

    def _now(self, now: float | None) -> float:
        return self.clock.now() if now is None else now

    def _rows(self, name: str, agents: set[str] | None, match: Any, now: float) -> list[Row]:
        rows = []
        for ds in self.metrics.select(agents):
            v = ds.values.get(name)
            if v is not None and (match is None or match(ds.values)):
                rows.append(Row(ds.agent, ds.name, v, to_ms(now - ds.last_update)))
        if name in self._keyless_flows():
            sources = self.metrics.sources
            for agent, dsn, value in self.flows.metric_values(name, now):
                if agents is not None and agent not in agents:
                    continue
                if match is not None:
                    source = sources.get((agent, dsn))
                    if source is None or not match(source.values):
                        continue
                rows.append(Row(agent, dsn, value, 0))
        return rows

    def _keyless_flows(self) -> set[str]:
        return {n for n, s in self.flows.specs().items() if not s.keys}

    def metric(self, agents: Agents, metrics: str | Collection[str], filter: Filter | None = None,
               now: float | None = None) -> list[dict[str, object]]:
        """sFlow-RT ``metric()``: one aggregated entry per requested metric."""
        return [metric_result(name, agg, rows)
                for agg, name, rows in self.metric_rows(agents, metrics, filter, now)]

    def metric_rows(self, agents: Agents, metrics: str | Collection[str],
                    filter: Filter | None = None, now: float | None = None
                    ) -> list[tuple[str, str, list[Row]]]:
        """(aggregation, metric, rows) per requested metric: what ``metric`` aggregates."""
        now = self._now(now)
        wanted, match, names = parse_agents(agents), compile_filter(filter), parse_metrics(metrics)
        with self.lock:
            return [(agg, name, self._rows(name, wanted, match, now)) for agg, name in names]

    def dump(self, agents: Agents, metrics: str | Collection[str], filter: Filter | None = None,
             now: float | None = None) -> list[dict[str, object]]:
        """sFlow-RT ``dump()``: one entry per data source per metric (keyed flows: top keys)."""
        now = self._now(now)
        wanted, match, names = parse_agents(agents), compile_filter(filter), parse_metrics(metrics)
        out: list[dict[str, object]] = []
        with self.lock:
            keyed = {n for n, s in self.flows.specs().items() if s.keys}
            for _, name in names:
                if name in keyed:
                    out.extend(self.flows.dump(wanted, name, now))
                else:
                    out.extend(dump_entry(name, r) for r in self._rows(name, wanted, match, now))
        return out

    def table(self, agents: Agents, metrics: str | Collection[str], filter: Filter | None = None,
              now: float | None = None) -> list[list[dict[str, object]]]:
        """sFlow-RT ``table()``: one row per data source having every column."""
        now = self._now(now)
        wanted, match = parse_agents(agents), compile_filter(filter)
        cols, sort = parse_table_columns(metrics)
        with self.lock:
            by_source: dict[tuple[str, str], dict[str, Row]] = {}
            for col in cols:
                for r in self._rows(col, wanted, match, now):
                    by_source.setdefault((r.agent, r.data_source), {})[col] = r
        rows = [[dump_entry(c, cells[c]) for c in cols]
                for cells in by_source.values() if len(cells) == len(cols)]
        return sort_table(rows, sort)

    def metric_names(self, now: float | None = None) -> dict[str, int]:
        """``/metrics/json``: metric name -> ms since last seen (keyless flows: 0)."""
        now = self._now(now)
        with self.lock:
            out = {m: to_ms(now - t) for m, t in self.metrics.last_seen().items()}
            out.update(dict.fromkeys(self._keyless_flows(), 0))
        return out

    def agent_metrics(self, agent: str, now: float | None = None) -> dict[str, object]:
        """``/metric/{agent}/json``: ``"<ds>.<metric>"`` -> latest value."""
        with self.lock:
            return {f"{ds.name}.{m}": v for ds in self.metrics.select({agent})
                    for m, v in ds.values.items()}

    def numeric_series(self, agents: Agents, names: Collection[str] | None,
                       now: float | None = None) -> list[tuple[str, str, str, float]]:
        """(metric, agent, data source, value) of numeric metrics, keyless flows included."""
        wanted = parse_agents(agents)
        with self.lock:
            out = [(m, ds.agent, ds.name, float(v)) for ds in self.metrics.select(wanted)
                   for m, v in ds.values.items()
                   if (names is None or m in names) and not isinstance(v, str | bool)]
            now = self._now(now)
            for flow in self._keyless_flows():
                if names is None or flow in names:
                    out.extend((flow, agent, ds, value)
                               for agent, ds, value in self.flows.metric_values(flow, now)
                               if wanted is None or agent in wanted)
        return out

    # ------------------------------------------------------------------ MetricSource

    def metric_values(self, metric: str, now: float,
                      filter: Mapping[str, list[str]] | None = None) -> list[tuple[str, str, float]]:
        with self.lock:
            rows = self._rows(metric, None, compile_filter(filter), now)
        return [(r.agent, r.data_source, float(r.value)) for r in rows
                if isinstance(r.value, int | float)]

    def flow_values(self, name: str, now: float) -> list[tuple[str, str, str, float]]:
        with self.lock:
            return self.flows.flow_values(name, now)

    # ------------------------------------------------------------------ flows

    def active_flows(self, agents: Agents, name: str, max_flows: int = 100, min_value: float = 0.0,
                     agg_mode: str = "max", now: float | None = None) -> list[dict[str, Any]]:
        now = self._now(now)
        wanted = parse_agents(agents)
        with self.lock:
            return self.flows.active_flows(wanted, name, now, max_flows, min_value, agg_mode)

    def flow_value(self, agent: str, name: str, key: str, now: float | None = None) -> float:
        now = self._now(now)
        with self.lock:
            return self.flows.flow_value(agent, name, key, now)

    def flow_keys(self, now: float | None = None) -> dict[str, int]:
        now = self._now(now)
        with self.lock:
            return self.flows.flow_keys(now)

    def logged_flows(self, name: str | None = None, max_flows: int = 100,
                     after_id: int = -1) -> list[dict[str, Any]]:
        """Completed flows of ``log: true`` definitions, newest first (``/flows/json``)."""
        with self.lock:
            return self.flows.logged(name, max_flows, after_id)

    def wait_logged(self, after_id: int, timeout_s: float) -> bool:
        """Long poll: True once a logged flow newer than ``after_id`` exists."""
        return self.flows.wait_logged(after_id, timeout_s)

    def query_events(self, threshold_id: str | None = None, max_events: int = 100,
                     after_id: int = -1) -> list[Event]:
        return self.events.query(threshold_id, max_events, after_id)

    def wait_events(self, after_id: int, timeout_s: float) -> bool:
        """Long poll: True once an event newer than ``after_id`` exists."""
        return self.events.wait(after_id, timeout_s)

    # ------------------------------------------------------------------ definitions

    def flow_specs(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {n: s.to_json() for n, s in self.flows.specs().items()}

    def threshold_specs(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {n: s.to_json() for n, s in self.thresholds.specs().items()}

    def group_specs(self) -> dict[str, list[str]]:
        with self.lock:
            return self.groups.all()

    def set_flow(self, name: str, spec: FlowSpec) -> None:
        with self.lock:
            self.flows.define(name, spec)
        self._changed()

    def remove_flow(self, name: str) -> bool:
        with self.lock:
            found = self.flows.remove(name)
        self._changed()
        return found

    def set_threshold(self, name: str, spec: ThresholdSpec) -> None:
        with self.lock:
            self.thresholds.set(name, spec)
        self._changed()

    def remove_threshold(self, name: str) -> bool:
        with self.lock:
            found = name in self.thresholds.specs()
            if found:
                self.thresholds.delete(name)
        self._changed()
        return found

    def set_group(self, name: str, cidrs: list[str]) -> None:
        with self.lock:
            self.groups.set(name, cidrs)
        self._changed()

    def set_groups(self, groups: dict[str, list[str]]) -> None:
        with self.lock:
            self.groups.set_all(groups)
        self._changed()

    def remove_group(self, name: str) -> bool:
        with self.lock:
            found = self.groups.get(name) is not None
            if found:
                self.groups.delete(name)
        self._changed()
        return found

    def export_state(self) -> dict[str, Any]:
        """Groups, flows and thresholds in the REST API's JSON shapes."""
        return {"groups": self.group_specs(), "flows": self.flow_specs(),
                "thresholds": self.threshold_specs()}

    def import_state(self, state: Mapping[str, Any]) -> None:
        """Load definitions (config file or state file); ``ValueError`` names the bad entry."""
        with self.lock:
            for kind, install in (("groups", self._install_group), ("flows", self._install_flow),
                                  ("thresholds", self._install_threshold)):
                for name, obj in (state.get(kind) or {}).items():
                    try:
                        install(name, obj)
                    except (ValueError, TypeError, KeyError) as e:
                        raise ValueError(f"{kind[:-1]} {name!r}: {e}") from e

    def _install_group(self, name: str, cidrs: Any) -> None:
        if not isinstance(cidrs, list):
            raise ValueError("a group is a list of CIDR strings")
        self.groups.set(name, [str(c) for c in cidrs])

    def _install_flow(self, name: str, obj: Any) -> None:
        self.flows.define(name, FlowSpec.from_json(dict(obj)))

    def _install_threshold(self, name: str, obj: Any) -> None:
        self.thresholds.set(name, ThresholdSpec.from_json(dict(obj)))

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # ------------------------------------------------------------------ statistics

    def agents_json(self, now: float | None = None) -> dict[str, dict[str, object]]:
        now = self._now(now)
        with self.lock:
            return agents_json(list(self.agents.values()), now)

    def analyzer_json(self, now: float | None = None) -> dict[str, object]:
        now = self._now(now)
        with self.lock:
            t = self.totals
            return {
                "uptime": to_ms(now - self.started),
                "sFlowAgents": len({a for a, _ in self.agents}),
                "sFlowDatagramsReceived": t.datagrams,
                "sFlowBytesReceived": t.bytes,
                "sFlowParseErrors": t.parse_errors,
                "sFlowDatagramsDiscarded": t.discarded,
                "sFlowDatagramsDuplicates": t.duplicate_datagrams,
                "sFlowDatagramsNoAgentAddress": t.no_agent_address,
                "sFlowBadSamples": t.bad_samples,
                "sFlowFlowSamples": t.flow_samples,
                "sFlowCounterSamples": t.counter_samples,
                "sFlowDataSources": len(self.metrics.sources),
                "sFlowDataSourcesExpired": self.metrics.expired,
                "sFlowDataSourcesStopped": self.metrics.stopped,
                "flowsGenerated": t.flows_generated,
                "eventsGenerated": t.events_generated,
                "parseErrorsBySource": dict(self.parse_errors_by_source),
            }


def _header_agent(data: bytes) -> tuple[str, int]:
    """The (agent, sub-agent) a datagram's header names, as far as it can be read."""
    try:
        if data[4:8] == b"\0\0\0\x01":
            return socket.inet_ntoa(data[8:12]), int.from_bytes(data[12:16])
        if data[4:8] == b"\0\0\0\x02":
            return socket.inet_ntop(socket.AF_INET6, data[8:24]), int.from_bytes(data[24:28])
    except (OSError, ValueError):
        pass
    return "", -1


__all__ = ["Engine", "QueryError", "TickResult", "Totals", "collect_rarely"]
