"""Benchmark the mirror agent (``sflowlab agent``): its CPU while it samples a busy bridge.

A namespace holds bridge ``br0`` with two ports cabled to namespaces A and B; a paced sender in
A sends B ``--rate`` UDP frames per second across the bridge (bursts every 10 ms). The agent
runs as the real command in the bridge's namespace (``--sampling``, ``--polling``, no Docker),
sending to a socket there that counts datagrams. After ``--warmup`` seconds the agent's CPU
(utime + stime from /proc/PID/stat) is measured over ``--seconds``, with the frames the bridge
carried (its rx counter), the flow samples and datagrams the agent sent. Needs root.

Run: ``sudo .venv/bin/python bench/bench_agent.py [--rate 10000] [--sampling 100]``. Prints
figures; asserts nothing.
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
from collections.abc import Iterator
from pathlib import Path

from sflowlab.codec import FLOW_SAMPLES, decode_datagram
from sflowlab.lab.interop.netns import Namespace, namespace, stop_process

A_IP, B_IP, PORT = "10.214.0.1", "10.214.0.2", 5003
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


@contextlib.contextmanager
def bridge_lab() -> Iterator[tuple[Namespace, Namespace, Namespace]]:
    with namespace("agbench") as host, namespace("agbench") as a, namespace("agbench") as b:
        for ns in (host, a, b):
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
        host.ip("link", "add", "br0", "type", "bridge")
        for ns, port, ip in ((a, "pa", A_IP), (b, "pb", B_IP)):
            host.ip("link", "add", port, "type", "veth", "peer", "name", "eth0",
                    "netns", ns.name)
            host.ip("link", "set", port, "master", "br0")
            host.ip("link", "set", port, "up")
            ns.ip("addr", "add", f"{ip}/24", "dev", "eth0")
            ns.ip("link", "set", "eth0", "up")
        host.ip("link", "set", "br0", "up")
        a.ip("neigh", "replace", B_IP, "lladdr", b.mac("eth0"), "dev", "eth0", "nud", "permanent")
        b.ip("neigh", "replace", A_IP, "lladdr", a.mac("eth0"), "dev", "eth0", "nud", "permanent")
        yield host, a, b


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bridge_frames(host: Namespace) -> int:
    (link,) = json.loads(host.ip("-j", "-s", "link", "show", "br0"))
    return int(link["stats64"]["rx"]["packets"])


class Counter:
    """Receives the agent's datagrams in a thread; counts datagrams and flow samples."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.datagrams, self.flows = sock, 0, 0
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
            self.datagrams += 1
            self.flows += sum(isinstance(s, FLOW_SAMPLES) for s in decode_datagram(data).samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=int, default=10_000, help="frames per second (10000)")
    p.add_argument("--sampling", type=int, default=100, help="1-in-N (100)")
    p.add_argument("--polling", type=int, default=20, help="polling interval, s (20)")
    p.add_argument("--payload", type=int, default=200, help="UDP payload bytes (200)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring (3)")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds measured (20)")
    args = p.parse_args()
    with bridge_lab() as (host, a, b):
        receiver = host.socket()
        receiver.bind(("127.0.0.1", 0))
        sink = b.socket()
        sink.bind((B_IP, PORT))
        counter = Counter(receiver)
        agent = host.popen([sys.executable, "-m", "sflowlab.cli", "agent", "--collector",
                            f"127.0.0.1:{receiver.getsockname()[1]}", "--interface", "br0",
                            "--sampling", str(args.sampling), "--polling", str(args.polling),
                            "--docker-url", "none"], stdout=subprocess.DEVNULL)
        sender = a.popen([sys.executable, "-c", SENDER, str(args.rate), str(args.payload),
                          B_IP, str(PORT)])
        try:
            time.sleep(args.warmup)  # the agent starts, the sender reaches its pace
            t0, c0, f0 = time.monotonic(), cpu_s(agent.pid), bridge_frames(host)
            d0, s0 = counter.datagrams, counter.flows
            time.sleep(args.seconds)
            t1, c1, f1 = time.monotonic(), cpu_s(agent.pid), bridge_frames(host)
            d1, s1 = counter.datagrams, counter.flows
        finally:
            stop_process(sender)
            stop_process(agent)
            counter.stop.set()
            counter.thread.join()
            receiver.close()
            sink.close()
    wall = t1 - t0
    pps = (f1 - f0) / wall
    print(f"bridge: {pps:,.0f} frames/s ({args.payload + 42} bytes), sampling 1-in-"
          f"{args.sampling}, polling {args.polling} s, measured {wall:.1f} s")
    print(f"agent: {(s1 - s0) / wall:,.1f} flow samples/s (expected {pps / args.sampling:,.1f}),"
          f" {(d1 - d0) / wall:,.1f} datagrams/s")
    print(f"agent CPU: {100 * (c1 - c0) / wall:.2f} % of one core "
          f"({1e6 * (c1 - c0) / max(s1 - s0, 1):,.0f} us per flow sample, all work included)")


if __name__ == "__main__":
    main()
