"""Docker containers through the docker SDK, as hsflowd's mod_docker sees them.

``DockerSource`` lists the running containers, inspects one (name, PID, MACs, CPU count), reads
its counters from the stats API (one-shot: no second read to wait for) and follows the
container events (start, die) in a thread that queues them and wakes the agent's select loop
through a pipe. ``container_records`` turns the stats into hsflowd's per-container records
(host_adapters, virt_disk_io, virt_memory, virt_cpu, virt_net_io, host_parent, host_descr with
the container name as hostname: what the collector shows as ``vir_host_name``).

Memory is what ``docker stats`` shows: the usage less the inactive file cache (cgroup v1
``total_inactive_file``, v2 ``inactive_file``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sflowlab.codec import (
    HostAdapter,
    HostAdapters,
    HostDescr,
    HostParent,
    VirtCpu,
    VirtDiskIo,
    VirtMemory,
    VirtNetIo,
)

from ..agent import U32_MASK
from ..dsindex import uuid_text

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
EVENTS = ("start", "die")
_PHYSICAL = 2


@dataclass(frozen=True)
class ContainerInfo:
    """What inspecting a container tells: its id, name (no leading /), init PID and MACs."""

    id: str
    name: str
    pid: int
    macs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainerStats:
    """One reading of the stats API."""

    cpu_ns: int = 0
    cpus: int = 1
    memory: int = 0
    memory_limit: int = 0
    rd_req: int = 0
    rd_bytes: int = 0
    wr_req: int = 0
    wr_bytes: int = 0
    net: tuple[int, int, int, int, int, int, int, int] = (0,) * 8
    """bytes, packets, errors, drops received; the same sent (the container's view)."""


def _blkio(entries: Iterable[dict[str, Any]] | None, op: str) -> int:
    return sum(int(e.get("value", 0)) for e in entries or () if str(e.get("op", "")).lower() == op)


def stats_from_api(doc: dict[str, Any]) -> ContainerStats:
    """A ``ContainerStats`` from the stats API's JSON (missing parts read as 0)."""
    cpu = doc.get("cpu_stats") or {}
    usage = cpu.get("cpu_usage") or {}
    mem = doc.get("memory_stats") or {}
    mstats = mem.get("stats") or {}
    inactive = mstats.get("total_inactive_file", mstats.get("inactive_file", 0))
    used = int(mem.get("usage", 0))
    blk = doc.get("blkio_stats") or {}
    net = [0] * 8
    for nic in (doc.get("networks") or {}).values():
        for i, key in enumerate(("rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
                                 "tx_bytes", "tx_packets", "tx_errors", "tx_dropped")):
            net[i] += int(nic.get(key, 0))
    return ContainerStats(
        cpu_ns=int(usage.get("total_usage", 0)),
        cpus=int(cpu.get("online_cpus") or len(usage.get("percpu_usage") or ()) or 1),
        memory=used - inactive if 0 <= inactive < used else used,
        memory_limit=int(mem.get("limit", 0)),
        rd_req=_blkio(blk.get("io_serviced_recursive"), "read"),
        rd_bytes=_blkio(blk.get("io_service_bytes_recursive"), "read"),
        wr_req=_blkio(blk.get("io_serviced_recursive"), "write"),
        wr_bytes=_blkio(blk.get("io_service_bytes_recursive"), "write"),
        net=(net[0], net[1], net[2], net[3], net[4], net[5], net[6], net[7]))


def container_records(info: ContainerInfo, stats: ContainerStats, state: int, raw_uuid: bytes,
                      eth0_ifindex: int, os_release: str, machine_type: int,
                      os_name: int) -> tuple[Any, ...]:
    """The container sample's records in hsflowd's (and the simulated host's) order."""
    m, n = U32_MASK, stats.net
    return (
        HostAdapters(tuple(HostAdapter(eth0_ifindex, (mac,)) for mac in info.macs[:1])),
        VirtDiskIo(0, 0, 0, stats.rd_req & m, stats.rd_bytes, stats.wr_req & m, stats.wr_bytes,
                   0),
        VirtMemory(stats.memory, stats.memory_limit),
        VirtCpu(state, (stats.cpu_ns // 1_000_000) & m, stats.cpus),
        VirtNetIo(n[0], n[1] & m, n[2] & m, n[3] & m, n[4], n[5] & m, n[6] & m, n[7] & m),
        HostParent(_PHYSICAL, 1),
        HostDescr(info.name[:64], uuid_text(raw_uuid), machine_type, os_name, os_release[:32]),
    )


@dataclass(frozen=True)
class ContainerStarted:
    info: ContainerInfo


@dataclass(frozen=True)
class ContainerDied:
    id: str


@dataclass(frozen=True)
class ContainersListed:
    """The running containers after the events stream was reconnected."""

    running: tuple[ContainerInfo, ...]


ContainerEvent = ContainerStarted | ContainerDied | ContainersListed


@dataclass
class DockerSource:
    """The Docker Engine API at ``url`` through the docker SDK (``docker.APIClient``)."""

    url: str = DEFAULT_DOCKER_URL
    timeout_s: float = 10.0
    retry_s: float = 2.0
    """Pause before reconnecting to the events stream."""
    events: queue.SimpleQueue[ContainerEvent] = field(
        default_factory=queue.SimpleQueue)
    errors: int = 0
    """Failed inspect and stats calls (a container gone meanwhile, the engine away)."""

    def __post_init__(self) -> None:
        import docker  # the host extra; only this class needs it

        self._errors = (docker.errors.DockerException, OSError, ValueError)
        try:
            self.api = docker.APIClient(base_url=self.url, version="auto",
                                        timeout=self.timeout_s)
        except self._errors as e:
            raise ConnectionError(f"no Docker engine at {self.url}: {e}") from e
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._closing = threading.Event()

    def running(self) -> list[ContainerInfo]:
        """The running containers, inspected (those gone meanwhile left out)."""
        try:
            listed = self.api.containers()
        except self._errors as e:
            raise ConnectionError(f"listing the containers at {self.url}: {e}") from e
        found = (self.inspect(c["Id"]) for c in listed)
        return [info for info in found if info is not None]

    def inspect(self, container_id: str) -> ContainerInfo | None:
        try:
            doc = self.api.inspect_container(container_id)
        except self._errors:
            self.errors += 1
            return None
        state = doc.get("State") or {}
        if not state.get("Running"):
            return None
        networks = (doc.get("NetworkSettings") or {}).get("Networks") or {}
        macs = tuple(n["MacAddress"] for n in networks.values() if n.get("MacAddress"))
        return ContainerInfo(doc["Id"], str(doc.get("Name", "")).lstrip("/"),
                             int(state.get("Pid") or 0), macs)

    def stats(self, container_id: str) -> ContainerStats | None:
        """One-shot stats (None when the call failed)."""
        try:
            doc = self.api.stats(container_id, stream=False, one_shot=True)
        except self._errors:
            self.errors += 1
            return None
        return stats_from_api(doc)

    def start_events(self) -> None:
        """Follow start/die events from now on, in a daemon thread. When the stream ends (the
        engine restarted or went away) it reconnects every ``retry_s`` and then lists the
        running containers (``ContainersListed``), so none started or stopped meanwhile is
        missed."""
        self._stream = self._subscribe()
        self._thread = threading.Thread(target=self._follow, name="docker-events", daemon=True)
        self._thread.start()

    def _subscribe(self) -> Any:
        return self.api.events(decode=True, filters={"type": ["container"],
                                                     "event": list(EVENTS)})

    def _follow(self) -> None:
        while not self._closed:
            try:
                if self._stream is None:
                    self._stream = self._subscribe()
                    self.events.put(ContainersListed(tuple(self.running())))
                    self.wake()
                for event in self._stream:
                    self._queue_event(event)
            except self._errors:
                if self._closed:
                    return
                self.errors += 1
            self._stream = None
            self._closing.wait(self.retry_s)

    def _queue_event(self, event: dict[str, Any]) -> None:
        cid = event.get("id") or (event.get("Actor") or {}).get("ID")
        if not cid:
            return
        if event.get("status") == "start" or event.get("Action") == "start":
            info = self.inspect(cid)
            if info is None:
                return
            self.events.put(ContainerStarted(info))
        else:
            self.events.put(ContainerDied(cid))
        self.wake()

    def wake(self) -> None:
        """Make ``fileno()`` readable (a stats call finished)."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def fileno(self) -> int:
        """Readable when events are queued or a stats call finished."""
        return self._wake_r

    def drain(self) -> Iterator[ContainerEvent]:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        while True:
            try:
                yield self.events.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        self._closed = True
        self._closing.set()
        if self._stream is not None:
            with contextlib.suppress(*self._errors):
                self._stream.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.api.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
