"""The roles of an sFlow agent, as host-sflow's agent library names them.

- ``Agent``: one sFlow agent (address + sub-agent id) with its uptime and a ``codec.Exporter``
  that packs samples into datagrams of at most ``max_datagram`` bytes and hands them to a sink.
- ``Poller``: a counter data source with its polling interval, randomised first poll and
  counter-sample sequence number.
- ``Sampler``: a packet sampler with its sampling rate, sample pool, drops and flow-sample
  sequence number; it picks packets 1-in-N at random with skip counts drawn like hsflowd's
  ``sfl_sampler_next_skip``: uniform in [1, 2N-1] (mean N).

Nothing here reads the time or a global random generator: time comes in as ``now``, randomness
from a seeded ``random.Random`` handed in, so the same seed gives the same bytes.
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass, field
from typing import Any

from sflowlab.codec import (
    COUNTER_SAMPLES,
    FLOW_SAMPLES,
    DiscardedPacket,
    Exporter,
    FlowSampleExpanded,
    encode_sample,
)
from sflowlab.codec.layout import ELEMENT, fixed

from .sinks import Sink

U32_MASK = 0xFFFFFFFF
_KIND_BY_FORMAT = {1: "flow", 3: "flow", 2: "counters", 4: "counters", 5: "discarded"}
"""Sample data_format (enterprise 0) -> kind, for samples emitted as encoded bytes."""
_U32 = struct.Struct(">I")


def sample_kind(sample: Any) -> str:
    """``"flow"``, ``"counters"``, ``"discarded"`` or ``"other"`` for a sample or its bytes."""
    if isinstance(sample, bytes):
        return _KIND_BY_FORMAT.get(_U32.unpack_from(sample)[0], "other")
    if isinstance(sample, FLOW_SAMPLES):
        return "flow"
    if isinstance(sample, COUNTER_SAMPLES):
        return "counters"
    return "discarded" if isinstance(sample, DiscardedPacket) else "other"


class Agent:
    """One sFlow agent: address, sub-agent id, boot time, exporter, pollers and samplers.

    Samples queued with ``emit`` are packed into datagrams; a full datagram is sent at once,
    the rest when ``flush`` is called (agents flush at the end of each tick).
    """

    def __init__(self, address: str, sink: Sink, sub_agent_id: int = 0,
                 boot_time: float = 0.0, max_datagram: int = 1400) -> None:
        self.address = address
        self.sub_agent_id = sub_agent_id
        self.boot_time = boot_time
        self.sink = sink
        self.pollers: list[Poller] = []
        self.samplers: list[Sampler] = []
        self._now = boot_time
        self.samples_by_kind: dict[str, int] = {}
        self.exporter = Exporter(address, self._send, sub_agent_id=sub_agent_id,
                                 max_datagram=max_datagram)

    def _send(self, datagram: bytes) -> None:
        self.sink(datagram, self.address, self._now)

    def uptime_ms(self, now: float) -> int:
        """Milliseconds since boot (the datagram header carries it modulo 2**32)."""
        return max(0, int((now - self.boot_time) * 1000))

    def emit(self, sample: Any, now: float) -> None:
        """Queue one sample (a codec sample object or its encoded bytes)."""
        self._now = now
        kind = sample_kind(sample)
        self.samples_by_kind[kind] = self.samples_by_kind.get(kind, 0) + 1
        self.exporter.add(sample, self.uptime_ms(now))

    def flush(self, now: float) -> None:
        """Send the pending samples, if any, as one datagram."""
        self._now = now
        self.exporter.flush(self.uptime_ms(now))

    @property
    def datagrams_sent(self) -> int:
        return self.exporter.datagrams_sent

    @property
    def samples_sent(self) -> int:
        return self.exporter.samples_sent


@dataclass
class Poller:
    """A counter data source polled every ``interval_s`` seconds.

    The first poll falls at ``start + uniform(0, interval_s)`` drawn from ``rng`` (no rng: at
    ``start``), so agents and data sources do not poll in lockstep. Sequence numbers start at 1.
    """

    source_id_type: int
    source_id_index: int
    interval_s: float
    rng: random.Random | None = None
    start: float = 0.0
    sequence_number: int = 0
    next_due: float = field(init=False)

    def __post_init__(self) -> None:
        self.next_due = self.start + self._first_delay()

    def _first_delay(self) -> float:
        if self.rng is None or self.interval_s <= 0:
            return 0.0
        return self.rng.uniform(0.0, self.interval_s)

    def due(self, now: float) -> bool:
        """True when a counter sample is due (never when the interval is 0: polling disabled)."""
        return self.interval_s > 0 and now >= self.next_due

    def next_sequence(self, now: float | None = None, reschedule: bool = True) -> int:
        """Count one counter sample and schedule the next poll (past ``now`` if given).

        ``reschedule=False`` counts an extra sample (e.g. a lifecycle one) off the schedule.
        """
        self.sequence_number = (self.sequence_number + 1) & U32_MASK
        if reschedule and self.interval_s > 0:
            self.next_due += self.interval_s
            if now is not None and self.next_due <= now:
                missed = math.floor((now - self.next_due) / self.interval_s) + 1
                self.next_due += missed * self.interval_s
        return self.sequence_number

    def reset(self, now: float, first_poll_in: float | None = None) -> None:
        """Restart the data source: sequence numbers restart at 1, first poll re-drawn."""
        self.sequence_number = 0
        self.next_due = now + (self._first_delay() if first_poll_in is None else first_poll_in)


@dataclass
class Sampler:
    """A packet sampler taking 1-in-``sampling_rate`` packets at random (0 disables it).

    Skips are uniform in [1, 2N-1] like hsflowd's; ``sample_pool`` counts every packet seen
    (u32 wrap), ``drops`` counts samples lost for lack of resources.
    """

    source_id_type: int
    source_id_index: int
    sampling_rate: int
    rng: random.Random
    sample_pool: int = 0
    sequence_number: int = 0
    drops: int = 0
    _skip: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._skip = self._next_skip()

    def _next_skip(self) -> int:
        rate = self.sampling_rate
        return 1 if rate <= 1 else self.rng.randint(1, 2 * rate - 1)

    def set_sampling_rate(self, rate: int) -> None:
        self.sampling_rate = rate
        self._skip = self._next_skip()

    def observe(self, packets: int) -> int:
        """Add ``packets`` to the pool; return how many of them are sampled."""
        if packets <= 0 or self.sampling_rate <= 0:
            return 0
        self.sample_pool = (self.sample_pool + packets) & U32_MASK
        taken = 0
        skip = self._skip
        while packets >= skip:
            packets -= skip
            taken += 1
            skip = self._next_skip()
        self._skip = skip - packets
        return taken

    def next_sequence(self) -> int:
        """Count one flow sample and return its sequence number (from 1)."""
        self.sequence_number = (self.sequence_number + 1) & U32_MASK
        return self.sequence_number


_EXPANDED_FIELDS = struct.Struct(">" + fixed(FlowSampleExpanded))
"""``FlowSampleExpanded``'s fixed fields before its records, after the sample's TLV head."""
_TLV_HEAD = struct.calcsize(">" + ELEMENT)


class FlowSampleTemplate:
    """An expanded flow sample encoded once by the codec; ``render`` patches its fixed fields.

    Patching a copy of its bytes is much cheaper than encoding a sample object (both timed by
    ``bench/bench_agents.py``). ``data`` may be patched further (e.g. ports inside the sampled
    header) at offsets found with ``offset_of``.
    """

    __slots__ = ("data",)

    def __init__(self, records: tuple[Any, ...]) -> None:
        self.data = encode_sample(FlowSampleExpanded(records=records))

    def offset_of(self, fragment: bytes) -> int:
        at = self.data.find(fragment, _TLV_HEAD + _EXPANDED_FIELDS.size)
        if at < 0:
            raise ValueError("fragment not found in the encoded records")
        return at

    def render(self, sampler: Sampler, input_value: int, output_value: int,
               input_format: int = 0, output_format: int = 0) -> bytearray:
        """The sample's bytes for ``sampler``'s next sequence number, pool and drops.

        Returns a bytearray to patch further; pass ``bytes(...)`` of it to ``Agent.emit``.
        """
        out = bytearray(self.data)
        _EXPANDED_FIELDS.pack_into(
            out, _TLV_HEAD, sampler.next_sequence(), sampler.source_id_type,
            sampler.source_id_index, sampler.sampling_rate, sampler.sample_pool, sampler.drops,
            input_format, input_value, output_format, output_value)
        return out
