"""The listener in-process on loopback: receiving never waits for analytics; drops counted."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from collector_helpers import counters, datagram

from sflowlab.clock import SystemClock
from sflowlab.codec import IfCounters
from sflowlab.collector.engine import Engine, TickResult
from sflowlab.collector.forwarding import Destination, Forwarder
from sflowlab.collector.listener import Listener, ListenerConfig
from sflowlab.collector.shards import ShardedEngine
from sflowlab.collector.sockets import SO_RCVBUFFORCE, open_udp


def wait_for(condition: Callable[[], object], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_full_queue_drops_are_counted_and_analytics_resume() -> None:
    engine = Engine(SystemClock())
    ticks: list[TickResult] = []
    tapped: list[bytes] = []
    listener = Listener(engine, SystemClock(),
                        ListenerConfig(port=0, hosts=("127.0.0.1",), queue_size=5, tick_s=0.05),
                        taps=[lambda d, s, t: tapped.append(d)], on_tick=ticks.append)
    listener.bind()
    port = listener.ports[0][1]
    assert listener.rcvbuf_granted > 0
    listener.start()
    try:
        sent = [datagram("10.0.0.1", s, s, [counters(s, 0, 1, IfCounters(1))]) for s in range(1, 31)]
        with engine.lock, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            # analytics is stuck behind the engine lock: the receive thread keeps receiving
            for d in sent:
                sock.sendto(d, ("127.0.0.1", port))
            wait_for(lambda: listener.received == len(sent))
        # 5 queued, at most one queue entry (5 datagrams at most) in the analytics' hands
        assert listener.dropped >= len(sent) - 10
        received = len(sent) - listener.dropped
        # the taps see each datagram after the engine: wait until the queue is worked off
        wait_for(lambda: len(tapped) == received and ticks
                 and engine.analyzer_json()["sFlowDatagramsDiscarded"] == listener.dropped)
        assert engine.agents_json()["10.0.0.1"]["sFlowDatagramsReceived"] == received
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # the next one in order
            sock.sendto(datagram("10.0.0.1", 31, 31, []), ("127.0.0.1", port))
        wait_for(lambda: len(tapped) == received + 1)
        stats = engine.agents_json()["10.0.0.1"]
        assert stats["sFlowDatagramsReceived"] == received + 1
        assert stats["sFlowDatagramsLost"] == listener.dropped  # sequence accounting agrees
    finally:
        listener.stop()


def test_sharded_listener_ticks_workers_and_copies_to_active_taps() -> None:
    """Workers receive on the shared port; the forwarder gets copies only while it has a
    destination (switched on before its REST call would return)."""
    engine = ShardedEngine(2, SystemClock())
    forwarder = Forwarder()
    ticks: list[TickResult] = []
    listener = Listener(engine, SystemClock(),
                        ListenerConfig(port=0, hosts=("127.0.0.1",), tick_s=0.05),
                        taps=[forwarder], on_tick=ticks.append)
    try:
        listener.start()
        target = listener.ports[0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            peer.bind(("127.0.0.1", 0))
            peer.settimeout(10)
            sock.sendto(datagram("10.0.0.1", 1, 0, []), target)
            wait_for(lambda: listener.received == 1 and ticks)
            assert forwarder.sent == 0
            forwarder.set("peer", Destination(*peer.getsockname()))
            sent = [datagram(f"10.0.0.{i}", 1, 0, []) for i in (2, 3)]
            for d in sent:
                sock.sendto(d, target)
            assert sorted(peer.recvfrom(65535)[0] for _ in sent) == sorted(sent)
        assert set(engine.agents_json()) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}
    finally:
        listener.stop()
        engine.close()
        forwarder.close()
        forwarder.close()


@pytest.mark.parametrize("workers", [0, 1])
def test_kernel_drops_count_as_discarded(workers: int) -> None:
    """A receive buffer too small to keep up: every datagram sent is either analysed or counted
    in sFlowDatagramsDiscarded (loopback loses nothing else), in-process and in workers."""
    engine = ShardedEngine(workers, SystemClock()) if workers else Engine(SystemClock())
    listener = Listener(engine, SystemClock(),
                        ListenerConfig(port=0, hosts=("127.0.0.1",), rcvbuf=1, tick_s=0.05))
    try:
        listener.start()
        sent = 0

        def caught_up() -> bool:  # the kernel's count is read at each tick
            return listener.received + listener.kernel_dropped == sent

        def accounted() -> bool:
            figures = engine.analyzer_json()
            return cast(int, figures["sFlowDatagramsReceived"]) + cast(
                int, figures["sFlowDatagramsDiscarded"]) == sent

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while listener.kernel_dropped == 0:  # bursts until the kernel drops some
                assert sent < 100_000, "the kernel never dropped a datagram"
                for _ in range(500):
                    sent += 1
                    sock.sendto(datagram("10.0.0.1", sent, sent, []), listener.ports[0])
                wait_for(caught_up)
        wait_for(accounted)
        assert engine.analyzer_json()["sFlowDatagramsDiscarded"] == (
            listener.kernel_dropped + listener.dropped)
    finally:
        listener.stop()
        if isinstance(engine, ShardedEngine):
            engine.close()


def test_receive_buffer_beyond_rmem_max_when_privileged() -> None:
    """With CAP_NET_ADMIN the buffer asked for is granted whole (the kernel books twice the
    bytes), past net.core.rmem_max; without it, the limit caps it."""
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    asked = 2 * rmem_max
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4096)
            privileged = True
        except PermissionError:
            privileged = False
    with open_udp("127.0.0.1", 0, asked) as sock:
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert granted == 2 * asked if privileged else granted <= 2 * rmem_max
