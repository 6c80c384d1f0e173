"""The live lab's daemons as subprocesses: ``sflowlab collector`` (with the scenario's
controllers in its TOML configuration, recording what it receives) and ``sflowlab agent``
(sampling the Docker bridge, polling the host and its containers).

``Daemon`` starts a command in its own session with its output in a log file and stops it
with SIGTERM (SIGKILL after a grace period); ``free_port`` picks a port nobody listens on.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflowlab.collector.runtime import ControllerError, resolve
from sflowlab.lab.scenario.model import ControllerSpec

__all__ = ["DOCKER_URL", "Daemon", "agent_argv", "collector_argv", "collector_config",
           "free_port", "toml_value"]

DOCKER_URL = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
SFLOWLAB = [sys.executable, "-m", "sflowlab.cli"]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 just now (TCP, or UDP with ``socket.SOCK_DGRAM``)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    """A subprocess with its output in ``log``; ``stop`` ends it (and nothing else)."""

    name: str
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Daemon:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(list(self.argv), stdout=out, stderr=out,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            env=dict(self.env) if self.env else None)
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check(self) -> None:
        """RuntimeError with the log's tail if it has exited."""
        if self.process is not None and self.process.poll() is not None:
            tail = self.log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"{self.name} exited with status {self.process.returncode}; "
                               f"last lines of {self.log}:\n" + "\n".join(tail))

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_s``; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def toml_value(value: Any) -> str:
    """A TOML value (inline tables for mappings) of str, bool, int, float, list, dict."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise ValueError(f"cannot write {value!r} in TOML")


def _params(spec: ControllerSpec, docker_url: str) -> dict[str, Any]:
    """The controller's params, with ``docker_url`` when its factory takes one."""
    try:
        factory = resolve(spec.use)
    except ControllerError as e:
        raise ValueError(f"controller {spec.name!r}: {e}") from e
    params = dict(spec.params)
    if "docker_url" in inspect.signature(factory).parameters:
        params.setdefault("docker_url", docker_url)
    return params


def collector_config(path: Path, sflow_port: int, http_port: int, record_dir: Path,
                     controllers: Sequence[ControllerSpec], docker_url: str = DOCKER_URL,
                     http_host: str = "127.0.0.1") -> Path:
    """Write the collector's TOML configuration: sFlow on 127.0.0.1:``sflow_port``, REST on
    ``http_host:http_port``, every datagram recorded to ``record_dir``, the controllers."""
    lines = ["[sflow]", f"port = {sflow_port}", 'hosts = ["127.0.0.1"]', "",
             "[http]", f"host = {json.dumps(http_host)}", f"port = {http_port}", "",
             "[recording]", f"dir = {json.dumps(str(record_dir))}",
             "max_bytes = 2000000000", "max_files = 1000", ""]
    for spec in controllers:
        lines += ["[[controllers]]", f"name = {json.dumps(spec.name)}",
                  f"use = {json.dumps(spec.use)}",
                  f"params = {toml_value(_params(spec, docker_url))}", ""]
    path.write_text("\n".join(lines))
    return path


def collector_argv(config: Path) -> list[str]:
    return [*SFLOWLAB, "collector", "--config", str(config), "--log-level", "INFO"]


def agent_argv(collector: str, sampling: int, polling: float, interfaces: Sequence[str],
               docker_url: str = DOCKER_URL) -> list[str]:
    """``sflowlab agent`` sending to ``collector`` (HOST:PORT)."""
    argv = [*SFLOWLAB, "agent", "--collector", collector, "--sampling", str(sampling),
            "--polling", f"{polling:g}", "--docker-url", docker_url]
    for name in interfaces:
        argv += ["--interface", name]
    return argv
