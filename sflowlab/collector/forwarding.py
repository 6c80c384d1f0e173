"""Re-export received datagrams, unchanged, to other collectors (``/forwarding/{name}/json``).

Each named destination is ``{"address": ..., "port": ...}``; datagrams go out from one
unconnected UDP socket per address family. A send that fails is counted, never raised: the
analytics thread must keep going.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("sflowlab.collector")


@dataclass(frozen=True)
class Destination:
    address: str
    port: int

    @classmethod
    def from_json(cls, obj: Any) -> Destination:
        if not isinstance(obj, dict):
            raise ValueError('a forwarding destination is {"address": "...", "port": N}')
        unknown = set(obj) - {"address", "port"}
        if unknown:
            raise ValueError(f"unknown forwarding fields {sorted(unknown)}")
        address, port = obj.get("address"), obj.get("port", 6343)
        try:
            ipaddress.ip_address(address)  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(f"forwarding address must be an IP address, not {address!r}") from None
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"forwarding port must be 1-65535, not {port!r}")
        return cls(str(address), port)

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "port": self.port}


@dataclass
class Forwarder:
    """The named destinations and the sockets that send to them."""

    destinations: dict[str, Destination] = field(default_factory=dict)
    sent: int = 0
    errors: int = 0
    on_change: Callable[[], None] | None = None
    """Called after destinations change (a listener whose workers copy datagrams only while
    a tap is ``active`` switches copies here, before the REST call returns)."""

    @property
    def active(self) -> bool:
        """Whether there is anywhere to send to."""
        return bool(self.destinations)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: dict[int, socket.socket] = {}

    def set(self, name: str, dest: Destination) -> None:
        with self._lock:
            self.destinations = {**self.destinations, name: dest}
        if self.on_change is not None:
            self.on_change()

    def delete(self, name: str) -> bool:
        with self._lock:
            if name not in self.destinations:
                return False
            self.destinations = {k: v for k, v in self.destinations.items() if k != name}
        if self.on_change is not None:
            self.on_change()
        return True

    def get(self, name: str) -> Destination | None:
        return self.destinations.get(name)

    def __call__(self, data: bytes, source: tuple[str, int], received_at: float) -> None:
        """The listener tap: send ``data`` to every destination."""
        for dest in self.destinations.values():  # replaced, never mutated: safe to iterate
            sock = self._socket(socket.AF_INET6 if ":" in dest.address else socket.AF_INET)
            try:
                sock.sendto(data, (dest.address, dest.port))
                self.sent += 1
            except OSError as e:
                self.errors += 1
                if self.errors == 1 or self.errors % 1000 == 0:
                    log.warning("event=forward_failed dest=%s:%d errors=%d error=%r",
                                dest.address, dest.port, self.errors, str(e))

    def _socket(self, family: int) -> socket.socket:
        """The family's socket, made once (sharded listeners tap from one thread per worker)."""
        sock = self._sockets.get(family)
        if sock is None:
            with self._lock:
                sock = self._sockets.get(family)
                if sock is None:
                    sock = self._sockets[family] = socket.socket(family, socket.SOCK_DGRAM)
        return sock

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets.values():
                sock.close()
            self._sockets.clear()
