"""UDP listener: receive threads that never wait for analytics, and the analytics thread.

One receive thread per socket (IPv4 and IPv6) does nothing but ``recvfrom`` and put
``(bytes, source, received_at)`` on a bounded queue; when the queue is full the datagram is
dropped and counted (``sFlowDatagramsDiscarded``). The analytics thread takes datagrams off the
queue, feeds the engine, hands each datagram to the ``taps`` (forwarding, recording) and calls
``engine.tick(now)`` every ``tick_s`` seconds, passing what it produced to ``on_tick`` (the seam
for a controller runtime). Sockets ask for a large receive buffer; ``rcvbuf_granted`` reports
what the kernel gave (Linux doubles the request and caps it at ``net.core.rmem_max``).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sflowlab.clock import Clock

from .engine import Engine, TickResult
from .logs import RateLimitedLog
from .shards import ShardedEngine

log = logging.getLogger("sflowlab.collector")

Tap = Callable[[bytes, tuple[str, int], float], None]
DEFAULT_PORT = 6343


@dataclass
class ListenerConfig:
    port: int = DEFAULT_PORT
    hosts: tuple[str, ...] = ("0.0.0.0", "::")
    rcvbuf: int = 8 * 1024 * 1024
    queue_size: int = 20_000
    tick_s: float = 1.0


@dataclass
class Listener:
    """Owns the sockets and threads; ``start()``, then ``stop()``."""

    engine: Engine | ShardedEngine
    clock: Clock
    config: ListenerConfig = field(default_factory=ListenerConfig)
    taps: list[Tap] = field(default_factory=list)
    on_tick: Callable[[TickResult], None] | None = None
    sockets: list[socket.socket] = field(default_factory=list, init=False)
    ports: list[tuple[str, int]] = field(default_factory=list, init=False)
    rcvbuf_granted: int = field(default=0, init=False)
    dropped: int = field(default=0, init=False)
    received: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._queue: queue.Queue[tuple[bytes, tuple[str, int], float]] = queue.Queue(
            self.config.queue_size)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._dropped_reported = 0
        self._fault_log = RateLimitedLog()

    def bind(self) -> None:
        """Open the sockets (separately from ``start`` so a caller can learn the ports first)."""
        for host in self.config.hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.rcvbuf)
                sock.bind((host, self.config.port))
            except OSError as e:
                sock.close()
                if family == socket.AF_INET6 and len(self.config.hosts) > 1:
                    log.warning("event=ipv6_unavailable host=%s error=%r", host, str(e))
                    continue
                raise
            sock.settimeout(0.25)
            self.rcvbuf_granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            self.sockets.append(sock)
            self.ports.append(sock.getsockname()[:2])
        log.info("event=listening sockets=%s rcvbuf_requested=%d rcvbuf_granted=%d",
                 ";".join(f"[{h}]:{p}" for h, p in self.ports), self.config.rcvbuf,
                 self.rcvbuf_granted)

    def start(self) -> None:
        if not self.sockets:
            self.bind()
        for sock in self.sockets:
            self._spawn(self._receive, sock, name="sflow-receive")
        self._spawn(self._analyse, name="sflow-analytics")

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def _spawn(self, target: Callable[..., None], *args: object, name: str) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _receive(self, sock: socket.socket) -> None:
        put, now, stop = self._queue.put_nowait, self.clock.now, self._stop.is_set
        recv = sock.recvfrom
        while not stop():
            try:
                data, addr = recv(65535)
            except TimeoutError:
                continue
            except OSError:
                if stop():
                    return
                raise
            self.received += 1
            try:
                put((data, addr[:2], now()))
            except queue.Full:
                self.dropped += 1

    def _analyse(self) -> None:
        get, engine, taps, clock = self._queue.get, self.engine, self.taps, self.clock
        tick_s = self.config.tick_s
        next_tick = clock.now() + tick_s
        while not self._stop.is_set():
            try:
                data, source, received_at = get(timeout=max(0.0, min(tick_s, next_tick - clock.now())))
            except queue.Empty:
                pass
            else:
                try:
                    engine.ingest(data, source, received_at)
                except Exception as e:  # nothing stops the listener; said at most every 10 s
                    self._fault_log.warn(received_at, "event=ingest_failed error=%r", str(e))
                for tap in taps:
                    try:
                        tap(data, source, received_at)
                    except Exception as e:
                        self._fault_log.warn(received_at, "event=tap_failed tap=%r error=%r",
                                             tap, str(e))
            now = clock.now()
            if now >= next_tick:
                next_tick = now + tick_s
                self._tick(now)

    def _tick(self, now: float) -> None:
        dropped = self.dropped
        if dropped != self._dropped_reported:
            self.engine.count_discarded(dropped - self._dropped_reported)
            self._dropped_reported = dropped
        try:
            result = self.engine.tick(now)
            if self.on_tick is not None:
                self.on_tick(result)
        except Exception as e:
            self._fault_log.warn(now, "event=tick_failed error=%r", str(e))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2.0)
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
