"""What the lab doubles stand on: the real-time scheduler and the threaded HTTP server."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from sflowlab.lab.doubles.scheduler import RealTimeScheduler
from sflowlab.lab.doubles.swarm_api import SwarmApi
from sflowlab.lab.doubles.swarm_model import Swarm
from sflowlab.lab.httpserver import HttpError, HttpServer, Request, Response, Router, json_response


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


# -- HttpServer ----------------------------------------------------------------------------------


def _bug(request: Request) -> Response:
    raise KeyError("handler bug")


def _teapot(request: Request) -> Response:
    raise HttpError(418, f"no coffee for {request.params['who']}")


def _stream(request: Request) -> Response:
    def chunks() -> Any:
        yield b"first\n"
        while not request.closing.wait(0.02):
            pass

    return Response(200, stream=chunks())


@pytest.fixture
def server() -> Any:
    router = Router(headers=lambda: {"X-Double": "test"})
    router.add("GET", "/hello", lambda r: json_response({"hello": r.arg("name", "world")}))
    router.add("GET", "/bug", _bug)
    router.add("GET", "/coffee/(?P<who>[a-z]+)", _teapot)
    router.add("GET", "/stream", _stream)
    router.add("POST", "/echo", lambda r: json_response(r.body.decode()))
    with HttpServer(router) as srv:
        yield srv


def test_routing_errors_and_headers(server: HttpServer) -> None:
    hello = requests.get(f"{server.url}/hello?name=lab", timeout=5)
    assert (hello.status_code, hello.json(), hello.headers["X-Double"]) == (
        200,
        {"hello": "lab"},
        "test",
    )
    head = requests.head(f"{server.url}/hello", timeout=5)
    assert (head.status_code, head.content, head.headers["Content-Length"]) == (
        200,
        b"",
        str(len(b'{"hello": "world"}\n')),
    )
    missing = requests.get(f"{server.url}/nope", timeout=5)
    assert (missing.status_code, missing.json()) == (404, {"message": "page not found: /nope"})
    assert requests.post(f"{server.url}/hello", timeout=5).status_code == 405
    teapot = requests.get(f"{server.url}/coffee/bob", timeout=5)
    assert (teapot.status_code, teapot.json()) == (418, {"message": "no coffee for bob"})
    bug = requests.get(f"{server.url}/bug", timeout=5)
    assert bug.status_code == 500 and "handler bug" in bug.json()["message"]


def test_request_bodies_with_a_length_or_chunked(server: HttpServer) -> None:
    assert requests.post(f"{server.url}/echo", data="plain", timeout=5).json() == "plain"
    chunked = requests.post(f"{server.url}/echo", data=iter([b"chu", b"nked"]), timeout=5)
    assert chunked.json() == "chunked"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400 ")


def test_keep_alive_connections_are_reused(server: HttpServer) -> None:
    with requests.Session() as session:
        first = session.get(f"{server.url}/hello", timeout=5)
        second = session.get(f"{server.url}/hello", timeout=5)
        assert first.json() == second.json()
        assert len(session.get_adapter(server.url).poolmanager.pools) == 1


def test_stop_ends_streams_and_idle_connections() -> None:
    router = Router()
    router.add("GET", "/stream", _stream)
    server = HttpServer(router).start()
    session = requests.Session()
    session.get(f"{server.url}/nope", timeout=5)  # leaves an idle keep-alive connection
    response = requests.get(f"{server.url}/stream", stream=True, timeout=5)
    lines = response.iter_lines()
    assert next(lines) == b"first"
    started = time.monotonic()
    server.stop()
    assert list(lines) == []  # the chunked body ends cleanly
    assert time.monotonic() - started < 5
    response.close()
    session.close()


def test_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    router = Router()
    router.add("GET", "/hello", lambda r: json_response("hi"))
    with HttpServer(router, host="::1") as server:
        assert server.url.startswith("http://[::1]:")
        assert requests.get(f"{server.url}/hello", timeout=5).json() == "hi"


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
