"""The C batch receive (``_recv.c``, recvmmsg) on real UDP sockets, against what ``recvfrom``
gives: the same bytes and sources, batches up to the maximum, blocking for the first datagram,
an empty batch once the socket is shut down, OSError for a bad descriptor."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sflowlab import accel

_recv = accel.load("sflowlab.collector._recv")

pytestmark = pytest.mark.skipif(
    _recv is None, reason="the C accelerator _recv is not loaded (not built, or SFLOWLAB_PURE_PYTHON=1)")


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


FAMILIES = [
    pytest.param(("127.0.0.1", socket.AF_INET), id="ipv4"),
    pytest.param(("::1", socket.AF_INET6), id="ipv6",
                 marks=pytest.mark.skipif(not _ipv6(), reason="no IPv6 loopback")),
]
MAX_PAYLOAD = 65507  # the largest UDP payload over IPv4


@pytest.fixture(params=FAMILIES)
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A bound receiving socket with a large buffer and a sender of the same family."""
    host, family = request.param
    rx = socket.socket(family, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    rx.bind((host, 0))
    tx = socket.socket(family, socket.SOCK_DGRAM)
    tx.bind((host, 0))
    tx.connect(rx.getsockname()[:2])
    yield rx, tx
    rx.close()
    tx.close()


def _drain(rx: socket.socket, count: int, batch: int = 32) -> list[tuple[bytes, tuple[str, int]]]:
    got: list[tuple[bytes, tuple[str, int]]] = []
    while len(got) < count:
        part = _recv.recv_batch(rx.fileno(), batch)  # type: ignore[union-attr]
        assert 1 <= len(part) <= batch
        got.extend(part)
    return got


def test_bytes_and_sources_match_what_was_sent(pair: tuple[socket.socket, socket.socket]) -> None:
    rx, tx = pair
    sizes = [0, 1, 2, 27, 1400, 1500, 9000, 32768, 65000, MAX_PAYLOAD, 0, 3]
    sizes += [(i * 7919) % 2000 for i in range(200)]
    payloads = [os.urandom(n) for n in sizes]
    source = tx.getsockname()[:2]
    for i, p in enumerate(payloads):
        tx.send(p)
        if i % 50 == 49:  # leave room in the receive buffer
            time.sleep(0.01)
    got = _drain(rx, len(payloads))
    assert [d for d, _ in got] == payloads
    assert all(s == source for _, s in got)
    assert all(type(s) is tuple and len(s) == 2 for _, s in got)
    assert socket.inet_pton(rx.family, got[0][1][0])  # the text inet_ntop gives
    assert _recv.truncated() == 0  # type: ignore[union-attr]


def test_source_tuple_as_recvfrom_gives_it(pair: tuple[socket.socket, socket.socket]) -> None:
    rx, tx = pair
    tx.send(b"a")
    tx.send(b"b")
    data, addr = rx.recvfrom(65535)
    [(data2, source)] = _recv.recv_batch(rx.fileno(), 1)  # type: ignore[union-attr]
    assert (data, data2) == (b"a", b"b")
    assert source == addr[:2]


def test_many_sources(pair: tuple[socket.socket, socket.socket]) -> None:
    rx, _ = pair
    host = rx.getsockname()[0]
    senders = [socket.socket(rx.family, socket.SOCK_DGRAM) for _ in range(40)]
    try:
        for s in senders:
            s.bind((host, 0))
        expected = []
        for round_ in range(3):  # again: sources cached by address and port
            for i, s in enumerate(senders):
                s.sendto(bytes([i, round_]), rx.getsockname()[:2])
                expected.append((bytes([i, round_]), s.getsockname()[:2]))
        assert _drain(rx, len(expected), batch=7) == expected
        assert all(s[0] == host for _, s in expected)
    finally:
        for s in senders:
            s.close()


def test_batch_takes_what_is_queued_up_to_max(pair: tuple[socket.socket, socket.socket]) -> None:
    rx, tx = pair
    for i in range(10):
        tx.send(b"%d" % i)
    time.sleep(0.05)
    assert [d for d, _ in _recv.recv_batch(rx.fileno(), 4)] == [b"0", b"1", b"2", b"3"]  # type: ignore[union-attr]
    assert [d for d, _ in _recv.recv_batch(rx.fileno(), 32)] == [b"%d" % i for i in range(4, 10)]  # type: ignore[union-attr]
    rx.setblocking(False)
    with pytest.raises(BlockingIOError):
        _recv.recv_batch(rx.fileno(), 8)  # type: ignore[union-attr]


def test_blocks_until_one_arrives(pair: tuple[socket.socket, socket.socket]) -> None:
    rx, tx = pair

    def send_later() -> None:
        time.sleep(0.2)
        tx.send(b"late")

    sender = threading.Thread(target=send_later)
    start = time.monotonic()
    sender.start()
    got = _recv.recv_batch(rx.fileno(), 32)  # type: ignore[union-attr]
    sender.join()
    assert time.monotonic() - start >= 0.15
    assert [d for d, _ in got] == [b"late"]


def blocked_reader(rx: socket.socket, max_datagrams: int
                   ) -> tuple[threading.Thread, list[Any]]:
    """A thread blocked in recv_batch on ``rx`` (given 0.1 s to get there), and where its
    batch will be."""
    result: list[Any] = []
    reader = threading.Thread(target=lambda: result.append(
        _recv.recv_batch(rx.fileno(), max_datagrams)))  # type: ignore[union-attr]
    reader.start()
    time.sleep(0.1)
    return reader, result


def test_other_threads_run_while_blocked(pair: tuple[socket.socket, socket.socket]) -> None:
    rx, tx = pair
    reader, result = blocked_reader(rx, 8)
    # Python runs here while the reader waits (a call holding the GIL would hang this test
    # until pytest-timeout ends it): the reader is still blocked, with nothing received yet
    assert sum(1 for _ in range(100000)) == 100000
    assert reader.is_alive() and result == []
    tx.send(b"x")
    reader.join(2.0)
    assert not reader.is_alive()
    assert [d for d, _ in result[0]] == [b"x"]


def test_shutdown_wakes_a_blocked_call_with_an_empty_batch(
        pair: tuple[socket.socket, socket.socket]) -> None:
    rx, _ = pair
    reader, result = blocked_reader(rx, 32)
    assert reader.is_alive()
    with contextlib.suppress(OSError):  # ENOTCONN on UDP, yet the shutdown wakes readers
        rx.shutdown(socket.SHUT_RDWR)
    reader.join(2.0)
    assert not reader.is_alive()
    assert result == [[]]
    assert _recv.recv_batch(rx.fileno(), 32) == []  # type: ignore[union-attr]


def test_bad_descriptor_and_arguments() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as e:
        _recv.recv_batch(r, 8)  # type: ignore[union-attr]
    assert e.value.errno == 9  # EBADF
    with pytest.raises(OSError):
        _recv.recv_batch(-1, 8)  # type: ignore[union-attr]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for bad in (0, -1, 1025):
            with pytest.raises(ValueError):
                _recv.recv_batch(s.fileno(), bad)  # type: ignore[union-attr]
        with pytest.raises(TypeError):
            _recv.recv_batch(s.fileno())  # type: ignore[union-attr]
