"""A Docker Engine API double for the mirror agent's Docker side, over real HTTP.

The subset the agent's docker SDK calls use: ``/_ping``, ``/version``, ``/containers/json``,
``/containers/{id}/json``, ``/containers/{id}/stats`` and ``/events`` (a chunked stream of
JSON lines, as dockerd sends it), every path with or without an API version prefix.
``stop()`` ends the event streams and closes the port, as an engine restart does; a new double
on the same port plays the restarted engine.
"""

from __future__ import annotations

import json
import queue
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATH = re.compile(r"^(?:/v1\.\d+)?(?P<path>/[^?]*)")


@dataclass
class Running:
    """A container the double reports as running, with the counters its stats carry."""

    id: str
    name: str
    cpu_ns: int = 1_500_000_000
    memory: int = 40 << 20
    inactive_file: int = 8 << 20
    limit: int = 1 << 30


@dataclass
class EngineDouble:
    port: int = 0
    containers: dict[str, Running] = field(default_factory=dict)
    _streams: list[queue.SimpleQueue[dict[str, Any] | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                match = _PATH.match(self.path)
                double.answer(self, match["path"] if match else self.path)

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> EngineDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        for stream in self._streams:
            stream.put(None)
        self.server.shutdown()
        self.server.server_close()

    def run(self, container: Running) -> None:
        """A container starts: listed from now on, a start event on every stream."""
        self.containers[container.id] = container
        self._publish({"status": "start", "id": container.id, "Type": "container",
                       "Action": "start", "Actor": {"ID": container.id}})

    def kill(self, container_id: str) -> None:
        del self.containers[container_id]
        self._publish({"status": "die", "id": container_id, "Type": "container",
                       "Action": "die", "Actor": {"ID": container_id}})

    def _publish(self, event: dict[str, Any]) -> None:
        for stream in self._streams:
            stream.put(event)

    # -- HTTP

    def answer(self, h: BaseHTTPRequestHandler, path: str) -> None:
        parts = path.strip("/").split("/")
        if path == "/_ping":
            return self._send(h, 200, "OK")
        if path == "/version":
            return self._send(h, 200, {"ApiVersion": "1.41", "MinAPIVersion": "1.12",
                                       "Version": "20.10.24", "Os": "linux"})
        if path == "/containers/json":
            return self._send(h, 200, [{"Id": c.id, "Names": [f"/{c.name}"]}
                                       for c in self.containers.values()])
        if path == "/events":
            return self._stream_events(h)
        if len(parts) == 3 and parts[0] == "containers":
            c = self.containers.get(parts[1])
            if c is None:
                return self._send(h, 404, {"message": f"No such container: {parts[1]}"})
            if parts[2] == "json":
                return self._send(h, 200, {
                    "Id": c.id, "Name": f"/{c.name}", "State": {"Running": True, "Pid": 0},
                    "NetworkSettings": {"Networks": {"bridge": {
                        "MacAddress": "02:42:ac:11:00:02"}}}})
            if parts[2] == "stats":
                return self._send(h, 200, {
                    "cpu_stats": {"cpu_usage": {"total_usage": c.cpu_ns}, "online_cpus": 2},
                    "memory_stats": {"usage": c.memory, "limit": c.limit,
                                     "stats": {"total_inactive_file": c.inactive_file}},
                    "blkio_stats": {}, "networks": {}})
        return self._send(h, 404, {"message": "page not found"})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        h.send_response(status)
        h.send_header("Content-Type", "text/plain" if isinstance(body, str)
                      else "application/json")
        h.send_header("Api-Version", "1.41")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Connection", "close")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
        h.close_connection = True

    def _stream_events(self, h: BaseHTTPRequestHandler) -> None:
        stream: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._streams.append(stream)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.flush()
        try:
            while (event := stream.get()) is not None:
                line = json.dumps(event).encode() + b"\n"
                h.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client went
        finally:
            self._streams.remove(stream)
            h.close_connection = True
