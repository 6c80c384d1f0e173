"""Per-agent accounting from sequence numbers: received, lost, duplicate, out of order.

An agent is an (address, sub-agent id) pair; ``/agents/json`` sums the sub-agents of one
address. Each datagram stream and each sampler (flow, counter, discard samples of one data
source) has its own :class:`SequenceTracker`:

- the next number in sequence is counted in order;
- a forward gap counts the missing numbers as lost;
- a number behind the newest one, within a 256-number window, is a duplicate if it was seen
  and otherwise arrives out of order (and no longer counts as lost);
- a number further behind, a restart at 0/1, or a forward jump of more than 100,000 is a new
  epoch (agent restart, container restarted): the tracker resets without counting loss.

Datagram streams also reset when the agent's uptime goes backwards.

``SequenceTracker`` is the C accelerator ``sflowlab.collector._seq`` when it is built (the
same rules; the engine calls it per sample), else ``PySequenceTracker``; likewise
``fresh_flow_samples``, the engine's per-sample accounting of a datagram's flow samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import accel

WINDOW = 256
MAX_GAP = 100_000
_MASK = (1 << WINDOW) - 1


@dataclass(slots=True)
class PySequenceTracker:
    """Classifies the sequence numbers of one stream (32-bit, wrapping)."""

    received: int = 0
    lost: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    resets: int = 0
    last: int = -1
    seen: int = 0  # bit i set: number (last - i) was seen

    def add(self, seq: int) -> str:
        """Record ``seq``; returns "ok", "lost" (a gap before it), "dup", "ooo" or "reset"."""
        self.received += 1
        last = self.last
        if last < 0:
            self.last, self.seen = seq, 1
            return "ok"
        diff = (seq - last) & 0xFFFFFFFF
        if diff == 1:
            self.last, self.seen = seq, ((self.seen << 1) | 1) & _MASK
            return "ok"
        if 0 < diff < 0x80000000:
            if diff > MAX_GAP:
                return self._reset(seq)
            self.lost += diff - 1
            self.last, self.seen = seq, ((self.seen << diff) | 1) & _MASK
            return "lost"
        back = (last - seq) & 0xFFFFFFFF  # 0 when equal
        if back >= WINDOW or (seq <= 1 < last):
            return self._reset(seq)
        bit = 1 << back
        if self.seen & bit:
            self.duplicates += 1
            return "dup"
        self.seen |= bit
        self.out_of_order += 1
        self.lost -= 1
        return "ooo"

    def _reset(self, seq: int) -> str:
        self.resets += 1
        self.last, self.seen = seq, 1
        return "reset"


_seq = accel.load("sflowlab.collector._seq")
SequenceTracker: Any = PySequenceTracker if _seq is None else _seq.SequenceTracker


def _py_fresh_flow_samples(samplers: dict[tuple[str, int, int], Any], samples: list[Any]
                           ) -> list[Any]:
    """The flow samples that are not duplicates, each counted by its sampler's tracker (made
    when missing): the engine's loop over a datagram's flow samples."""
    fresh = []
    for fs in samples:
        key = ("discard" if fs.discarded else "flow", fs.source_id_type, fs.source_id_index)
        tracker = samplers.get(key) or samplers.setdefault(key, SequenceTracker())
        if tracker.add(fs.sequence_number) != "dup":
            fresh.append(fs)
    return fresh


fresh_flow_samples: Callable[[dict[tuple[str, int, int], Any], list[Any]], list[Any]] = (
    _py_fresh_flow_samples if _seq is None else _seq.fresh_flow_samples)


@dataclass(frozen=True)
class TableLimits:
    """Bounds on the tables a flood of spoofed or broken sources could grow."""

    agent_timeout_s: float = 300.0
    """An agent silent this long is forgotten (its sequence state and counts; a later
    datagram starts it afresh), as its data sources expire after ``metric_timeout_s``."""
    max_agents: int = 10_000
    """Agents (address, sub-agent) tracked at once: datagrams of further new agents are
    counted (``sFlowDatagramsShed``) and not analysed, until silent agents expire."""
    max_error_sources: int = 1_000
    """Sources listed in ``parseErrorsBySource``; errors of further sources are counted in
    the totals only (``sFlowParseErrorSourcesShed``)."""
    max_data_sources: int = 100_000
    """Counter data sources kept at once (``sFlowDataSourcesShed``: samples of further new
    ones, not applied until silent ones expire)."""


MAX_SOURCES = 16
"""Source addresses listed per agent (``sFlowDatagramSource``): a flood spoofing one agent
from many addresses cannot grow the list."""


@dataclass(slots=True)
class AgentStats:
    """Accounting for one (address, sub-agent): datagrams and per-sampler samples."""

    address: str
    sub_agent_id: int
    first_seen: float
    last_seen: float
    uptime_ms: int = 0
    bytes_received: int = 0
    parse_errors: int = 0
    bad_samples: int = 0
    flow_samples: int = 0
    counter_samples: int = 0
    datagrams: PySequenceTracker = field(default_factory=SequenceTracker)
    samplers: dict[tuple[str, int, int], PySequenceTracker] = field(default_factory=dict)
    """Per sampler, keyed ("flow" | "counter" | "discard", ds type, ds index); the engine
    adds to them and to the sample counts on its hot path."""
    sources: set[str] = field(default_factory=set)

    def datagram(self, seq: int, uptime_ms: int, size: int, source: str, now: float) -> str:
        """Account one datagram; returns the tracker's verdict ("reset" on agent restart)."""
        if uptime_ms < self.uptime_ms and self.datagrams.last >= 0:
            self.datagrams._reset(seq)
            self.datagrams.received += 1
            self.samplers.clear()
            verdict = "reset"
        else:
            verdict = self.datagrams.add(seq)
        self.uptime_ms = uptime_ms
        self.bytes_received += size
        self.last_seen = now
        if source not in self.sources and len(self.sources) < MAX_SOURCES:
            self.sources.add(source)
        return verdict

    def sampler_totals(self, kind: str) -> tuple[int, int, int]:
        """(lost, duplicates, out of order) summed over the samplers of one kind."""
        lost = dup = ooo = 0
        for (k, _, _), t in self.samplers.items():
            if k == kind or (kind == "flow" and k == "discard"):
                lost, dup, ooo = lost + t.lost, dup + t.duplicates, ooo + t.out_of_order
        return lost, dup, ooo


def agents_json(stats: list[AgentStats], now: float) -> dict[str, dict[str, object]]:
    """sFlow-RT's ``/agents/json``: one entry per agent address (sub-agents summed)."""
    out: dict[str, dict[str, object]] = {}
    for a in stats:
        merge_agent_entry(out, a.address, _agent_entry(a, now))
    return out


def _agent_entry(a: AgentStats, now: float) -> dict[str, object]:
    flow = a.sampler_totals("flow")
    counter = a.sampler_totals("counter")
    d = a.datagrams
    return {
        "sFlowDatagramsReceived": d.received,
        "sFlowDatagramsLost": d.lost,
        "sFlowDatagramsDuplicates": d.duplicates,
        "sFlowDatagramsOutOfOrder": d.out_of_order,
        "sFlowDatagramsReset": d.resets,
        "sFlowBytesReceived": a.bytes_received,
        "sFlowParseErrors": a.parse_errors,
        "sFlowBadSamples": a.bad_samples,
        "sFlowFlowSamples": a.flow_samples,
        "sFlowFlowLostSamples": flow[0],
        "sFlowFlowDuplicateSamples": flow[1],
        "sFlowFlowOutOfOrderSamples": flow[2],
        "sFlowCounterSamples": a.counter_samples,
        "sFlowCounterLostSamples": counter[0],
        "sFlowCounterDuplicateSamples": counter[1],
        "sFlowCounterOutOfOrderSamples": counter[2],
        "sFlowDatagramSource": sorted(a.sources),
        "firstSeen": to_ms(now - a.first_seen),
        "lastSeen": to_ms(now - a.last_seen),
        "uptime": a.uptime_ms,
        "subAgents": [a.sub_agent_id],
    }


def merge_agent_entry(out: dict[str, dict[str, Any]], address: str,
                      entry: dict[str, Any]) -> None:
    """Put one ``/agents/json`` entry into ``out``, summed with the one already there for the
    same address (another sub-agent, or the same agent as another worker heard it)."""
    seen = out.get(address)
    if seen is None:
        out[address] = entry
        return
    for k, v in entry.items():
        if k.startswith("sFlow") and isinstance(v, int):
            seen[k] += v
    seen["sFlowDatagramSource"] = sorted({*seen["sFlowDatagramSource"],
                                          *entry["sFlowDatagramSource"]})
    seen["firstSeen"] = max(seen["firstSeen"], entry["firstSeen"])
    seen["lastSeen"] = min(seen["lastSeen"], entry["lastSeen"])
    seen["subAgents"] = [*seen["subAgents"], *entry["subAgents"]]


def to_ms(seconds: float) -> int:
    """Seconds to whole milliseconds, never negative (sFlow-RT reports ages in ms)."""
    return max(0, round(seconds * 1000))
