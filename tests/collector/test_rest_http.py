"""The collector's REST server probed as an attacker would: idle floods, malformed requests,
methods it does not serve. Each answer is a bounded, clear 4xx; the server stays up."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_helpers import Collector, start, wait_for

sys.path.insert(0, str(Path(__file__).parents[1] / "http"))
from http_helpers import raw_exchange


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    c = start(tmp_path_factory.mktemp("rest"))
    yield c
    assert c.stop() == 0


def exchange(c: Collector, data: bytes, shut: bool = False) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes on a fresh connection; status, headers and body until the server closes."""
    head, _, body = raw_exchange(c.http_port, data, shut, timeout_s=10).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(("length", "shut", "status", "error"), [
    ("-1", False, 400, "Content-Length must be a non-negative integer, not '-1'"),
    ("abc", False, 400, "Content-Length must be a non-negative integer, not 'abc'"),
    ("64", True, 400, "request body ended after 14 of 64 bytes (Content-Length)"),
])
def test_bad_content_length_answers_400_at_once(collector: Collector, length: str, shut: bool,
                                                status: int, error: str) -> None:
    started = time.monotonic()
    code, headers, body = exchange(collector, (
        f"PUT /group/g/json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n[\"10.0.0.0/8\"]").encode(), shut)
    assert (code, json.loads(body)) == (status, {"error": error})
    assert headers["Content-Type"] == "application/json"
    assert time.monotonic() - started < 5
    assert collector.send("GET", "/group/g/json")[0] == 404  # nothing was stored
    assert "Traceback" not in collector.log()


def test_deep_json_answers_400(collector: Collector) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    code, _, body = exchange(collector, b"PUT /flow/deep/json HTTP/1.1\r\nHost: x\r\n"
                             b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(deep), deep))
    assert (code, json.loads(body)) == (400, {"error": "bad JSON body: nested too deep"})
    assert collector.send("GET", "/flow/deep/json")[0] == 404


def test_patch_options_and_head(collector: Collector) -> None:
    code, headers, body = exchange(collector, b"PATCH /flow/x/json HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n")
    assert (code, headers["Allow"]) == (405, "DELETE, GET, HEAD, OPTIONS, PUT")
    assert json.loads(body) == {"error": "PATCH not allowed on /flow/x/json; allowed: DELETE, "
                                         "GET, HEAD, OPTIONS, PUT"}
    code, headers, body = exchange(collector, b"OPTIONS /agents/json HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n")
    assert (code, headers["Allow"], body) == (204, "GET, HEAD, OPTIONS", b"")
    code, headers, body = exchange(collector, b"HEAD /analyzer/json HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n")
    assert (code, headers["Content-Type"], body) == (200, "application/json", b"")
    assert int(headers["Content-Length"]) > 100


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_connection_flood_neither_blocks_the_api_nor_spins(tmp_path: Path) -> None:
    """300 idle connections against a collector allowed 128 file descriptors: it keeps
    answering (the longest idle connections are closed) and does not spin on accept."""
    c = start(tmp_path, nofile=128)
    idle: list[socket.socket] = []
    try:
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", c.http_port), timeout=5))
        cpu, started = _cpu_s(c.proc.pid), time.monotonic()
        answered = 0
        while time.monotonic() - started < 1.5:
            assert c.get("/version")
            answered += 1
            due = started + answered * 0.1
            wait_for(lambda due=due: time.monotonic() > due, 1, "the next probe's time")
        busy = (_cpu_s(c.proc.pid) - cpu) / (time.monotonic() - started)
        assert busy < 0.5, f"the collector used {busy:.0%} of a core while holding idle clients"
        closed = sum(1 for s in idle if _closed(s))
        assert closed >= 300 - 64
        stats = c.get("/analyzer/json")
        assert stats["httpMaxConnections"] == 128 - 64  # what the descriptors leave
        assert stats["httpEvicted"] >= closed and stats["httpConnections"] <= 64
    finally:
        for s in idle:
            s.close()
        assert c.stop() == 0


def _closed(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
