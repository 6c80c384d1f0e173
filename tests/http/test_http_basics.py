"""The HTTP layer's basics over real sockets: routing, bodies, keep-alive, streams, stop, IPv6."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import requests

from sflowlab.http import HttpError, HttpServer, Request, Response, Router, json_response


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
    assert (missing.status_code, missing.json()) == (404, {"error": "no such resource: /nope"})
    assert requests.post(f"{server.url}/hello", timeout=5).status_code == 405
    teapot = requests.get(f"{server.url}/coffee/bob", timeout=5)
    assert (teapot.status_code, teapot.json()) == (418, {"error": "no coffee for bob"})
    bug = requests.get(f"{server.url}/bug", timeout=5)
    assert bug.status_code == 500 and "handler bug" in bug.json()["error"]


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
