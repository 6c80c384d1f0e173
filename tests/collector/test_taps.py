"""Listener taps in-process: the rotating pcap recorder and the forwarder."""

from __future__ import annotations

import socket
import threading
import time
import unittest.mock
from pathlib import Path
from typing import Any

import pytest

from sflowlab.codec.pcap import read_sflow
from sflowlab.collector.forwarding import Destination, Forwarder
from sflowlab.collector.recording import Recorder


def test_recorder_rotates_by_size_and_keeps_newest_files(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, max_bytes=1000, max_files=2, port=6343)
    payloads = [bytes([i]) * 200 for i in range(12)]  # 258 bytes per frame: 4 per file
    for i, p in enumerate(payloads):
        rec(p, ("10.0.0.1", 5000 + i), 100.0 + i)
    rec.close()
    files = sorted(tmp_path.glob("sflow-*.pcap"))
    assert [f.name for f in files] == ["sflow-000002.pcap", "sflow-000003.pcap"]
    got = [(d.payload, d.src, d.timestamp) for f in files for d in read_sflow(f)]
    assert got == [(p, ("10.0.0.1", 5000 + i), 100.0 + i) for i, p in enumerate(payloads)][4:]
    again = Recorder(tmp_path, max_bytes=1000, max_files=2)
    again(b"x", ("::1", 1), 1.0)
    again.close()
    assert sorted(f.name for f in tmp_path.glob("sflow-*.pcap")) == [
        "sflow-000003.pcap", "sflow-000004.pcap"]


def test_forwarder_sends_to_each_destination_and_counts_errors() -> None:
    fwd = Forwarder()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("::1", 0))
        a.settimeout(5)
        b.settimeout(5)
        fwd.set("a", Destination.from_json({"address": "127.0.0.1", "port": a.getsockname()[1]}))
        fwd.set("b", Destination.from_json({"address": "::1", "port": b.getsockname()[1]}))
        fwd(b"sflow", ("10.0.0.1", 6343), 0.0)
        assert a.recv(100) == b"sflow" and b.recv(100) == b"sflow"
    assert (fwd.sent, fwd.errors) == (2, 0)
    fwd.close()


def test_forwarder_taps_from_many_threads_share_one_socket() -> None:
    """Sharded listeners tap from one thread per worker: no socket is made twice (and leaked)."""
    fwd = Forwarder()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        fwd.set("peer", Destination(*peer.getsockname()))
        made: list[socket.socket] = []
        real_socket = socket.socket

        def slow_socket(*args: Any) -> socket.socket:
            time.sleep(0.05)  # widen the window between the lookup and the store
            made.append(real_socket(*args))
            return made[-1]

        with unittest.mock.patch("socket.socket", slow_socket):
            threads = [threading.Thread(target=fwd, args=(b"x", ("10.0.0.1", 6343), 0.0))
                       for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=10)
        assert len(made) == 1 and fwd.sent == 4
    fwd.close()
    assert made[0].fileno() == -1  # closed


@pytest.mark.parametrize("obj", [{"address": "x", "port": 1}, {"address": "127.0.0.1", "port": 0},
                                 {"address": "127.0.0.1", "port": 1, "extra": 1}, ["127.0.0.1"]])
def test_bad_destinations_are_refused(obj: object) -> None:
    with pytest.raises(ValueError):
        Destination.from_json(obj)
