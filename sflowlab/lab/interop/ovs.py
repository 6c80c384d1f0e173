"""A real switch's sFlow agent in a box: Open vSwitch on its userspace datapath.

``ovs_lab()`` runs a private ``ovsdb-server`` and ``ovs-vswitchd`` (no systemd, no kernel
module: the bridge has ``datapath_type=netdev``) with their database, sockets and logs in a
work directory, and a bridge whose ports are veth ends cabled to fresh host namespaces.
``OvsLab.set_sflow`` configures the bridge's sFlow agent the way an operator would, with
``ovs-vsctl``. On the way out the bridge and its datapath are removed, the daemons stopped and
the namespaces deleted, even after a failure.

The hosts' TX checksum offload is off: the netdev datapath reads frames from packet sockets
and would forward them with their transport checksums unfilled, which the receiver drops.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .netns import Namespace, cabled_host, stop_process
from .netns import unavailable_reason as _netns_unavailable

__all__ = ["OvsLab", "OvsPort", "ovs_lab", "unavailable_reason"]

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
_TOOLS = ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl", "ovsdb-tool")


def unavailable_reason() -> str | None:
    """Why the lab cannot run here, or None."""
    reason = _netns_unavailable()
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if reason is None and missing:
        reason = f"{', '.join(missing)} not installed (Debian package openvswitch-switch)"
    if reason is None and not SCHEMA.exists():
        reason = f"{SCHEMA} is missing"
    return reason


@dataclass(frozen=True)
class OvsPort:
    """A bridge port (``name``, its ``if_index``) and the host cabled to it (``eth0``)."""

    name: str
    if_index: int
    host: Namespace
    address: str


@dataclass(frozen=True)
class OvsLab:
    """The running switch: its bridge, ports and control sockets."""

    workdir: Path
    bridge: str
    ports: tuple[OvsPort, ...]

    def vsctl(self, *args: str) -> str:
        """``ovs-vsctl ARGS...`` against this lab's database (its output); waits until
        ovs-vswitchd has applied a change."""
        return _run("ovs-vsctl", f"--db=unix:{self.workdir / 'db.sock'}", "--timeout=20", *args)

    def set_sflow(self, targets: Sequence[str], agent: str, sampling: int, polling: int,
                  header: int = 128) -> None:
        """Sample the bridge 1 in ``sampling`` and poll its ports every ``polling`` seconds,
        sending to each ``HOST:PORT`` of ``targets``; ``agent`` names the interface whose
        address is the agent address."""
        self.vsctl("--", "--id=@s", "create", "sFlow", f"agent={agent}",
                   f"target={json.dumps(list(targets))}", f"header={header}",
                   f"sampling={sampling}", f"polling={polling}",
                   "--", "set", "Bridge", self.bridge, "sflow=@s")

    def clear_sflow(self) -> None:
        """Stop the agent (no datagram is sent once this returns)."""
        self.vsctl("clear", "Bridge", self.bridge, "sflow")

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log")))


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def _wait_for_socket(path: Path, name: str, process: subprocess.Popen[bytes],
                     timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} not created after {timeout}s")
        time.sleep(0.02)  # poll interval while the daemon starts


@contextlib.contextmanager
def _daemons(workdir: Path) -> Iterator[None]:
    """ovsdb-server and ovs-vswitchd as children, on a fresh database in ``workdir``; on exit
    ovs-vswitchd removes its datapaths (``exit --cleanup``) before both are stopped."""
    db, sock = workdir / "conf.db", workdir / "db.sock"
    _run("ovsdb-tool", "create", str(db), str(SCHEMA))
    env = {**os.environ, "OVS_RUNDIR": str(workdir), "OVS_LOGDIR": str(workdir),
           "OVS_DBDIR": str(workdir)}
    common = ["--no-chdir"]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(subprocess.Popen(
            ["ovsdb-server", str(db), f"--remote=punix:{sock}",
             f"--unixctl={workdir / 'ovsdb-server.ctl'}",
             f"--log-file={workdir / 'ovsdb-server.log'}", *common],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for_socket(sock, "ovsdb-server", processes[-1], timeout=15.0)
        _run("ovs-vsctl", f"--db=unix:{sock}", "--no-wait", "init")
        control = workdir / "ovs-vswitchd.ctl"
        processes.append(subprocess.Popen(
            ["ovs-vswitchd", f"unix:{sock}", f"--unixctl={control}",
             f"--log-file={workdir / 'ovs-vswitchd.log'}", *common],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for_socket(control, "ovs-vswitchd", processes[-1], timeout=15.0)
        try:
            yield
        finally:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _run("ovs-appctl", "-t", str(control), "exit", "--cleanup")
    finally:
        for process in reversed(processes):
            stop_process(process)


@contextlib.contextmanager
def ovs_lab(workdir: Path, host_cidrs: Sequence[str]) -> Iterator[OvsLab]:
    """A netdev bridge with one port per host, the host ``i`` at ``host_cidrs[i]`` (IPv4).

    ``workdir`` holds the database, the control sockets (keep its path short: a Unix socket
    path has at most 107 bytes) and the daemons' logs.
    """
    serial = os.getpid()
    bridge = f"sflbr{serial}"
    lab = OvsLab(workdir, bridge, ())
    with contextlib.ExitStack() as stack:
        stack.enter_context(_daemons(workdir))
        lab.vsctl("add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev")
        stack.callback(lab.vsctl, "--if-exists", "del-br", bridge)  # its tap and the datapath's
        ports = []
        for i, cidr in enumerate(host_cidrs):
            name = f"sflp{serial}-{i}"
            host = stack.enter_context(cabled_host(name, [cidr], prefix="sflovs"))
            host.tx_checksum_off("eth0")
            lab.vsctl("add-port", bridge, name)
            if_index = int(Path("/sys/class/net", name, "ifindex").read_text())
            ports.append(OvsPort(name, if_index, host, cidr.split("/")[0]))
        yield OvsLab(workdir, bridge, tuple(ports))
