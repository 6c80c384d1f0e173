"""An sFlow-RT compatible collector: listener, engine, queries, REST API, daemon. Stdlib only.

In-process use (scenario runs, notebooks) needs only :class:`Engine`:
``ingest(data, source, received_at)``, ``tick(now)`` and the queries (``metric``, ``dump``,
``table``, ``active_flows``, ...); :class:`EngineApi` is the protocol it and
:class:`ShardedEngine` implement. Controllers use :mod:`sflowlab.collector.api` only. The
daemon is ``sflowlab collector``.
"""

from .engine import Engine
from .engine_api import EngineApi, TickResult
from .query import QueryError
from .shards import ShardedEngine

__all__ = ["Engine", "EngineApi", "QueryError", "ShardedEngine", "TickResult"]
