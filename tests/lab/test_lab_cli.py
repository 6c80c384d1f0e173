"""``sflowlab lab swarm-api`` and ``sflowlab lab switch-api`` as processes: URL first, SIGTERM ends them."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import docker
import pytest
import requests

DROP = "-A FORWARD --in-interface swp+ -d 10.0.0.1 -p udp --sport 53 -j DROP"


class Double:
    """A ``sflowlab lab ...`` process whose stdout lines are read (by a thread) with a deadline."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sflowlab.cli", "lab", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def line(self, timeout_s: float = 15.0) -> str:
        line = self._lines.get(timeout=timeout_s)
        assert line is not None, f"the double exited: {self.proc.wait(5)}"
        return line

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=15)
        self._reader.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code


@pytest.fixture
def doubles() -> Iterator[list[Double]]:
    started: list[Double] = []
    yield started
    for double in started:
        if double.proc.poll() is None:
            double.terminate()


def url_in(line: str) -> str:
    match = re.search(r"http://[0-9.]+:[0-9]+(/\S*)?", line)
    assert match, line
    return match.group(0)


def test_swarm_api_serves_the_services_it_was_given(doubles: list[Double]) -> None:
    double = Double(
        "swarm-api",
        "--port",
        "0",
        "--service",
        "apache=2",
        "--node",
        "n1=10.0.0.1",
        "--start-delay",
        "0.05",
    )
    doubles.append(double)
    url = url_in(double.line())
    client = docker.DockerClient(base_url=url.replace("http://", "tcp://"), timeout=10)
    try:
        service = client.services.get("apache")
        assert service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 2
        assert service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == "httpd:2.4"
        assert [n.attrs["Description"]["Hostname"] for n in client.nodes.list()] == ["n1"]
    finally:
        client.close()
    assert double.terminate() == 0


def test_switch_api_prints_what_it_commits(doubles: list[Double]) -> None:
    double = Double(
        "switch-api",
        "--port",
        "0",
        "--switch",
        "leaf1=10.255.0.1",
        "--switch",
        "leaf2=10.255.0.2",
        "--apply-delay",
        "0.05",
    )
    doubles.append(double)
    urls = [url_in(double.line()), url_in(double.line())]
    assert urls[0].endswith("/switches/leaf1/acl/") and urls[1].endswith("/switches/leaf2/acl/")
    assert requests.put(urls[1] + "ddos1", json=["[iptables]", DROP], timeout=5).status_code == 202
    assert double.line() == "leaf2: applied ACL ddos1 (1 rules)"
    assert double.line() == f"leaf2:   {DROP}"
    assert requests.delete(urls[1] + "ddos1", timeout=5).status_code == 204
    assert double.line() == "leaf2: withdrew ACL ddos1"
    assert double.terminate() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["swarm-api", "--port", "0", "--service", "apache"], "expected NAME=VALUE"),
        (["swarm-api", "--port", "0", "--service", "apache=x"], "replicas must be a whole number"),
        (
            ["swarm-api", "--port", "0", "--service", "bad name=1"],
            "name must be valid as a DNS name component",
        ),
        (["switch-api", "--port", "0", "--switch", "leaf1"], "expected NAME=VALUE"),
    ],
)
def test_bad_options_fail_with_a_message(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sflowlab.cli", "lab", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0 and message in done.stderr
