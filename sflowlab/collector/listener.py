"""UDP listener: receive threads that never wait for analytics, and the analytics thread.

One receive thread per socket (IPv4 and IPv6) does nothing but receive and put
``([(bytes, source), ...], received_at)`` on a bounded queue: with the ``_recv`` accelerator,
every datagram waiting, up to ``RECV_BATCH``, per system call and queue entry (at high rates
the two threads then hand over once per batch rather than once per datagram: on one core
that hand-over, a context switch and the GIL, cost more than the analysis), else one
``recvfrom`` each. When the queue holds ``queue_size`` datagrams, what comes is dropped and
counted (``sFlowDatagramsDiscarded``, which also counts what the kernel dropped because a
socket's receive buffer was full). The analytics thread takes datagrams off the
queue, feeds the engine, hands each datagram to the ``taps`` (forwarding, recording) and calls
``engine.tick(now)`` every ``tick_s`` seconds, passing what it produced to ``on_tick`` (the seam
for a controller runtime). Sockets ask for a large receive buffer; ``rcvbuf_granted`` reports
what the kernel gave (Linux doubles the request and caps it at ``net.core.rmem_max``).

With a :class:`ShardedEngine` there is no receive thread and no queue here: the engine's
workers bind the port themselves (``ShardedEngine.listen``) and each receives and analyses its
agents' datagrams, their socket buffers being the queue (what overflows them is counted in
``sFlowDatagramsDiscarded`` at each tick). This listener then only ticks, and feeds the taps
with the copies the workers send while any tap is active (a tap with an ``active`` attribute,
such as the forwarder, says whether it wants datagrams; others always do).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from sflowlab.clock import Clock

from .engine import collect_rarely
from .engine_api import EngineApi, TickResult
from .logs import RateLimitedLog
from .shards import ShardedEngine
from .sockets import RECV_BATCH, _recv, kernel_drops, open_udp, stop_receiving

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

    engine: EngineApi
    clock: Clock
    config: ListenerConfig = field(default_factory=ListenerConfig)
    taps: list[Tap] = field(default_factory=list)
    on_tick: Callable[[TickResult], None] | None = None
    sockets: list[socket.socket] = field(default_factory=list, init=False)
    ports: list[tuple[str, int]] = field(default_factory=list, init=False)
    rcvbuf_granted: int = field(default=0, init=False)
    dropped: int = field(default=0, init=False)
    kernel_dropped: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        # SimpleQueue (C): put + get cost about a tenth of queue.Queue's; bounded by hand, in
        # datagrams: those each receive thread queued (one counter per thread, so no counter
        # has two writers) less those the analytics thread took
        self._queue: queue.SimpleQueue[tuple[list[tuple[bytes, tuple[str, int]]], float]] = (
            queue.SimpleQueue())
        self._queued: list[int] = []
        self._taken = 0
        self._received: list[int] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._dropped_reported = 0
        self._fault_log = RateLimitedLog()
        self._copying: bool | None = None
        self._copies_lock = threading.Lock()

    def bind(self) -> None:
        """Open the sockets (separately from ``start`` so a caller can learn the ports first)."""
        cfg = self.config
        if isinstance(self.engine, ShardedEngine):
            self.ports, self.rcvbuf_granted = self.engine.listen(cfg.hosts, cfg.port, cfg.rcvbuf)
        for host in () if isinstance(self.engine, ShardedEngine) else cfg.hosts:
            try:
                sock = open_udp(host, cfg.port, cfg.rcvbuf)
            except OSError as e:
                if ":" in host and len(cfg.hosts) > 1:
                    log.warning("event=ipv6_unavailable host=%s error=%r", host, str(e))
                    continue
                raise
            self.rcvbuf_granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            self.sockets.append(sock)
            self.ports.append(sock.getsockname()[:2])
        log.info("event=listening sockets=%s rcvbuf_requested=%d rcvbuf_granted=%d",
                 ";".join(f"[{h}]:{p}" for h, p in self.ports), self.config.rcvbuf,
                 self.rcvbuf_granted)

    def start(self) -> None:
        if not self.ports:
            self.bind()
        if isinstance(self.engine, ShardedEngine):
            for tap in self.taps:
                if hasattr(tap, "on_change"):
                    tap.on_change = self.update_copies
            self.update_copies()
            for conn in self.engine.copy_connections():
                self._spawn(self._tap_copies, conn, name="sflow-taps")
            self.engine.on_restart = lambda conn: self._spawn(self._tap_copies, conn,
                                                              name="sflow-taps")
            self._spawn(self._tick_only, self.engine, name="sflow-tick")
            return
        collect_rarely()  # this process analyses (sharded: the workers do, and say so)
        self._spawn(self._analyse, name="sflow-analytics")
        self._queued = [0] * len(self.sockets)
        self._received = [0] * len(self.sockets)
        for i, sock in enumerate(self.sockets):
            receive = self._receive if _recv is None else self._receive_batched
            self._spawn(receive, sock, i, name="sflow-receive")

    def queue_depth(self) -> int:
        """Datagrams waiting for the analytics thread."""
        return sum(self._queued) - self._taken

    @property
    def received(self) -> int:
        """Datagrams the sockets received (with workers: as the workers last said)."""
        return sum(self._received)

    def _spawn(self, target: Callable[..., None], *args: object, name: str) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _receive(self, sock: socket.socket, i: int) -> None:
        recv = sock.recvfrom
        while not self._stop.is_set():
            data, addr = recv(65535)
            if addr is None:
                return  # woken by stop()
            self._enqueue([(data, addr[:2])], i)

    def _receive_batched(self, sock: socket.socket, i: int) -> None:
        """``_receive`` with ``_recv.recv_batch``: every datagram waiting, up to RECV_BATCH, per
        call; an empty batch means ``stop_receiving`` shut the socket down."""
        recv_batch, fileno = _recv.recv_batch, sock.fileno  # type: ignore[union-attr]
        while not self._stop.is_set():
            try:  # fileno() each time: -1 (EBADF) once the socket is closed
                datagrams = recv_batch(fileno(), RECV_BATCH)
            except OSError:
                return
            if not datagrams:
                return
            self._enqueue(datagrams, i)

    def _enqueue(self, datagrams: list[tuple[bytes, tuple[str, int]]], i: int) -> None:
        """Queue one receive's datagrams, as many as the queue has room for; the others are
        dropped (counted)."""
        n = len(datagrams)
        room = self.config.queue_size - (sum(self._queued) - self._taken)
        if room < n:
            datagrams = datagrams[:max(room, 0)]
            self.dropped += n - len(datagrams)
        if datagrams:
            self._queued[i] += len(datagrams)
            self._queue.put((datagrams, self.clock.now()))
        self._received[i] += n  # last, so a reader who sees it also sees the drop counted

    def _analyse(self) -> None:
        get, engine, taps, clock = self._queue.get, self.engine, self.taps, self.clock
        tick_s = self.config.tick_s
        next_tick = clock.now() + tick_s
        while not self._stop.is_set():
            try:
                datagrams, received_at = get(
                    timeout=max(0.0, min(tick_s, next_tick - clock.now())))
            except queue.Empty:
                pass
            else:
                self._taken += len(datagrams)
                for data, source in datagrams:
                    try:
                        engine.ingest(data, source, received_at)
                    except Exception as e:  # nothing stops the listener; said every 10 s
                        self._fault_log.warn(received_at, "event=ingest_failed error=%r",
                                             str(e))
                    if taps:
                        self._to_taps(data, source, received_at)
                if taps and not self._queue.qsize():  # the end of a burst: nothing waits
                    self._flush_taps(received_at)
            now = clock.now()
            if now >= next_tick:
                next_tick = now + tick_s
                self.kernel_dropped = kernel_drops(self.sockets)
                self._tick(now)

    def update_copies(self) -> None:
        """Sharded: have the workers copy datagrams here while any tap is active."""
        assert isinstance(self.engine, ShardedEngine)
        with self._copies_lock:
            copying = any(getattr(tap, "active", True) for tap in self.taps)
            if copying != self._copying:
                self.engine.set_copies(copying)
                self._copying = copying

    def _tick_only(self, engine: ShardedEngine) -> None:
        """Sharded: the workers receive and analyse; here, tick them."""
        tick_s, clock = self.config.tick_s, self.clock
        while not self._stop.wait(tick_s):
            try:
                received, self.kernel_dropped = engine.socket_stats()
                self._received = [received]
            except Exception as e:
                self._fault_log.warn(clock.now(), "event=workers_failed error=%r", str(e))
            self._tick(clock.now())

    def _tap_copies(self, conn: Connection) -> None:
        """Sharded: feed the taps the batches one worker copies here."""
        while not self._stop.is_set():
            try:
                if not conn.poll(0.25):
                    continue
                batch = conn.recv()
            except (EOFError, OSError):
                return
            for data, source, received_at in batch:
                self._to_taps(data, source, received_at)
            if batch:
                self._flush_taps(batch[-1][2])

    def _to_taps(self, data: bytes, source: tuple[str, int], received_at: float) -> None:
        for tap in self.taps:
            try:
                tap(data, source, received_at)
            except Exception as e:
                self._fault_log.warn(received_at, "event=tap_failed tap=%r error=%r", tap, str(e))

    def _flush_taps(self, now: float) -> None:
        """Taps that buffer (the recorder) write out what they hold."""
        for tap in self.taps:
            flush = getattr(tap, "flush", None)
            if flush is not None:
                try:
                    flush()
                except Exception as e:
                    self._fault_log.warn(now, "event=tap_failed tap=%r error=%r", tap, str(e))

    def _tick(self, now: float) -> None:
        dropped = self.dropped + self.kernel_dropped
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
        if isinstance(self.engine, ShardedEngine) and self.ports:
            try:
                self.engine.unlisten()
            except RuntimeError as e:  # a worker died: nothing left to close there
                log.warning("event=unlisten_failed error=%r", str(e))
        readers: list[threading.Thread | None] = [*self._threads[1:]]  # analytics came first
        readers += [None] * (len(self.sockets) - len(readers))  # bound, never started
        for sock, reader in zip(self.sockets, readers, strict=False):
            stop_receiving(sock, reader)
        for t in self._threads:
            t.join(timeout=2.0)
        self.sockets.clear()
