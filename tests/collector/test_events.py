"""The event log: newest-first queries, bounds, and the long poll across threads."""

from __future__ import annotations

import threading
import time

from sflowlab.collector.events import Event, EventLog, LongPollLog


def event(event_id: int, threshold: str = "load") -> Event:
    return Event(event_id, event_id * 1000, threshold, "load_one", 1.0, 2.0, "192.0.2.1", "2.1")


def test_query_newest_first_with_id_threshold_and_count() -> None:
    log = EventLog()
    assert log.query() == []
    assert log.last_id() == -1
    log.append([event(1), event(2, "cpu"), event(3)])
    log.append([])
    assert [e.eventID for e in log.query()] == [3, 2, 1]
    assert [e.eventID for e in log.query(after_id=1)] == [3, 2]
    assert [e.eventID for e in log.query(threshold_id="load")] == [3, 1]
    assert [e.eventID for e in log.query(max_events=1)] == [3]
    assert log.query(after_id=3) == []
    assert log.last_id() == 3


def test_log_keeps_only_the_newest() -> None:
    log = EventLog(capacity=3)
    log.append(event(i) for i in range(1, 6))
    assert [e.eventID for e in log.query()] == [5, 4, 3]


def test_wait_returns_at_once_when_a_newer_event_exists() -> None:
    log = EventLog()
    log.append([event(1)])
    began = time.monotonic()
    assert log.wait(-1, 30.0) is True
    assert log.wait(0, 30.0) is True
    assert time.monotonic() - began < 10.0


def test_wait_times_out_without_new_events() -> None:
    log = EventLog()
    log.append([event(1)])
    began = time.monotonic()
    assert log.wait(1, 0.1) is False
    assert time.monotonic() - began >= 0.1


def test_wait_wakes_promptly_when_another_thread_appends() -> None:
    log = EventLog()
    waiting = threading.Event()
    result: list[bool] = []

    def poll() -> None:
        waiting.set()
        result.append(log.wait(-1, 30.0))

    poller = threading.Thread(target=poll)
    began = time.monotonic()
    poller.start()
    assert waiting.wait(10.0)
    log.append([event(7)])
    poller.join(30.0)
    assert result == [True]
    assert time.monotonic() - began < 10.0
    assert [e.eventID for e in log.query(after_id=-1)] == [7]


def test_long_poll_log_works_for_any_item_with_an_id() -> None:
    log: LongPollLog[dict[str, int]] = LongPollLog(lambda r: r["flowID"], capacity=2)
    log.append([{"flowID": 1}, {"flowID": 2}, {"flowID": 3}])
    assert log.query(where=lambda r: r["flowID"] != 3) == [{"flowID": 2}]
    assert log.wait(2, 0.0) is True
