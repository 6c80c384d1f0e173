"""A third-party sFlow agent in a box: pmacct's sfprobe sampling real HTTP traffic.

``sfprobe_lab()`` joins two fresh namespaces with a veth pair, runs ``python -m http.server``
in the server namespace and a urllib client loop in the client namespace, and runs
``pmacctd`` with the ``sfprobe`` plugin on the client's veth, exporting to a UDP socket this
process holds inside the client namespace (on its loopback, so the export is not sampled).
Used by the pmacct interop test and by ``ci/make_sample_capture.py``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .netns import VethPair, stop_process, veth_pair
from .netns import unavailable_reason as _netns_unavailable

__all__ = ["SfprobeLab", "sfprobe_lab", "unavailable_reason"]

_CLIENT_LOOP = """
import sys, time, urllib.request
while True:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        r.read()
    time.sleep(0.02)
"""


def unavailable_reason() -> str | None:
    """Why the lab cannot run here, or None."""
    reason = _netns_unavailable()
    if reason is None and shutil.which("pmacctd") is None:
        reason = "pmacct's pmacctd is not installed"
    return reason


@dataclass
class SfprobeLab:
    """The running lab: where traffic flows and what pmacct was told."""

    pair: VethPair
    receiver: socket.socket
    http_port: int
    sampling_rate: int
    agent_ip: str
    sub_agent_id: int
    log: Path

    @property
    def server_address(self) -> str:
        return self.pair.a_address

    @property
    def client_address(self) -> str:
        return self.pair.b_address

    def datagrams(self, timeout: float) -> Iterator[tuple[bytes, tuple[str, int], float]]:
        """(payload, source, received_at) as pmacct's datagrams arrive, until ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.receiver.settimeout(left)
            try:
                data, source = self.receiver.recvfrom(65535)
            except TimeoutError:
                return
            yield data, source, time.time()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _wait_for_listener(pair: VethPair, port: int, process: subprocess.Popen[bytes],
                       timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"HTTP server exited with status {process.returncode}")
        with contextlib.closing(pair.b.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
            s.settimeout(1.0)
            if s.connect_ex((pair.a_address, port)) == 0:
                return
        time.sleep(0.05)  # poll interval while the server starts
    raise TimeoutError(f"HTTP server on {pair.a_address}:{port} not listening after {timeout}s")


@contextlib.contextmanager
def sfprobe_lab(workdir: Path, sampling_rate: int = 4, http_port: int = 8080,
                server_cidr: str = "10.199.0.1/24", client_cidr: str = "10.199.0.2/24",
                sub_agent_id: int = 0) -> Iterator[SfprobeLab]:
    """Run the lab until the block exits; everything is stopped and removed afterwards."""
    with veth_pair(server_cidr, client_cidr) as pair:
        receiver = pair.b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            receiver.bind(("127.0.0.1", 0))
            port = receiver.getsockname()[1]
            agent_ip = pair.b_address
            conf = workdir / "pmacctd.conf"
            log = workdir / "pmacctd.log"
            conf.write_text(
                "daemonize: false\n"
                f"pcap_interface: {pair.b_interface}\n"
                "plugins: sfprobe\n"
                f"sampling_rate: {sampling_rate}\n"
                f"sfprobe_receiver: 127.0.0.1:{port}\n"
                f"sfprobe_agentip: {agent_ip}\n"
                f"sfprobe_agentsubid: {sub_agent_id}\n"
                f"logfile: {log}\n"
            )
            server = pair.a.popen(
                [sys.executable, "-m", "http.server", str(http_port), "--bind",
                 pair.a_address, "--directory", str(workdir)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            processes.append(server)
            _wait_for_listener(pair, http_port, server, timeout=15.0)
            processes.append(pair.b.popen(["pmacctd", "-f", str(conf)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            processes.append(pair.b.popen(
                [sys.executable, "-c", _CLIENT_LOOP, f"http://{pair.a_address}:{http_port}/"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            yield SfprobeLab(pair, receiver, http_port, sampling_rate, agent_ip, sub_agent_id, log)
        finally:
            for process in reversed(processes):
                stop_process(process)
            receiver.close()
