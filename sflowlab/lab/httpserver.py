"""A small threaded HTTP/1.1 server with a regex router, shared by the lab's API doubles.

``HttpServer(router).start()`` listens on a free loopback port (or the one given) in a
background thread; ``url`` says where; ``stop()`` ends every connection, including long-lived
streamed responses, and returns once the serving thread has finished. Handlers take a
``Request`` and return a ``Response``; raising ``HttpError`` answers with the router's error
body (each double shapes its own errors the way the real service does).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import select
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

_log = logging.getLogger(__name__)

__all__ = [
    "HttpError",
    "HttpServer",
    "Request",
    "Response",
    "Router",
    "ServedApi",
    "json_response",
]


class HttpError(Exception):
    """An error answer: ``status`` and a human message (shaped into a body by the router)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route
    closing: threading.Event = field(default_factory=threading.Event)  # set when the server stops

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body parsed as JSON; a 400 ``HttpError`` when it is not JSON."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise HttpError(400, f"invalid JSON body: {exc}") from exc


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterable[bytes] | None = None  # sent chunked, one chunk per non-empty item, when set


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(value).encode() + b"\n"
    return Response(status, body, {"Content-Type": "application/json", **(headers or {})})


Handler = Callable[[Request], Response]


class Router:
    """Routes (method, path regex) to handlers; ``error_body(status, message)`` shapes errors."""

    def __init__(
        self,
        error_body: Callable[[int, str], Response] | None = None,
        headers: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._error_body = error_body or (
            lambda status, message: json_response({"message": message}, status)
        )
        self._headers = headers or dict

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Route ``method`` (``GET`` also answers ``HEAD``) on paths fully matching ``pattern``."""
        self._routes.append((method, re.compile(pattern), handler))

    def dispatch(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        allowed = False
        try:
            for route_method, pattern, handler in self._routes:
                match = pattern.fullmatch(request.path)
                if match is None:
                    continue
                if route_method != method:
                    allowed = True
                    continue
                params = {k: v for k, v in match.groupdict().items() if v is not None}
                response = handler(replace(request, params=params))
                break
            else:
                if allowed:
                    raise HttpError(405, f"method {request.method} not allowed on {request.path}")
                raise HttpError(404, f"page not found: {request.path}")
        except HttpError as exc:
            response = self._error_body(exc.status, exc.message)
        except Exception as exc:  # a handler bug answers 500 and never kills the server
            _log.exception("handler failed for %s %s", request.method, request.path)
            response = self._error_body(500, f"internal error: {exc}")
        response.headers = {**self._headers(), **response.headers}
        return response


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _read_body(self) -> bytes:
        """The request body, sent with a Content-Length or chunked; ValueError when malformed."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = bytearray()
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()  # the CRLF after each chunk
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError(f"negative Content-Length {length}")
        return self.rfile.read(length)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        try:
            body = self._read_body()
        except ValueError as exc:
            self.send_error(400, f"bad request body: {exc}")
            self.close_connection = True
            return
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            closing=self.server.closing,
        )
        response = self.server.router.dispatch(request)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.stream is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._send_chunks(response.stream)
            return
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.status not in (204, 304):
            self.wfile.write(response.body)

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
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold every keep-alive answer back ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        self.server.track(self.connection, True)
        try:
            super().handle()
        except (ConnectionError, OSError):
            pass  # the client went away or the server is stopping
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], router: Router) -> None:
        self.router = router
        self.closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class HttpServer:
    """Serves ``router`` on ``host:port`` (port 0 picks a free one) from a background thread."""

    def __init__(self, router: Router, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), router)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

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

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.closing.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.close_connections()
        self._server.server_close()

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServedApi:
    """Base of an API double served by an ``HttpServer`` (set as ``self._server``)."""

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
