"""Agent, Poller, Sampler and FlowSampleTemplate: packing, schedules, random 1-in-N sampling."""

from __future__ import annotations

import math
import random

import pytest

from sflowlab.agent_sim.agent import Agent, FlowSampleTemplate, Poller, Sampler, sample_kind
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.codec import (
    CountersSampleExpanded,
    FlowSampleExpanded,
    HostCpu,
    SampledHeader,
    decode_datagram,
    encode_sample,
)


def test_agent_packs_full_datagrams_with_rising_sequence_and_uptime() -> None:
    sink = MemorySink()
    agent = Agent("10.1.2.3", sink, sub_agent_id=7, boot_time=100.0, max_datagram=1400)
    sample = CountersSampleExpanded(1, 2, 1, (HostCpu(),))
    size = len(encode_sample(sample))
    for _ in range(50):
        agent.emit(sample, 105.25)
    agent.flush(106.0)
    items = sink.drain()
    per = (1400 - 28) // size
    assert [len(decode_datagram(d).samples) for _, _, d in items] == (
        [per] * (50 // per) + ([50 % per] if 50 % per else []))
    dgs = [decode_datagram(d) for _, _, d in items]
    assert [dg.sequence_number for dg in dgs] == list(range(1, len(dgs) + 1))
    assert {dg.sub_agent_id for dg in dgs} == {7}
    assert all(len(d) <= 1400 for _, _, d in items)
    assert dgs[0].uptime_ms == 5250 and dgs[-1].uptime_ms == 6000
    assert {a for _, a, _ in items} == {"10.1.2.3"}
    assert agent.samples_by_kind == {"counters": 50}
    assert agent.datagrams_sent == len(items) and agent.samples_sent == 50


def test_sample_kind_reads_objects_and_bytes() -> None:
    flow = FlowSampleExpanded()
    assert sample_kind(flow) == sample_kind(encode_sample(flow)) == "flow"
    counters = CountersSampleExpanded()
    assert sample_kind(counters) == sample_kind(encode_sample(counters)) == "counters"


def test_poller_first_poll_is_random_within_the_interval_then_regular() -> None:
    rng = random.Random(3)
    firsts = [Poller(2, 1, 30.0, rng, start=1000.0).next_due for _ in range(200)]
    assert all(1000.0 <= f < 1030.0 for f in firsts)
    assert max(firsts) - min(firsts) > 20  # spread, not lockstep
    p = Poller(0, 5, 10.0, random.Random(1), start=0.0)
    first = p.next_due
    assert not p.due(first - 0.01) and p.due(first)
    assert p.next_sequence(first) == 1 and p.next_due == pytest.approx(first + 10)
    # a late tick skips the missed polls instead of bursting
    assert p.next_sequence(first + 55) == 2 and p.next_due == pytest.approx(first + 60)
    assert p.next_sequence(reschedule=False) == 3 and p.next_due == pytest.approx(first + 60)
    p.reset(200.0, first_poll_in=3.0)
    assert p.sequence_number == 0 and p.next_due == 203.0 and p.next_sequence() == 1


def test_poller_with_zero_interval_never_polls() -> None:
    assert not Poller(2, 1, 0.0, random.Random(1)).due(1e9)


def test_sampler_rate_one_takes_every_packet_and_pool_wraps() -> None:
    s = Sampler(0, 1, 1, random.Random(1), sample_pool=0xFFFFFFF0)
    assert s.observe(32) == 32
    assert s.sample_pool == 16
    assert Sampler(0, 1, 0, random.Random(1)).observe(1000) == 0


@pytest.mark.parametrize("rate", [10, 400, 10000])
def test_sampler_takes_one_in_n_within_binomial_bounds(rate: int) -> None:
    s = Sampler(0, 1, rate, random.Random(rate))
    batches = [1, 7, 999, 20_000] * 190 + [8_670]
    packets = sum(batches)
    taken = sum(s.observe(n) for n in batches)
    assert s.sample_pool == packets == 4_000_000
    p = 1 / rate
    sigma = math.sqrt(packets * p * (1 - p))
    assert abs(taken - packets * p) < 5 * sigma


def test_sampler_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list[int]:
        s = Sampler(0, 1, 100, random.Random(seed))
        return [s.observe(n) for n in range(0, 3000, 7)]

    assert run(5) == run(5) != run(6)


def test_flow_sample_template_renders_what_the_codec_would_encode() -> None:
    header = bytes(range(64))
    records = (SampledHeader(1, 68, 4, header),)
    sampler = Sampler(0, 3, 400, random.Random(1), sample_pool=1234, drops=2)
    data = FlowSampleTemplate(records).render(sampler, 3, 9, output_format=1)
    assert bytes(data) == encode_sample(
        FlowSampleExpanded(1, 0, 3, 400, 1234, 2, 0, 3, 1, 9, records))
    assert FlowSampleTemplate(records).offset_of(header) > 40
    with pytest.raises(ValueError, match="not found"):
        FlowSampleTemplate(records).offset_of(b"\xff" * 8)
