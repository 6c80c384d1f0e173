"""The engine sharded by agent over worker processes, so analytics uses every core.

``ShardedEngine`` offers the query facade of :class:`~sflowlab.collector.engine.Engine`
(what REST, Prometheus and the listener call). Each worker process runs an ordinary
``Engine``; every datagram of one agent goes to the worker ``shard_of`` its agent address, so
sequence accounting and rates stay exact. Two ways in:

- ``listen`` (the daemon's way): the parent binds one socket per worker on the UDP port with
  SO_REUSEPORT, the kernel steering each datagram to its agent's socket, and hands each worker
  its socket (a file descriptor over the worker's pipe): the worker receives and analyses its
  agents' datagrams, no dispatcher, every core busy with analytics. The parent keeps the
  sockets open, so a worker that dies leaves its socket in place (its datagrams wait in the
  socket's buffer, the group's steering unchanged) for the worker that replaces it. The parent
  ticks the workers and serves queries; while the listener has active taps, workers send it
  copies of what they received;
- ``ingest``: the parent dispatches datagrams in batches over a pipe (no sockets).

Queries fan out and merge:

- ``metric``: rows from every worker, aggregated here (exact for every aggregation);
- ``dump``, ``table`` (each data source lives in one worker; sorted and cut again here),
  ``agents``, ``metrics``, ``flowkeys``, ``analyzer`` (sums): exact;
- ``activeflows``: each worker's per-key aggregate (``max``: largest, ``sum``: total) merged
  the same way over workers (agent and data source of the largest contributor); each worker
  returns up to 4x ``maxFlows`` keys (at least 100), so a key outside every worker's top is
  not counted (exact when fewer keys are active);
- definitions go to every worker; thresholds are evaluated per worker on its own data sources
  on ``tick``; events and logged flows are renumbered here into one log and one id sequence.

Datagrams pending in a batch are flushed before any query and on every ``tick``, so a query
sees every datagram ingested before it. The in-process ``Engine`` stays the interface for
scenario runs; this class is the daemon's ``--workers N`` option. Workers are started with
``spawn``: a script that builds a ``ShardedEngine`` needs the ``if __name__ == "__main__"``
guard. A worker that dies is replaced at the next ``tick``, or by the first call that finds
it gone: a new worker with the same definitions, socket and copies setting, its agents' state
rebuilt from the datagrams that follow (logged, counted in ``/analyzer/json`` as
``workerRestarts``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import itertools
import logging
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from multiprocessing.connection import Connection
from multiprocessing.reduction import recvfds, sendfds
from typing import Any

from sflowlab.clock import Clock, SystemClock

from .agents import merge_agent_entry, to_ms
from .api import Agents, Filter, Groups
from .engine import Engine, TableLimits, collect_rarely
from .engine_api import TickResult
from .events import Event, EventLog, FlowRecord, LongPollLog
from .flows import FlowSpec, of_flow
from .logs import setup_logging
from .lookups import LookupConfig
from .query import metric_result, parse_table_columns, sort_table, split_list
from .sockets import (
    RECV_BATCH,
    _recv,
    kernel_drops,
    open_udp,
    shard_of,
    shard_of_datagram,
    steer_by_agent,
    stop_receiving,
)
from .thresholds import ThresholdSpec

log = logging.getLogger("sflowlab.collector")

BATCH = 64



class _Receiver:
    """In a worker: the worker's own sockets on the shared port, each read by a thread that
    ingests what it receives (no dispatcher). While copies are on, datagrams also go back to
    the parent in batches for its taps (forwarding, recording)."""

    def __init__(self, engine: Engine, copies: Connection) -> None:
        self.engine, self._copies = engine, copies
        self.sockets: list[socket.socket] = []
        self.readers: list[threading.Thread] = []
        self.received: list[int] = []  # per socket (each written by its own thread only)
        self.stopping = False
        self.copying = False
        self.kernel_dropped = 0
        self._copy_lock = threading.Lock()

    def adopt(self, fds: list[int]) -> None:
        """Receive on these sockets (bound by the parent), one reader thread each."""
        first = len(self.sockets)
        self.sockets.extend(socket.socket(fileno=fd) for fd in fds)
        self.received.extend(0 for _ in fds)
        for i in range(first, len(self.sockets)):
            reader = threading.Thread(target=self._run, args=(self.sockets[i], i),
                                      name="sflow-receive", daemon=True)
            reader.start()
            self.readers.append(reader)

    def set_copies(self, on: bool) -> None:
        self.copying = on

    def stats(self) -> tuple[int, int]:
        """Datagrams these sockets received, and those the kernel dropped for them."""
        if not self.stopping:  # closed sockets are no longer listed
            self.kernel_dropped = kernel_drops(self.sockets)
        return sum(self.received), self.kernel_dropped

    def unlisten(self) -> None:
        self.stopping = True
        for sock, reader in zip(self.sockets, self.readers, strict=True):
            stop_receiving(sock, reader)

    def _run(self, sock: socket.socket, i: int) -> None:
        if _recv is not None:
            self._run_batched(sock, i)
            return
        recv, ingest, now = sock.recvfrom, self.engine.ingest, time.time
        received = self.received
        batch: list[tuple[bytes, tuple[str, int], float]] = []
        while not self.stopping:
            try:
                data, addr = recv(65535, socket.MSG_DONTWAIT)
            except BlockingIOError:  # nothing waiting: send copies, then block
                if batch:
                    batch = self._send_copies(batch)
                try:
                    data, addr = recv(65535)
                except OSError:
                    return
            except OSError:
                return
            if addr is None:
                return  # woken by unlisten
            received[i] += 1
            source, received_at = addr[:2], now()
            ingest(data, source, received_at)
            if self.copying:
                batch.append((data, source, received_at))
                if len(batch) >= BATCH:
                    batch = self._send_copies(batch)

    def _run_batched(self, sock: socket.socket, i: int) -> None:
        """``_run`` with ``_recv.recv_batch``: up to RECV_BATCH datagrams per system call (one
        ``received_at`` for each call's datagrams; copies sent per call, so none wait while
        the socket is quiet); an empty batch means ``stop_receiving`` shut the socket down."""
        recv_batch, fileno = _recv.recv_batch, sock.fileno  # type: ignore[union-attr]
        ingest, now = self.engine.ingest, time.time
        received = self.received
        while not self.stopping:
            try:  # fileno() each time: -1 (EBADF) once the socket is closed
                datagrams = recv_batch(fileno(), RECV_BATCH)
            except OSError:
                return
            if not datagrams:
                return  # woken by unlisten
            received[i] += len(datagrams)
            received_at = now()
            for data, source in datagrams:
                ingest(data, source, received_at)
            if self.copying:
                self._send_copies([(data, source, received_at) for data, source in datagrams])

    def _send_copies(self, batch: list[tuple[bytes, tuple[str, int], float]]
                     ) -> list[tuple[bytes, tuple[str, int], float]]:
        with self._copy_lock, contextlib.suppress(OSError):  # OSError: the parent is leaving
            self._copies.send(batch)
        return []


_RECEIVER_CALLS = {"set_copies", "stats", "unlisten"}


def _serve(conn: Connection, copies: Connection, engine_args: dict[str, Any],
           log_level: int) -> None:
    """A worker: an Engine fed batches or its own sockets, answering calls, until the pipe
    closes."""
    setup_logging(log_level)
    collect_rarely()
    engine = Engine(SystemClock(), **engine_args)
    receiver = _Receiver(engine, copies)
    ingest = engine.ingest
    while True:
        try:
            op, payload = conn.recv()
        except (EOFError, OSError):
            return
        if op == "ingest":
            for data, source, received_at in payload:
                ingest(data, source, received_at)
            continue
        if op == "sockets":  # their descriptors follow on the pipe
            with socket.socket(fileno=os.dup(conn.fileno())) as unix:
                receiver.adopt(recvfds(unix, payload))
            conn.send(("ok", None))
            continue
        method, args, kwargs = payload
        target = receiver if method in _RECEIVER_CALLS else engine
        try:
            result: Any = ("ok", getattr(target, method)(*args, **kwargs))
        except Exception as e:  # sent back and raised in the caller
            result = ("err", e)
        conn.send(result)


PIPE_BUFFER = 4 * 1024 * 1024
"""Socket buffer asked for each worker pipe: a backlog of thousands of datagrams, so the
dispatcher rarely waits on one busy worker while another starves (the kernel may grant less)."""


def _widen(conn: Connection) -> None:
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    try:
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            sock.setsockopt(socket.SOL_SOCKET, opt, PIPE_BUFFER)
    finally:
        sock.close()


class WorkerGone(RuntimeError):
    """A shard worker process is no longer there."""


class _Worker:
    def __init__(self, ctx: Any, engine_args: dict[str, Any]) -> None:
        self.conn, child = ctx.Pipe()
        self.copies, copies_child = ctx.Pipe()  # a socket pair: its buffer can be widened
        for end in (self.conn, child, self.copies, copies_child):
            _widen(end)
        level = logging.getLogger("sflowlab").getEffectiveLevel()
        self.proc = ctx.Process(target=_serve, args=(child, copies_child, engine_args, level),
                                daemon=True, name="sflow-shard")
        self.proc.start()
        child.close()
        copies_child.close()
        self.lock = threading.Lock()
        self.pending: list[tuple[bytes, tuple[str, int], float]] = []

    def flush_locked(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self._send(("ingest", batch))

    def _send(self, message: Any) -> None:
        try:
            self.conn.send(message)
        except OSError as e:
            raise self._gone() from e

    def _gone(self) -> WorkerGone:
        return WorkerGone(f"shard worker {self.proc.pid} is gone "
                          f"(exit code {self.proc.exitcode})")

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.flush_locked()
            self._send(("call", (method, args, kwargs)))
            return self._answer()

    def hand_over(self, socks: list[socket.socket]) -> None:
        """Give the worker these sockets to receive on (their descriptors over the pipe)."""
        with self.lock:
            self._send(("sockets", len(socks)))
            with socket.socket(fileno=os.dup(self.conn.fileno())) as unix:
                sendfds(unix, [s.fileno() for s in socks])
            self._answer()

    def _answer(self) -> Any:
        try:
            status, result = self.conn.recv()
        except (EOFError, OSError) as e:
            raise self._gone() from e
        if status == "err":
            raise result
        return result

    def close(self) -> None:
        self.conn.close()
        self.copies.close()


class ShardedEngine:
    """The Engine facade over ``workers`` processes; see the module docstring."""

    def __init__(self, workers: int, clock: Clock | None = None, *,
                 metric_timeout_s: float = 60.0, expire_intervals: float = 3.0,
                 limits: TableLimits | None = None, lookups: LookupConfig | None = None) -> None:
        if workers < 1:
            raise ValueError("a sharded engine needs at least one worker")
        self.clock = clock or SystemClock()
        self.started = self.clock.now()
        self._ctx = multiprocessing.get_context("spawn")
        self._engine_args = {"metric_timeout_s": metric_timeout_s,
                             "expire_intervals": expire_intervals, "limits": limits,
                             "lookups": lookups}
        self.workers = [_Worker(self._ctx, self._engine_args) for _ in range(workers)]
        self.restarts = 0
        self.on_restart: Callable[[Connection], None] | None = None
        """Called with a replacement worker's copy connection (the listener reads it)."""
        self._sockets: list[list[socket.socket]] = [[] for _ in range(workers)]
        self._copying = False
        self._definitions: dict[str, Any] = {}  # the last known, for a lone worker's successor
        self.events = EventLog()
        self.logged: LongPollLog[FlowRecord] = LongPollLog(lambda f: f.flowID)
        self.on_change: Callable[[], None] | None = None
        self._event_ids = itertools.count(1)
        self._flow_ids = itertools.count(1)
        self._discarded = 0
        self._tick_lock = threading.Lock()

    # ------------------------------------------------------------------ ingest and tick

    def ingest(self, data: bytes, source: tuple[str, int], received_at: float) -> bool:
        """Queue one datagram for its agent's worker (analysed asynchronously)."""
        w = self.workers[shard_of_datagram(data, len(self.workers))]
        with w.lock:
            w.pending.append((data, source, received_at))
            if len(w.pending) >= BATCH:
                w.flush_locked()
        return True

    def tick(self, now: float) -> TickResult:
        """Replace dead workers, tick every worker; renumber their events and logged flows
        into one sequence."""
        with self._tick_lock:
            self._replace_dead()
            events: list[Event] = []
            flows: list[FlowRecord] = []
            for w in self.workers:
                r: TickResult = w.call("tick", now)
                events.extend(dataclasses.replace(e, eventID=next(self._event_ids))
                              for e in r.events)
                flows.extend(dataclasses.replace(f, flowID=next(self._flow_ids)) for f in r.flows)
            if events:
                self.events.append(events)
            if flows:
                self.logged.append(flows)
        return TickResult(events, flows)

    def count_discarded(self, n: int = 1) -> None:
        self._discarded += n

    def _replace_dead(self) -> None:
        for i, old in enumerate(self.workers):
            if old.proc.is_alive():
                continue
            old.proc.join(timeout=0)
            alive = next((w for w in self.workers if w.proc.is_alive()), None)
            state = self._definitions if alive is None else alive.call("export_state")
            new = _Worker(self._ctx, self._engine_args)
            new.call("import_state", state)
            if self._copying:
                new.call("set_copies", True)
            if self._sockets[i]:
                new.hand_over(self._sockets[i])
            self.workers[i] = new
            old.close()
            self.restarts += 1
            log.error("event=worker_restarted index=%d pid=%s exit_code=%s new_pid=%s",
                      i, old.proc.pid, old.proc.exitcode, new.proc.pid)
            if self.on_restart is not None:
                self.on_restart(new.copies)

    # ------------------------------------------------------------------ workers' own sockets

    def listen(self, hosts: Collection[str], port: int, rcvbuf: int
               ) -> tuple[list[tuple[str, int]], int]:
        """Bind ``hosts`` on ``port`` with SO_REUSEPORT, one socket per worker and host (in
        worker order: socket i of a group is worker i's, the kernel steering each agent's
        datagrams to one of them, ``sockets.steer_by_agent``), and hand each worker its
        sockets; a port 0 becomes the one the first socket got. Returns the bound (host,
        port)s and the receive buffer granted."""
        n = len(self.workers)
        for host in hosts if port else ():  # a port in use stays an error, as without workers
            try:
                open_udp(host, port, 0).close()
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise
        bound: list[tuple[str, int]] = []
        granted = 0
        for host in hosts:
            try:
                first = open_udp(host, port, rcvbuf, shared=True)
            except OSError as e:
                if ":" in host and len(hosts) > 1:
                    log.warning("event=ipv6_unavailable host=%s error=%r", host, str(e))
                    continue
                raise
            group = [first, *(open_udp(host, first.getsockname()[1], rcvbuf, shared=True)
                              for _ in range(n - 1))]
            if n > 1:
                try:
                    steer_by_agent(first, n)
                except OSError as e:
                    log.warning("event=steering_unavailable error=%r (datagrams spread by"
                                " source address and port instead)", str(e))
            granted = first.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            bound.append(first.getsockname()[:2])
            for i, sock in enumerate(group):
                self._sockets[i].append(sock)
        for w, socks in zip(self.workers, self._sockets, strict=True):
            w.hand_over(socks)
        return bound, granted

    def copy_connections(self) -> list[Connection]:
        """Where listening workers send batches of ``(data, source, received_at)`` while
        copies are on (for the listener's taps)."""
        return [w.copies for w in self.workers]

    def set_copies(self, on: bool) -> None:
        self._copying = on
        self._all("set_copies", on)

    def socket_stats(self) -> tuple[int, int]:
        """Datagrams the workers' sockets received, and those the kernel dropped for them
        (their receive buffers full)."""
        stats = self._all("stats")
        return sum(r for r, _ in stats), sum(d for _, d in stats)

    def unlisten(self) -> None:
        try:
            self._all("unlisten")
        finally:
            for socks in self._sockets:
                for sock in socks:
                    sock.close()
                socks.clear()

    def close(self) -> None:
        for w in self.workers:
            w.close()
        for w in self.workers:
            w.proc.join(timeout=5)
            if w.proc.is_alive():
                w.proc.terminate()

    # ------------------------------------------------------------------ fan-out helpers

    def _now(self, now: float | None) -> float:
        return self.clock.now() if now is None else now

    def _all(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        return [self._call(i, method, *args, **kwargs) for i in range(len(self.workers))]

    def _first(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._call(0, method, *args, **kwargs)

    def _call(self, i: int, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call worker ``i``; a worker found dead is replaced first (not waiting for the
        tick), so a query waits for the replacement instead of failing."""
        try:
            return self.workers[i].call(method, *args, **kwargs)
        except WorkerGone:
            with self._tick_lock:
                self._replace_dead()
            return self.workers[i].call(method, *args, **kwargs)

    # ------------------------------------------------------------------ queries

    def metric(self, agents: Agents, metrics: str | Collection[str], filter: Filter | None = None,
               now: float | None = None) -> list[dict[str, object]]:
        parts = self._all("metric_rows", agents, metrics, filter, self._now(now))
        return [metric_result(ref, [r for part in parts for r in part[i][1]])
                for i, (ref, _) in enumerate(parts[0])]

    def dump(self, agents: Agents, metrics: str | Collection[str], filter: Filter | None = None,
             now: float | None = None) -> list[dict[str, object]]:
        now = self._now(now)
        return [e for t in split_list(metrics, ",", ";")
                for part in self._all("dump", agents, t, filter, now) for e in part]

    def table(self, agents: Agents, metrics: str | Collection[str], filter: Filter | None = None,
              now: float | None = None) -> list[list[dict[str, object]]]:
        _, sort = parse_table_columns(metrics)
        rows = [row for part in self._all("table", agents, metrics, filter, self._now(now))
                for row in part]
        return sort_table(rows, sort)

    def metric_names(self, now: float | None = None) -> dict[str, int]:
        return _merge_min(self._all("metric_names", self._now(now)))

    def agent_metrics(self, agent: str, now: float | None = None) -> dict[str, object] | None:
        """Asked of every worker: an agent without an address (type 0) is known by its UDP
        source, which need not be the worker ``shard_of`` names, and a host name by the worker
        that has its counters. None if no worker knows the agent."""
        found = [p for p in self._all("agent_metrics", agent) if p is not None]
        return None if not found else {k: v for p in found for k, v in p.items()}

    def numeric_series(self, agents: Agents, names: Collection[str] | None,
                       now: float | None = None, filter: Filter | None = None
                       ) -> list[tuple[str, str, str, float]]:
        return [s for part in self._all("numeric_series", agents, names, self._now(now), filter)
                for s in part]

    def agents_json(self, now: float | None = None) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for part in self._all("agents_json", self._now(now)):
            for address, entry in part.items():
                merge_agent_entry(out, address, entry)
        return out

    def analyzer_json(self, now: float | None = None) -> dict[str, object]:
        now = self._now(now)
        parts = self._all("analyzer_json", now)
        out: dict[str, object] = {"uptime": to_ms(now - self.started)}
        for key in parts[0]:
            if key == "uptime":
                continue
            if key == "parseErrorsBySource":
                merged: dict[str, int] = {}
                for p in parts:
                    for src, n in p[key].items():
                        merged[src] = merged.get(src, 0) + n
                out[key] = merged
            else:
                out[key] = sum(int(p[key]) for p in parts)
        out["sFlowDatagramsDiscarded"] = int(out["sFlowDatagramsDiscarded"]) + self._discarded  # type: ignore[call-overload]
        out["workers"] = len(self.workers)
        out["workerRestarts"] = self.restarts
        return out

    # ------------------------------------------------------------------ flows

    def active_flows(self, agents: Agents, name: str, max_flows: int = 100, min_value: float = 0.0,
                     agg_mode: str | None = None, now: float | None = None
                     ) -> list[dict[str, Any]]:
        now, wide = self._now(now), max(4 * max_flows, 100)
        mode = agg_mode or self._first("flow_agg_mode", name)
        # max, core: each worker's per-key largest; sum: the largest single contributor
        # first, then the totals; edge: workers' totals (agent of their largest contributor)
        first = [f for part in self._all("active_flows", agents, name, wide, 0.0,
                                         "max" if mode == "sum" else mode, now) for f in part]
        best: dict[str, dict[str, Any]] = {}
        for flow in first:
            seen = best.get(flow["key"])
            if seen is None or flow["value"] > seen["value"]:
                best[flow["key"]] = dict(flow)
        if mode in ("sum", "edge"):
            totals: dict[str, list[float]] = {}
            parts = first if mode == "edge" else [
                f for part in self._all("active_flows", agents, name, wide, 0.0, mode, now)
                for f in part]
            for flow in parts:
                add = [flow["value"], *flow.get("values", ())]
                have = totals.setdefault(flow["key"], [0.0] * len(add))
                totals[flow["key"]] = [a + b for a, b in zip(have, add, strict=True)]
            best = {k: {**best[k], "value": v[0], **({"values": v[1:]} if len(v) > 1 else {})}
                    for k, v in totals.items() if k in best}
        top = sorted((f for f in best.values() if f["value"] >= min_value),
                     key=lambda f: (-f["value"], f["key"]))
        return top[:max(max_flows, 0)]

    def flow_value(self, agent: str, name: str, key: str, now: float | None = None) -> float:
        return max(float(v) for v in self._all("flow_value", agent, name, key, self._now(now)))

    def flow_keys(self, now: float | None = None) -> dict[str, int]:
        return _merge_min(self._all("flow_keys", self._now(now)))

    def topology_json(self) -> dict[str, Any]:
        result: dict[str, Any] = self._first("topology_json")
        return result

    def set_topology(self, obj: Any) -> None:
        self._broadcast("set_topology", obj)

    def logged_flows(self, name: str | None = None, max_flows: int = 100,
                     after_id: int = -1) -> list[FlowRecord]:
        return self.logged.query(max_flows, after_id, of_flow(name))

    def wait_logged(self, after_id: int, timeout_s: float, name: str | None = None) -> bool:
        return self.logged.wait(after_id, timeout_s, of_flow(name))

    def query_events(self, threshold_id: str | None = None, max_events: int = 100,
                     after_id: int = -1) -> list[Event]:
        return self.events.query(threshold_id, max_events, after_id)

    def wait_events(self, after_id: int, timeout_s: float, threshold_id: str | None = None
                    ) -> bool:
        return self.events.wait(after_id, timeout_s, threshold_id)

    # ------------------------------------------------------------------ definitions

    def _broadcast(self, method: str, *args: Any) -> Any:
        results = self._all(method, *args)
        self._definitions = self._first("export_state")
        if self.on_change is not None:
            self.on_change()
        return results[0]

    def flow_specs(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self._first("flow_specs")
        return result

    def threshold_specs(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self._first("threshold_specs")
        return result

    def group_specs(self) -> dict[str, Groups]:
        result: dict[str, Groups] = self._first("group_specs")
        return result

    def set_flow(self, name: str, spec: FlowSpec) -> None:
        self._broadcast("set_flow", name, spec)

    def remove_flow(self, name: str) -> bool:
        return bool(self._broadcast("remove_flow", name))

    def set_threshold(self, name: str, spec: ThresholdSpec) -> None:
        self._broadcast("set_threshold", name, spec)

    def remove_threshold(self, name: str) -> bool:
        return bool(self._broadcast("remove_threshold", name))

    def set_group(self, name: str, groups: Groups | list[str]) -> None:
        self._broadcast("set_group", name, groups)

    def set_groups(self, sets: Mapping[str, Groups | list[str]]) -> None:
        self._broadcast("set_groups", dict(sets))

    def remove_group(self, name: str) -> bool:
        return bool(self._broadcast("remove_group", name))

    def take_changes(self) -> dict[tuple[str, str], Any]:
        """Definitions changed since the last call (``Engine.take_changes``), as worker 0,
        which holds every definition, saw them; the others' lists are emptied too."""
        changes: dict[tuple[str, str], Any] = self._all("take_changes")[0]
        return changes

    def export_state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._first("export_state")
        return result

    def import_state(self, state: Mapping[str, Any]) -> None:
        self._all("import_state", dict(state))
        self._definitions = self._first("export_state")


def _merge_min(parts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        for k, v in part.items():
            out[k] = min(v, out.get(k, v))
    return out


__all__ = ["ShardedEngine", "shard_of"]
