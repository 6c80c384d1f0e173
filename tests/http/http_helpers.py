"""HTTP test helpers shared by the HTTP layer's and the collector's tests."""

from __future__ import annotations

import socket


def raw_exchange(port: int, data: bytes, shut: bool = False, timeout_s: float = 5.0) -> bytes:
    """Send ``data`` to ``127.0.0.1:port`` on a fresh connection (``shut``: then close the
    sending side); everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out
