"""The physical host's counter records from /proc and /sys, as hsflowd sends them (data source
2.1): host_descr, host_adapters, host_cpu, host_memory, host_disk_io, host_net_io, the mib2
ip/icmp/tcp/udp groups and virt_node, in the simulated host's (hsflowd's wire) order.

Each reader takes its file's text, so the parsing is tested on fixed text; ``HostReader``
reads the files of this machine (``root`` is "/" but can point at a copy).
"""

from __future__ import annotations

import os
import platform
import socket
import uuid as _uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from sflowlab.codec import (
    HostAdapter,
    HostAdapters,
    HostCpu,
    HostDescr,
    HostDiskIo,
    HostMemory,
    HostNetIo,
    Mib2IcmpGroup,
    Mib2IpGroup,
    Mib2TcpGroup,
    Mib2UdpGroup,
    VirtNode,
)

from ..agent import U32_MASK
from .links import Link

OS_LINUX = 2
MACHINE_TYPES = {"x86_64": 3, "amd64": 3, "i386": 2, "i686": 2, "ia64": 4, "sparc": 5,
                 "alpha": 6, "ppc": 7, "ppc64": 7, "ppc64le": 7, "m68k": 8, "mips": 9,
                 "armv7l": 10, "aarch64": 10, "arm64": 10, "parisc": 11, "s390x": 12}
"""uname machine -> host_descr machine_type (the sFlow host structures' enumeration)."""
_LOCAL_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "jfs", "reiserfs", "vfat"}
_NOT_DISKS = ("loop", "ram", "dm-", "sr", "zram", "md")


def snmp_table(text: str) -> dict[str, dict[str, int]]:
    """/proc/net/snmp as {"Ip": {"forwarding": 1, ...}, ...} (names lower-cased)."""
    out: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        group, _, keys = names.partition(":")
        out[group] = {k.lower(): int(v) for k, v in zip(keys.split(), values.split(":")[1].split(),
                                                        strict=False)}
    return out


def _mib2(record: type[Any], row: dict[str, int]) -> Any:
    """A mib2 record whose field ``<group>_<name>`` is /proc/net/snmp's <Name> (case aside)."""
    values = []
    for name in record._fields:
        key = name.split("_", 1)[1].replace("_", "").replace("paramprobs", "parmprobs")
        value = row.get(key, 0)
        values.append(value if name == "tcp_max_conn" else value & U32_MASK)
    return record(*values)


def mib2_records(snmp: dict[str, dict[str, int]]) -> tuple[Any, ...]:
    """udp, tcp, icmp, ip groups (the order hsflowd's prepending leaves them in)."""
    return (_mib2(Mib2UdpGroup, snmp.get("Udp", {})), _mib2(Mib2TcpGroup, snmp.get("Tcp", {})),
            _mib2(Mib2IcmpGroup, snmp.get("Icmp", {})), _mib2(Mib2IpGroup, snmp.get("Ip", {})))


def key_values(text: str, scale: int = 1) -> dict[str, int]:
    """``Name: 123 kB`` or ``name 123`` lines (/proc/meminfo, /proc/vmstat) -> {name: value}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1]) * (scale if parts[2:] == ["kB"] else 1)
    return out


def memory_record(meminfo: dict[str, int], vmstat: dict[str, int]) -> HostMemory:
    m = U32_MASK
    return HostMemory(meminfo.get("MemTotal", 0), meminfo.get("MemFree", 0),
                      meminfo.get("Shmem", 0), meminfo.get("Buffers", 0),
                      meminfo.get("Cached", 0), meminfo.get("SwapTotal", 0),
                      meminfo.get("SwapFree", 0), vmstat.get("pgpgin", 0) & m,
                      vmstat.get("pgpgout", 0) & m, vmstat.get("pswpin", 0) & m,
                      vmstat.get("pswpout", 0) & m)


class CpuTimes(NamedTuple):
    """/proc/stat's aggregate line in ms, with the interrupt and context-switch totals."""

    user: int
    nice: int
    system: int
    idle: int
    iowait: int
    irq: int
    softirq: int
    steal: int
    guest: int
    guest_nice: int
    interrupts: int
    contexts: int


def cpu_times(stat: str, ticks_per_s: int = 100) -> CpuTimes:
    fields = [0] * 10
    interrupts = contexts = 0
    for line in stat.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            jiffies = [int(v) for v in parts[1:11]]
            fields[:len(jiffies)] = [j * 1000 // ticks_per_s for j in jiffies]
        elif parts and parts[0] == "intr":
            interrupts = int(parts[1])
        elif parts and parts[0] == "ctxt":
            contexts = int(parts[1])
    return CpuTimes(*fields, interrupts, contexts)


def cpu_record(loadavg: str, times: CpuTimes, cpus: int, mhz: int, uptime_s: int) -> HostCpu:
    load = loadavg.split()
    running, _, total = load[3].partition("/")
    m = U32_MASK
    return HostCpu(float(load[0]), float(load[1]), float(load[2]), int(running), int(total),
                   cpus, mhz, uptime_s, times.user & m, times.nice & m, times.system & m,
                   times.idle & m, times.iowait & m, times.irq & m, times.softirq & m,
                   times.interrupts & m, times.contexts & m, times.steal & m, times.guest & m,
                   times.guest_nice & m)


def disk_counters(diskstats: str, disks: set[str]) -> tuple[int, int, int, int, int, int]:
    """``disks``' (reads, bytes_read, read_ms, writes, bytes_written, write_ms) summed (whole
    disks only: a partition's I/O is its disk's already)."""
    totals = [0] * 6
    for line in diskstats.splitlines():
        p = line.split()
        if len(p) < 14 or p[2] not in disks or p[2].startswith(_NOT_DISKS):
            continue
        reads, sectors_read, read_ms = int(p[3]), int(p[5]), int(p[6])
        writes, sectors_written, write_ms = int(p[7]), int(p[9]), int(p[10])
        for i, v in enumerate((reads, sectors_read * 512, read_ms, writes,
                               sectors_written * 512, write_ms)):
            totals[i] += v
    return totals[0], totals[1], totals[2], totals[3], totals[4], totals[5]


def net_io_record(links: Iterable[Link]) -> HostNetIo:
    """The physical interfaces' traffic summed (no loopback, bridges, veths, tunnels)."""
    t = [0] * 8
    keys = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets",
            "tx_errors", "tx_dropped")
    for link in links:
        if link.loopback or link.kind:
            continue
        for i, key in enumerate(keys):
            t[i] += link.stats.get(key, 0)
    m = U32_MASK
    return HostNetIo(t[0], t[1] & m, t[2] & m, t[3] & m, t[4], t[5] & m, t[6] & m, t[7] & m)


def adapters_record(links: Iterable[Link]) -> HostAdapters:
    """Every interface but loopback and veths (hsflowd leaves out veths with a peer)."""
    return HostAdapters(tuple(HostAdapter(link.index, (link.mac,)) for link in links
                              if not link.loopback and link.kind != "veth"))


class HostReader:
    """Reads this machine's /proc and /sys into the host's counter records."""

    def __init__(self, root: str = "/") -> None:
        self.root = Path(root)
        self.hostname = socket.gethostname()
        self.os_release = platform.release()
        self.machine_type = MACHINE_TYPES.get(platform.machine(), 1)
        self.cpus = os.cpu_count() or 1
        self.ticks_per_s = os.sysconf("SC_CLK_TCK")
        self.uuid = self._system_uuid()

    def _read(self, path: str) -> str:
        try:
            return (self.root / path).read_text()
        except OSError:
            return ""

    def _system_uuid(self) -> str:
        for path in ("sys/class/dmi/id/product_uuid", "etc/machine-id"):
            text = self._read(path).strip().replace("-", "")
            if len(text) == 32:
                return str(_uuid.UUID(hex=text))
        return "00000000-0000-0000-0000-000000000000"

    def mhz(self) -> int:
        for line in self._read("proc/cpuinfo").splitlines():
            if line.startswith("cpu MHz"):
                return int(float(line.split(":")[1]))
        return 0

    def disk_record(self) -> HostDiskIo:
        total = free = 0
        max_used = -1
        seen: set[str] = set()
        for line in self._read("proc/mounts").splitlines():
            device, mount, fstype = line.split()[:3]
            if fstype not in _LOCAL_FS or device in seen:
                continue
            seen.add(device)
            try:
                st = os.statvfs(self.root / mount.lstrip("/"))
            except OSError:
                continue
            size, avail = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
            total, free = total + size, free + avail
            if size:
                max_used = max(max_used, (size - avail) * 10000 // size)
        try:
            disks = set(os.listdir(self.root / "sys/block"))
        except OSError:
            disks = set()
        reads, bytes_read, read_ms, writes, bytes_written, write_ms = disk_counters(
            self._read("proc/diskstats"), disks)
        m = U32_MASK
        return HostDiskIo(total, free, max_used, reads & m, bytes_read, read_ms & m,
                          writes & m, bytes_written, write_ms & m)

    def records(self, links: list[Link], containers: int) -> tuple[Any, ...]:
        """The host sample's records, in the simulated host's order."""
        meminfo = key_values(self._read("proc/meminfo"), 1024)
        memory = memory_record(meminfo, key_values(self._read("proc/vmstat")))
        mhz = self.mhz()
        uptime = self._read("proc/uptime").split()
        times = cpu_times(self._read("proc/stat"), self.ticks_per_s)
        return (
            VirtNode(mhz, self.cpus, memory.mem_total, memory.mem_free, containers),
            adapters_record(links),
            *mib2_records(snmp_table(self._read("proc/net/snmp"))),
            self.disk_record(),
            memory,
            cpu_record(self._read("proc/loadavg") or "0 0 0 0/0 0", times, self.cpus, mhz,
                       int(float(uptime[0])) if uptime else 0),
            net_io_record(links),
            HostDescr(self.hostname[:64], self.uuid, self.machine_type, OS_LINUX,
                      self.os_release[:32]),
        )
