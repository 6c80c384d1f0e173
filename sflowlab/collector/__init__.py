"""An sFlow-RT compatible collector: listener, engine, queries, REST API, daemon. Stdlib only.

In-process use (scenario runs, controllers, notebooks) needs only :class:`Engine`:
``ingest(data, source, received_at)``, ``tick(now)`` and the queries (``metric``, ``dump``,
``table``, ``active_flows``, ...). The daemon is ``sflowlab collector``.
"""

from .engine import Engine, TickResult
from .query import QueryError
from .shards import ShardedEngine

__all__ = ["Engine", "QueryError", "ShardedEngine", "TickResult"]
