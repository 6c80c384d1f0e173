"""The mirror agent: this Linux host's interfaces, bridge traffic and Docker containers as
hsflowd would send them, on agent_sim's ``Agent``/``Poller``/``Sampler`` with a real clock.

- one sFlow agent (sub-agent 100000 when sampling, else 100001, uptime from its start), its
  datagrams flushed at each tick (once a second, at the start + whole seconds, like hsflowd);
- every interface but loopback: data source 0.<ifIndex>, if_counters + ethernet_counters +
  port_name read fresh from rtnetlink when its poller is due; links come and go with RTNLGRP_LINK
  events;
- the host: data source 2.1, records from /proc (``hostinfo``);
- each sampled interface (``interfaces``: docker0 and docker_gwbridge by default, when they
  exist): a ``Tap`` with the kernel's random filter; each frame becomes an expanded flow sample
  (sampled_header with the frame length plus FCS, extended_entities naming the container on
  either side). On a bridge, input/output are its ports found by MAC in its FDB (the bridge
  itself for the host's own frames; multicast out: format 2, count unknown); on another
  interface, itself on the side the frame crossed. The sample pool is the interface's frames
  (rx + tx from its link counters) since sampling began, the drops those PACKET_STATISTICS
  reports;
- each running container: data source 3.<hsflowd dsIndex>; its poller is armed when it is seen
  (countdown 1..polling), its first sample goes out at the tick 3 s into the second it was seen,
  a final one with its stopped state when it dies. Stats come from the Docker stats API in a
  worker thread (the loop never waits on the engine); its host-side veth is the link whose peer
  is in its namespace (IFLA_LINK_NETNSID), its eth0 that link's IFLA_LINK.

Pollers are armed as in the simulated host (``sfl_poller_set_sFlowCpInterval``: a countdown
drawn from 1..interval, then every interval).
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import random
import select
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sflowlab.clock import Clock
from sflowlab.codec import (
    CountersSampleExpanded,
    ExtendedEntities,
    FlowSampleExpanded,
    SampledHeader,
)

from ..agent import U32_MASK, Agent, Poller, Sampler
from ..dsindex import DsIndexTable, container_uuid
from ..host import FIRST_STATS_DELAY_S, STATES, SUB_AGENT_SAMPLING
from ..sinks import Sink
from .containers import (
    DEFAULT_DOCKER_URL,
    ContainerDied,
    ContainerInfo,
    ContainersListed,
    ContainerStarted,
    ContainerStats,
    DockerSource,
    container_records,
)
from .hostinfo import OS_LINUX, HostReader
from .links import Link, LinkAdded, LinkMonitor, LinkTable, interface_records, speed_and_direction
from .tap import Frame, Tap

_IFINDEX, _PHYSICAL, _LOGICAL = 0, 2, 3
_MULTIPLE = 2
"""output_format for frames to several ports (value 0: how many unknown)."""


@dataclass
class MirrorSettings:
    """What to mirror and how (hsflowd.conf's essentials)."""

    sampling: int = 400
    polling_s: int = 20
    interfaces: tuple[str, ...] = ("docker0", "docker_gwbridge")
    """Bridges (or any interfaces) to sample, when they exist."""
    docker_url: str | None = DEFAULT_DOCKER_URL
    """None: no container mirroring."""
    header_bytes: int = 128
    max_datagram: int = 1400

    def __post_init__(self) -> None:
        if self.sampling < 0 or self.polling_s < 0:
            raise ValueError("sampling and polling must be >= 0")
        if not 14 <= self.header_bytes <= 256:
            raise ValueError("header_bytes must be between 14 and 256")


def source_address(collector: tuple[str, int]) -> str:
    """The local address the kernel would send to ``collector`` from (no packet is sent)."""
    family = socket.AF_INET6 if ":" in collector[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect(collector)
        return str(s.getsockname()[0])


def agent_address(collector: tuple[str, int]) -> str:
    """The agent address hsflowd would pick: the source towards the collector, or, when that is
    loopback (a collector on this host), the default route's source; loopback without one."""
    address = source_address(collector)
    if ipaddress.ip_address(address).is_loopback:
        with contextlib.suppress(OSError):  # no default route: loopback it is
            return source_address(("2001:db8::1", 9) if ":" in address else ("192.0.2.1", 9))
    return address


@dataclass
class _Bridge:
    """A sampled interface: its tap and sampler, the pool's origin, its FDB."""

    link: Link
    tap: Tap
    sampler: Sampler
    pool_origin: int
    mac: bytes
    ports: dict[bytes, int] = field(default_factory=dict)


@dataclass
class _Container:
    info: ContainerInfo
    raw_uuid: bytes
    ds_index: int
    poller: Poller
    first_sample_due: float | None
    stats: ContainerStats | None = None
    veth: int | None = None
    eth0: int = 0
    pending: list[int] = field(default_factory=list)
    """Sequence numbers of samples waiting for their stats."""
    fetching: Future[ContainerStats | None] | None = None


class MirrorAgent:
    """hsflowd on this host: pollers for links, host and containers, samplers on bridges."""

    def __init__(self, settings: MirrorSettings, sink: Sink, now: float, address: str,
                 rng: random.Random | None = None,
                 docker: DockerSource | None = None) -> None:
        self.settings = settings
        self.start = now
        self.rng = rng or random.Random()
        sub_agent = SUB_AGENT_SAMPLING if settings.sampling else SUB_AGENT_SAMPLING + 1
        self.agent = Agent(address, sink, sub_agent, now, settings.max_datagram)
        self.table = LinkTable()
        self.monitor = LinkMonitor()
        self.host = HostReader()
        self.links: dict[int, Link] = {}
        self.pollers: dict[int, Poller] = {}
        self.bridges: dict[int, _Bridge] = {}
        self.host_poller = self._armed(_PHYSICAL, 1, now)
        self.docker = docker
        self.indexes = DsIndexTable()
        self.containers: dict[str, _Container] = {}
        self._by_port: dict[int, _Container] = {}
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="docker-stats")
        self.errors: dict[str, int] = {}
        self.sampled: dict[str, tuple[int, int, int]] = {}
        """Per sampled interface at close: (flow samples, drops, sample pool)."""
        for link in self.table.links().values():
            self._link_seen(link, now)
        if docker is not None:
            docker.start_events()  # before listing: a container starting now is not missed
            for info in docker.running():
                self._container_started(info, now)

    # ------------------------------------------------------------------ scheduling

    def _second(self, now: float) -> float:
        return self.start + math.floor(now - self.start + 1e-9)

    def _armed(self, ds_type: int, index: int, now: float) -> Poller:
        interval = self.settings.polling_s
        countdown = self.rng.randint(1, interval) if interval else 0
        return Poller(ds_type, index, interval, None, self._second(now) + countdown)

    def _count_error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    # ------------------------------------------------------------------ links

    def _link_seen(self, link: Link, now: float) -> None:
        known = link.index in self.links
        self.links[link.index] = link
        if link.loopback:
            return
        if not known:
            self.pollers[link.index] = self._armed(_IFINDEX, link.index, now)
        if link.name in self.settings.interfaces and self.settings.sampling:
            bridge = self.bridges.get(link.index)
            if bridge is None:
                self._open_bridge(link)
            else:
                bridge.link = link

    def _link_gone(self, index: int) -> None:
        self.links.pop(index, None)
        self.pollers.pop(index, None)
        bridge = self.bridges.pop(index, None)
        if bridge is not None:
            bridge.tap.close()

    def _open_bridge(self, link: Link) -> None:
        try:
            tap = Tap(link.name, self.settings.sampling, self.settings.header_bytes)
        except PermissionError:
            raise
        except OSError:  # the device went, or is not up yet: the next link event retries
            self._count_error("tap")
            return
        sampler = Sampler(_IFINDEX, link.index, self.settings.sampling, self.rng)
        self.bridges[link.index] = _Bridge(link, tap, sampler, link.packets,
                                           bytes.fromhex(link.mac.replace(":", "")))
        self._refresh_bridge(self.bridges[link.index])

    def _refresh_bridge(self, bridge: _Bridge) -> None:
        """Pool and drops from the kernel, ports from the FDB and the containers' MACs."""
        fresh = self.table.link(bridge.link.index)
        if fresh is not None:
            bridge.link = self.links[fresh.index] = fresh
        bridge.sampler.sample_pool = (bridge.link.packets - bridge.pool_origin) & U32_MASK
        bridge.sampler.drops = bridge.tap.update_drops() & U32_MASK
        if bridge.link.kind != "bridge":
            return
        ports = self.table.ports_by_mac(bridge.link.index)
        for c in self.containers.values():
            veth = self.links.get(c.veth) if c.veth is not None else None
            if veth is not None and veth.master == bridge.link.index:
                for mac in c.info.macs:
                    ports.setdefault(bytes.fromhex(mac.replace(":", "")), veth.index)
        bridge.ports = ports

    def on_link_events(self, now: float) -> None:
        """Links added, changed or removed; all of them re-read if notifications were lost."""
        events = self.monitor.read()
        for event in events:
            if isinstance(event, LinkAdded):
                self._link_seen(event.link, now)
            else:
                self._link_gone(event.index)
        overflowed, self.monitor.overflowed = self.monitor.overflowed, False
        if overflowed:
            current = self.table.links()
            for index in set(self.links) - set(current):
                self._link_gone(index)
            for link in current.values():
                self._link_seen(link, now)
        if events or overflowed:
            self._map_veths()

    def _poll_link(self, poller: Poller, now: float) -> None:
        link = self.table.link(poller.source_id_index)
        if link is None:  # gone: its delete event follows
            poller.next_sequence(now)
            return
        self.links[link.index] = link
        seq = poller.next_sequence(now)
        records = interface_records(link, *speed_and_direction(link.name))
        self.agent.emit(CountersSampleExpanded(seq, _IFINDEX, link.index, records), now)

    # ------------------------------------------------------------------ packets

    def on_frames(self, bridge: _Bridge, now: float) -> int:
        """The frames the tap holds (up to a batch) become flow samples; how many."""
        frames = bridge.tap.read()
        for frame in frames:
            self.agent.emit(self._flow_sample(bridge, frame), now)
        return len(frames)

    @staticmethod
    def _ports(bridge: _Bridge, frame: Frame) -> tuple[int, int, int]:
        """(input, output format, output) of a sampled frame. On a bridge: its ports found by
        MAC, the bridge itself for the host's frames, multicast out to several ports (format 2,
        how many unknown). On another interface: the input of what it receives, the output of
        what it sends, the other side unknown (0)."""
        h, own = frame.header, bridge.link.index
        if bridge.link.kind != "bridge":
            return (0, 0, own) if frame.outgoing else (own, 0, 0)
        dst, src = h[0:6], h[6:12]
        source = own if frame.outgoing or src == bridge.mac else bridge.ports.get(src, 0)
        if dst == bridge.mac:
            return source, 0, own
        if dst[:1] and dst[0] & 1:
            return source, _MULTIPLE, 0
        return source, 0, bridge.ports.get(dst, 0)

    def _flow_sample(self, bridge: _Bridge, frame: Frame) -> FlowSampleExpanded:
        source, out_format, target = self._ports(bridge, frame)
        records: tuple[Any, ...] = (SampledHeader(1, frame.length + 4, 4, frame.header),)
        a, b = self._by_port.get(source), self._by_port.get(target)
        if a is not None or b is not None:
            records += (ExtendedEntities(_LOGICAL if a else 0, a.ds_index if a else 0,
                                         _LOGICAL if b else 0, b.ds_index if b else 0),)
        s = bridge.sampler
        return FlowSampleExpanded(s.next_sequence(), _IFINDEX, bridge.link.index,
                                  s.sampling_rate, s.sample_pool, s.drops, 0, source,
                                  out_format, target, records)

    # ------------------------------------------------------------------ containers

    def _container_started(self, info: ContainerInfo, now: float) -> None:
        if info.id in self.containers:
            return
        raw = container_uuid(info.id)
        index = self.indexes.assign(raw)
        self.containers[info.id] = _Container(
            info, raw, index, self._armed(_LOGICAL, index, now),
            self._second(now) + FIRST_STATS_DELAY_S)
        self._map_veths()

    def _container_died(self, container_id: str, now: float) -> None:
        c = self.containers.pop(container_id, None)
        if c is None:
            return
        if c.stats is not None:  # samples whose stats are still on the way go out as they are
            for seq in c.pending:
                self._emit_container(c, seq, STATES["running"], now)
        seq = c.poller.next_sequence(now, reschedule=False)
        self._emit_container(c, seq, STATES["exited"], now)
        self.indexes.release(c.ds_index)
        self._map_veths()

    def _map_veths(self) -> None:
        """Each container's host-side veth: the veth whose peer is in its namespace."""
        by_nsid: dict[int, Link] = {v.peer_netnsid: v for v in self.links.values()
                                    if v.kind == "veth" and v.peer_netnsid is not None}
        self._by_port = {}
        for c in self.containers.values():
            nsid = self.table.netnsid_of(c.info.pid) if c.info.pid else None
            veth = by_nsid.get(nsid) if nsid is not None else None
            c.veth = veth.index if veth else None
            c.eth0 = (veth.peer_index or 0) if veth else 0
            if c.veth is not None:
                self._by_port[c.veth] = c

    def on_docker(self, now: float) -> None:
        assert self.docker is not None
        for event in self.docker.drain():
            if isinstance(event, ContainerStarted):
                self._container_started(event.info, now)
            elif isinstance(event, ContainerDied):
                self._container_died(event.id, now)
            elif isinstance(event, ContainersListed):  # reconnected: what changed meanwhile
                running = {info.id: info for info in event.running}
                for gone in set(self.containers) - set(running):
                    self._container_died(gone, now)
                for info in running.values():
                    self._container_started(info, now)
        for c in self.containers.values():
            if c.fetching is not None and c.fetching.done():
                stats = c.fetching.result()
                c.fetching = None
                c.stats = stats or c.stats
                if c.stats is None:  # never read: no made-up counters (a sequence gap says so)
                    self._count_error("container_stats")
                else:
                    for seq in c.pending:
                        self._emit_container(c, seq, STATES["running"], now)
                c.pending.clear()
        self.agent.flush(now)  # container samples go out as their stats come, not a tick later

    def _fetch(self, c: _Container, seq: int) -> None:
        c.pending.append(seq)
        if c.fetching is None and self.docker is not None:
            docker = self.docker
            c.fetching = self._workers.submit(docker.stats, c.info.id)
            c.fetching.add_done_callback(lambda _: docker.wake())

    def _emit_container(self, c: _Container, seq: int, state: int, now: float) -> None:
        records = container_records(c.info, c.stats or ContainerStats(), state, c.raw_uuid,
                                    c.eth0, self.host.os_release, self.host.machine_type,
                                    OS_LINUX)
        self.agent.emit(CountersSampleExpanded(seq, _LOGICAL, c.ds_index, records), now)

    # ------------------------------------------------------------------ the tick

    def tick(self, now: float) -> None:
        """Poll what is due, refresh the bridges, flush the agent."""
        for bridge in self.bridges.values():
            self._refresh_bridge(bridge)
        for poller in list(self.pollers.values()):
            if poller.due(now):
                self._poll_link(poller, now)
        for c in self.containers.values():
            if c.first_sample_due is not None and now >= c.first_sample_due:
                c.first_sample_due = None
                self._fetch(c, c.poller.next_sequence(now, reschedule=False))
            if c.poller.due(now):
                self._fetch(c, c.poller.next_sequence(now))
        if self.host_poller.due(now):
            self.links.update(self.table.links())
            records = self.host.records(list(self.links.values()), len(self.containers))
            seq = self.host_poller.next_sequence(now)
            self.agent.emit(CountersSampleExpanded(seq, _PHYSICAL, 1, records), now)
        self.agent.flush(now)

    def run(self, now: Callable[[], float], stop: threading.Event,
            until: float | None = None, wake_fd: int | None = None) -> None:
        """Serve until ``stop`` is set (or ``until``): ticks every second, frames, link and
        container events as they come. ``wake_fd`` (e.g. a signal wakeup pipe) ends a wait."""
        next_tick = self._second(now()) + 1
        while not stop.is_set():
            t = now()
            if until is not None and t >= until:
                break
            if t >= next_tick:
                self.tick(t)
                next_tick = self._second(t) + 1
            deadline = next_tick if until is None else min(next_tick, until)
            fds: list[Any] = [self.monitor, *(b.tap for b in self.bridges.values())]
            if self.docker is not None:
                fds.append(self.docker)
            if wake_fd is not None:
                fds.append(wake_fd)
            ready, _, _ = select.select(fds, [], [], max(deadline - now(), 0.0))
            t = now()
            for source in ready:
                if source is self.monitor:
                    self.on_link_events(t)
                elif source is self.docker:
                    self.on_docker(t)
                elif source is wake_fd:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_fd, 4096)
                else:
                    bridge = next((b for b in self.bridges.values() if b.tap is source), None)
                    if bridge is not None:
                        self.on_frames(bridge, t)

    def close(self, now: float) -> None:
        """Send the frames still queued in the taps, flush, and release the taps (promiscuous
        mode), sockets and threads."""
        for bridge in self.bridges.values():
            self._refresh_bridge(bridge)
            while self.on_frames(bridge, now):
                pass
            s = bridge.sampler
            self.sampled[bridge.link.name] = (s.sequence_number, s.drops, s.sample_pool)
            if bridge.tap.errors:
                self.errors[f"tap {bridge.link.name}"] = bridge.tap.errors
            bridge.tap.close()
        if self.docker is not None and self.docker.errors:
            self.errors["docker"] = self.docker.errors
        self.agent.flush(now)
        self.bridges.clear()
        self.monitor.close()
        self.table.close()
        self._workers.shutdown(wait=False, cancel_futures=True)
        if self.docker is not None:
            self.docker.close()


def run_agent(settings: MirrorSettings, sink: Sink, clock: Clock, stop: threading.Event,
              address: str, duration_s: float | None = None,
              wake_fd: int | None = None) -> MirrorAgent:
    """Build the agent, run it until ``stop`` (or ``duration_s``), close it; returns it."""
    docker = DockerSource(settings.docker_url) if settings.docker_url else None
    start = clock.now()
    try:
        agent = MirrorAgent(settings, sink, start, address, docker=docker)
    except BaseException:
        if docker is not None:
            docker.close()
        raise
    try:
        agent.run(clock.now, stop, None if duration_s is None else start + duration_s, wake_fd)
    finally:
        agent.close(clock.now())
    return agent
