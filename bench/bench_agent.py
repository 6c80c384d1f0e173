"""Benchmark the mirror agent (``sflowlab agent``): its CPU while it samples a busy bridge.

A paced sender sends ``--rate`` UDP frames per second across a bridge (bursts every 10 ms); the
agent runs as the real command (``--sampling``, ``--polling``), sending to a socket that counts
datagrams and flow samples. After ``--warmup`` seconds the agent's CPU (utime + stime from
/proc/PID/stat) is measured over ``--seconds``, with the frames the bridge carried (its rx
counter, all of which the agent samples from) and those of the stream. Needs root.

- default: a namespace holds bridge ``br0`` with two ports cabled to namespaces A and B; the
  agent runs in the bridge's namespace without Docker;
- ``--docker0``: two containers of the locally built small image on this host's docker0, the
  stream sent from a socket in one's namespace to the other (busybox has no UDP client); the
  agent runs on the host sampling docker0 with the engine's containers polled
  (``--docker-url``), so its container stats work is in the figure. It takes the engine lock,
  labels its containers ``sflowlab.bench=agent`` and removes them at the end (also on Ctrl-C).

Run: ``sudo .venv/bin/python bench/bench_agent.py [--docker0] [--rate 10000] [--sampling 100]``.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sflowlab.codec import COUNTER_SAMPLES, FLOW_SAMPLES, decode_datagram
from sflowlab.lab.interop.netns import Namespace, bridged_pair, stop_process

A_IP, B_IP, PORT = "10.214.0.1", "10.214.0.2", 5003
DOCKER_URL = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
LABEL = ("sflowlab.bench", "agent")
SENDER = """
import socket, sys, time
rate, payload = int(sys.argv[1]), bytes(int(sys.argv[2]))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
per_slot, slot = max(rate // 100, 1), 0.01
next_at = time.monotonic()
while True:
    for _ in range(per_slot):
        s.sendto(payload, (sys.argv[3], int(sys.argv[4])))
    next_at += slot
    time.sleep(max(next_at - time.monotonic(), 0))
"""


@dataclass(frozen=True)
class Lab:
    """A bridge the stream crosses, and where the agent runs."""

    interface: str
    docker_url: str
    """The engine the agent polls (``none``: no Docker)."""
    source: Namespace
    """Where the sender runs."""
    destination: tuple[str, int]
    sink: socket.socket
    """Bound at ``destination`` (so no port-unreachable comes back); never read."""
    collector: socket.socket
    """Bound on 127.0.0.1 where the agent runs."""
    start: Callable[[list[str]], subprocess.Popen[bytes]]
    """Starts a process where the agent runs."""
    bridge_frames: Callable[[], int]
    stream_frames: Callable[[], int]
    describe: Callable[[], str]


def link_rx(ns: Namespace, name: str) -> int:
    (link,) = json.loads(ns.ip("-j", "-s", "link", "show", name))
    return int(link["stats64"]["rx"]["packets"])


@contextlib.contextmanager
def bridge_lab() -> Iterator[Lab]:
    """``br0`` in a namespace, ports ``pa`` and ``pb`` cabled to namespaces A and B."""
    with bridged_pair(A_IP, B_IP, prefix="agbench") as pair:
        host, a, b = pair.host, pair.a, pair.b
        with contextlib.closing(b.socket()) as sink, contextlib.closing(host.socket()) as col:
            sink.bind((B_IP, PORT))
            col.bind(("127.0.0.1", 0))
            yield Lab("br0", "none", a, (B_IP, PORT), sink, col,
                      lambda argv: host.popen(argv, stdout=subprocess.DEVNULL),
                      lambda: link_rx(host, "br0"), lambda: link_rx(host, "pa"),
                      lambda: "bridge br0 in a namespace, no Docker")


@contextlib.contextmanager
def docker0_lab() -> Iterator[Lab]:
    """Two containers on this host's docker0; the agent on the host polling the engine."""
    import docker

    from sflowlab.lab.live.containers import container_netns, host_veth, rx_packets
    from sflowlab.lab.live.image import build_small_image
    from sflowlab.lab.live.swarm import engine_lock

    client = docker.DockerClient(base_url=DOCKER_URL, version="auto", timeout=30)
    label = "=".join(LABEL)

    def remove_ours() -> None:
        for c in client.containers.list(all=True, filters={"label": label}):
            c.remove(force=True)

    def run(role: str) -> Any:
        return client.containers.run(tag, name=f"agentbench-{os.getpid()}-{role}", detach=True,
                                     labels=dict([LABEL]))

    def address(container: Any) -> str:
        container.reload()
        return str(container.attrs["NetworkSettings"]["IPAddress"])

    with engine_lock(600):
        try:
            tag = build_small_image(client)
            remove_ours()  # left by a killed run
            src, dst = run("src"), run("dst")
            dst_ip, veth = address(dst), host_veth(src)
            with container_netns(src, src.name) as src_ns, \
                    container_netns(dst, dst.name) as dst_ns, \
                    contextlib.closing(dst_ns.socket()) as sink, \
                    contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as col:
                sink.bind((dst_ip, PORT))
                col.bind(("127.0.0.1", 0))
                yield Lab("docker0", DOCKER_URL, src_ns, (dst_ip, PORT), sink, col,
                          lambda argv: subprocess.Popen(argv, stdout=subprocess.DEVNULL),
                          lambda: rx_packets("docker0"), lambda: rx_packets(veth),
                          lambda: f"docker0, {len(client.containers.list())} running containers "
                                  f"polled (docker {client.version()['Version']})")
        finally:
            remove_ours()
            client.close()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Counter:
    """Receives the agent's datagrams in a thread; counts datagrams, flow and counter samples."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.datagrams, self.flows, self.counters = sock, 0, 0, 0
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            samples = decode_datagram(data).samples
            self.datagrams += 1
            self.flows += sum(isinstance(s, FLOW_SAMPLES) for s in samples)
            self.counters += sum(isinstance(s, COUNTER_SAMPLES) for s in samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docker0", action="store_true",
                   help="two containers on docker0, the agent on the host polling Docker")
    p.add_argument("--rate", type=int, default=10_000, help="frames per second (10000)")
    p.add_argument("--sampling", type=int, default=100, help="1-in-N (100)")
    p.add_argument("--polling", type=int, default=20, help="polling interval, s (20)")
    p.add_argument("--payload", type=int, default=200, help="UDP payload bytes (200)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring (3)")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds measured (20)")
    args = p.parse_args()
    with (docker0_lab() if args.docker0 else bridge_lab()) as lab:
        counter = Counter(lab.collector)
        agent = lab.start([sys.executable, "-m", "sflowlab.cli", "agent", "--collector",
                           f"127.0.0.1:{lab.collector.getsockname()[1]}",
                           "--interface", lab.interface, "--sampling", str(args.sampling),
                           "--polling", str(args.polling), "--docker-url", lab.docker_url])
        sender = None
        try:
            sender = lab.source.popen([sys.executable, "-c", SENDER, str(args.rate),
                                       str(args.payload), *map(str, lab.destination)])
            time.sleep(args.warmup)  # the agent starts, the sender reaches its pace
            t0, c0, f0, g0 = (time.monotonic(), cpu_s(agent.pid), lab.bridge_frames(),
                              lab.stream_frames())
            d0, s0, k0 = counter.datagrams, counter.flows, counter.counters
            time.sleep(args.seconds)
            t1, c1, f1, g1 = (time.monotonic(), cpu_s(agent.pid), lab.bridge_frames(),
                              lab.stream_frames())
            d1, s1, k1 = counter.datagrams, counter.flows, counter.counters
            where = lab.describe()
        finally:
            if sender is not None:
                stop_process(sender)
            stop_process(agent)
            counter.stop.set()
            counter.thread.join()
    wall = t1 - t0
    pps = (f1 - f0) / wall
    print(f"{where}: sampling 1-in-{args.sampling}, polling {args.polling} s, "
          f"measured {wall:.1f} s")
    print(f"bridge: {pps:,.0f} frames/s, of which the stream {(g1 - g0) / wall:,.0f} "
          f"({args.payload + 42} bytes, {args.rate:,} asked)")
    print(f"agent: {(s1 - s0) / wall:,.1f} flow samples/s (expected {pps / args.sampling:,.1f}),"
          f" {k1 - k0} counter samples, {(d1 - d0) / wall:,.1f} datagrams/s")
    print(f"agent CPU: {100 * (c1 - c0) / wall:.2f} % of one core "
          f"({1e6 * (c1 - c0) / max(s1 - s0, 1):,.0f} us per flow sample, all work included)")


if __name__ == "__main__":
    main()
