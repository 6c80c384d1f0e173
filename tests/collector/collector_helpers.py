"""Collector test helpers: datagrams built with the codec, a feeder for the sim-clock engine, and
the collector as a subprocess (real UDP in, REST over HTTP out)."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sflowlab.agent_sim.packets import TCP, Packet
from sflowlab.clock import SimClock
from sflowlab.codec import (
    CountersSample,
    Datagram,
    DiscardedPacket,
    FlowSample,
    HostDescr,
    SampledHeader,
    VirtCpu,
    VirtNetIo,
    encode_datagram,
)
from sflowlab.codec.fast import FlowSampleView, decode_for_collector
from sflowlab.codec.pcap import PcapTruncatedError, read_sflow
from sflowlab.collector.engine import Engine

SOURCE = ("192.0.2.1", 50000)


def datagram(agent: str, seq: int, uptime_ms: int, samples: Iterable[Any],
             sub_agent: int = 0) -> bytes:
    return encode_datagram(Datagram(5, agent, sub_agent, seq, uptime_ms, tuple(samples)))


def counters(seq: int, ds_type: int, ds_index: int, *records: Any) -> CountersSample:
    return CountersSample(seq, (ds_type << 24) | ds_index, tuple(records))


def flow_view(src: str = "10.0.0.1", dst: str = "10.0.0.2", *, proto: int = TCP,
              sport: int = 1234, dport: int = 80, length: int = 1000, rate: int = 100,
              ds: int = 5, vlan: int | None = None, discarded: bool = False,
              agent: str = "192.0.2.1") -> FlowSampleView:
    """One real flow sample: packet bytes -> sFlow datagram -> the collector's decode path."""
    pkt = Packet("00:00:00:00:00:01", "00:00:00:00:00:02", src, dst, proto, sport, dport,
                 length=length, vlan=vlan)
    record = SampledHeader(frame_length=length, header=pkt.header(128))
    sample: Any = (DiscardedPacket(source_id_index=ds, reason=258, records=(record,))
                   if discarded else FlowSample(source_id=ds, sampling_rate=rate,
                                                records=(record,)))
    data = encode_datagram(Datagram(agent_address=agent, samples=(sample,)))
    return decode_for_collector(data).flow_samples[0]


def flow(seq: int, if_index: int, packet: Packet, rate: int = 100) -> FlowSample:
    header = SampledHeader(1, packet.length + 4, 4, packet.header(128))
    return FlowSample(seq, if_index, rate, seq * rate, 0, if_index, 0x3FFFFFFF, (header,))


def tcp(src: str, dst: str, sport: int = 40000, dport: int = 80, length: int = 1000) -> Packet:
    return Packet("02:00:00:00:00:01", "02:00:00:00:00:02", src, dst, 6, sport, dport,
                  length=length)


def container(seq: int, index: int, name: str, cpu_ms: int, state: int = 1,
              bytes_in: int = 0) -> CountersSample:
    return counters(seq, 3, index, HostDescr(hostname=name),
                    VirtCpu(state=state, cpu_time_ms=cpu_ms, nr_virt_cpu=2),
                    VirtNetIo(bytes_in=bytes_in))


class Feeder:
    """Feeds datagrams to an engine at sim-clock times."""

    def __init__(self, engine: Engine, clock: SimClock) -> None:
        self.engine, self.clock = engine, clock

    def at(self, t: float, data: bytes, source: tuple[str, int] = SOURCE) -> bool:
        if t > self.clock.now():
            self.clock.advance_to(t)
        return self.engine.ingest(data, source, t)


ROOT = Path(__file__).resolve().parents[2]


def recorded(rec: Path) -> list[bytes]:
    """The datagrams in a ``--record-dir`` recording; [] while a record is being written
    (a file just opened is empty until the collector's first flush writes its header)."""
    try:
        return [d.payload for f in sorted(rec.glob("sflow-*.pcap")) if f.stat().st_size
                for d in read_sflow(f, port=None)]
    except PcapTruncatedError:
        return []


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = condition()
        except (OSError, urllib.error.URLError, KeyError, IndexError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class Collector:
    proc: subprocess.Popen[bytes]
    sflow_port: int
    http_port: int
    log_path: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url(path), timeout=10) as r:
            body = r.read()
            return json.loads(body) if "json" in r.headers["Content-Type"] else body.decode()

    def send(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url(path), data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            with e:
                return e.code, json.loads(e.read())

    def udp(self, *datagrams: bytes, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            for d in datagrams:
                s.sendto(d, (host, self.sflow_port))

    def agent(self, address: str) -> dict[str, Any]:
        return self.get("/agents/json").get(address, {})

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text()


def start(tmp: Path, *args: str, ready: bool = True, nofile: int | None = None) -> Collector:
    """A collector process on free ports (``nofile``: its file descriptor limit)."""
    sflow_port, http_port = free_port(socket.SOCK_DGRAM), free_port()
    log_path = tmp / f"collector-{http_port}.log"
    cmd = [sys.executable, "-m", "sflowlab.cli", "collector", "--sflow-port", str(sflow_port),
           "--http-port", str(http_port), "--sflow-host", "127.0.0.1", "--sflow-host", "::1",
           *args]
    with open(log_path, "wb") as log:
        limit = None if nofile is None else (
            lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "SFLOWLAB_TOKEN": ""}, preexec_fn=limit)
    c = Collector(proc, sflow_port, http_port, log_path)
    if ready:
        wait_for(lambda: c.get("/version") and "event=listening" in c.log(), 15,
                 "the collector to answer")
    return c
