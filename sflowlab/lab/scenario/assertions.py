"""Scenario assertions: each kind a dataclass of parameters with ``check(recording)``.

A scenario lists them as ``- kind: {params}``; ``scenario.build`` validates the parameters
against the dataclass, and ``evaluate`` runs each over the ``Recording`` after the run. A check
returns an ``Outcome``: passed or not, a message saying what happened and when, and the time
it refers to. Time windows: ``within`` seconds of a moment (``from`` / ``after``: a name from
``Scenario.moments``, e.g. ``load_end``, ``attack_start``, or a number of seconds).

New kinds register with ``kinds.assertion("name")`` on a frozen dataclass with a ``check``
method.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from sflowlab.lab.scenario.kinds import Outcome, assertion
from sflowlab.lab.scenario.model import Scenario
from sflowlab.lab.scenario.outputs import AclChange, Recording

__all__ = ["Check", "evaluate"]


class Check(Protocol):
    def check(self, rec: Recording) -> Outcome: ...


def evaluate(scenario: Scenario, rec: Recording) -> list[Outcome]:
    """Every assertion of the scenario over the recording; a check that raises fails."""
    out = []
    for spec in scenario.checks:
        try:
            outcome = spec.params.check(rec)
        except Exception as e:  # a broken check is a failed assertion, said plainly
            outcome = Outcome(spec.name, False, f"FAILED: could not evaluate: {e}")
        out.append(Outcome(spec.name, outcome.passed, outcome.message, outcome.at))
    return out


def _ok(passed: bool, message: str, at: float | None = None) -> Outcome:
    return Outcome("", passed, message if passed else f"FAILED: {message}", at)


def _t(x: float) -> str:
    return f"t={x:.1f} s"


# ---------------------------------------------------------------------- replicas


@assertion("replicas")
@dataclass(frozen=True)
class Replicas:
    """The service's replica count reaches ``reaches`` (within ``within`` s of ``from``),
    and/or never exceeds ``at_most``."""

    ALIASES: ClassVar[dict[str, str]] = {"from": "since"}
    service: str
    reaches: int | None = None
    within: float | None = None
    since: str | float = "load_start"
    at_most: int | None = None

    def check(self, rec: Recording) -> Outcome:
        series = rec.series(f"{self.service}.replicas")
        peak_t, peak = max(series, key=lambda p: (p[1], -p[0]))
        if self.at_most is not None and peak > self.at_most:
            return _ok(False, f"{self.service} reached {peak:.0f} replicas at {_t(peak_t)}, "
                              f"more than {self.at_most}", peak_t)
        if self.reaches is None:
            return _ok(True, f"{self.service} peaked at {peak:.0f} replicas at {_t(peak_t)} "
                             f"(at most {self.at_most})", peak_t)
        first = next((t for t, v in series if v >= self.reaches), None)
        if first is None:
            return _ok(False, f"{self.service} never reached {self.reaches} replicas; max "
                              f"{peak:.0f} at {_t(peak_t)}", peak_t)
        need = ""
        if self.within is not None:
            ref = rec.moment(self.since)
            need = f" (needed {self.reaches} within {self.within:g} s of {self.since} at {_t(ref)})"
            if first - ref > self.within:
                return _ok(False, f"{self.service} reached {self.reaches} replicas only at "
                                  f"{_t(first)}, {first - ref:.1f} s after {self.since}{need}",
                           first)
        return _ok(True, f"{self.service} reached {self.reaches} replicas at {_t(first)}{need}; "
                         f"max {peak:.0f}", first)


@assertion("returns_to_min")
@dataclass(frozen=True)
class ReturnsToMin:
    """After ``after``, the replica count falls to ``min`` (default: the service's initial
    replicas) within ``within`` s and stays there."""

    service: str
    within: float
    after: str | float = "load_end"
    min: int | None = None

    def check(self, rec: Recording) -> Outcome:
        floor = self.min if self.min is not None else _service(rec, self.service).replicas
        ref = rec.moment(self.after)
        series = [(t, v) for t, v in rec.series(f"{self.service}.replicas") if t >= ref]
        if not series:
            return _ok(False, f"the run ended before {self.after} ({_t(ref)})")
        back = None
        for t, v in series:
            if v <= floor and back is None:
                back = t
            elif v > floor:
                back = None
        if back is None:
            t, v = series[-1]
            return _ok(False, f"{self.service} had {v:.0f} replicas at the end ({_t(t)}), not "
                              f"back to {floor} after {self.after} at {_t(ref)}", t)
        took = back - ref
        text = (f"{self.service} back to {floor} replicas at {_t(back)}, {took:.1f} s after "
                f"{self.after} (allowed {self.within:g} s)")
        return _ok(took <= self.within, text, back)


@assertion("max_flaps")
@dataclass(frozen=True)
class MaxFlaps:
    """The replica count changes direction (up then down or down then up) at most ``max``
    times."""

    service: str
    max: int

    def check(self, rec: Recording) -> Outcome:
        flaps, at = _flaps([v for _, v in rec.series(f"{self.service}.replicas")],
                           [t for t, _ in rec.series(f"{self.service}.replicas")])
        where = f" (at {', '.join(f'{t:.0f}' for t in at)} s)" if at else ""
        return _ok(flaps <= self.max, f"{self.service} changed direction {flaps} times"
                                      f"{where}; allowed {self.max}", at[-1] if at else None)


def _flaps(values: Sequence[float], times: Sequence[float]) -> tuple[int, list[float]]:
    direction, at = 0, []
    for i in range(1, len(values)):
        d = (values[i] > values[i - 1]) - (values[i] < values[i - 1])
        if d and direction and d != direction:
            at.append(times[i])
        direction = d or direction
    return len(at), at


@assertion("per_container_load")
@dataclass(frozen=True)
class PerContainerLoad:
    """The collector's per-container average ``metric`` (``avg_vir_bytes`` or
    ``avg_vir_cpu_utilization``) stays below ``below`` ``while``: ``scaled`` (replicas above
    their initial count), ``load`` (the load window) or ``always``; ``share`` of those
    seconds must comply (1.0: every one)."""

    ALIASES: ClassVar[dict[str, str]] = {"while": "during"}
    service: str
    below: float
    metric: str = "avg_vir_bytes"
    during: str = "scaled"
    share: float = 1.0

    def check(self, rec: Recording) -> Outcome:
        if self.metric not in ("avg_vir_bytes", "avg_vir_cpu_utilization"):
            raise ValueError(f"metric must be avg_vir_bytes or avg_vir_cpu_utilization, "
                             f"not {self.metric!r}")
        base = _service(rec, self.service).replicas
        rows = rec.timeline
        if self.during == "scaled":
            rows = [r for r in rows if r[f"{self.service}.replicas"] > base]
        elif self.during == "load":
            start, end = rec.moment("load_start"), rec.moment("load_end")
            rows = [r for r in rows if start <= r["time_s"] < end]
        elif self.during != "always":
            raise ValueError(f"while must be scaled, load or always, not {self.during!r}")
        if not rows:
            return _ok(False, f"{self.service} was never {self.during}: nothing to check")
        col = f"{self.service}.{self.metric}"
        over = [r for r in rows if r[col] >= self.below]
        share = 1 - len(over) / len(rows)
        worst = max(rows, key=lambda r: r[col])
        text = (f"{self.service} {self.metric} below {self.below:g} in {share:.0%} of "
                f"{len(rows)} s {self.during} (needed {self.share:.0%}); max "
                f"{worst[col]:.4g} at {_t(worst['time_s'])}")
        return _ok(share >= self.share, text, worst["time_s"])


@assertion("compare_policies")
@dataclass(frozen=True)
class ComparePolicies:
    """Two services under the same load and different policies: ``better`` keeps its
    per-container ``metric`` over ``target`` for no more seconds of the load window than
    ``than``, with no more flaps; the message gives both figures and replica-seconds used."""

    better: str
    than: str
    target: float
    metric: str = "avg_vir_bytes"

    def check(self, rec: Recording) -> Outcome:
        start, end = rec.moment("load_start"), rec.moment("load_end")
        figures = {}
        for name in (self.better, self.than):
            rows = [r for r in rec.timeline if start <= r["time_s"] < end]
            over = sum(1 for r in rows if r[f"{name}.{self.metric}"] > self.target)
            flaps, _ = _flaps([r[f"{name}.replicas"] for r in rec.timeline],
                              [r["time_s"] for r in rec.timeline])
            cost = sum(r[f"{name}.replicas"] for r in rec.timeline)
            figures[name] = (over, flaps, cost)
        (b_over, b_flaps, b_cost), (t_over, t_flaps, t_cost) = (figures[self.better],
                                                                figures[self.than])
        text = (f"{self.metric} over {self.target:g} during the load: {self.better} "
                f"{b_over} s, {self.than} {t_over} s ({t_over - b_over:+d} s); flaps "
                f"{b_flaps} vs {t_flaps}; replica-seconds {b_cost:.0f} vs {t_cost:.0f}")
        return _ok(b_over <= t_over and b_flaps <= t_flaps, text)


@assertion("metricN_follows_live")
@dataclass(frozen=True)
class MetricNFollowsLive:
    """The collector's count of the service's running containers equals the swarm's running
    tasks, except within ``lag`` s of a change: ``count: seen`` (containers known from their
    first sample) or ``running`` (metricN of their averages, from their second sample).
    A change is a row where the task count differs or a container's start or stop, so a
    container that lived between two rows still opens a lag window."""

    service: str
    lag: float = 5.0
    count: str = "seen"

    def check(self, rec: Recording) -> Outcome:
        if self.count not in ("seen", "running"):
            raise ValueError(f"count must be seen or running, not {self.count!r}")
        changes = sorted(t for c in rec.lifecycles if c.service == self.service
                         for t in (c.started, c.stopped) if t is not None)
        changed, bad, prev, i = -1e9, [], None, 0
        for row in rec.timeline:
            now = row["time_s"]
            live, seen = row[f"{self.service}.tasks"], row[f"{self.service}.{self.count}"]
            while i < len(changes) and changes[i] <= now:
                changed, i = max(changed, changes[i]), i + 1
            if live != prev:
                changed, prev = now, live
            if seen != live and now - changed > self.lag:
                bad.append((now, live, seen))
        if bad:
            t, live, seen = bad[0]
            return _ok(False, f"{self.service}: the collector counted {seen:.0f} ({self.count}) "
                              f"but {live:.0f} were live at "
                              f"{_t(t)}, {len(bad)} s out of step beyond {self.lag:g} s", t)
        return _ok(True, f"{self.service}: the collector's count ({self.count}) followed "
                         f"the live count within "
                         f"{self.lag:g} s over {len(rec.timeline)} s")


# ---------------------------------------------------------------------- ACLs


def _acls(rec: Recording, target: str, switch: str | None = None) -> list[AclChange]:
    return [a for a in rec.acl if (a.action == "delete" or target in a.targets)
            and (switch is None or a.switch == switch)]


def _rel(took: float, ref: str | float) -> str:
    name = ref if isinstance(ref, str) else f"t={ref:g} s"
    return f"{took:.1f} s after {name}" if took >= 0 else f"{-took:.1f} s before {name}"


def _installed(rec: Recording, target: str, switch: str | None, within: float,
               since: str | float, what: str) -> Outcome:
    ref = rec.moment(since)
    puts = [a for a in _acls(rec, target, switch) if a.action == "put"]
    where = f" on {switch}" if switch else ""
    if not puts:
        others = sorted({a.switch for a in _acls(rec, target) if a.action == "put"})
        return _ok(False, f"no {what} rule was installed{where}"
                          + (f" (installed on {', '.join(others)} instead)" if others else ""))
    first = puts[0]
    took = first.time_s - ref
    return _ok(0 <= took <= within, f"{what} {first.acl} installed on {first.switch} at "
                                    f"{_t(first.time_s)}, {_rel(took, since)} (allowed "
                                    f"{within:g} s)", first.time_s)


def _removed(rec: Recording, target: str, within: float, after: str | float,
             what: str) -> Outcome:
    ref = rec.moment(after)
    state: dict[tuple[str, str], float | None] = {}
    for a in rec.acl:
        key = (a.switch, a.acl)
        if a.action == "put" and target in a.targets:
            state[key] = None
        elif a.action == "delete" and key in state:
            state[key] = a.time_s
    if not state:
        return _ok(False, f"no {what} rule was ever installed")
    left = [f"{s}/{n}" for (s, n), t in state.items() if t is None]
    if left:
        return _ok(False, f"{what} rules still installed at the end: {', '.join(left)}")
    last = max(t for t in state.values() if t is not None)
    took = last - ref
    return _ok(0 <= took <= within, f"every {what} rule removed, the last at {_t(last)}, "
                                    f"{_rel(took, after)} (allowed {within:g} s)", last)


@assertion("capture_installed")
@dataclass(frozen=True)
class CaptureInstalled:
    """An ERSPAN capture ACL is committed (on ``switch``, if given) within ``within`` s."""

    ALIASES: ClassVar[dict[str, str]] = {"from": "since"}
    within: float
    switch: str | None = None
    since: str | float = "traffic_start"

    def check(self, rec: Recording) -> Outcome:
        return _installed(rec, "ERSPAN", self.switch, self.within, self.since, "capture")


@assertion("capture_removed")
@dataclass(frozen=True)
class CaptureRemoved:
    """Every capture ACL is withdrawn, the last within ``within`` s after ``after``."""

    within: float
    after: str | float = "traffic_end"

    def check(self, rec: Recording) -> Outcome:
        return _removed(rec, "ERSPAN", self.within, self.after, "capture")


@assertion("mitigated")
@dataclass(frozen=True)
class Mitigated:
    """A DROP ACL is committed (on ``switch``, if given) within ``within`` s."""

    ALIASES: ClassVar[dict[str, str]] = {"from": "since"}
    within: float
    switch: str | None = None
    since: str | float = "traffic_start"

    def check(self, rec: Recording) -> Outcome:
        return _installed(rec, "DROP", self.switch, self.within, self.since, "mitigation")


@assertion("released")
@dataclass(frozen=True)
class Released:
    """Every DROP ACL is withdrawn, the last within ``within`` s after ``after``."""

    within: float
    after: str | float = "traffic_end"

    def check(self, rec: Recording) -> Outcome:
        return _removed(rec, "DROP", self.within, self.after, "mitigation")


@assertion("analyser_pcap")
@dataclass(frozen=True)
class AnalyserPcap:
    """The analyser's pcap holds ERSPAN-mirrored packets, all of them between the two
    addresses of ``only_flow`` (either direction), at least ``min_packets``."""

    only_flow: tuple[str, str]
    min_packets: int = 1

    def check(self, rec: Recording) -> Outcome:
        if rec.analyser_pcap is None:
            return _ok(False, "the scenario has no fabric, so no analyser")
        pair = {ipaddress.ip_address(a) for a in self.only_flow}
        good = bad = 0
        first_bad: tuple[float, set[Any] | None] | None = None
        for timestamp, frame in _classic_pcap(rec.analyser_pcap.read_bytes()):
            inner = _erspan_inner(frame)
            if inner is not None and inner == pair:
                good += 1
            else:
                bad += 1
                first_bad = first_bad or (timestamp, inner)
        flow = " <-> ".join(self.only_flow)
        if first_bad is not None:
            t, inner = first_bad
            return _ok(False, f"the analyser received {bad} packets outside {flow} (first at "
                              f"{_t(t)}: {sorted(map(str, inner or ()))}), {good} inside", t)
        return _ok(good >= self.min_packets,
                   f"the analyser received {good} packets, all of {flow} "
                   f"(needed {self.min_packets})")


def _classic_pcap(data: bytes) -> list[tuple[float, bytes]]:
    """(timestamp, frame) of each record of a classic little-endian microsecond pcap (what
    ``ErspanCapture`` writes)."""
    if len(data) < 24 or data[:4] != b"\xd4\xc3\xb2\xa1":
        raise ValueError("the analyser capture is not a little-endian classic pcap")
    out, off = [], 24
    while off + 16 <= len(data):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", data, off)
        out.append((sec + usec / 1e6, data[off + 16:off + 16 + caplen]))
        off += 16 + caplen
    return out


def _erspan_inner(frame: bytes) -> set[Any] | None:
    """The inner (src, dst) addresses of an Ethernet/IPv4/GRE/ERSPAN-II/Ethernet/IP frame."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    gre = 14 + ihl
    flags, proto = struct.unpack_from(">HH", frame, gre)
    if proto != 0x88BE:
        return None
    inner = gre + 4 + (4 if flags & 0x1000 else 0) + 8 + 14
    if frame[inner - 2:inner] == b"\x08\x00":
        return {ipaddress.ip_address(frame[inner + 12:inner + 16]),
                ipaddress.ip_address(frame[inner + 16:inner + 20])}
    if frame[inner - 2:inner] == b"\x86\xdd":
        return {ipaddress.ip_address(frame[inner + 8:inner + 24]),
                ipaddress.ip_address(frame[inner + 24:inner + 40])}
    return None


# ---------------------------------------------------------------------- the collector


@assertion("no_lost_datagrams")
@dataclass(frozen=True)
class NoLostDatagrams:
    """The collector received and decoded every datagram the agents sent, with no sequence
    gaps or duplicates."""

    def check(self, rec: Recording) -> Outcome:
        a = rec.accounting
        text = (f"agents sent {a.sent} datagrams; the collector received {a.received}, "
                f"{a.parse_errors} undecodable, {a.lost} lost in sequence, {a.duplicates} "
                f"duplicate, {a.discarded} discarded")
        passed = (a.sent == a.received and not a.parse_errors and not a.lost
                  and not a.duplicates and not a.discarded)
        return _ok(passed, text)


def _service(rec: Recording, name: str) -> Any:
    return next(s for s in rec.scenario.services if s.name == name)
