"""An hsflowd-like host agent: the physical host, its Docker containers, bridge sampling.

What goes on the wire follows hsflowd (host-sflow's hsflowd.c, mod_docker.c):

- one sFlow agent per host; with packet sampling configured every sample goes out under
  sub-agent 100000 (counter samples are spliced into the sampling agent's feed), without it
  under 100001 (the poll agent); uptime counts from the agent's start;
- the physical host: expanded counters sample, data source 2.1, records in hsflowd's wire order
  (it prepends each record): virt_node, host_adapters, mib2 udp/tcp/icmp/ip, host_disk_io,
  host_memory, host_cpu, host_net_io, host_descr;
- each container: expanded counters sample, data source 3.<index> (``dsindex``), records
  host_adapters, virt_disk_io, virt_memory, virt_cpu, virt_net_io, host_parent, host_descr
  (hostname = container name); a final sample carrying its stopped state when it stops; a
  container that comes back restarts at sequence 1;
- timing: hsflowd ticks once a second (here at ``start`` + whole seconds). A data source's
  poller is armed as ``sfl_poller_set_sFlowCpInterval`` arms it: a countdown drawn from
  1..interval (``sfl_random``) that each tick decrements, polling when it reaches 0 and then
  every interval. The host and the bridge are armed at the agent's start, a container when its
  start event is seen; the container's first sample also goes out at the tick 3 s
  (``HSP_DOCKER_WAIT_STATS``) into the second it started, off that schedule (mod_docker's
  waitQ), so a countdown of 3 or less gives it two samples in its first 3 s;
- packet sampling on the bridge (``docker0``): expanded flow samples with a sampled_header of
  the real Ethernet/IPv4/TCP frame (frame_length with the 4-byte FCS, stripped 4) and
  extended_entities (the container's data source), request (input: the bridge, output: the
  container's veth) or response (the reverse). hsflowd sends extended_entities first; we send
  it last because tshark 4.0 does not skip that record (unknown to it) and would misread the
  sampled_header after it. Collectors must not depend on record order anyway;
- the sampled bridge is polled too (hsflowd polls the interfaces it samples): data source
  0.<bridge ifIndex>, records port_name and if_counters (the bridge receives the responses
  and sends the requests).

Counters are exact functions of what the containers served; u32 wire fields wrap.
"""

from __future__ import annotations

import ipaddress
import math
import random
import struct
from dataclasses import dataclass, field

from sflowlab.codec import (
    CountersSampleExpanded,
    ExtendedEntities,
    HostAdapter,
    HostAdapters,
    HostCpu,
    HostDescr,
    HostDiskIo,
    HostMemory,
    HostNetIo,
    HostParent,
    IfCounters,
    Mib2IcmpGroup,
    Mib2IpGroup,
    Mib2TcpGroup,
    Mib2UdpGroup,
    PortName,
    SampledHeader,
    VirtCpu,
    VirtDiskIo,
    VirtMemory,
    VirtNetIo,
    VirtNode,
)

from .agent import U32_MASK, Agent, FlowSampleTemplate, Poller, Sampler
from .dsindex import DsIndexTable, container_uuid, uuid_text
from .packets import TCP, Packet
from .sinks import Sink
from .workload import EPHEMERAL_FIRST, Served, Service

SUB_AGENT_SAMPLING = 100000
"""HSP_DEFAULT_SUBAGENTID: the agent that sends packet samples (and, spliced in, counters)."""
FIRST_STATS_DELAY_S = 3
"""HSP_DOCKER_WAIT_STATS: a new container's first counter sample goes out at the tick this many
seconds into the second it started (so 2-3 s after its start)."""
STATES = {"created": 0, "running": 1, "paused": 3, "exited": 4, "deleted": 4, "stopped": 5}
"""Docker container state -> virDomainState, as getCounters_DOCKER maps them."""
OS_LINUX, MACHINE_X86_64 = 2, 3
BRIDGE_NAME = "docker0"
_PHYSICAL, _LOGICAL = 2, 3
_ETH_IP = 14 + 20  # offset of the TCP header in an untagged IPv4 frame
_U16 = struct.Struct(">H")


def _mac_of(ip: str) -> str:
    """Docker's MAC for a bridge address: 02:42 followed by the four IPv4 bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


@dataclass
class HostSpec:
    """One host running hsflowd and Docker (values as hsflowd.conf and the host would give)."""

    name: str
    address: str
    mac: str = "52:54:00:00:00:01"
    cpus: int = 4
    cpu_mhz: int = 2400
    memory_bytes: int = 16 << 30
    disk_bytes: int = 100 << 30
    os_release: str = "5.15.0-91-generic"
    uuid: str | None = None
    """System UUID; None: drawn from the rng."""
    sampling: int = 400
    """hsflowd's ``sampling`` (1-in-N on the bridge); 0: no packet sampling."""
    polling_s: float = 10.0
    header_bytes: int = 128
    bridge_ifindex: int = 3
    eth0_ifindex: int = 2
    bridge_subnet: str = "172.17.0.0/16"
    max_datagram: int = 1400

    def __post_init__(self) -> None:
        if ":" in self.address:
            raise ValueError("the host simulator models IPv4 hosts only")
        if self.sampling < 0 or self.polling_s < 0:
            raise ValueError("sampling and polling_s must be >= 0")
        if self.polling_s != int(self.polling_s):
            raise ValueError(f"polling_s is whole seconds (hsflowd's polling), not "
                             f"{self.polling_s}")


@dataclass
class Container:
    """One container as hsflowd tracks it, with the counters its cgroup and veth would show."""

    id: str
    name: str
    ip: str
    mac: str
    veth_ifindex: int
    ds_index: int
    uuid: bytes
    cpus: int
    memory_limit: int
    started_at: float
    poller: Poller
    state: str = "running"
    service: Service | None = None
    counters: Served = field(default_factory=Served)
    """What this incarnation served (reset when it restarts: a new cgroup and veth)."""
    read_bytes: int = 0
    first_sample_due: float | None = None

    @property
    def eth0_ifindex(self) -> int:
        """The container side of its veth pair (created next to the host side)."""
        return self.veth_ifindex - 1

    def memory_used(self) -> int:
        if self.service is None:
            return 16 << 20
        spec = self.service.spec
        return spec.memory_bytes + int(self.service.active_per_replica() *
                                       spec.memory_per_active_bytes)


@dataclass
class _Template:
    sample: FlowSampleTemplate
    port_at: int
    checksum_at: int
    checksum: int
    input: int
    output: int


class HostAgent:
    """hsflowd on one host: a host poller, container pollers, a sampler on the bridge."""

    def __init__(self, spec: HostSpec, sink: Sink, rng: random.Random, start: float = 0.0):
        self.spec = spec
        self.rng = rng
        self.start = start
        sub_agent = SUB_AGENT_SAMPLING if spec.sampling else SUB_AGENT_SAMPLING + 1
        self.agent = Agent(spec.address, sink, sub_agent, start, spec.max_datagram)
        self.uuid = spec.uuid or uuid_text(rng.getrandbits(128).to_bytes(16, "big"))
        self.poller = self._poller(_PHYSICAL, 1, start)
        self.sampler = (Sampler(0, spec.bridge_ifindex, spec.sampling, rng)
                        if spec.sampling else None)
        self.bridge_poller = (self._poller(0, spec.bridge_ifindex, start)
                              if spec.sampling else None)
        """hsflowd polls the interfaces it samples (``evt_request_poller``)."""
        net = ipaddress.IPv4Network(spec.bridge_subnet)
        self.bridge_ip = str(net.network_address + 1)
        self.bridge_mac = _mac_of(self.bridge_ip)
        self._free_ips = (str(net.network_address + i) for i in range(2, net.num_addresses - 1))
        self._next_ifindex = max(spec.bridge_ifindex, spec.eth0_ifindex) + 2
        self.indexes = DsIndexTable()
        self.containers: dict[str, Container] = {}
        """Running containers by id (removed after their final sample)."""
        self.known: dict[str, Container] = {}
        """Every container this host has run, by id (for restarts and ground truth)."""
        self._templates: dict[tuple[str, int, str], _Template] = {}
        self._cpu_ns_removed = 0
        self._traffic = Served()
        self._read_bytes = 0
        self._last_cpu_ns = 0
        self._last_poll = start

    def _second(self, now: float) -> float:
        """The tick that opened the agent's current second (``now.tv_sec`` on hsflowd's bus)."""
        return self.start + math.floor(now - self.start + 1e-9)

    def _poller(self, ds_type: int, ds_index: int, now: float) -> Poller:
        """A poller armed at ``now`` as ``sfl_poller_set_sFlowCpInterval`` arms it: it polls at
        the tick that brings a countdown drawn from 1..interval to 0, then every interval."""
        interval = int(self.spec.polling_s)
        countdown = self.rng.randint(1, interval) if interval else 0
        return Poller(ds_type, ds_index, interval, None, self._second(now) + countdown)

    # ---------------------------------------------------------------- lifecycle

    def start_container(self, name: str, now: float, service: Service | None = None,
                        container_id: str | None = None, cpus: int = 1,
                        memory_limit: int = 0) -> Container:
        """Start a new container, or restart a stopped one when ``container_id`` is known."""
        old = self.known.get(container_id) if container_id else None
        if old is not None and old.id in self.containers:
            raise ValueError(f"container {old.name} is already running on {self.spec.name}")
        cid = container_id or f"{self.rng.getrandbits(256):064x}"
        raw = container_uuid(cid)
        ip = old.ip if old else next(self._free_ips)
        veth = self._next_ifindex + 1
        self._next_ifindex += 2
        image = service.spec.image_bytes_read if service else 8 << 20
        ds_index = self.indexes.assign(raw)
        c = Container(
            id=cid, name=name, ip=ip, mac=_mac_of(ip), veth_ifindex=veth, ds_index=ds_index,
            uuid=raw, cpus=cpus, memory_limit=memory_limit or self.spec.memory_bytes,
            started_at=now, poller=self._poller(_LOGICAL, ds_index, now),
            service=service, read_bytes=image,
            first_sample_due=self._second(now) + FIRST_STATS_DELAY_S)
        self._read_bytes += image
        self.containers[cid] = c
        self.known[cid] = c
        self._drop_templates(cid)
        return c

    def stop_container(self, container_id: str, now: float, state: str = "exited") -> None:
        """Stop a container: one final counter sample with its new state, then forget it."""
        if state not in STATES or state == "running":
            raise ValueError(f"unknown stopped state {state!r}; one of {sorted(STATES)}")
        c = self.containers.pop(container_id)
        c.state = state
        self._emit_counters(c, now, reschedule=False)
        self.indexes.release(c.ds_index)
        self._cpu_ns_removed += c.counters.cpu_ns
        self._drop_templates(container_id)

    def _drop_templates(self, cid: str) -> None:
        for key in [k for k in self._templates if k[0] == cid]:
            del self._templates[key]

    # ---------------------------------------------------------------- traffic

    def serve(self, container_id: str, requests: int, first_connection: int,
              now: float) -> None:
        """The container served ``requests`` connections: count them, sample their packets."""
        c = self.containers[container_id]
        service = c.service
        if service is None:
            raise ValueError(f"container {c.name} runs no service")
        ex = service.exchange
        c.counters.add(requests, ex, service.spec)
        self._traffic.add(requests, ex, service.spec)
        if self.sampler is None:
            return
        per = len(ex.segments)
        taken = self.sampler.observe(requests * per)
        for _ in range(taken):
            request, seg = divmod(self.rng.randrange(requests * per), per)
            client, port = service.client_of(first_connection + request)
            self.agent.emit(self._flow_sample(c, service, seg, client, port), now)

    def _flow_sample(self, c: Container, service: Service, seg: int, client: str,
                     port: int) -> bytes:
        key = (c.id, seg, client)
        t = self._templates.get(key)
        if t is None:
            t = self._templates[key] = self._template(c, service, seg, client)
        assert self.sampler is not None
        data = t.sample.render(self.sampler, t.input, t.output)
        if port != EPHEMERAL_FIRST:
            _U16.pack_into(data, t.port_at, port)
            _U16.pack_into(data, t.checksum_at,
                           _checksum_update(t.checksum, EPHEMERAL_FIRST, port))
        return bytes(data)

    def _template(self, c: Container, service: Service, seg: int, client: str) -> _Template:
        s = service.exchange.segments[seg]
        sport, dport = EPHEMERAL_FIRST, service.spec.port
        if s.inbound:
            pkt = Packet(self.bridge_mac, c.mac, client, c.ip, TCP, sport, dport, s.flags,
                         s.length, seq=s.seq)
            entities = ExtendedEntities(0, 0, _LOGICAL, c.ds_index)
            ports_at, io = 0, (self.spec.bridge_ifindex, c.veth_ifindex)
        else:
            pkt = Packet(c.mac, self.bridge_mac, c.ip, client, TCP, dport, sport, s.flags,
                         s.length, seq=s.seq)
            entities = ExtendedEntities(_LOGICAL, c.ds_index, 0, 0)
            ports_at, io = 2, (c.veth_ifindex, self.spec.bridge_ifindex)
        header = pkt.header(self.spec.header_bytes)
        sample = FlowSampleTemplate((SampledHeader(1, s.length + 4, 4, header), entities))
        at = sample.offset_of(header)
        checksum_at = at + _ETH_IP + 16
        return _Template(sample, at + _ETH_IP + ports_at, checksum_at,
                         _U16.unpack_from(sample.data, checksum_at)[0], *io)

    # ---------------------------------------------------------------- polling

    def tick(self, now: float) -> None:
        """Send the counter samples due by ``now`` and flush the agent."""
        for c in self.containers.values():
            if c.first_sample_due is not None and now >= c.first_sample_due:
                c.first_sample_due = None
                self._emit_counters(c, now, reschedule=False)
            if c.poller.due(now):
                self._emit_counters(c, now)
        if self.poller.due(now):
            self._emit_host(now)
        if self.bridge_poller is not None and self.bridge_poller.due(now):
            self._emit_bridge(self.bridge_poller, now)
        self.agent.flush(now)

    def _emit_counters(self, c: Container, now: float, reschedule: bool = True) -> None:
        k = c.counters
        mem = c.memory_used()
        log = k.log_bytes
        records = (
            HostAdapters((HostAdapter(c.eth0_ifindex, (c.mac,)),)),
            VirtDiskIo(0, 0, 0, (c.read_bytes // 65536) & U32_MASK, c.read_bytes,
                       (log // 4096) & U32_MASK, log, 0),
            VirtMemory(mem, c.memory_limit),
            VirtCpu(STATES[c.state], (k.cpu_ns // 1_000_000) & U32_MASK, c.cpus),
            VirtNetIo(k.bytes_in, k.pkts_in & U32_MASK, 0, 0, k.bytes_out,
                      k.pkts_out & U32_MASK, 0, 0),
            HostParent(_PHYSICAL, 1),
            HostDescr(c.name[:64], uuid_text(c.uuid), MACHINE_X86_64, OS_LINUX,
                      self.spec.os_release),
        )
        seq = c.poller.next_sequence(now, reschedule)
        self.agent.emit(CountersSampleExpanded(seq, _LOGICAL, c.ds_index, records), now)

    def _emit_bridge(self, poller: Poller, now: float) -> None:
        """The bridge's interface counters: it receives the responses, sends the requests."""
        t, m = self._traffic, U32_MASK
        records = (
            PortName(BRIDGE_NAME),
            IfCounters(self.spec.bridge_ifindex, 6, 0, 1, 3, t.bytes_out, t.pkts_out & m, 0, 0,
                       0, 0, 0, t.bytes_in, t.pkts_in & m, 0, 0, 0, 0, 0),
        )
        seq = poller.next_sequence(now)
        self.agent.emit(CountersSampleExpanded(seq, 0, self.spec.bridge_ifindex, records), now)

    def cpu_ns(self) -> int:
        """CPU time used by all containers this host has run."""
        return self._cpu_ns_removed + sum(c.counters.cpu_ns for c in self.containers.values())

    def _emit_host(self, now: float) -> None:
        spec, t = self.spec, self._traffic
        elapsed_ms = int((now - self.start) * 1000)
        cpu_ms = self.cpu_ns() // 1_000_000
        base_ms = elapsed_ms * spec.cpus // 100  # 1% housekeeping
        user_ms = cpu_ms * 4 // 5 + base_ms // 2
        system_ms = cpu_ms - cpu_ms * 4 // 5 + base_ms - base_ms // 2
        idle_ms = max(elapsed_ms * spec.cpus - user_ms - system_ms, 0)
        interval_s = max(now - self._last_poll, 1e-9)
        busy = (self.cpu_ns() - self._last_cpu_ns) / 1e9 / interval_s
        self._last_cpu_ns, self._last_poll = self.cpu_ns(), now
        running = list(self.containers.values())
        used = (1 << 30) + sum(c.memory_used() for c in running)
        packets = t.pkts_in + t.pkts_out
        interrupts = packets + elapsed_ms * spec.cpus // 4
        writes = t.log_bytes + (elapsed_ms // 1000) * 8192
        disk_used = (6 << 30) + self._read_bytes
        active = sum(c.service.active_per_replica() for c in running if c.service)
        m = U32_MASK
        records = (
            VirtNode(spec.cpu_mhz, spec.cpus, spec.memory_bytes, spec.memory_bytes - used,
                     len(self.containers)),
            HostAdapters((HostAdapter(spec.eth0_ifindex, (spec.mac,)),
                          HostAdapter(spec.bridge_ifindex, (self.bridge_mac,)))),
            Mib2UdpGroup(0, 0, 0, self.agent.datagrams_sent & m, 0, 0, 0),
            Mib2TcpGroup(1, 200, 120000, -1, 0, t.requests & m, 0, 0, int(active),
                         t.pkts_in & m, t.pkts_out & m, 0, 0, 0, 0),
            Mib2IcmpGroup(),
            Mib2IpGroup(1, 64, t.pkts_in & m, 0, 0, packets & m, 0, 0, 0,
                        self.agent.datagrams_sent & m, 0, 0, 0, 0, 0, 0, 0, 0, 0),
            HostDiskIo(spec.disk_bytes, spec.disk_bytes - disk_used,
                       disk_used * 10000 // spec.disk_bytes, (self._read_bytes // 65536) & m,
                       self._read_bytes, 0, (writes // 4096) & m, writes, 0),
            HostMemory(spec.memory_bytes, spec.memory_bytes - used, 0, 64 << 20, 512 << 20,
                       0, 0, 0, 0, 0, 0),
            HostCpu(busy, busy, busy, min(int(busy + 0.5) + 1, 65535), 180 + 6 * len(running),
                    spec.cpus, spec.cpu_mhz, int(now - self.start), user_ms & m, 0,
                    system_ms & m, idle_ms & m, 0, 0, 0, interrupts & m, (2 * interrupts) & m,
                    0, 0, 0),
            HostNetIo(t.bytes_in, t.pkts_in & m, 0, 0, t.bytes_out, t.pkts_out & m, 0, 0),
            HostDescr(spec.name[:64], self.uuid, MACHINE_X86_64, OS_LINUX, spec.os_release),
        )
        seq = self.poller.next_sequence(now)
        self.agent.emit(CountersSampleExpanded(seq, _PHYSICAL, 1, records), now)


def _checksum_update(checksum: int, old: int, new: int) -> int:
    """RFC 1624 incremental update of a ones'-complement checksum when a 16-bit word changes."""
    total = (~checksum & 0xFFFF) + (~old & 0xFFFF) + new
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
