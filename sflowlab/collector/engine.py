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
from dataclasses import dataclass
from typing import Any

from sflowlab.clock import Clock, SystemClock
from sflowlab.codec import DecodeError
from sflowlab.codec.fast import decode_for_collector
from sflowlab.codec.http_keys import with_http

from .agents import (
    AgentStats,
    SequenceTracker,
    TableLimits,
    agents_json,
    fresh_flow_samples,
    to_ms,
)
from .api import Agents, Filter, Groups
from .engine_api import TickResult
from .events import Event, EventLog, FlowRecord
from .flows import FlowEngine, FlowSpec
from .groups import GroupSet
from .logs import RateLimitedLog
from .lookups import LookupConfig, Lookups
from .metrics import MetricTable
from .query import (
    EVERYWHERE,
    MetricRef,
    QueryError,
    Row,
    Scope,
    compile_filter,
    dump_entry,
    metric_result,
    parse_agents,
    parse_metric,
    parse_metrics,
    parse_table_columns,
    sort_table,
    split_list,
)
from .thresholds import ThresholdEngine, ThresholdSpec
from .topology import Topology, TopologyView, require

MAX_DEFINITIONS = 1000
"""Flows, thresholds and groups, each: a new one beyond it is refused (ValueError: 400)."""

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
    shed: int = 0
    """Datagrams of new agents refused while ``max_agents`` were tracked."""
    error_sources_shed: int = 0
    agents_expired: int = 0
    flows_generated: int = 0
    events_generated: int = 0


class Engine:
    """sFlow analytics fed datagram by datagram; see the module docstring."""

    def __init__(self, clock: Clock | None = None, *, metric_timeout_s: float = 60.0,
                 expire_intervals: float = 3.0, limits: TableLimits | None = None,
                 lookups: LookupConfig | None = None) -> None:
        self.clock = clock or SystemClock()
        self.limits = limits or TableLimits()
        self.lock = threading.RLock()
        self.started = self.clock.now()
        self.totals = Totals()
        self.agents: dict[tuple[str, int], AgentStats] = {}
        self.parse_errors_by_source: dict[str, int] = {}
        self.metrics = MetricTable(metric_timeout_s, expire_intervals, self.limits.max_data_sources)
        self.groups = GroupSet()
        self.flows = FlowEngine(self.groups, lookups=Lookups(lookups or LookupConfig()))
        self.thresholds = ThresholdEngine()
        self.topology = Topology()
        self.events = EventLog()
        self.on_change: Callable[[], None] | None = None
        self._dirty: set[tuple[str, str]] = set()  # definitions changed, for take_changes
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
                by_source = self.parse_errors_by_source
                if src in by_source:
                    by_source[src] += 1
                elif len(by_source) < self.limits.max_error_sources:
                    by_source[src] = 1
                else:
                    totals.error_sources_shed += 1
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
                if len(self.agents) >= self.limits.max_agents:
                    totals.shed += 1
                    self._bad_log.warn(received_at, "event=agent_shed agent=%s source=%s "
                                       "max_agents=%d", addr, source[0], len(self.agents))
                    return False
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
                flow_samples = with_http(data, flow_samples)
                fresh = fresh_flow_samples(samplers, flow_samples)
                self.flows.ingest_all(addr, fresh, received_at)
                agent.flow_samples += len(flow_samples)
                totals.flow_samples += len(flow_samples)
            return True

    def tick(self, now: float) -> TickResult:
        """Advance flows and thresholds to ``now``; expire silent data sources and agents."""
        with self.lock:
            flows = self.flows.tick(now, expire=False)
            events = self.thresholds.evaluate(now, self)
            if events:
                self.events.append(events)
            self.metrics.expire(now)
            self._expire_agents(now)
            self.totals.flows_generated += len(flows)
            self.totals.events_generated += len(events)
        more = True
        while more:  # flow expiry in slices, the lock free in between for the receivers
            with self.lock:
                more = self.flows.expire_some(now)
            if more:
                time.sleep(0)  # yield the GIL to a receiving thread waiting for the lock
        return TickResult(events, flows)

    def _expire_agents(self, now: float) -> None:
        oldest = now - self.limits.agent_timeout_s
        silent = [k for k, a in self.agents.items() if a.last_seen < oldest]
        for k in silent:
            del self.agents[k]
        self.totals.agents_expired += len(silent)

    def count_discarded(self, n: int = 1) -> None:
        """Datagrams the listener dropped before they reached the engine (queue full)."""
        with self.lock:
            self.totals.discarded += n

    # ------------------------------------------------------------------ metric queries

    def _now(self, now: float | None) -> float:
        return self.clock.now() if now is None else now

    def _scope(self, agents: Agents) -> Scope:
        """What an agent list covers: addresses, agents by host name, topology tokens."""
        spec = parse_agents(agents)
        if spec is None:
            return EVERYWHERE
        named: frozenset[str] = frozenset()
        if spec.names:
            named = frozenset(ds.agent for ds in self.metrics.sources.values()
                              if ds.values.get("host_name") in spec.names)
        if not spec.tokens:
            return Scope(agents=spec.addresses | named)
        require(self.topology, "/".join(sorted(spec.tokens)))
        by_topology = self._topology_view().scope(spec.tokens)
        return Scope(agents=spec.addresses | named | by_topology.agents,
                     ports=by_topology.ports)

    def _topology_view(self) -> TopologyView:
        return self.topology.resolve((ds.agent, ds.name, ds.values)
                                     for ds in self.metrics.sources.values())

    def _rows(self, ref: MetricRef, scope: Scope, match: Any, now: float) -> list[Row]:
        name, only = ref.name, ref.data_source
        rows = []
        for ds in self.metrics.sources.values():
            if (only is not None and ds.name != only) or not scope.covers(ds.agent, ds.name):
                continue
            v = ds.values.get(name)
            if v is not None and (match is None or match(ds.values)):
                rows.append(Row(ds.agent, ds.name, v, to_ms(now - ds.last_update)))
        if name in self._keyless_flows():
            sources = self.metrics.sources
            for agent, dsn, value in self.flows.metric_values(name, now):
                if (only is not None and dsn != only) or not scope.covers(agent, dsn):
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
        return [metric_result(ref, rows)
                for ref, rows in self.metric_rows(agents, metrics, filter, now)]

    def metric_rows(self, agents: Agents, metrics: str | Collection[str],
                    filter: Filter | None = None, now: float | None = None
                    ) -> list[tuple[MetricRef, list[Row]]]:
        """(metric, rows) per requested metric: what ``metric`` aggregates."""
        now = self._now(now)
        match, refs = compile_filter(filter), parse_metrics(metrics)
        with self.lock:
            scope = self._scope(agents)
            return [(ref, self._rows(ref, scope, match, now)) for ref in refs]

    def dump(self, agents: Agents, metrics: str | Collection[str], filter: Filter | None = None,
             now: float | None = None) -> list[dict[str, object]]:
        """sFlow-RT ``dump()``: one entry per data source per metric (keyed flows: top keys);
        ``ALL`` dumps every metric of the selected data sources."""
        now = self._now(now)
        match = compile_filter(filter)
        tokens = split_list(metrics, ",", ";")
        out: list[dict[str, object]] = []
        with self.lock:
            scope = self._scope(agents)
            if "ALL" in tokens:
                for ds in self.metrics.sources.values():
                    if scope.covers(ds.agent, ds.name) and (match is None or match(ds.values)):
                        age = to_ms(now - ds.last_update)
                        out.extend(dump_entry(m, Row(ds.agent, ds.name, v, age))
                                   for m, v in ds.values.items())
                refs = [parse_metric(t) for t in self._keyless_flows()]
            else:
                refs = parse_metrics(tokens)
            keyed = {n for n, s in self.flows.specs().items() if s.keys}
            for ref in refs:
                if ref.name in keyed:
                    out.extend(self.flows.dump(scope, ref.name, now))
                else:
                    out.extend(dump_entry(ref.name, r)
                               for r in self._rows(ref, scope, match, now))
        return out

    def table(self, agents: Agents, metrics: str | Collection[str], filter: Filter | None = None,
              now: float | None = None) -> list[list[dict[str, object]]]:
        """sFlow-RT ``table()``: one row per data source having every column."""
        now = self._now(now)
        match = compile_filter(filter)
        cols, sort = parse_table_columns(metrics)
        with self.lock:
            scope = self._scope(agents)
            by_source: dict[tuple[str, str], dict[str, Row]] = {}
            for col in cols:
                for r in self._rows(parse_metric(col), scope, match, now):
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

    def agent_metrics(self, agent: str, now: float | None = None) -> dict[str, object] | None:
        """``/metric/{agent}/json``: ``"<ds>.<metric>"`` -> latest value; None for an agent
        (address or host name) never heard of."""
        with self.lock:
            scope = self._scope(agent)
            known = any(scope.covers_agent(a) for a, _ in self.agents)
            out: dict[str, object] = {
                f"{ds.name}.{m}": v for ds in self.metrics.sources.values()
                if scope.covers(ds.agent, ds.name) for m, v in ds.values.items()}
        return out if out or known else None

    def numeric_series(self, agents: Agents, names: Collection[str] | None,
                       now: float | None = None, filter: Filter | None = None
                       ) -> list[tuple[str, str, str, float]]:
        """(metric, agent, data source, value) of numeric metrics, keyless flows included,
        of the data sources whose string metrics match ``filter``."""
        match = compile_filter(filter)
        with self.lock:
            scope = self._scope(agents)
            sources = self.metrics.sources
            out = [(m, ds.agent, ds.name, float(v)) for ds in sources.values()
                   if scope.covers(ds.agent, ds.name) and (match is None or match(ds.values))
                   for m, v in ds.values.items()
                   if (names is None or m in names) and not isinstance(v, str | bool)]
            now = self._now(now)
            for flow in self._keyless_flows():
                if names is None or flow in names:
                    out.extend((flow, agent, ds, value)
                               for agent, ds, value in self.flows.metric_values(flow, now)
                               if scope.covers(agent, ds) and (match is None or (
                                   (agent, ds) in sources and match(sources[agent, ds].values))))
        return out

    # ------------------------------------------------------------------ MetricSource

    def metric_values(self, metric: str, now: float,
                      filter: Mapping[str, list[str]] | None = None) -> list[tuple[str, str, float]]:
        with self.lock:
            rows = self._rows(MetricRef(metric, "max", metric), EVERYWHERE, compile_filter(filter),
                              now)
        return [(r.agent, r.data_source, float(r.value)) for r in rows
                if isinstance(r.value, int | float)]

    def flow_values(self, name: str, now: float) -> list[tuple[str, str, str, float]]:
        with self.lock:
            return self.flows.flow_values(name, now)

    # ------------------------------------------------------------------ flows

    def active_flows(self, agents: Agents, name: str, max_flows: int = 100, min_value: float = 0.0,
                     agg_mode: str | None = None, now: float | None = None
                     ) -> list[dict[str, Any]]:
        """Top flows; ``agg_mode`` None takes the flow's own ``aggMode``; ``edge`` and ``core``
        need a topology (see ``topology.py``)."""
        now = self._now(now)
        with self.lock:
            scope = self._scope(agents)
            mode = agg_mode or self.flows.agg_mode(name)
            ports = None
            if mode in ("edge", "core"):
                require(self.topology, f"aggMode={mode}")
                view = self._topology_view()
                ports = view.is_edge if mode == "edge" else view.is_core
            return self.flows.active_flows(scope, name, now, max_flows, min_value, mode, ports)

    def flow_agg_mode(self, name: str) -> str:
        """The ``aggMode`` flow ``name`` was defined with."""
        with self.lock:
            return self.flows.agg_mode(name)

    def flow_value(self, agent: str, name: str, key: str, now: float | None = None) -> float:
        now = self._now(now)
        with self.lock:
            return self.flows.flow_value(agent, name, key, now)

    def flow_keys(self, now: float | None = None) -> dict[str, int]:
        now = self._now(now)
        with self.lock:
            return self.flows.flow_keys(now)

    def logged_flows(self, name: str | None = None, max_flows: int = 100,
                     after_id: int = -1) -> list[FlowRecord]:
        """Completed flows of ``log: true`` definitions, newest first (``/flows/json``)."""
        with self.lock:
            return self.flows.logged(name, max_flows, after_id)

    def wait_logged(self, after_id: int, timeout_s: float, name: str | None = None) -> bool:
        """Long poll: True once a logged flow newer than ``after_id`` (of flow ``name`` if
        given) exists."""
        return self.flows.wait_logged(after_id, timeout_s, name)

    def query_events(self, threshold_id: str | None = None, max_events: int = 100,
                     after_id: int = -1) -> list[Event]:
        return self.events.query(threshold_id, max_events, after_id)

    def wait_events(self, after_id: int, timeout_s: float, threshold_id: str | None = None
                    ) -> bool:
        """Long poll: True once an event newer than ``after_id`` (of ``threshold_id`` if
        given) exists."""
        return self.events.wait(after_id, timeout_s, threshold_id)

    # ------------------------------------------------------------------ definitions

    def flow_specs(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {n: s.to_json() for n, s in self.flows.specs().items()}

    def threshold_specs(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {n: s.to_json() for n, s in self.thresholds.specs().items()}

    def group_specs(self) -> dict[str, Groups]:
        """Every group set: ``{set: {group: [cidr, ...]}}``."""
        with self.lock:
            return self.groups.all()

    def set_flow(self, name: str, spec: FlowSpec) -> None:
        flow = self.flows.compile(name, spec)  # outside the lock: ingest goes on meanwhile
        with self.lock:
            _room("flows", self.flows.names(), name)
            self.flows.install(flow)
            self._dirty.add(("flows", name))
        self._changed()

    def remove_flow(self, name: str) -> bool:
        with self.lock:
            found = self.flows.remove(name)
            self._dirty.add(("flows", name))
        self._changed()
        return found

    def set_threshold(self, name: str, spec: ThresholdSpec) -> None:
        with self.lock:
            _room("thresholds", self.thresholds.names(), name)
            self.thresholds.set(name, spec)
            self._dirty.add(("thresholds", name))
        self._changed()

    def remove_threshold(self, name: str) -> bool:
        with self.lock:
            found = name in self.thresholds.names()
            if found:
                self.thresholds.delete(name)
            self._dirty.add(("thresholds", name))
        self._changed()
        return found

    def set_group(self, name: str, groups: Groups | list[str]) -> None:
        """Define group set ``name``: ``{group: [cidr, ...]}``, or a CIDR list (one group
        named ``name``)."""
        with self.lock:
            _room("groups", self.groups.names(), name)
            self.groups.set(name, groups)
            self._dirty.add(("groups", name))
        self._changed()

    def set_groups(self, sets: Mapping[str, Groups | list[str]]) -> None:
        """Replace every group set."""
        if len(sets) > MAX_DEFINITIONS:
            raise ValueError(f"too many groups: {len(sets)}, at most {MAX_DEFINITIONS}")
        with self.lock:
            self._dirty.update(("groups", n) for n in (*self.groups.names(), *sets))
            self.groups.set_all(sets)
        self._changed()

    def remove_group(self, name: str) -> bool:
        with self.lock:
            found = self.groups.get(name) is not None
            if found:
                self.groups.delete(name)
            self._dirty.add(("groups", name))
        self._changed()
        return found

    def topology_json(self) -> dict[str, Any]:
        with self.lock:
            return self.topology.to_json()

    def set_topology(self, obj: Any) -> None:
        """Replace the topology (``PUT /topology/json``); ``ValueError`` if malformed."""
        topology = Topology.from_json(obj)
        with self.lock:
            self.topology = topology
            self._dirty.add(("topology", ""))
        self._changed()

    def export_state(self) -> dict[str, Any]:
        """Groups, flows, thresholds and the topology in the REST API's JSON shapes."""
        return {"groups": self.group_specs(), "flows": self.flow_specs(),
                "thresholds": self.threshold_specs(), "topology": self.topology_json()}

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
                    self._dirty.add((kind, name))
            if state.get("topology"):
                self.topology = Topology.from_json(state["topology"])
                self._dirty.add(("topology", ""))

    def take_changes(self) -> dict[tuple[str, str], Any]:
        """The definitions changed since the last call: (kind, name) -> its JSON now, or
        None once removed (the topology is ``("topology", "")``). Values are read when
        taken, so the last taken value of a name is never older than its last change."""
        with self.lock:
            dirty, self._dirty = self._dirty, set()
            out: dict[tuple[str, str], Any] = {}
            for kind, name in dirty:
                if kind == "groups":
                    out[kind, name] = self.groups.get(name)
                elif kind == "topology":
                    out[kind, name] = self.topology.to_json()
                else:
                    spec = (self.flows if kind == "flows" else self.thresholds).get(name)
                    out[kind, name] = None if spec is None else spec.to_json()
            return out

    def _install_group(self, name: str, spec: Any) -> None:
        _room("groups", self.groups.names(), name)
        self.groups.set(name, spec)

    def _install_flow(self, name: str, obj: Any) -> None:
        _room("flows", self.flows.names(), name)
        self.flows.define(name, FlowSpec.from_json(dict(obj), check=False))

    def _install_threshold(self, name: str, obj: Any) -> None:
        _room("thresholds", self.thresholds.names(), name)
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
                "sFlowDatagramsShed": t.shed,
                "sFlowAgentsExpired": t.agents_expired,
                "sFlowParseErrorSourcesShed": t.error_sources_shed,
                "sFlowBadSamples": t.bad_samples,
                "sFlowFlowSamples": t.flow_samples,
                "sFlowCounterSamples": t.counter_samples,
                "sFlowDataSources": len(self.metrics.sources),
                "sFlowDataSourcesExpired": self.metrics.expired,
                "sFlowDataSourcesShed": self.metrics.shed,
                "sFlowDataSourcesStopped": self.metrics.stopped,
                "flowsGenerated": t.flows_generated,
                "eventsGenerated": t.events_generated,
                "parseErrorsBySource": dict(self.parse_errors_by_source),
            }


def _room(kind: str, names: Collection[str], name: str) -> None:
    """Refuse a new definition beyond ``MAX_DEFINITIONS`` of its kind."""
    if name not in names and len(names) >= MAX_DEFINITIONS:
        raise ValueError(f"too many {kind}: {len(names)} defined, at most {MAX_DEFINITIONS}; "
                         "remove one first")


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


__all__ = ["Engine", "QueryError", "TableLimits", "TickResult", "Totals", "collect_rarely"]
