"""The service load model: replicas of an HTTP service receiving offered load.

A ``Service`` turns offered load into whole requests per replica each step:

- open loop: ``rps`` requests per second offered; served up to the replicas' capacity, the
  excess counted as ``rejected``;
- closed loop: ``clients`` concurrent clients with no think time (like ``ab -c N``): each waits
  for its response before the next request, so throughput ``X = N / R`` with response time
  ``R = S + N / C`` (``S`` the unloaded latency, ``C`` the total capacity): it rises with N and
  saturates at C as latency grows.

Requests go to the running replicas round robin, like swarm's routing mesh. Fractions of a
request carry over between steps, so totals are exact whatever the step. Each request is one
TCP connection carrying one request and one response (``ab`` without keep-alive), whose packets
``Exchange`` lists once; a replica's counters are the served requests times those totals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .packets import TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN

MSS = 1448
TCP_FRAME = 66  # Ethernet 14 + IPv4 20 + TCP 32 (with timestamps)
SYN_FRAME = 74  # SYN carries more options
EPHEMERAL_FIRST, EPHEMERAL_COUNT = 32768, 28232


@dataclass(frozen=True)
class Segment:
    """One packet of an exchange: direction (True: client to server), frame size, TCP flags."""

    inbound: bool
    length: int
    flags: int
    seq: int


@dataclass(frozen=True)
class Exchange:
    """The packets of one request on its own connection, and their totals per direction."""

    segments: tuple[Segment, ...]
    pkts_in: int
    bytes_in: int
    pkts_out: int
    bytes_out: int

    @classmethod
    def http(cls, request_bytes: int, response_bytes: int) -> Exchange:
        """SYN handshake, request, response (MSS-sized segments, acked every other), FINs."""
        segs: list[Segment] = []
        cseq, sseq = 1000, 5000

        def add(inbound: bool, payload: int, flags: int, base: int = TCP_FRAME) -> None:
            nonlocal cseq, sseq
            seq = cseq if inbound else sseq
            segs.append(Segment(inbound, base + payload, flags, seq))
            if inbound:
                cseq += payload
            else:
                sseq += payload

        add(True, 0, TCP_SYN, SYN_FRAME)
        add(False, 0, TCP_SYN | TCP_ACK, SYN_FRAME)
        add(True, 0, TCP_ACK)
        for chunk in _chunks(request_bytes):
            add(True, chunk, TCP_PSH | TCP_ACK)
        add(False, 0, TCP_ACK)
        out_chunks = _chunks(response_bytes)
        for i, chunk in enumerate(out_chunks):
            add(False, chunk, TCP_PSH | TCP_ACK if i == len(out_chunks) - 1 else TCP_ACK)
            if i % 2 == 1 or i == len(out_chunks) - 1:
                add(True, 0, TCP_ACK)
        add(False, 0, TCP_FIN | TCP_ACK)
        add(True, 0, TCP_FIN | TCP_ACK)
        add(False, 0, TCP_ACK)
        inbound = [s for s in segs if s.inbound]
        outbound = [s for s in segs if not s.inbound]
        return cls(tuple(segs), len(inbound), sum(s.length for s in inbound),
                   len(outbound), sum(s.length for s in outbound))


def _chunks(size: int) -> list[int]:
    full, rest = divmod(max(size, 0), MSS)
    return [MSS] * full + ([rest] if rest else [])


@dataclass
class ServiceSpec:
    """An HTTP service: its replicas, request/response sizes, costs and capacity, its load."""

    name: str = "apache"
    replicas: int = 2
    port: int = 80
    request_bytes: int = 180
    response_bytes: int = 11_000
    cpu_us_per_request: int = 1_500
    capacity_rps: float = 600.0
    """Requests per second one replica serves at saturation."""
    latency_s: float = 0.002
    """Response time of an unloaded replica."""
    memory_bytes: int = 48 << 20
    memory_per_active_bytes: int = 2 << 20
    memory_limit_bytes: int = 0
    """0: no limit (the host's memory)."""
    log_bytes_per_request: int = 120
    image_bytes_read: int = 24 << 20
    """Read from disk when a replica starts."""
    rps: float | None = 100.0
    clients: int | None = None
    """Closed-loop concurrency; when set it takes precedence over ``rps``."""
    client_addresses: tuple[str, ...] = ("192.168.100.10",)

    def __post_init__(self) -> None:
        if self.capacity_rps <= 0 or self.latency_s <= 0:
            raise ValueError(f"service {self.name}: capacity_rps and latency_s must be > 0")
        if self.replicas < 0:
            raise ValueError(f"service {self.name}: replicas must be >= 0")
        if not self.client_addresses:
            raise ValueError(f"service {self.name}: needs at least one client address")


@dataclass
class Served:
    """Ground truth of what one replica served (cumulative, never wrapped)."""

    requests: int = 0
    cpu_ns: int = 0
    pkts_in: int = 0
    bytes_in: int = 0
    pkts_out: int = 0
    bytes_out: int = 0
    log_bytes: int = 0

    @property
    def cpu_ms(self) -> int:
        return self.cpu_ns // 1_000_000

    def add(self, n: int, exchange: Exchange, spec: ServiceSpec) -> None:
        """Count ``n`` requests of ``spec`` carried as ``exchange``."""
        self.requests += n
        self.cpu_ns += n * spec.cpu_us_per_request * 1000
        self.pkts_in += n * exchange.pkts_in
        self.bytes_in += n * exchange.bytes_in
        self.pkts_out += n * exchange.pkts_out
        self.bytes_out += n * exchange.bytes_out
        self.log_bytes += n * spec.log_bytes_per_request


@dataclass
class Service:
    """A running service: replicas by key, the load model, the round-robin pointer."""

    spec: ServiceSpec
    replicas: list[str] = field(default_factory=list)
    """Keys of the running replicas in start order (the lab maps them to containers)."""
    served: dict[str, Served] = field(default_factory=dict)
    rejected: int = 0
    connections: int = 0
    _carry: float = 0.0
    _rejected_carry: float = 0.0
    _next: int = 0

    def __post_init__(self) -> None:
        self.exchange = Exchange.http(self.spec.request_bytes, self.spec.response_bytes)

    def add_replica(self, key: str) -> None:
        self.replicas.append(key)
        self.served.setdefault(key, Served())

    def remove_replica(self, key: str) -> None:
        at = self.replicas.index(key)
        del self.replicas[at]
        if at < self._next:
            self._next -= 1
        if self._next >= len(self.replicas):
            self._next = 0

    def set_load(self, rps: float | None = None, clients: int | None = None) -> None:
        self.spec.rps, self.spec.clients = rps, clients

    @property
    def capacity_rps(self) -> float:
        return self.spec.capacity_rps * len(self.replicas)

    def throughput_rps(self) -> float:
        """Requests per second served now (closed loop: N / (S + N / C))."""
        capacity = self.capacity_rps
        if capacity <= 0:
            return 0.0
        if self.spec.clients is not None:
            n = self.spec.clients
            return n / (self.spec.latency_s + n / capacity) if n > 0 else 0.0
        return min(self.spec.rps or 0.0, capacity)

    def latency_s(self) -> float:
        """Mean response time now: ``S + N / C`` closed loop, M/M/1-like ``S / (1 - U)`` open."""
        capacity = self.capacity_rps
        if capacity <= 0:
            return math.inf
        if self.spec.clients is not None:
            return self.spec.latency_s + self.spec.clients / capacity
        utilisation = min(self.throughput_rps() / capacity, 0.99)
        return self.spec.latency_s / (1.0 - utilisation)

    def active_per_replica(self) -> float:
        """Requests in progress per replica (Little's law)."""
        if not self.replicas:
            return 0.0
        return self.throughput_rps() * self.latency_s() / len(self.replicas)

    def step(self, dt: float) -> list[tuple[str, int, int]]:
        """Advance ``dt`` seconds: ``(replica, requests, first connection number)`` each."""
        if dt <= 0:
            return []
        if self.spec.clients is None and self.spec.rps:
            self._rejected_carry += max(self.spec.rps - self.capacity_rps, 0.0) * dt
            whole = int(self._rejected_carry)
            self.rejected += whole
            self._rejected_carry -= whole
        if not self.replicas:
            return []
        self._carry += self.throughput_rps() * dt
        total = int(self._carry)
        self._carry -= total
        if total == 0:
            return []
        k = len(self.replicas)
        base, extra = divmod(total, k)
        out: list[tuple[str, int, int]] = []
        for i in range(k):
            key = self.replicas[(self._next + i) % k]
            n = base + (1 if i < extra else 0)
            if n:
                out.append((key, n, self.connections))
                self.connections += n
                self._account(key, n)
        self._next = (self._next + extra) % k
        return out

    def _account(self, key: str, n: int) -> None:
        self.served[key].add(n, self.exchange, self.spec)

    def client_of(self, connection: int) -> tuple[str, int]:
        """The client address and ephemeral port of connection number ``connection``."""
        addrs = self.spec.client_addresses
        port = EPHEMERAL_FIRST + (connection // len(addrs)) % EPHEMERAL_COUNT
        return addrs[connection % len(addrs)], port
