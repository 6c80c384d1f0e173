"""Counter metrics: one table per (agent, data source) with sFlow-RT's metric names.

Each counter record type has one declaration (:data:`RECORDS`): gauges copied as they are,
counters turned into per-second rates, and a function for what is derived. Field widths come
from the codec's declarations, so a 32-bit counter wraps modulo 2**32; a 64-bit counter that
goes backwards is a discontinuity (no rates from that pair of samples).

Normalisation:

- Rates are per second over the agent's own clock: the delta of the datagram header's
  ``uptime_ms`` between the two samples (the receive time delta if the uptime stands still).
- ``ifinutilization`` = ifinoctets * 800 / ifspeed (percent of the link), ``ifoututilization``
  likewise; ``ifinpkts`` / ``ifoutpkts`` sum unicast, multicast and broadcast rates.
- ``cpu_user``, ``cpu_system``, ``cpu_idle``, ``cpu_wio``, ... are percentages of the summed
  CPU time delta (user, nice, system, idle, wio, intr, sintr, steal) over all cores;
  ``cpu_utilization`` = 100 - cpu_idle - cpu_wio.
- ``mem_utilization`` = 100 * (total - free - buffers - cached) / total (``mem_used`` is that
  numerator); ``disk_utilization`` = 100 * (total - free) / total; ``part_max_used`` percent.
- ``vir_cpu_utilization`` = 100 * cpu_time_ms delta / elapsed ms, per container (not divided
  by its vCPU count: a container keeping two cores busy reports 200).
- ``vir_mem_utilization`` = 100 * memory / max_memory.
- ``docker_name`` is a container's ``vir_host_name``; ``swarm_name`` is the service part of a
  swarm task name ``service.slot.taskid``.

The first sample of a data source (or the first after a discontinuity: counter sequence reset,
agent uptime going backwards, a container restarting at sequence 1) gives gauges and strings
only. A data source expires when silent for three of its polling intervals (60 s until its
first three samples have shown the interval; both configurable); a container whose
``virt_cpu`` state says it is no longer running (nostate, shutdown, shutoff, crashed) is
dropped at once, so metricN follows the live population.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from sflowlab import accel
from sflowlab.codec import (
    AppWorkers,
    EthernetCounters,
    HostCpu,
    HostDescr,
    HostDiskIo,
    HostMemory,
    HostNetIo,
    HttpCounters,
    IfCounters,
    PortName,
    VirtCpu,
    VirtDiskIo,
    VirtMemory,
    VirtNetIo,
    VirtNode,
)
from sflowlab.codec.counter_records import MACHINE_TYPES, OS_NAMES, VIR_DOMAIN_STATES

Value = float | int | str
Derive = Callable[[Any, Any, float, dict[str, Value], int], None]

MIN_GAPS = 2
"""Gaps between samples seen before a data source's own polling interval sets its expiry."""

STOPPED_STATES = frozenset({0, 4, 5, 6})
"""virt_cpu states that end a container: nostate, shutdown, shutoff, crashed."""

IF_TYPES = {1: "other", 6: "ethernetCsmacd", 7: "iso88023Csmacd", 24: "softwareLoopback",
            53: "propVirtual", 71: "ieee80211", 131: "tunnel", 135: "l2vlan", 161: "ieee8023adLag"}
IF_DIRECTIONS = ("unknown", "full-duplex", "half-duplex", "in", "out")
_SWARM_TASK = re.compile(r"(.+)\.(\d+)\.([0-9a-z]{25})")


@dataclass(frozen=True)
class RecordSpec:
    """How one counter record becomes metrics: field -> metric pairs and a derive function."""

    gauges: tuple[tuple[str, str], ...] = ()
    rates: tuple[tuple[str, str], ...] = ()
    derive: Derive | None = None
    static: bool = False
    """No rates and a derive that ignores the previous sample: the same record object again
    (the codec reuses descriptive records that repeat byte for byte) changes nothing."""
    _gauges: tuple[tuple[int, str], ...] = field(default=(), init=False)
    _rates: tuple[tuple[int, str, int], ...] = field(default=(), init=False)
    _update: Derive | None = field(default=None, init=False)

    def compile(self, cls: type) -> RecordSpec:
        fields = list(cls._fields)  # type: ignore[attr-defined]
        hints = get_type_hints(cls, include_extras=True)

        def width(name: str) -> int:
            sizes = [getattr(m, "size", 0) for m in hints[name].__metadata__]
            return 1 << (8 * max(sizes))

        gauges = tuple((fields.index(f), m) for f, m in self.gauges)
        rates = tuple((fields.index(f), m, width(f)) for f, m in self.rates)
        object.__setattr__(self, "_gauges", gauges)
        object.__setattr__(self, "_rates", rates)
        object.__setattr__(self, "_update", self._generate(cls.__name__, gauges, rates))
        return self

    def c_spec(self) -> tuple[Any, ...]:
        """This spec as ``_metrics.Applier`` takes it: (gauges, rates with modulus 0 for a
        64-bit counter, derive, static)."""
        rates = tuple((i, m, mod if mod <= 1 << 32 else 0) for i, m, mod in self._rates)
        return self._gauges, rates, self.derive, self.static

    def _generate(self, record: str, gauges: tuple[tuple[int, str], ...],
                  rates: tuple[tuple[int, str, int], ...]) -> Derive:
        """``update`` as straight-line code: gauges copied; with a previous sample and time
        elapsed, every counter's delta (a 32-bit one wraps, a 64-bit one going back is a
        discontinuity: no rates at all) and then the rates; then ``derive``."""
        lines = ["def update(rec, prev, dt_s, out, ds_type):"]
        lines += [f"    out[{name!r}] = rec[{i}]" for i, name in gauges]
        if rates:
            lines += ["    if prev is not None and dt_s > 0:", "        whole = True"]
            for n, (i, _, mod) in enumerate(rates):
                lines.append(f"        d{n} = rec[{i}] - prev[{i}]")
                lines.append(f"        if d{n} < 0:")
                lines.append(f"            d{n} += {mod}" if mod <= 1 << 32 else
                             "            whole = False")
            lines.append("        if whole:")
            lines += [f"            out[{name!r}] = d{n} / dt_s"
                      for n, (_, name, _) in enumerate(rates)]
            lines += ["        else:", "            prev = None"]
        if self.derive is not None:
            lines.append("    derive(rec, prev if dt_s > 0 else None, dt_s, out, ds_type)")
        else:
            lines.append("    return None")
        env: dict[str, Any] = {"derive": self.derive}
        code = compile("\n".join(lines), f"<metrics {record}>", "exec")  # named for profiles
        exec(code, env)  # noqa: S102 - source built from the declaration only
        update: Derive = env["update"]
        return update


def _if_derive(rec: IfCounters, prev: Any, dt_s: float, out: dict[str, Value], _: int) -> None:
    out["iftype"] = IF_TYPES.get(rec.if_type, str(rec.if_type))
    out["ifdirection"] = IF_DIRECTIONS[rec.if_direction] if rec.if_direction < 5 else "unknown"
    out["ifadminstatus"] = "up" if rec.if_status & 1 else "down"
    out["ifoperstatus"] = "up" if rec.if_status & 2 else "down"
    if prev is None or "ifinoctets" not in out:
        return
    for d in ("in", "out"):
        out[f"if{d}pkts"] = sum(float(out[f"if{d}{k}pkts"]) for k in ("ucast", "multicast", "broadcast"))
        if rec.if_speed:
            out[f"if{d}utilization"] = float(out[f"if{d}octets"]) * 800 / rec.if_speed


def _name(names: tuple[str, ...], i: int) -> str:
    return names[i] if 0 <= i < len(names) else "unknown"


def _descr_derive(rec: HostDescr, _p: Any, _d: float, out: dict[str, Value], ds_type: int) -> None:
    pre = "vir_" if ds_type == 3 else ""
    out[pre + "host_name"] = rec.hostname
    out[pre + "uuid"] = rec.uuid
    out[pre + "machine_type"] = _name(MACHINE_TYPES, rec.machine_type)
    out[pre + "os_name"] = _name(OS_NAMES, rec.os_name)
    out[pre + "os_release"] = rec.os_release
    if ds_type == 3 and rec.hostname:
        out["docker_name"] = rec.hostname
        task = _SWARM_TASK.fullmatch(rec.hostname)
        if task:
            out["swarm_name"] = task.group(1)


_CPU_TIMES = ("cpu_user", "cpu_nice", "cpu_system", "cpu_idle", "cpu_wio", "cpu_intr",
              "cpu_sintr", "cpu_steal")


def _cpu_derive(rec: HostCpu, prev: Any, _d: float, out: dict[str, Value], _t: int) -> None:
    if prev is None:
        return
    deltas = {}
    for name in (*_CPU_TIMES, "cpu_guest", "cpu_guest_nice"):
        now_v, then_v = getattr(rec, name) or 0, getattr(prev, name) or 0
        deltas[name] = (now_v - then_v) % (1 << 32)
    total = sum(deltas[n] for n in _CPU_TIMES)
    if total <= 0:
        return
    for name, delta in deltas.items():
        out[name] = 100.0 * delta / total
    out["cpu_utilization"] = 100.0 * (total - deltas["cpu_idle"] - deltas["cpu_wio"]) / total


def _mem_derive(rec: HostMemory, _p: Any, _d: float, out: dict[str, Value], _t: int) -> None:
    used = rec.mem_total - rec.mem_free - rec.mem_buffers - rec.mem_cached
    out["mem_used"] = used
    if rec.mem_total:
        out["mem_utilization"] = 100.0 * used / rec.mem_total
    if rec.swap_total:
        out["swap_utilization"] = 100.0 * (rec.swap_total - rec.swap_free) / rec.swap_total


def _disk_derive(rec: HostDiskIo, _p: Any, _d: float, out: dict[str, Value], _t: int) -> None:
    if rec.disk_total:
        out["disk_utilization"] = 100.0 * (rec.disk_total - rec.disk_free) / rec.disk_total
    if rec.part_max_used >= 0:
        out["part_max_used"] = rec.part_max_used / 100.0


def _vcpu_derive(rec: VirtCpu, prev: Any, dt_s: float, out: dict[str, Value], _t: int) -> None:
    out["vir_cpu_state"] = _name(VIR_DOMAIN_STATES, rec.state)
    if prev is not None:
        delta_ms = (rec.cpu_time_ms - prev.cpu_time_ms) % (1 << 32)
        out["vir_cpu_utilization"] = delta_ms / (dt_s * 1000.0) * 100.0


def _vmem_derive(rec: VirtMemory, _p: Any, _d: float, out: dict[str, Value], _t: int) -> None:
    if rec.max_memory:
        out["vir_mem_utilization"] = 100.0 * rec.memory / rec.max_memory


def _http_derive(_r: Any, prev: Any, _d: float, out: dict[str, Value], _t: int) -> None:
    if prev is not None and "http_method_get" in out:
        out["http_requests"] = sum(float(out[m]) for _, m in _HTTP_METHODS)


def _workers_derive(rec: AppWorkers, _p: Any, _d: float, out: dict[str, Value], _t: int) -> None:
    if rec.workers_max:
        out["workers_utilization"] = 100.0 * rec.workers_active / rec.workers_max


_HTTP_METHODS = tuple((f"method_{m}_count", f"http_method_{m}") for m in (
    "option", "get", "head", "post", "put", "delete", "trace", "connect", "other"))
_HTTP_STATUS = tuple((f"status_{s}_count", f"http_status_{s}") for s in (
    "1xx", "2xx", "3xx", "4xx", "5xx", "other"))
_IF_RATES = tuple(f"if_{d}_{c}" for d in ("in", "out") for c in (
    "octets", "ucast_pkts", "multicast_pkts", "broadcast_pkts", "discards", "errors",
    "unknown_protos") if not (d == "out" and c == "unknown_protos"))
_ETH = (("alignment_errors", "alignmenterrors"), ("fcs_errors", "fcserrors"),
        ("single_collision_frames", "singlecollisions"),
        ("multiple_collision_frames", "multiplecollisions"), ("sqe_test_errors", "sqetesterrors"),
        ("deferred_transmissions", "deferredtx"), ("late_collisions", "latecollision"),
        ("excessive_collisions", "excessivecollisions"),
        ("internal_mac_transmit_errors", "internalmactransmiterrors"),
        ("carrier_sense_errors", "carriersenseerrors"), ("frame_too_longs", "frametoolongs"),
        ("internal_mac_receive_errors", "internalmacreceiveerrors"),
        ("symbol_errors", "symbolerrors"))
_NET = ("bytes_in", "pkts_in", "errs_in", "drops_in", "bytes_out", "pkts_out", "errs_out",
        "drops_out")

RECORDS: dict[type, RecordSpec] = {
    cls: spec.compile(cls) for cls, spec in {
        IfCounters: RecordSpec(
            gauges=(("if_index", "ifindex"), ("if_speed", "ifspeed")),
            rates=tuple((f, f.replace("_", "")) for f in _IF_RATES), derive=_if_derive),
        EthernetCounters: RecordSpec(
            rates=tuple((f"dot3_stats_{f}", f"eth_{m}") for f, m in _ETH)),
        PortName: RecordSpec(gauges=(("name", "ifname"),), static=True),
        HostDescr: RecordSpec(derive=_descr_derive, static=True),
        HostCpu: RecordSpec(
            gauges=tuple((f, f) for f in ("load_one", "load_five", "load_fifteen", "proc_run",
                                          "proc_total", "cpu_num", "cpu_speed", "uptime")),
            rates=(("interrupts", "interrupts"), ("contexts", "contexts")), derive=_cpu_derive),
        HostMemory: RecordSpec(
            gauges=tuple((f, f) for f in ("mem_total", "mem_free", "mem_shared", "mem_buffers",
                                          "mem_cached", "swap_total", "swap_free")),
            rates=tuple((f, f) for f in ("page_in", "page_out", "swap_in", "swap_out")),
            derive=_mem_derive),
        HostDiskIo: RecordSpec(
            gauges=(("disk_total", "disk_total"), ("disk_free", "disk_free")),
            rates=tuple((f, f) for f in ("reads", "bytes_read", "read_time", "writes",
                                         "bytes_written", "write_time")),
            derive=_disk_derive),
        HostNetIo: RecordSpec(rates=tuple((f, f) for f in _NET)),
        VirtNode: RecordSpec(gauges=tuple((f, "vnode_" + f.replace("_", "")) for f in (
            "mhz", "cpus", "memory", "memory_free", "num_domains"))),
        VirtCpu: RecordSpec(gauges=(("nr_virt_cpu", "vir_cpu_num"),), derive=_vcpu_derive),
        VirtMemory: RecordSpec(gauges=(("memory", "vir_mem_used"), ("max_memory", "vir_mem_total")),
                               derive=_vmem_derive),
        VirtDiskIo: RecordSpec(
            gauges=(("capacity", "vir_disk_capacity"), ("allocation", "vir_disk_allocation"),
                    ("available", "vir_disk_available")),
            rates=(("rd_req", "vir_reads"), ("rd_bytes", "vir_bytes_read"),
                   ("wr_req", "vir_writes"), ("wr_bytes", "vir_bytes_written"),
                   ("errs", "vir_disk_errs"))),
        VirtNetIo: RecordSpec(rates=tuple((f, "vir_" + f) for f in _NET)),
        HttpCounters: RecordSpec(rates=_HTTP_METHODS + _HTTP_STATUS, derive=_http_derive),
        AppWorkers: RecordSpec(
            gauges=tuple((f, f) for f in ("workers_active", "workers_idle", "workers_max")),
            rates=(("req_delayed", "req_delayed"), ("req_dropped", "req_dropped")),
            derive=_workers_derive),
    }.items()
}


def _py_apply(prev: dict[type, tuple[Any, int, float]], out: dict[str, Value],
              records: tuple[Any, ...], uptime_ms: int, received_at: float, ds_type: int) -> bool:
    """One counter sample's records applied to a data source: its metric values ``out``, with
    rates against ``prev`` (the last sample of each record type, updated here). True when a
    virt_cpu record says the container stopped."""
    stopped = False
    for rec in records:
        cls = type(rec)
        spec = RECORDS.get(cls)
        if spec is None:
            continue
        last = prev.get(cls)
        before, dt_s = None, 0.0
        if last is not None:
            if last[0] is rec and spec.static:
                continue
            before, dt_s = last[0], (uptime_ms - last[1]) / 1000.0
            if dt_s <= 0:
                dt_s = received_at - last[2]
        spec._update(rec, before, dt_s, out, ds_type)  # type: ignore[misc]
        prev[cls] = (rec, uptime_ms, received_at)
        if cls is VirtCpu and rec.state in STOPPED_STATES:
            stopped = True
    return stopped


_metrics = accel.load("sflowlab.collector._metrics")
apply_records: Callable[..., bool] = _py_apply if _metrics is None else _metrics.Applier(
    {cls: spec.c_spec() for cls, spec in RECORDS.items()}, VirtCpu, STOPPED_STATES)
"""``_py_apply``, in C when the accelerator ``_metrics`` is built (the same stores, derive
calls and exceptions; tests/collector/test_metrics_apply.py compares them)."""


@dataclass(slots=True)
class DataSource:
    """The latest metrics of one (agent, data source) and the samples rates are taken from."""

    agent: str
    name: str
    ds_type: int
    last_update: float = 0.0
    last_uptime_ms: int = 0
    interval_s: float = 0.0  # the longest gap between samples so far
    gaps: int = 0  # how many gaps it is taken from
    values: dict[str, Value] = field(default_factory=dict)
    prev: dict[type, tuple[Any, int, float]] = field(default_factory=dict)


@dataclass
class MetricTable:
    """All counter metrics, keyed by (agent, data source).

    A data source expires when silent for ``expire_intervals`` of its own polling interval
    (the longest gap seen between its samples, by agent uptime or arrival time, at least 1 s),
    or for ``timeout_s`` until it has shown ``MIN_GAPS`` gaps: an agent's extra early samples,
    such as a container's first ones, do not make it expire between its regular polls. At
    most ``max_sources`` are kept: samples of further new data sources are counted in
    ``shed`` and not applied, until silent ones expire.
    """

    timeout_s: float = 60.0
    expire_intervals: float = 3.0
    max_sources: int = 100_000
    sources: dict[tuple[str, str], DataSource] = field(default_factory=dict)
    expired: int = 0
    stopped: int = 0
    shed: int = 0

    def update(self, agent: str, ds_type: int, ds_index: int, records: tuple[Any, ...],
               uptime_ms: int, received_at: float, restart: bool) -> None:
        """Apply one counter sample taken at the agent's ``uptime_ms``, received at ``received_at``.

        Elapsed time is the uptime delta; when the agent's uptime does not advance (an agent
        that sends none), the receive time delta.
        """
        name = str(ds_index) if ds_type == 0 else f"{ds_type}.{ds_index}"
        key = (agent, name)
        ds = self.sources.get(key)
        if ds is None:
            if len(self.sources) >= self.max_sources:
                self.shed += 1
                return
            ds = self.sources[key] = DataSource(agent, name, ds_type)
        elif restart:
            ds.prev.clear()
        stopped = apply_records(ds.prev, ds.values, records, uptime_ms, received_at, ds_type)
        if ds.last_update and not restart:
            gap = max((uptime_ms - ds.last_uptime_ms) / 1000.0, received_at - ds.last_update)
            ds.interval_s = max(ds.interval_s, gap)
            ds.gaps += 1
        ds.last_update, ds.last_uptime_ms = received_at, uptime_ms
        if stopped:
            del self.sources[key]
            self.stopped += 1

    def expire(self, now: float) -> int:
        """Drop data sources that fell silent (see the class docstring); returns how many."""
        n, timeout = self.expire_intervals, self.timeout_s
        old = [k for k, ds in self.sources.items()
               if now - ds.last_update > (n * max(ds.interval_s, 1.0) if ds.gaps >= MIN_GAPS
                                          else timeout)]
        for k in old:
            del self.sources[k]
        self.expired += len(old)
        return len(old)

    def last_seen(self) -> dict[str, float]:
        """Metric name -> latest update time over the live data sources."""
        seen: dict[str, float] = {}
        for ds in self.sources.values():
            t = ds.last_update
            for m in ds.values:
                if seen.get(m, -1.0) < t:
                    seen[m] = t
        return seen

    def select(self, agents: set[str] | None) -> Iterator[DataSource]:
        """The data sources of the given agents (all when ``None``)."""
        if agents is None:
            yield from self.sources.values()
        else:
            for (agent, _), ds in self.sources.items():
                if agent in agents:
                    yield ds
