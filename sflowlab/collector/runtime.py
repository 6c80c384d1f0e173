"""The controller runtime: sFlow-RT's scripting model for Python controllers.

A controller is any object with ``start(api)``; controllers import only
:mod:`sflowlab.collector.api`, which declares what ``api`` offers (``ControllerApi``, with
sFlow-RT's functions mapped to it). Here :class:`LoadedController` implements it, one per
loaded controller, over any :class:`~sflowlab.collector.engine_api.EngineApi`.

Isolation: every call into a controller (``start`` and each handler) is wrapped; an exception
is logged with its traceback, counted per controller and handler kind, and never reaches the
engine or the other controllers. Each call is timed: one that takes ``SLOW_S`` or more is
counted as slow and logged; ``/app/json`` shows the slowest call per kind and a handler still
running. ``Runtime.tick(now, result)`` dispatches a tick's events and logged flows, then runs
the interval handlers that are due, on the caller's thread (the lab's simulated time). The
daemon instead ``submit``s each tick to the runtime's own dispatcher thread (``start``): the
thread that ticks the engine never waits for a controller, so a controller blocked on a hung
API stalls only itself; what piles up meanwhile is merged into one dispatch, and events or
flows beyond ``MAX_PENDING`` are shed and counted. An HTTP request waits at most
``HTTP_WAIT_S`` for a busy controller (then 503).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from sflowlab.clock import Clock

from .api import Agents, Controller, ControllerApi, Filter, Groups, HttpError, HttpRequest
from .config import ConfigError, StateStore
from .engine_api import EngineApi, TickResult
from .events import Event, FlowRecord
from .flows import FlowSpec
from .thresholds import ThresholdSpec

log = logging.getLogger("sflowlab.collector.runtime")

ENTRY_POINT_GROUP = "sflowlab.controllers"
SLOW_S = 1.0
"""A handler call taking this long or longer is counted as slow (and logged)."""
MAX_PENDING = 10_000
"""Events plus logged flows waiting for the dispatcher thread, beyond which they are shed."""
HTTP_WAIT_S = 5.0
"""How long an HTTP request waits for a controller busy in another handler."""
PUBLISHED_KEPT = 100
"""Published decisions kept per controller for ``/app/json`` (the status pages show them)."""


class ControllerError(ValueError):
    """A controller could not be loaded or configured (bad spec, import failure)."""


@dataclass
class HandlerStats:
    """Calls and failures per handler kind for one controller (``/app/json``)."""

    calls: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    last_error: str = ""
    slow: dict[str, int] = field(default_factory=dict)
    """Calls that took ``SLOW_S`` or more, per kind."""
    max_ms: dict[str, int] = field(default_factory=dict)
    running: tuple[str, float] | None = None
    """The kind of the call in progress and when it started (``time.perf_counter``)."""

    def took(self, kind: str, seconds: float) -> bool:
        """Record one call's duration; True if it was slow."""
        ms = round(seconds * 1000)
        if ms > self.max_ms.get(kind, -1):
            self.max_ms[kind] = ms
        if seconds >= SLOW_S:
            self.slow[kind] = self.slow.get(kind, 0) + 1
            return True
        return False

    def to_json(self) -> dict[str, Any]:
        running = self.running
        return {"calls": dict(self.calls), "errors": dict(self.errors),
                "lastError": self.last_error, "slow": dict(self.slow),
                "maxMs": dict(self.max_ms),
                "running": None if running is None else {
                    "handler": running[0],
                    "forMs": round((time.perf_counter() - running[1]) * 1000)}}


@dataclass
class _Interval:
    fn: Callable[[float], None]
    interval_s: float
    next_due: float


class LoadedController:
    """One loaded controller: its handlers, their statistics, and the :class:`ControllerApi`
    it was given (this object; see :mod:`sflowlab.collector.api` for what it offers)."""

    def __init__(self, runtime: Runtime, name: str) -> None:
        self._runtime = runtime
        self._engine = runtime.engine
        self.name = name
        self.log = logging.getLogger(f"sflowlab.controller.{name}")
        self._intervals: list[_Interval] = []
        self._flow_handlers: list[tuple[Callable[[FlowRecord], None], frozenset[str] | None]] = []
        self._event_handlers: list[tuple[Callable[[Event], None], frozenset[str] | None]] = []
        self._http: dict[str | None, Callable[[HttpRequest], Any]] = {}
        self.html: Path | None = None
        self.stats = HandlerStats()

    # ---------------------------------------------------------------- time and handlers

    def now(self) -> float:
        return self._runtime.clock.now()

    def set_interval_handler(self, fn: Callable[[float], None], interval_s: float = 1.0) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._intervals.append(_Interval(fn, interval_s, self.now() + interval_s))

    def set_flow_handler(self, fn: Callable[[FlowRecord], None],
                         names: Collection[str] | None = None) -> None:
        self._flow_handlers.append((fn, frozenset(names) if names is not None else None))

    def set_event_handler(self, fn: Callable[[Event], None],
                          thresholds: Collection[str] | None = None) -> None:
        self._event_handlers.append((fn, frozenset(thresholds) if thresholds is not None else None))

    def set_http_handler(self, fn: Callable[[HttpRequest], Any],
                         script: str | None = None) -> None:
        """``fn`` answers ``/app/{name}/scripts/{script}/...`` (its own handler, as each of
        an sFlow-RT app's scripts has), or with no ``script`` every other request of the app."""
        self._http[script] = fn

    def serve_html(self, directory: str | Path) -> None:
        """Serve the files of ``directory`` at ``/app/{name}/html/...`` (index.html for
        ``/app/{name}/html/``), as sFlow-RT serves an app's html folder."""
        self.html = Path(directory)

    # ---------------------------------------------------------------- definitions

    def set_flow(self, name: str, spec: FlowSpec | Mapping[str, Any]) -> None:
        self._engine.set_flow(name, spec if isinstance(spec, FlowSpec)
                              else FlowSpec.from_json(dict(spec), check=False))

    def clear_flow(self, name: str) -> bool:
        return self._engine.remove_flow(name)

    def set_threshold(self, name: str, spec: ThresholdSpec | Mapping[str, Any]) -> None:
        self._engine.set_threshold(name, spec if isinstance(spec, ThresholdSpec)
                                   else ThresholdSpec.from_json(dict(spec)))

    def clear_threshold(self, name: str) -> bool:
        return self._engine.remove_threshold(name)

    def set_group(self, name: str, groups: Groups | list[str]) -> None:
        """sFlow-RT's ``setGroups(name, spec)``: group set ``name``, ``{group: [cidr, ...]}``
        (``group:ipsource:name`` then gives the group), or one CIDR list (one group named
        ``name``)."""
        self._engine.set_group(name, groups)

    def clear_group(self, name: str) -> bool:
        return self._engine.remove_group(name)

    # ---------------------------------------------------------------- queries

    def metric(self, agents: Agents, metrics: str | Collection[str],
               filter: Filter | None = None) -> list[dict[str, Any]]:
        return self._engine.metric(agents, metrics, filter)

    def dump(self, agents: Agents, metrics: str | Collection[str],
             filter: Filter | None = None) -> list[dict[str, Any]]:
        return self._engine.dump(agents, metrics, filter)

    def table(self, agents: Agents, metrics: str | Collection[str],
              filter: Filter | None = None) -> list[list[dict[str, Any]]]:
        return self._engine.table(agents, metrics, filter)

    def active_flows(self, agents: Agents, name: str, max_flows: int = 100,
                     min_value: float = 0.0, agg_mode: str = "max") -> list[dict[str, Any]]:
        return self._engine.active_flows(agents, name, max_flows, min_value, agg_mode)

    def flow_value(self, agent: str, name: str, key: str) -> float:
        return self._engine.flow_value(agent, name, key)

    def flow_keys(self) -> dict[str, int]:
        """``flowKeys()``: the flow keys seen in samples -> ms since last seen."""
        return self._engine.flow_keys()

    def metrics(self, agent: str | None = None) -> dict[str, Any]:
        """``metrics()``: metric name -> ms since last seen; ``metrics(agent)``: the agent's
        (address or host name) ``"<ds>.<metric>"`` -> latest value, {} if unknown."""
        if agent is None:
            return self._engine.metric_names()
        return self._engine.agent_metrics(agent) or {}

    def agents(self, agents: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
        """``agents([addr, ...])``: per-agent statistics as ``/agents/json`` (all by default)."""
        found = self._engine.agents_json()
        return found if agents is None else {a: v for a, v in found.items() if a in agents}

    def topology(self) -> dict[str, Any]:
        """``getTopology()``."""
        return self._engine.topology_json()

    def set_topology(self, spec: Mapping[str, Any]) -> None:
        """``setTopology(spec)``: ``{"nodes": ..., "links": ...}`` (see ``topology.py``)."""
        self._engine.set_topology(spec)

    # ---------------------------------------------------------------- state

    def store_get(self, key: str, default: Any = None) -> Any:
        return self._runtime.store(self.name).get(key, default)

    def store_set(self, key: str, value: Any) -> None:
        """Persist a JSON-able value (survives a restart when the runtime has a state dir)."""
        self._runtime.store_set(self.name, key, value)

    def shared_get(self, key: str, default: Any = None) -> Any:
        return self._runtime.shared.get(key, default)

    def shared_set(self, key: str, value: Any) -> None:
        self._runtime.shared[key] = value

    # ---------------------------------------------------------------- decisions

    def publish(self, event: object) -> None:
        """Hand a decision taken (a frozen dataclass named in the past tense, e.g.
        ``ServiceScaled``) to the runtime's subscribers (``Runtime.subscribe``)."""
        self._runtime.published(self.name, event)


class Runtime:
    """Loads controllers and dispatches engine ticks and HTTP requests to them, isolated."""

    def __init__(self, engine: EngineApi, clock: Clock,
                 state_dir: Path | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.state_dir = state_dir
        self.controllers: dict[str, LoadedController] = {}
        self.shared: dict[str, Any] = {}
        self._stores: dict[str, dict[str, Any]] = {}
        self._subscribers: list[Callable[[str, object], None]] = []
        self._published: dict[str, deque[dict[str, Any]]] = {}
        self.lock = threading.RLock()
        """Serialises calls into controllers (ticks and HTTP requests come on different threads)."""
        self.shed = 0
        """Events and logged flows shed because the dispatcher thread was MAX_PENDING behind."""
        self._pending: tuple[float, TickResult] | None = None
        self._wake = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- loading

    def add(self, name: str, controller: Controller) -> LoadedController:
        """Start a controller under ``name``; a failing ``start`` is counted, not raised."""
        if name in self.controllers:
            raise ControllerError(f"controller {name!r} is already loaded")
        api = LoadedController(self, name)
        with self.lock:
            self.controllers[name] = api
            self._call(api, "start", controller.start, api)
        log.info("event=controller_started name=%s", name)
        return api

    def load(self, specs: list[Mapping[str, Any] | str]) -> None:
        """Load controllers from configuration entries ``{name, use, params}`` (or just ``use``).

        ``use`` is an import path ``"package.module:factory"`` or the name of an entry point in
        the ``sflowlab.controllers`` group; ``factory(**params)`` returns the controller.
        """
        for i, entry in enumerate(specs):
            spec: Mapping[str, Any] = {"use": entry} if isinstance(entry, str) else entry
            if not isinstance(spec, Mapping) or not isinstance(spec.get("use"), str):
                raise ControllerError(f"controllers[{i}]: needs a 'use' string (module:factory "
                                      "or entry point name)")
            params = spec.get("params", {})
            if not isinstance(params, Mapping):
                raise ControllerError(f"controllers[{i}]: 'params' must be a table")
            factory = resolve(spec["use"])
            name = str(spec.get("name") or spec["use"].rpartition(":")[2] or spec["use"])
            try:
                controller = factory(**params)
            except (TypeError, ValueError) as e:
                raise ControllerError(f"controller {name!r}: bad params: {e}") from e
            self.add(name, controller)

    # ---------------------------------------------------------------- dispatch

    def tick(self, now: float, result: TickResult) -> None:
        """Dispatch a tick's events and logged flows, then the interval handlers due."""
        with self.lock:
            self._dispatch(now, result)

    def start(self) -> None:
        """Start the dispatcher thread that ``submit`` hands ticks to."""
        self._thread = threading.Thread(target=self._run, name="controllers", daemon=True)
        self._thread.start()

    def submit(self, now: float, result: TickResult) -> None:
        """Hand a tick to the dispatcher thread; never waits for a controller. Ticks not yet
        dispatched merge into one (their events and flows in order, the latest ``now``)."""
        with self._wake:
            if self._pending is None:
                self._pending = (now, TickResult())
            waiting = self._pending[1]
            room = MAX_PENDING - len(waiting.events) - len(waiting.flows)
            events, flows = result.events[:max(room, 0)], result.flows
            flows = flows[:max(room - len(events), 0)]
            self.shed += len(result.events) + len(result.flows) - len(events) - len(flows)
            waiting.events.extend(events)
            waiting.flows.extend(flows)
            self._pending = (now, waiting)
            self._wake.notify()

    def close(self) -> None:
        """Stop the dispatcher thread (not waiting long for a handler that hangs)."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                assert self._pending is not None
                (now, result), self._pending = self._pending, None
            self.tick(now, result)

    def slow_calls(self) -> int:
        """Slow calls over every controller and kind."""
        return sum(n for api in self.controllers.values() for n in api.stats.slow.values())

    def _dispatch(self, now: float, result: TickResult) -> None:
        for api in self.controllers.values():
            for event in result.events:
                for on_event, ids in api._event_handlers:
                    if ids is None or event.thresholdID in ids:
                        self._call(api, "event", on_event, event)
            for record in result.flows:
                for on_flow, names in api._flow_handlers:
                    if names is None or record.name in names:
                        self._call(api, "flow", on_flow, record)
            for iv in api._intervals:
                if now >= iv.next_due:
                    # skip intervals missed while the clock jumped, as a timer would
                    missed = int((now - iv.next_due) // iv.interval_s)
                    iv.next_due += (missed + 1) * iv.interval_s
                    self._call(api, "interval", iv.fn, now)

    def http(self, name: str, request: HttpRequest, script: str | None = None) -> Any:
        """Call a controller's HTTP handler (``script``'s, else its default); ``HttpError``
        for unknown names or failures."""
        api = self.controllers.get(name)
        if api is None:
            raise HttpError(404, f"no controller named {name!r}")
        handler = api._http.get(script) or api._http.get(None)
        if handler is None:
            raise HttpError(404, f"controller {name!r} has no HTTP handler"
                            + (f" for script {script!r}" if script else ""))
        if not self.lock.acquire(timeout=HTTP_WAIT_S):
            busy = next((a for a in self.controllers.values() if a.stats.running), None)
            doing = "" if busy is None else f" ({busy.name}'s {busy.stats.running[0]} handler)"  # type: ignore[index]
            raise HttpError(503, f"controller {name!r} is busy{doing}: try again later")
        try:
            return self._timed(api, "http", handler, request)
        except HttpError:
            raise
        except Exception as e:
            self._failed(api, "http", e)
            raise HttpError(500, f"controller {name!r} failed: {e}") from None
        finally:
            self.lock.release()

    def subscribe(self, fn: Callable[[str, object], None]) -> None:
        """Call ``fn(controller name, event)`` for every event a controller publishes."""
        self._subscribers.append(fn)

    def published(self, name: str, event: object) -> None:
        """Deliver a controller's event; a subscriber that raises is logged and skipped. The
        newest ``PUBLISHED_KEPT`` of each controller are kept for ``/app/json``."""
        kept = self._published.setdefault(name, deque(maxlen=PUBLISHED_KEPT))
        fields = asdict(event) if is_dataclass(event) and not isinstance(event, type) else {
            "event": repr(event)}
        kept.append({"type": type(event).__name__, **fields})
        for fn in self._subscribers:
            try:
                fn(name, event)
            except Exception:
                log.exception("event=subscriber_failed controller=%s event=%r", name, event)

    def status(self) -> dict[str, Any]:
        """Per controller: handler counts, failures and the last error, and the decisions it
        published (newest last)."""
        return {name: {**api.stats.to_json(),
                       "published": list(self._published.get(name, ()))}
                for name, api in self.controllers.items()}

    def scripts(self) -> dict[str, dict[str, Any]]:
        """``/scripts/json``: per controller, the scripts with their own HTTP handler, whether
        it has a default one, and whether it serves html."""
        return {name: {"scripts": sorted(s for s in api._http if s is not None),
                       "http": None in api._http, "html": api.html is not None}
                for name, api in self.controllers.items()}

    def html(self, name: str) -> Path:
        """The html folder of controller ``name``; ``HttpError`` 404 if it serves none."""
        api = self.controllers.get(name)
        if api is None or api.html is None:
            raise HttpError(404, f"controller {name!r} serves no html")
        return api.html

    def _call(self, api: LoadedController, kind: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._timed(api, kind, fn, *args)
        except Exception as e:
            self._failed(api, kind, e)

    @staticmethod
    def _timed(api: LoadedController, kind: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call one handler, counted and timed (a slow one logged)."""
        stats = api.stats
        stats.calls[kind] = stats.calls.get(kind, 0) + 1
        started = time.perf_counter()
        stats.running = (kind, started)
        try:
            return fn(*args)
        finally:
            stats.running = None
            took = time.perf_counter() - started
            if stats.took(kind, took):
                api.log.warning("event=controller_slow controller=%s handler=%s seconds=%.3f",
                                api.name, kind, took)

    @staticmethod
    def _failed(api: LoadedController, kind: str, e: Exception) -> None:
        stats = api.stats
        stats.errors[kind] = stats.errors.get(kind, 0) + 1
        stats.last_error = f"{kind}: {type(e).__name__}: {e}"
        api.log.error("event=controller_failed controller=%s handler=%s error=%r", api.name,
                      kind, str(e), exc_info=True)

    # ---------------------------------------------------------------- persistent store

    def _store(self, name: str) -> StateStore | None:
        if self.state_dir is None:
            return None
        return StateStore(self.state_dir / "controllers" / f"{name}.json")

    def store(self, name: str) -> dict[str, Any]:
        """A controller's persistent key-value store (loaded once, saved on every set)."""
        store = self._stores.get(name)
        if store is None:
            backing = self._store(name)
            store = {}
            if backing is not None:
                try:
                    store = backing.load()
                except ConfigError as e:
                    log.error("event=store_unreadable controller=%s error=%r", name, str(e))
            self._stores[name] = store
        return store

    def store_set(self, name: str, key: str, value: Any) -> None:
        store = self.store(name)
        store[key] = value
        backing = self._store(name)
        if backing is not None:
            backing.save(store)


def resolve(use: str) -> Callable[..., Controller]:
    """An import path ``"pkg.mod:attr"`` or an entry point name -> the controller factory."""
    if ":" in use:
        module_name, _, attr = use.partition(":")
        try:
            module = importlib.import_module(module_name)
            factory = getattr(module, attr)
        except (ImportError, AttributeError) as e:
            raise ControllerError(f"cannot load controller {use!r}: {e}") from e
        return factory  # type: ignore[no-any-return]
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == use:
            return ep.load()  # type: ignore[no-any-return]
    raise ControllerError(f"no controller entry point named {use!r} (group {ENTRY_POINT_GROUP})")


__all__ = ["Controller", "ControllerApi", "ControllerError", "Event", "FlowRecord", "HttpError",
           "HttpRequest", "LoadedController", "Runtime", "resolve"]
