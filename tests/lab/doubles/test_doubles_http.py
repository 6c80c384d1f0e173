"""What the lab doubles stand on: the real-time scheduler, and concurrent clients of a double."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from sflowlab.lab.doubles.scheduler import RealTimeScheduler
from sflowlab.lab.doubles.swarm_api import SwarmApi
from sflowlab.lab.doubles.swarm_model import Swarm


def wait_for(condition: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.01)
    return value


# -- RealTimeScheduler ---------------------------------------------------------------------------


def test_timers_fire_in_due_order_and_cancelled_ones_never() -> None:
    scheduler = RealTimeScheduler()
    fired: list[str] = []
    try:
        start = scheduler.now()
        scheduler.call_later(0.15, lambda now: fired.append("c"))
        cancelled = scheduler.call_later(0.05, lambda now: fired.append("cancelled"))
        scheduler.call_later(0.1, lambda now: fired.append("b"))
        scheduler.call_later(0.0, lambda now: fired.append("a"))
        scheduler.cancel(cancelled)
        scheduler.cancel(cancelled)  # twice is harmless
        wait_for(lambda: len(fired) == 3)
        assert fired == ["a", "b", "c"] and scheduler.now() - start >= 0.15
    finally:
        scheduler.close()


def test_a_failing_callback_is_logged_and_the_next_one_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = RealTimeScheduler()
    fired: list[float] = []

    def broken(now: float) -> None:
        raise RuntimeError("callback bug")

    try:
        scheduler.call_later(0.0, broken)
        scheduler.call_later(0.01, fired.append)
        wait_for(lambda: fired)
    finally:
        scheduler.close()
    assert "scheduled callback failed" in caplog.text


def test_close_drops_pending_timers_and_ends_the_worker() -> None:
    scheduler = RealTimeScheduler()
    fired: list[float] = []
    scheduler.call_later(30.0, fired.append)
    scheduler.close()
    assert fired == [] and not scheduler._thread.is_alive()


# -- concurrent clients on the swarm double ------------------------------------------------------


def test_concurrent_read_modify_write_scaling_loses_no_update() -> None:
    """8 clients each add 10 replicas the way the ELB does (read the version, update, retry
    when out of sequence): every update lands exactly once."""
    scheduler = RealTimeScheduler()
    swarm = Swarm(scheduler, random.Random(2), start_delay_s=0, stop_delay_s=0)
    swarm.create_service({"Name": "apache", "TaskTemplate": {"ContainerSpec": {"Image": "httpd"}}})

    def add_ten(url: str) -> int:
        done = 0
        with requests.Session() as session:
            while done < 10:
                info = session.get(f"{url}/services/apache", timeout=10).json()
                spec = info["Spec"]
                spec["Mode"]["Replicated"]["Replicas"] += 1
                answer = session.post(
                    f"{url}/v1.24/services/{info['ID']}/update",
                    params={"version": info["Version"]["Index"]},
                    json=spec,
                    timeout=10,
                )
                if answer.status_code == 200:
                    done += 1
                else:
                    assert (answer.status_code, answer.json()["message"]) == (
                        500,
                        "rpc error: code = Unknown desc = update out of sequence",
                    )
        return done

    try:
        with SwarmApi(swarm) as api, ThreadPoolExecutor(8) as pool:
            assert sum(pool.map(add_ten, [api.url] * 8)) == 80
    finally:
        scheduler.close()
    assert swarm.service("apache").replicas == 81
    assert sorted(t.slot for t in swarm.running("apache")) == list(range(1, 82))
