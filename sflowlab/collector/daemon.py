"""The production collector: composition of engine, listener, REST server, state and taps.

``Daemon(config)`` loads the configuration's groups, flows and thresholds, then the state
directory (definitions made over REST, which therefore survive a restart: a snapshot and a
journal of changes, see :mod:`~sflowlab.collector.journal`; from the start the snapshot holds
every definition, those from the configuration included). ``start_http()`` and
``start_listener()`` start the REST server and the UDP listener (analytics in-process, or
sharded over ``workers`` processes); ``wait()`` returns on SIGTERM/SIGINT (after
``install_signals()``) and applies ``reload()`` on SIGHUP, ``stop()`` shuts down in order. ``replay(path, speed)`` feeds a
capture instead of listening, with the capture's timestamps as the engine's clock, and leaves
the clock resting at the last timestamp so the REST API keeps answering about it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflowlab import accel
from sflowlab.clock import Clock, SystemClock
from sflowlab.codec.pcap import CapturedDatagram, PcapTruncatedError, read_sflow
from sflowlab.http import HttpServer, Limits

from .config import Config, ConfigError, load_config
from .engine import Engine
from .engine_api import EngineApi, TickResult
from .forwarding import Forwarder
from .journal import DefinitionStore
from .listener import Listener, ListenerConfig
from .recording import Recorder
from .rest import Api
from .runtime import Runtime
from .shards import ShardedEngine

log = logging.getLogger("sflowlab.collector")


@dataclass
class ReplayClock:
    """A clock set by the replay loop: the timestamp of the datagram being fed."""

    time: float = 0.0

    def now(self) -> float:
        return self.time


def _read_to_the_cut(path: str | Path) -> Iterator[CapturedDatagram]:
    """Every datagram of a capture; one cut short (a recording of a killed collector) is read
    up to the cut, with a warning. Other damage still raises ``PcapError``."""
    try:
        yield from read_sflow(path, port=None)
    except PcapTruncatedError as e:
        log.warning("event=replay_truncated path=%s offset=%d error=%r (read up to the cut)",
                    path, e.offset, str(e))


@dataclass
class Daemon:
    config: Config
    clock: Clock = field(default_factory=SystemClock)
    engine: EngineApi = field(init=False)
    forwarder: Forwarder = field(default_factory=Forwarder, init=False)
    recorder: Recorder | None = field(default=None, init=False)
    listener: Listener | None = field(default=None, init=False)
    server: HttpServer | None = field(default=None, init=False)
    runtime: Runtime = field(init=False)
    """The controllers named in the configuration, driven by every tick (live and replay)."""
    on_tick: Callable[[TickResult], None] | None = field(default=None, init=False)
    """Called with each tick's events and logged flows: dispatches to the controller runtime,
    on the replay's thread when replaying; live, it hands the tick to the runtime's dispatcher
    thread (``start_listener``), so no controller ever runs on the ingest path."""

    def __post_init__(self) -> None:
        cfg = self.config
        cfg.check()
        log.info("event=accelerators active=%s", ",".join(accel.active()) or "none")
        if cfg.workers > 0 and not isinstance(self.clock, ReplayClock):
            self.engine = ShardedEngine(cfg.workers, self.clock,
                                        metric_timeout_s=cfg.metric_timeout_s,
                                        expire_intervals=cfg.expire_intervals,
                                        limits=cfg.limits(), lookups=cfg.lookups)
        else:
            self.engine = Engine(self.clock, metric_timeout_s=cfg.metric_timeout_s,
                                 expire_intervals=cfg.expire_intervals, limits=cfg.limits(),
                                 lookups=cfg.lookups)
        self.engine.import_state(cfg.definitions)
        if cfg.state_dir is not None:
            store = DefinitionStore(Path(cfg.state_dir))
            self.engine.import_state(store.load())
            self.engine.take_changes()  # all stored by the compaction:
            store.compact(self.engine.export_state)
            self.engine.on_change = lambda: store.save_changes(self.engine.take_changes,
                                                               self.engine.export_state)
        self.runtime = Runtime(self.engine, self.clock,
                               Path(cfg.state_dir) if cfg.state_dir is not None else None)
        self.runtime.load(cfg.controllers)
        self.on_tick = lambda result: self.runtime.tick(self.clock.now(), result)
        if cfg.record_dir is not None:
            self.recorder = Recorder(Path(cfg.record_dir), cfg.record_max_bytes,
                                     cfg.record_max_files, cfg.sflow_port)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._stopped = False

    @property
    def taps(self) -> list[Any]:
        return [self.forwarder, *([self.recorder] if self.recorder else [])]

    def start_http(self) -> None:
        cfg = self.config
        api = Api(self.engine, self.forwarder, token=cfg.token, readonly=cfg.readonly,
                  analyzer_extra=self._extra_stats, runtime=self.runtime)
        limits = Limits(max_connections=cfg.http_max_connections,
                        idle_timeout_s=cfg.http_idle_timeout_s)
        self.server = HttpServer(api.router, cfg.http_host, cfg.http_port, limits).start()
        log.info("event=http_listening host=%s port=%d auth=%s readonly=%s max_connections=%d",
                 cfg.http_host, self.server.port, "token" if cfg.token else "none",
                 cfg.readonly, self.server.stats()["maxConnections"])

    def _extra_stats(self) -> dict[str, Any]:
        """The listener's and the HTTP server's counters, for ``/analyzer/json``."""
        http = {} if self.server is None else {
            f"http{k[0].upper()}{k[1:]}": v for k, v in self.server.stats().items()}
        lst = self.listener
        if lst is None:
            return http
        return {**http, "sFlowReceiveBufferBytes": lst.rcvbuf_granted,
                "sFlowSocketDatagrams": lst.received, "sFlowQueueSize": lst.config.queue_size,
                "sFlowQueueDepth": lst.queue_depth(), "sflowlabAccelerators": accel.active(),
                "controllerSlowCalls": self.runtime.slow_calls(),
                "controllerEventsShed": self.runtime.shed}

    def start_listener(self) -> None:
        cfg = self.config
        self.runtime.start()
        self.on_tick = lambda result: self.runtime.submit(self.clock.now(), result)
        self.listener = Listener(self.engine, self.clock, ListenerConfig(
            cfg.sflow_port, cfg.sflow_hosts, cfg.rcvbuf, cfg.queue_size, cfg.tick_s), self.taps,
            self.on_tick)
        self.listener.start()

    def replay(self, path: str | Path, speed: float = 0.0) -> int:
        """Feed a capture with its own timestamps as the clock; 0 = as fast as possible."""
        clock, engine = self.clock, self.engine
        if not isinstance(clock, ReplayClock) or not isinstance(engine, Engine):
            raise TypeError("replay needs the daemon built with a ReplayClock")
        count, first, next_tick = 0, None, None
        taps = self.taps
        for cap in _read_to_the_cut(path):
            ts = cap.timestamp
            if first is None:
                first, next_tick = ts, ts + self.config.tick_s
                engine.started = ts
            elif speed > 0 and ts > clock.time and self._stop.wait((ts - clock.time) / speed):
                break
            while next_tick is not None and ts >= next_tick:
                clock.time = next_tick
                self._tick(engine, next_tick)
                next_tick += self.config.tick_s
            clock.time = max(clock.time, ts)
            engine.ingest(cap.payload, cap.src, ts)
            for tap in taps:
                tap(cap.payload, cap.src, ts)
            count += 1
            if self._stop.is_set():
                break
        self._tick(engine, clock.time)
        log.info("event=replay_done datagrams=%d clock=%.6f", count, clock.time)
        return count

    def _tick(self, engine: Engine, now: float) -> None:
        result = engine.tick(now)
        if self.on_tick is not None:
            self.on_tick(result)

    def install_signals(self) -> None:
        """SIGTERM and SIGINT end ``wait`` (and a replay in progress); SIGHUP has ``wait``
        reload the configuration file (after a replay in progress)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())

    def wait(self) -> None:
        """Block until a signal or ``stop()``; reload on SIGHUP."""
        while not self._stop.wait(0.2):
            if self._reload.is_set():
                self._reload.clear()
                self.reload()

    def reload(self) -> bool:
        """Read the configuration file again and apply its groups, flows and thresholds: they
        replace those it declared before (one no longer declared is removed); definitions
        made over REST stay. A file that cannot be read, or a bad definition, changes
        nothing (logged). Other settings (ports, HTTP, controllers) need a restart."""
        path = self.config.path
        if path is None:
            log.warning("event=config_reload_skipped reason=%r", "no configuration file")
            return False
        try:
            new = load_config(path).definitions
            Engine(lookups=self.config.lookups).import_state(new)  # all checked before any is applied
        except (ConfigError, ValueError) as e:
            log.error("event=config_reload_failed path=%s error=%r", path, str(e))
            return False
        old, engine = self.config.definitions, self.engine
        removers = {"groups": engine.remove_group, "flows": engine.remove_flow,
                    "thresholds": engine.remove_threshold}
        for kind, remove in removers.items():
            for name in set(old.get(kind) or {}) - set(new.get(kind) or {}):
                remove(name)
        engine.import_state(new)
        self.config.definitions = new
        if engine.on_change is not None:
            engine.on_change()
        log.info("event=config_reloaded path=%s %s", path,
                 " ".join(f"{kind}={len(new.get(kind) or {})}" for kind in removers))
        return True

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self.listener is not None:
            self.listener.stop()
        self.runtime.close()
        if self.server is not None:
            self.server.stop()
        if self.recorder is not None:
            self.recorder.close()
        self.forwarder.close()
        log.info("event=stopped datagrams=%s",
                 self.engine.analyzer_json()["sFlowDatagramsReceived"])
        if isinstance(self.engine, ShardedEngine):
            self.engine.close()
