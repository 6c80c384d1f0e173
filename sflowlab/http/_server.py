"""A threaded HTTP/1.1 server for a :class:`Router`, bounded against idle and malformed clients.

``HttpServer(router).start()`` listens on a free loopback port (or the one given) in a
background thread; ``url`` says where; ``stop()`` ends every connection, including streamed
responses, and returns once the serving thread has finished.

Bounds (:class:`Limits`):

- at most ``max_connections`` connections (never more than the file descriptor limit allows,
  less a reserve); a new connection beyond it closes the connection idle the longest, or,
  when none is idle, is answered 503 and closed. An accept that fails for want of file
  descriptors waits for a connection to close instead of retrying at once;
- a keep-alive connection waiting ``idle_timeout_s`` for its next request is closed;
- once a request has begun, each read of its headers and the whole read of its body get
  ``request_timeout_s``; a body longer than ``max_body`` answers 413;
- a ``Content-Length`` that is not a non-negative integer (``-1``, ``abc``), or two that
  differ, answers 400; a body that ends before its length answers 400, one that does not
  arrive in time 408; both close the connection. Errors the request parser finds (bad request
  line, too many headers) answer with the router's JSON error body too.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import resource
import select
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from ._messages import Request, Response
from ._router import Router

_log = logging.getLogger("sflowlab.http")

FD_RESERVE = 64
"""File descriptors kept for everything but connections (sockets, pipes, files)."""


@dataclass(frozen=True)
class Limits:
    max_connections: int = 256
    idle_timeout_s: float = 30.0
    request_timeout_s: float = 10.0
    max_body: int = 16 * 1024 * 1024

    def connections_allowed(self) -> int:
        """``max_connections``, lowered to what the soft file descriptor limit leaves."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft - FD_RESERVE))


def _readable(conn: socket.socket) -> bool:
    """Whether ``conn`` has input (or end of input) waiting; poll, as its descriptor may be
    above select's limit."""
    poller = select.poll()
    try:
        poller.register(conn, select.POLLIN)
    except (ValueError, OSError):
        return False  # closed meanwhile
    return bool(poller.poll(0))


class _BadBody(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Connections:
    """Open connections and when each began waiting for a request (None: busy)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._idle_since: dict[socket.socket, float | None] = {}
        self._changed = threading.Condition()
        self.evicted = 0
        self.refused = 0

    def admit(self, conn: socket.socket) -> bool:
        """Make room for ``conn`` (closing the longest idle one); False when all are busy."""
        with self._changed:
            if len(self._idle_since) >= self.limit:
                oldest = self._evictable()
                if oldest is None:
                    self.refused += 1
                    return False
                del self._idle_since[oldest]
                self.evicted += 1
                with contextlib.suppress(OSError):
                    oldest.shutdown(socket.SHUT_RDWR)  # its thread sees EOF and ends
            self._idle_since[conn] = time.monotonic()
            return True

    def _evictable(self) -> socket.socket | None:
        """The connection idle the longest, preferring one with no request waiting to be
        read (a client whose request arrived just before its thread read it); None when
        every connection is busy."""
        idle = [c for _, _, c in sorted((since, id(c), c) for c, since in
                                        self._idle_since.items() if since is not None)]
        for conn in idle:
            if not _readable(conn):
                return conn
        return idle[0] if idle else None

    def idle_count(self) -> int:
        with self._changed:
            return sum(1 for since in self._idle_since.values() if since is not None)

    def idle(self, conn: socket.socket, waiting: bool) -> None:
        with self._changed:
            if conn in self._idle_since:
                self._idle_since[conn] = time.monotonic() if waiting else None

    def release(self, conn: socket.socket) -> None:
        with self._changed:
            self._idle_since.pop(conn, None)
            self._changed.notify_all()

    def wait_release(self, timeout_s: float) -> None:
        with self._changed:
            self._changed.wait(timeout_s)

    def all(self) -> list[socket.socket]:
        with self._changed:
            return list(self._idle_since)

    def __len__(self) -> int:
        return len(self._idle_since)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # errors before the version is read still get headers
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold every keep-alive answer back ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, OSError):
            pass  # the client went away, timed out, was evicted, or the server is stopping
        finally:
            self.server.connections.release(self.connection)

    def handle_one_request(self) -> None:
        limits, connections = self.server.limits, self.server.connections
        self.close_connection = True
        connections.idle(self.connection, True)
        self.connection.settimeout(limits.idle_timeout_s)
        self.raw_requestline = self.rfile.readline(65537)
        connections.idle(self.connection, False)
        if not self.raw_requestline:
            return
        self.connection.settimeout(limits.request_timeout_s)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414, "request line too long")
            return
        if not self.parse_request():
            return  # parse_request answered
        try:
            body = self._read_body()
        except _BadBody as exc:
            self.send_error(exc.status, exc.message)
            return
        self._serve(body)
        self.wfile.flush()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            return self._read_chunked()
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or ()}
        if not lengths:
            return b""
        if len(lengths) > 1:
            raise _BadBody(400, f"conflicting Content-Length headers: {sorted(lengths)}")
        raw = lengths.pop()
        if not (raw.isascii() and raw.isdigit()):
            raise _BadBody(400, f"Content-Length must be a non-negative integer, not {raw!r}")
        length = int(raw)
        if length > self.server.limits.max_body:
            raise _BadBody(413, f"request body of {length} bytes is larger than the "
                                f"{self.server.limits.max_body} allowed")
        return self._read_exactly(length, time.monotonic() + self.server.limits.request_timeout_s)

    def _read_exactly(self, length: int, deadline: float) -> bytes:
        body = bytearray()
        while len(body) < length:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _BadBody(408, f"request body incomplete: {len(body)} of {length} bytes "
                                    f"within {self.server.limits.request_timeout_s:g} s")
            self.connection.settimeout(left)
            try:
                piece = self.rfile.read1(min(length - len(body), 65536))
            except TimeoutError:
                continue
            if not piece:
                raise _BadBody(400, f"request body ended after {len(body)} of {length} bytes "
                                    "(Content-Length)")
            body += piece
        return bytes(body)

    def _read_chunked(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").strip().lower() != "chunked":
            raise _BadBody(400, f"unsupported Transfer-Encoding "
                                f"{self.headers.get('Transfer-Encoding')!r}")
        limit = self.server.limits.max_body
        deadline = time.monotonic() + self.server.limits.request_timeout_s
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0], 16)
            except ValueError:
                raise _BadBody(400, f"bad chunk size line {line[:40]!r}") from None
            if size < 0:
                raise _BadBody(400, f"bad chunk size line {line[:40]!r}")
            if size == 0:
                break
            if len(body) + size > limit:
                raise _BadBody(413, f"request body larger than the {limit} bytes allowed")
            body += self._read_exactly(size, deadline)
            self.rfile.readline(1024)  # the CRLF after each chunk
        for _ in range(100):  # trailers, bounded
            if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                break
        return bytes(body)

    def _serve(self, body: bytes) -> None:
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            closing=self.server.closing,
        )
        self._send(self.server.router.dispatch(request))

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.stream is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._send_chunks(response.stream)
            return
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.status not in (204, 304):
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors of the request parser and the body reader: the router's JSON error body."""
        self.close_connection = True
        short = self.responses.get(code, ("error",))[0]
        response = self.server.router.error_body(code, message or short)
        with contextlib.suppress(OSError):
            self._send(response)

    def _send_chunks(self, stream: Iterable[bytes]) -> None:
        """Send each chunk; an empty one is a heartbeat: the stream ends if the client left."""
        iterator: Iterator[bytes] = iter(stream)
        try:
            for chunk in iterator:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                elif self._client_left():
                    return
            self.wfile.write(b"0\r\n\r\n")
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        self.close_connection = True

    def _client_left(self) -> bool:
        """Whether the client closed its end (readable with nothing to read)."""
        if not _readable(self.connection):
            return False
        try:
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("event=http client=%s " + format, self.client_address[0], *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], router: Router, limits: Limits) -> None:
        self.router = router
        self.limits = limits
        self.closing = threading.Event()
        self.connections = _Connections(limits.connections_allowed())
        self.accept_failures = 0
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self.accept_failures += 1
                if self.accept_failures in (1, 10, 100) or self.accept_failures % 1000 == 0:
                    _log.warning("event=http_accept_failed error=%r failures=%d",
                                 str(exc), self.accept_failures)
                self.connections.wait_release(0.1)  # no busy loop while nothing can be accepted
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connections.admit(request):
            busy = self.router.error_body(503, "too many connections, retry later")
            head = "".join(f"{k}: {v}\r\n" for k, v in busy.headers.items())
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(f"HTTP/1.1 503 Service Unavailable\r\n{head}Content-Length: "
                                f"{len(busy.body)}\r\nConnection: close\r\n\r\n".encode()
                                + busy.body)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.exception("event=http_connection_failed client=%s", client_address)

    def close_connections(self) -> None:
        for connection in self.connections.all():
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class HttpServer:
    """Serves ``router`` on ``host:port`` (port 0 picks a free one) from a background thread."""

    def __init__(self, router: Router, host: str = "127.0.0.1", port: int = 0,
                 limits: Limits | None = None) -> None:
        self._server = _Server((host, port), router, limits or Limits())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
            name="http")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def closing(self) -> threading.Event:
        """Set once ``stop()`` begins: streaming handlers end their responses when they see it."""
        return self._server.closing

    def stats(self) -> dict[str, int]:
        """Open connections, the limit, and connections evicted or refused for it."""
        c = self._server.connections
        return {"connections": len(c), "idle": c.idle_count(), "maxConnections": c.limit,
                "evicted": c.evicted,
                "refused": c.refused, "acceptFailures": self._server.accept_failures}

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.closing.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.close_connections()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServedApi:
    """Base of a service served by an ``HttpServer`` (set as ``self._server``)."""

    _server: HttpServer

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
