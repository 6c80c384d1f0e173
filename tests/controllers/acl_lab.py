"""The lab of the capture and DDoS controller tests, all on one SimClock.

A leaf-spine ``Fabric`` of sampling switch agents carries traffic; their datagrams reach an
``Engine`` in-process; a ``Runtime`` runs the controller; the switch ACL double (``SwitchApi``,
served over HTTP on loopback) commits ACLs into the fabric through ``FabricAclTarget``, ERSPAN
mirrors landing in an analyser pcap. ``step_to(t)`` advances everything second by second.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sflowlab.agent_sim.fabric import Fabric
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.agent_sim.topology import FabricSpec
from sflowlab.agent_sim.traffic import TrafficFlow
from sflowlab.clock import SimClock
from sflowlab.collector.engine import Engine
from sflowlab.collector.runtime import HttpRequest, Runtime
from sflowlab.controllers.acl_client import AclClient, AclError
from sflowlab.http import HttpServer, Request, Response, Router
from sflowlab.lab.doubles.acl_fabric import ErspanCapture, FabricAclTarget, switches_for
from sflowlab.lab.doubles.switch_api import SwitchApi

START = 1000.0
ANALYZER = "10.0.9.9"


class AclLab:
    """Fabric + switch ACL double + engine + runtime; close() when done."""

    def __init__(self, tmp_path: Path, spec: FabricSpec | None = None, seed: int = 1,
                 apply_delay_s: float = 0.5) -> None:
        self.tmp_path = tmp_path
        self.clock = SimClock(start=START)
        self.sink = MemorySink()
        self.fabric = Fabric(spec or FabricSpec(sampling_rate=50), self.sink,
                             random.Random(seed), start=START)
        self.pcap_path = tmp_path / "analyser.pcap"
        self.capture = ErspanCapture(self.pcap_path)
        target = FabricAclTarget(self.fabric, self.capture)
        self.switches = {s.name: s for s in switches_for(self.fabric, self.clock, target,
                                                         apply_delay_s)}
        self.api = SwitchApi(list(self.switches.values())).start()
        self.state_dir = tmp_path / "state"
        self.engine = Engine(self.clock)
        self.runtime = Runtime(self.engine, self.clock, self.state_dir)

    def close(self) -> None:
        self.api.stop()
        self.capture.close()

    # -- addresses

    def agent(self, switch: str) -> str:
        return self.fabric.switches[switch].address

    def ip(self, host: str, ipv6: bool = False) -> str:
        h = self.fabric.hosts[host]
        return h.ip6 if ipv6 else h.ip

    def urls(self, *switches: str) -> dict[str, str]:
        """agent address -> ACL API URL, for the given switches (all when none given)."""
        urls = self.api.acl_urls()
        names = switches or tuple(self.switches)
        return {self.agent(n): urls[self.agent(n)] for n in names}

    def path_agents(self, flow: TrafficFlow) -> set[str]:
        return {self.agent(hop.switch) for hop in self.fabric.path(flow)}

    def acls(self, switch: str) -> dict[str, str | None]:
        """ACL name -> state on a switch."""
        sw = self.switches[switch]
        return {name: sw.state(name) for name in sw.names()}

    def all_acls(self) -> dict[str, dict[str, str | None]]:
        return {name: acls for name in self.switches if (acls := self.acls(name))}

    # -- time

    def step_to(self, t: float) -> None:
        """Each whole second up to ``t``: ACL commits, traffic, samples into the engine,
        engine tick, controllers."""
        now = self.clock.now()
        while now + 1 <= t + 1e-9:
            now += 1
            self.clock.advance_to(now)
            self.fabric.tick(now)
            for at, agent, datagram in self.sink.drain():
                self.engine.ingest(datagram, (agent, 6343), at)
            self.runtime.tick(now, self.engine.tick(now))

    def run_until(self, condition: Callable[[], Any], within_s: float) -> float:
        """Step until ``condition()`` holds; the time it did (AssertionError after
        ``within_s`` simulated seconds)."""
        deadline = self.clock.now() + within_s
        while not condition():
            if self.clock.now() >= deadline:
                raise AssertionError(f"condition not met within {within_s} simulated seconds")
            self.step_to(self.clock.now() + 1)
        return self.clock.now()

    def restart_runtime(self) -> None:
        """A new engine and runtime on the same clock and state dir (a collector restart)."""
        self.engine = Engine(self.clock)
        self.runtime = Runtime(self.engine, self.clock, self.state_dir)

    def http(self, name: str, method: str = "GET", *path: str) -> Any:
        return self.runtime.http(name, HttpRequest(method, tuple(path), {}))


def erspan_packets(path: Path) -> list[tuple[str, str, int, int, int]]:
    """The mirrored packets of an ERSPAN II capture: (inner src, inner dst, protocol, src port,
    session id), parsed independently of the writer."""
    data = path.read_bytes()
    (magic,) = struct.unpack_from("<I", data, 0)
    assert magic == 0xA1B2C3D4
    out, off = [], 24
    while off < len(data):
        _, _, caplen, _ = struct.unpack_from("<IIII", data, off)
        frame = data[off + 16: off + 16 + caplen]
        off += 16 + caplen
        (ethertype,) = struct.unpack_from("!H", frame, 12)
        ip_len = 40 if ethertype == 0x86DD else (frame[14] & 0xF) * 4
        gre = 14 + ip_len
        flags, proto = struct.unpack_from("!HH", frame, gre)
        assert (flags, proto) == (0x1000, 0x88BE)
        (word,) = struct.unpack_from("!I", frame, gre + 8)
        assert word >> 28 == 1  # ERSPAN version 1 = type II
        inner = gre + 16
        (inner_type,) = struct.unpack_from("!H", frame, inner + 12)
        ip = inner + 14
        if inner_type == 0x86DD:
            src = socket.inet_ntop(socket.AF_INET6, frame[ip + 8: ip + 24])
            dst = socket.inet_ntop(socket.AF_INET6, frame[ip + 24: ip + 40])
            protocol, l4 = frame[ip + 6], ip + 40
        else:
            src, dst = socket.inet_ntoa(frame[ip + 12: ip + 16]), socket.inet_ntoa(
                frame[ip + 16: ip + 20])
            protocol, l4 = frame[ip + 9], ip + (frame[ip] & 0xF) * 4
        (sport,) = struct.unpack_from("!H", frame, l4)
        out.append((str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst)), protocol,
                    sport, word & 0x3FF))
    return out


class FlakyClient(AclClient):
    """The real client, failing every call while ``down``."""

    down = False

    def _call(self, method: str, url: str, body: bytes | None = None) -> bytes:
        if self.down:
            raise AclError(method, url, "no answer: connection refused")
        return super()._call(method, url, body)


class TextServer:
    """Serves ``text`` at ``url`` over HTTP on loopback (``status`` to make it fail)."""

    def __init__(self, text: str) -> None:
        self.text, self.status, self.requests = text, 200, 0
        router = Router()
        router.add("GET", "/list.txt", self._get)
        self._server = HttpServer(router).start()
        self.url = f"{self._server.url}/list.txt"

    def _get(self, request: Request) -> Response:
        self.requests += 1
        return Response(self.status, body=self.text.encode(),
                        headers={"Content-Type": "text/plain"})

    def stop(self) -> None:
        self._server.stop()
