"""Assertions on container lifecycles as the collector received them (registered with
``kinds.assertion``; ``loader`` imports this module so the kinds always exist).

``containers_reported``: every container the swarm ran for a service reached the collector
as hsflowd reports it: a start sample (state running) a few seconds after it started
(``HSP_DOCKER_WAIT_STATS``: 3 s), when it lived that long, and a final sample with its
stopped state when it stopped. The samples are read from ``sflow.pcap``, the datagrams the
collector was fed (``no_lost_datagrams`` checks it decoded them all), and matched to the
swarm's containers by hostname (host_descr); a container running for a second or more after
its first sample must also show in the collector's table (``containers.csv``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sflowlab.codec import decode_datagram
from sflowlab.codec.counter_records import VIR_DOMAIN_STATES, HostDescr, VirtCpu
from sflowlab.codec.pcap import read_sflow
from sflowlab.lab.scenario.kinds import Outcome, assertion
from sflowlab.lab.scenario.outputs import Lifecycle, Recording

__all__ = ["ContainerSample", "ContainersReported", "container_samples"]


@dataclass(frozen=True)
class ContainerSample:
    """One container counter sample: when it was sent and the container's state then."""

    time_s: float
    state: str


def container_samples(pcap: Path) -> dict[str, list[ContainerSample]]:
    """Container name (host_descr hostname) -> its counter samples in ``pcap``, in order."""
    out: dict[str, list[ContainerSample]] = defaultdict(list)
    for captured in read_sflow(pcap):
        for sample in decode_datagram(captured.payload).samples:
            records = getattr(sample, "records", ())
            descr = next((r for r in records if isinstance(r, HostDescr)), None)
            cpu = next((r for r in records if isinstance(r, VirtCpu)), None)
            if descr is not None and cpu is not None:
                state = (VIR_DOMAIN_STATES[cpu.state] if cpu.state < len(VIR_DOMAIN_STATES)
                         else str(cpu.state))
                out[descr.hostname].append(ContainerSample(captured.timestamp, state))
    return dict(out)


@assertion("containers_reported")
@dataclass(frozen=True)
class ContainersReported:
    """Every container of ``service`` had a start sample within ``start_within`` s of its
    start (when it ran that long) and, once stopped, a final sample with a stopped state
    within ``stop_within`` s of its stop."""

    service: str
    start_within: float = 4.0
    stop_within: float = 1.0

    def check(self, rec: Recording) -> Outcome:
        if rec.sflow_pcap is None or not rec.sflow_pcap.exists():
            return Outcome("", False, "FAILED: the run recorded no sflow.pcap")
        samples = container_samples(rec.sflow_pcap)
        mine = [c for c in rec.lifecycles if c.service == self.service]
        if not mine:
            return Outcome("", False, f"FAILED: the swarm ran no {self.service} container")
        known = {row[1] for row in rec.containers}
        problems = [(t, f"{c.name}: {what}") for c in mine
                    for t, what in self._problems(c, samples.get(c.name, []), rec, known)]
        started = sum(1 for c in mine if self._expects_start(c, rec))
        stopped = sum(1 for c in mine if c.stopped is not None)
        if problems:
            t, first = min(problems)
            n = len(problems)
            return Outcome("", False, f"FAILED: {n} problem{'s' * (n != 1)} in {len(mine)} "
                                      f"{self.service} containers; first at t={t:.1f} s: {first}",
                           t)
        shortest = min((c.stopped - c.started for c in mine if c.stopped is not None),
                       default=None)
        life = f"; the shortest lived {shortest:.1f} s" if shortest is not None else ""
        return Outcome("", True, f"{len(mine)} {self.service} containers: {started} with a "
                                 f"start sample within {self.start_within:g} s, {stopped} with "
                                 f"a final sample within {self.stop_within:g} s{life}")

    def _expects_start(self, c: Lifecycle, rec: Recording) -> bool:
        end = c.stopped if c.stopped is not None else rec.scenario.duration
        return end - c.started > self.start_within

    def _problems(self, c: Lifecycle, seen: list[ContainerSample], rec: Recording,
                  known: set[str]) -> list[tuple[float, str]]:
        out = []
        first = next((s for s in seen if s.state == "running"), None)
        if self._expects_start(c, rec) and (
                first is None or first.time_s - c.started > self.start_within):
            when = f"only at t={first.time_s:.1f} s" if first else "never"
            out.append((c.started + self.start_within,
                        f"started at t={c.started:.1f} s, first running sample {when}"))
        end = c.stopped if c.stopped is not None else rec.scenario.duration
        if first is not None and end - first.time_s >= 1.0 and c.name not in known:
            out.append((first.time_s, f"running from its sample at t={first.time_s:.1f} s to "
                                      f"t={end:.1f} s, never in the collector's table"))
        if c.stopped is not None:
            final = seen[-1] if seen else None
            if (final is None or final.state == "running"
                    or not 0 <= final.time_s - c.stopped <= self.stop_within):
                got = (f"the last sample at t={final.time_s:.1f} s says {final.state}" if final
                       else "no sample at all")
                out.append((c.stopped, f"stopped at t={c.stopped:.1f} s, {got}"))
        return out
