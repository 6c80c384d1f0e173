"""``sflowlab agent`` inside a namespace with a bridge: its interface counters are the kernel's,
and a known transfer across the bridge is estimated from its flow samples within binomial bounds.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mirror_helpers import (
    A_IP,
    B_IP,
    BRIDGE,
    BridgeLab,
    Received,
    bridge_lab,
    running_agent,
    wait_until,
)

from sflowlab.codec import (
    COUNTER_SAMPLES,
    FLOW_SAMPLES,
    IfCounters,
    PortName,
    SampledHeader,
)
from sflowlab.codec.headers import decode_header
from sflowlab.lab.interop.netns import unavailable_reason

pytestmark = [pytest.mark.root, pytest.mark.netns]

RATE = 64
PAYLOAD = 1400
FRAME = 14 + 20 + 8 + PAYLOAD
TRANSFER = 20_000_000
PORT = 5001


@pytest.fixture
def lab() -> Iterator[BridgeLab]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with bridge_lab() as made:
        # both MACs learned by the bridge before the agent reads its FDB
        made.udp(made.b, A_IP, PORT, 1, 10)
        made.udp(made.a, B_IP, PORT, 1, 10)
        yield made


def if_counters(received: Received, index: int) -> list[IfCounters]:
    return [r for _, s in received.samples(COUNTER_SAMPLES) if s.source_id_index == index
            and s.source_id_type == 0 for r in s.records if isinstance(r, IfCounters)]


def test_counters_equal_the_kernels_and_a_transfer_is_estimated_within_binomial_bounds(
        lab: BridgeLab) -> None:
    pa, pb, br = lab.index("pa"), lab.index("pb"), lab.index(BRIDGE)
    with lab.b.socket() as sink, running_agent(lab.host, "--interface", BRIDGE, "--sampling",
                                                str(RATE), "--polling", "1",
                                                "--docker-url", "none") as agent:
        sink.bind((B_IP, PORT))
        agent.until("a counter sample of every port",
                    lambda r: all(if_counters(r, i) for i in (pa, pb, br)), 10.0)
        before = lab.link_stats("pa")
        lab.udp(lab.a, B_IP, PORT, math.ceil(TRANSFER / PAYLOAD), PAYLOAD)
        after = {name: lab.link_stats(name) for name in ("pa", "pb", BRIDGE)}
        first = len(agent.received.items)

        def settled(r: Received) -> bool:
            late = Received(r.items[first:])
            return all(any(c.if_in_ucast_pkts == after[name]["rx_packets"]
                           for c in if_counters(late, index))
                       for name, index in (("pa", pa), ("pb", pb), (BRIDGE, br)))

        agent.until("counter samples equal to the kernel's after the transfer", settled, 2.5)
        status, out, err = agent.stop()
    assert status == 0, err
    assert f"sampled {BRIDGE}: 1-in-{RATE}" in out
    assert lab.promiscuity(BRIDGE) == 0  # the tap's membership ended with the agent

    # counters: each sample is the kernel's at some moment; after the transfer, exactly its end
    for name, index in (("pa", pa), ("pb", pb), (BRIDGE, br)):
        seen = if_counters(agent.received, index)
        octets = [c.if_in_octets for c in seen]
        assert octets == sorted(octets)
        last = seen[-1]
        k = after[name]
        assert (last.if_in_octets, last.if_in_ucast_pkts, last.if_out_octets,
                last.if_out_ucast_pkts, last.if_in_discards, last.if_out_discards) == (
            k["rx_bytes"], k["rx_packets"], k["tx_bytes"], k["tx_packets"], k["rx_dropped"],
            k["tx_dropped"]), name
        names = {r.name for _, s in agent.received.samples(COUNTER_SAMPLES)
                 if s.source_id_index == index for r in s.records if isinstance(r, PortName)}
        assert names == {name}
    assert if_counters(agent.received, br)[-1].if_promiscuous_mode == 1

    # flows: A -> B frames entered the bridge at pa; samples of them within binomial bounds
    frames = after["pa"]["rx_packets"] - before["rx_packets"]
    truth = after["pa"]["rx_bytes"] - before["rx_bytes"] + 4 * frames
    assert frames >= TRANSFER // PAYLOAD * 0.9 and truth == frames * (FRAME + 4)
    flows = [s for _, s in agent.received.samples(FLOW_SAMPLES)]
    assert flows, "no flow samples"
    seqs = [s.sequence_number for s in flows]
    assert seqs == list(range(1, len(flows) + 1))
    ours = []
    for s in flows:
        header = next(r for r in s.records if isinstance(r, SampledHeader))
        keys = decode_header(1, header.header)
        if (keys.get("ipsource"), keys.get("ipdestination"), keys.get("udpdestinationport")) \
                == (A_IP, B_IP, PORT) and header.frame_length == FRAME + 4:
            ours.append(s)
            assert (s.source_id_type, s.source_id_index, s.sampling_rate, s.drops) == (
                0, br, RATE, 0)
            assert (s.input_value, s.output_format, s.output_value) == (pa, 0, pb)
    expected = frames / RATE
    sigma = math.sqrt(frames * (1 / RATE) * (1 - 1 / RATE))
    estimate = sum(s.sampling_rate * FRAME + s.sampling_rate * 4 for s in ours)
    assert abs(len(ours) - expected) <= 4 * sigma, (len(ours), expected, sigma)
    assert abs(estimate - truth) <= 4 * sigma * RATE * (FRAME + 4)
    pools = [s.sample_pool for s in flows]
    assert pools == sorted(pools) and pools[-1] <= after[BRIDGE]["rx_packets"] + \
        after[BRIDGE]["tx_packets"]


def test_links_that_come_and_go_are_polled_and_a_late_bridge_is_sampled(
        lab: BridgeLab, tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('sampling = 4\npolling = 1\ndocker = false\n[[pcap]]\ndev = "br1"\n')
    with running_agent(lab.host, "--config", str(config)) as agent:
        agent.until("the agent's first datagram", lambda r: r.items, 10.0)
        lab.host.ip("link", "add", "br1", "type", "bridge")
        lab.host.ip("link", "add", "pc", "type", "veth", "peer", "name", "pd")
        lab.host.ip("link", "set", "pc", "master", "br1")
        for name in ("pc", "pd", "br1"):
            lab.host.ip("link", "set", name, "up")
        pc, br1 = lab.index("pc"), lab.index("br1")

        def promiscuous_br1(r: Received) -> bool:
            return any(c.if_promiscuous_mode for c in if_counters(r, br1))

        agent.until("samples of the new veth", lambda r: if_counters(r, pc), 3.0)
        agent.until("br1 sampled (promiscuous)", promiscuous_br1, 3.0)
        lab.host.ip("link", "del", "pc")
        gone = len(agent.received.items)
        agent.until("two polls of br1 after pc went",
                    lambda r: len(if_counters(Received(r.items[gone:]), br1)) >= 2, 4.0)
        assert not if_counters(Received(agent.received.items[gone + 1:]), pc)
        status, out, err = agent.stop()
    assert status == 0, err
    assert "sampled br1: 1-in-4" in out


def test_at_rate_1_every_frame_is_sampled(lab: BridgeLab) -> None:
    """No filter at 1-in-1 (``rand % 1`` is never 1): each frame of the stream is a sample, on
    the bridge and on a port sampled beside it (a plain interface: input itself, output 0)."""
    br, pa, pb = lab.index(BRIDGE), lab.index("pa"), lab.index("pb")
    with lab.b.socket() as sink, running_agent(lab.host, "--interface", BRIDGE, "--interface",
                                                "pa", "--sampling", "1", "--polling", "1",
                                                "--docker-url", "none") as agent:
        sink.bind((B_IP, PORT))
        agent.until("the agent's first datagram", lambda r: r.items, 10.0)
        before = lab.link_stats(BRIDGE)["rx_packets"]
        lab.udp(lab.a, B_IP, PORT, 300, 100)
        wait_until("the stream to cross the bridge",
                   lambda: lab.link_stats(BRIDGE)["rx_packets"] - before >= 300, 10.0)
        status, out, err = agent.stop()
    assert status == 0, err
    stream = [s for _, s in agent.received.samples(FLOW_SAMPLES)
              if decode_header(1, next(r for r in s.records if isinstance(r, SampledHeader))
                               .header).get("udpdestinationport") == PORT]
    assert len(stream) == 600
    assert sum(s.source_id_index == pa for s in stream) == 300
    summary = re.search(rf"sampled {BRIDGE}: 1-in-1, (\d+) samples of (\d+) frames, 0 dropped",
                        out)
    assert summary and summary[1] == summary[2], out  # every frame the bridge carried
    assert {(s.sampling_rate, s.source_id_index, s.drops, s.input_value, s.output_value)
            for s in stream} == {(1, br, 0, pa, pb), (1, pa, 0, pa, 0)}
