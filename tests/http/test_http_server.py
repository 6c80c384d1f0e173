"""The shared HTTP layer over real sockets: method rules, malformed requests, idle and busy
clients, access to mutations."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from http_helpers import raw_exchange

from sflowlab.http import Access, HttpError, HttpServer, Limits, Request, Router, json_response


def _router(access: Access | None = None) -> Router:
    router = Router(access=access or Access())
    router.add("GET", "/things", lambda r: {"things": [r.arg("x")]})
    router.add("PUT", "/things", lambda r: {"stored": r.json()})
    router.add("GET", "/switch", _switch)
    router.add("POST", "/query", lambda r: {"n": len(r.body)}, mutates=False)
    router.add("GET", "/fail", lambda r: (_ for _ in ()).throw(HttpError(418, "teapot")))
    return router


def _switch(request: Request) -> Any:
    """A GET that changes state when asked to, as ``/app/elb/json?state=disabled``."""
    if request.arg("state") is not None:
        request.mutating()
        return {"state": request.arg("state")}
    return {"state": "unchanged"}


@pytest.fixture
def server() -> Iterator[HttpServer]:
    limits = Limits(max_connections=8, idle_timeout_s=0.5, request_timeout_s=0.5)
    with HttpServer(_router(), limits=limits) as srv:
        yield srv


def status_and_json(answer: bytes) -> tuple[int, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split()[1]), json.loads(body)


def test_first_value_of_a_repeated_parameter(server: HttpServer) -> None:
    assert requests.get(f"{server.url}/things?x=1&x=2", timeout=5).json() == {"things": ["1"]}


def test_head_options_and_other_methods(server: HttpServer) -> None:
    head = requests.head(f"{server.url}/things", timeout=5)
    get = requests.get(f"{server.url}/things", timeout=5)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(get.content))
    options = requests.options(f"{server.url}/things", timeout=5)
    assert (options.status_code, options.headers["Allow"]) == (204, "GET, HEAD, OPTIONS, PUT")
    patch = requests.patch(f"{server.url}/things", timeout=5)
    assert patch.status_code == 405 and patch.headers["Allow"] == "GET, HEAD, OPTIONS, PUT"
    assert patch.json() == {"error": "PATCH not allowed on /things; allowed: GET, HEAD, "
                                     "OPTIONS, PUT"}
    assert requests.request("BREW", f"{server.url}/things", timeout=5).status_code == 405
    assert requests.patch(f"{server.url}/nothing", timeout=5).json() == {
        "error": "no such resource: /nothing"}
    assert requests.get(f"{server.url}/fail", timeout=5).json() == {"error": "teapot"}


@pytest.mark.parametrize(("length", "message"), [
    ("-1", "Content-Length must be a non-negative integer, not '-1'"),
    ("abc", "Content-Length must be a non-negative integer, not 'abc'"),
    ("1e3", "Content-Length must be a non-negative integer, not '1e3'"),
])
def test_bad_content_length_is_a_clear_400(server: HttpServer, length: str, message: str) -> None:
    started = time.monotonic()
    answer = raw_exchange(server.port, b"PUT /things HTTP/1.1\r\nHost: x\r\nContent-Length: "
                 + length.encode() + b"\r\n\r\n{}")
    assert status_and_json(answer) == (400, {"error": message})
    assert time.monotonic() - started < 0.4  # answered at once, not after a timeout


def test_body_shorter_than_its_length(server: HttpServer) -> None:
    request = b"PUT /things HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}"
    # the client ends its side: answered at once
    assert status_and_json(raw_exchange(server.port, request, shut=True)) == (
        400, {"error": "request body ended after 2 of 100 bytes (Content-Length)"})
    # the client waits: answered when the request timeout (0.5 s) runs out, then closed
    started = time.monotonic()
    assert status_and_json(raw_exchange(server.port, request)) == (
        408, {"error": "request body incomplete: 2 of 100 bytes within 0.5 s"})
    assert 0.4 < time.monotonic() - started < 3


def test_body_too_large_and_conflicting_lengths() -> None:
    with HttpServer(_router(), limits=Limits(max_body=10)) as server:
        status, body = status_and_json(raw_exchange(
            server.port, b"PUT /things HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"))
        assert (status, body) == (413, {"error": "request body of 11 bytes is larger than the "
                                                 "10 allowed"})
        status, _ = status_and_json(raw_exchange(server.port, b"PUT /things HTTP/1.1\r\nHost: x\r\n"
                                        b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"))
        assert status == 400
        status, _ = status_and_json(raw_exchange(server.port, b"PUT /things HTTP/1.1\r\nHost: x\r\n"
                                        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"))
        assert status == 400


def test_deep_json_is_a_400(server: HttpServer) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    answer = requests.put(f"{server.url}/things", data=deep, timeout=10)
    assert (answer.status_code, answer.json()) == (400, {"error": "bad JSON body: nested too deep"})
    assert requests.put(f"{server.url}/things", data=b"[[1]]", timeout=5).json() == {
        "stored": [[1]]}


def test_parser_errors_answer_json(server: HttpServer) -> None:
    status, body = status_and_json(raw_exchange(server.port, b"GET /things HTTP/9.9\r\n\r\n"))
    assert (status, body) == (505, {"error": "Invalid HTTP version (9.9)"})
    status, body = status_and_json(raw_exchange(server.port, b"NONSENSE\r\n\r\n"))
    assert status == 400


def test_idle_connections_are_closed_after_the_idle_timeout(server: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        started = time.monotonic()
        assert s.recv(100) == b""  # closed by the server
        assert 0.4 < time.monotonic() - started < 3


def test_beyond_the_connection_limit_the_longest_idle_one_is_closed() -> None:
    limits = Limits(max_connections=4, idle_timeout_s=30)
    with HttpServer(_router(), limits=limits) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5)
                for _ in range(20)]
        try:
            for _ in range(3):  # every fresh client is served though 20 idle ones came first
                assert requests.get(f"{server.url}/things", timeout=5).status_code == 200
            assert idle[0].recv(10) == b""  # the oldest was evicted
            stats = server.stats()
            assert stats["maxConnections"] == 4 and stats["connections"] <= 4
            assert stats["evicted"] >= 16
        finally:
            for s in idle:
                s.close()


def test_busy_connections_beyond_the_limit_get_503() -> None:
    limits = Limits(max_connections=2, idle_timeout_s=30, request_timeout_s=30)
    with HttpServer(_router(), limits=limits) as server:
        busy = []
        for _ in range(2):  # requests begun, bodies never sent: busy, not idle
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"PUT /things HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
            busy.append(s)
        try:
            deadline = time.monotonic() + 5
            while (server.stats()["connections"], server.stats()["idle"]) != (2, 0):
                assert time.monotonic() < deadline, "the two requests did not begin"
                time.sleep(0.01)
            answer = raw_exchange(server.port, b"GET /things HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_and_json(answer) == (503, {"error": "too many connections, "
                                                              "retry later"})
        finally:
            for s in busy:
                s.close()


def test_mutations_need_the_token_whatever_the_method() -> None:
    with HttpServer(_router(Access(token="s3cret"))) as server:
        auth = {"Authorization": "Bearer s3cret"}
        assert requests.put(f"{server.url}/things", json=1, timeout=5).status_code == 401
        assert requests.put(f"{server.url}/things", json=1, headers=auth,
                            timeout=5).status_code == 200
        refused = requests.get(f"{server.url}/switch?state=off", timeout=5)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        assert requests.get(f"{server.url}/switch?state=off", headers=auth, timeout=5).json() == {
            "state": "off"}
        assert requests.get(f"{server.url}/switch", timeout=5).json() == {"state": "unchanged"}
        assert requests.post(f"{server.url}/query", data=b"abc", timeout=5).json() == {"n": 3}


def test_readonly_refuses_every_mutation() -> None:
    with HttpServer(_router(Access(readonly=True))) as server:
        assert requests.put(f"{server.url}/things", json=1, timeout=5).status_code == 403
        assert requests.get(f"{server.url}/switch?state=off", timeout=5).status_code == 403
        assert requests.get(f"{server.url}/things", timeout=5).status_code == 200


def test_a_json_response_helper_and_router_headers() -> None:
    router = Router(headers=lambda: {"X-Double": "test"})
    router.add("GET", "/hello", lambda r: json_response({"hello": r.arg("name", "world")}))
    with HttpServer(router) as server:
        hello = requests.get(f"{server.url}/hello", timeout=5)
        assert (hello.content, hello.headers["X-Double"]) == (b'{"hello": "world"}\n', "test")
