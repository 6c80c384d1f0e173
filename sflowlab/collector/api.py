"""The collector's public API for controllers: the only module of the collector they import.

A controller is any object with ``start(api: ControllerApi)`` (:class:`Controller`); the
runtime (:mod:`sflowlab.collector.runtime`) gives it a :class:`ControllerApi` and calls its
handlers. This module imports nothing of the collector's internals (import-linter checks
it), so a controller depends on these signatures only, and the same controller runs in the
daemon, in the lab under simulated time and in tests.

| sFlow-RT JavaScript           | ControllerApi                                       |
|-------------------------------|-----------------------------------------------------|
| ``setIntervalHandler(f, s)``  | ``set_interval_handler(f, interval_s)``, ``f(now)`` |
| ``setFlowHandler(f, names)``  | ``set_flow_handler(f, names)``, ``f(FlowRecord)``   |
| ``setEventHandler(f, ids)``   | ``set_event_handler(f, ids)``, ``f(event: Event)``  |
| ``setHttpHandler(f)``         | ``set_http_handler(f, script=None)``, ``f(HttpRequest) -> obj`` (JSON; text/plain for ``.../txt``) |
| an app's ``html/`` folder     | ``serve_html(directory)``: ``/app/{name}/html/...`` |
| ``setFlow``/``clearFlow`` ... | ``set_flow``, ``clear_flow``, ``set_threshold``, ``clear_threshold`` |
| ``setGroups(name, spec)``     | ``set_group(name, {group: cidrs})`` (a CIDR list: one group named ``name``), ``clear_group`` |
| ``metric``, ``dump``, ``table``, ``activeFlows``, ``flowValue`` | same names, snake_case |
| ``flowKeys()``, ``metrics(<agent>)``, ``agents(<list>)`` | ``flow_keys()``, ``metrics(agent=None)``, ``agents(agents=None)`` |
| ``setTopology``/``getTopology`` | ``set_topology(spec)``/``topology()``             |
| ``storeGet``/``storeSet``     | ``store_get``/``store_set`` (persistent JSON per controller) |
| ``sharedGet``/``sharedSet``   | ``shared_get``/``shared_set`` (in memory, across controllers) |
| ``logInfo``/``logWarning``    | ``api.log`` (a ``logging.Logger``)                  |
| (none)                        | ``publish(event)``: a typed decision to the runtime's subscribers (the newest 100 in ``/app/json``) |

Time units, as in sFlow-RT: ``now()``, the interval handlers' ``now`` and ``interval_s`` are
seconds (float, the engine clock's epoch); what the REST API shows keeps sFlow-RT's
milliseconds: ``Event.timestamp``, ``FlowRecord.start``/``end`` (ms since the epoch),
``lastUpdate`` and the ages of ``flow_keys()``/``metrics()`` (ms ago). Flow ``t`` and
``activeTimeout``, threshold ``timeout`` are seconds. Events (``Event``) and logged flows
(``FlowRecord``) are frozen dataclasses named and shaped like sFlow-RT's JSON (``to_json()``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from sflowlab.http import HttpError, first_arg

Agents = str | Collection[str] | None
"""Agents a query covers: ``"ALL"``, ``"a;b"``, a collection of addresses, or None (all)."""
Filter = Mapping[str, Iterable[str]]
"""String-metric filter of a query: metric name -> patterns (a repeated key ORs)."""
Groups = dict[str, list[str]]
"""One group set: group name -> CIDR list."""


@dataclass(frozen=True)
class Event:
    """A threshold was exceeded (sFlow-RT's event JSON, field for field)."""

    eventID: int
    timestamp: int  # ms since the epoch (of the engine's clock)
    thresholdID: str
    metric: str
    threshold: float
    value: float
    agent: str
    dataSource: str
    flowKey: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.flowKey is None:
            del out["flowKey"]
        return out


@dataclass(frozen=True)
class FlowRecord:
    """A logged flow ended (or started, with ``flowStart``): sFlow-RT's flow record JSON,
    field for field (``/flows/json``, flow handlers)."""

    flowID: int
    name: str
    flowKeys: str
    value: float
    start: int  # ms since the epoch (of the engine's clock)
    end: int  # ms since the epoch
    agent: str
    dataSource: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _open() -> None:
    """Every change allowed (a request made in-process, not over REST)."""


@dataclass(frozen=True)
class HttpRequest:
    """A request to a controller's HTTP handler (``/app/{name}/...``, ``/script/{name}/json``)."""

    method: str
    path: tuple[str, ...]
    query: Mapping[str, list[str]]
    body: Any = None
    guard: Callable[[], None] = _open
    """Raises ``HttpError`` 401/403 when the caller may not change state (token, read-only)."""

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter (``?state=enabled`` -> ``"enabled"``), as
        sFlow-RT's ``req.query.state[0]``."""
        return first_arg(self.query, name, default)

    def mutating(self) -> None:
        """Declare that this request changes the controller's state; call it before the
        change. PUT, POST and DELETE are guarded before the handler runs; a handler that
        changes state on a GET (``?state=disabled``) must call it."""
        self.guard()


class ControllerApi(Protocol):
    """Everything a controller may do (see the module docstring)."""

    name: str
    log: logging.Logger

    def now(self) -> float: ...

    def set_interval_handler(self, fn: Callable[[float], None],
                             interval_s: float = 1.0) -> None: ...

    def set_flow_handler(self, fn: Callable[[FlowRecord], None],
                         names: Collection[str] | None = None) -> None: ...

    def set_event_handler(self, fn: Callable[[Event], None],
                          thresholds: Collection[str] | None = None) -> None: ...

    def set_http_handler(self, fn: Callable[[HttpRequest], Any],
                         script: str | None = None) -> None: ...

    def serve_html(self, directory: str | Path) -> None: ...

    def set_flow(self, name: str, spec: Mapping[str, Any]) -> None: ...

    def clear_flow(self, name: str) -> bool: ...

    def set_threshold(self, name: str, spec: Mapping[str, Any]) -> None: ...

    def clear_threshold(self, name: str) -> bool: ...

    def set_group(self, name: str, groups: Groups | list[str]) -> None: ...

    def clear_group(self, name: str) -> bool: ...

    def metric(self, agents: Agents, metrics: str | Collection[str],
               filter: Filter | None = None) -> list[dict[str, Any]]: ...

    def dump(self, agents: Agents, metrics: str | Collection[str],
             filter: Filter | None = None) -> list[dict[str, Any]]: ...

    def table(self, agents: Agents, metrics: str | Collection[str],
              filter: Filter | None = None) -> list[list[dict[str, Any]]]: ...

    def active_flows(self, agents: Agents, name: str, max_flows: int = 100,
                     min_value: float = 0.0, agg_mode: str = "max") -> list[dict[str, Any]]: ...

    def flow_value(self, agent: str, name: str, key: str) -> float: ...

    def flow_keys(self) -> dict[str, int]: ...

    def metrics(self, agent: str | None = None) -> dict[str, Any]: ...

    def agents(self, agents: Collection[str] | None = None) -> dict[str, dict[str, Any]]: ...

    def topology(self) -> dict[str, Any]: ...

    def set_topology(self, spec: Mapping[str, Any]) -> None: ...

    def store_get(self, key: str, default: Any = None) -> Any: ...

    def store_set(self, key: str, value: Any) -> None: ...

    def shared_get(self, key: str, default: Any = None) -> Any: ...

    def shared_set(self, key: str, value: Any) -> None: ...

    def publish(self, event: object) -> None: ...


class Controller(Protocol):
    """What the runtime loads: an object that registers itself when started."""

    def start(self, api: ControllerApi) -> None: ...


__all__ = ["Agents", "Controller", "ControllerApi", "Event", "Filter", "FlowRecord", "Groups",
           "HttpError", "HttpRequest"]
