"""Threshold events, logged flow records and the bounded, long-pollable logs behind
``/events/json`` and ``/flows/json``.

``LongPollLog`` keeps the newest ``capacity`` items with increasing integer ids; ``query``
returns the newest first, ``wait`` blocks (on a ``threading.Condition``) until an item newer
than a given id exists or the timeout passes. It is thread-safe on its own, so REST handlers
may wait on it without holding the engine's lock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from .api import Event, FlowRecord

T = TypeVar("T")

DEFAULT_CAPACITY = 10_000


class LongPollLog(Generic[T]):
    """Newest ``capacity`` items, each with an increasing id given by ``id_of``."""

    def __init__(self, id_of: Callable[[T], int], capacity: int = DEFAULT_CAPACITY) -> None:
        self._id_of = id_of
        self._items: deque[T] = deque(maxlen=capacity)
        self._cond = threading.Condition()

    def append(self, items: Iterable[T]) -> None:
        with self._cond:
            before = len(self._items), self.last_id()
            self._items.extend(items)
            if (len(self._items), self.last_id()) != before:
                self._cond.notify_all()

    def last_id(self) -> int:
        """The newest id, or -1 when empty."""
        return self._id_of(self._items[-1]) if self._items else -1

    def query(self, max_items: int = 100, after_id: int = -1,
              where: Callable[[T], bool] | None = None) -> list[T]:
        """Items with id > ``after_id`` (and ``where``), newest first, at most ``max_items``."""
        out: list[T] = []
        with self._cond:
            for item in reversed(self._items):
                if len(out) >= max_items or self._id_of(item) <= after_id:
                    break
                if where is None or where(item):
                    out.append(item)
        return out

    def wait(self, after_id: int, timeout_s: float,
             where: Callable[[T], bool] | None = None) -> bool:
        """Block until an item newer than ``after_id`` (and matching ``where``) exists (True)
        or ``timeout_s`` passes (False)."""
        with self._cond:
            if where is None:
                return self._cond.wait_for(lambda: self.last_id() > after_id, timeout=timeout_s)
            return self._cond.wait_for(lambda: bool(self.query(1, after_id, where)),
                                       timeout=timeout_s)


class EventLog:
    """The bounded event log behind ``/events/json`` (thread-safe, long poll)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._log: LongPollLog[Event] = LongPollLog(lambda e: e.eventID, capacity)

    def append(self, events: Iterable[Event]) -> None:
        self._log.append(events)

    def last_id(self) -> int:
        return self._log.last_id()

    def query(self, threshold_id: str | None = None, max_events: int = 100,
              after_id: int = -1) -> list[Event]:
        """Events newer than ``after_id``, newest first; only ``threshold_id``'s if given."""
        return self._log.query(max_events, after_id, _of_threshold(threshold_id))

    def wait(self, after_id: int, timeout_s: float, threshold_id: str | None = None) -> bool:
        """Return when an event newer than ``after_id`` (of ``threshold_id`` if given) exists
        (True) or on timeout (False)."""
        return self._log.wait(after_id, timeout_s, _of_threshold(threshold_id))


def _of_threshold(threshold_id: str | None) -> Callable[[Event], bool] | None:
    return None if threshold_id is None else (lambda e: e.thresholdID == threshold_id)


__all__ = ["DEFAULT_CAPACITY", "Event", "EventLog", "FlowRecord", "LongPollLog"]
