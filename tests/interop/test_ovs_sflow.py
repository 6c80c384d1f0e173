"""Open vSwitch's sFlow agent (a real switch) sending to our collector and read by our codec.

A userspace-datapath bridge (``sflowlab.lab.interop.ovs``) joins two host namespaces; its sFlow agent
is pointed, with ``ovs-vsctl``, at the collector subprocess (``sflowlab collector``) and at a
plain UDP socket this test reads (OVS sends every datagram to each target). The first host
sends ``COUNT`` UDP datagrams to the second at a steady pace. The module fixture runs this once
and keeps what was seen; each test checks one side of it: the collector's agents, its interface
metrics and flows, our codec against the switch's own counters, and our codec against tshark.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sflowlab.codec import (
    CountersSample,
    Datagram,
    FlowSample,
    IfCounters,
    OfPort,
    OvsDpStats,
    PortName,
    SampledHeader,
    decode_datagram,
    encode_datagram,
)
from sflowlab.codec.headers import decode_header
from sflowlab.codec.pcap import PcapWriter
from sflowlab.lab.interop.ovs import OvsLab, ovs_lab, unavailable_reason

sys.path.insert(0, str(Path(__file__).parents[1] / "collector"))
from collector_helpers import Collector, start, wait_for

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.ovs, pytest.mark.slow]

HOSTS = ("10.198.0.1/24", "10.198.0.2/24")
COUNT, PAYLOAD, PPS = 4000, 1000, 1000  # datagrams from host 0 to host 1: 4 s at 1000/s
FRAME = 14 + 20 + 8 + PAYLOAD  # Ethernet + IPv4 + UDP, as the ports count it
SAMPLING, POLLING = 8, 1
DPORT = 9999
AGENT = "127.0.0.1"  # OVS's agent address for agent=lo
FLOW_KEYS = "ipsource,ipdestination,inputifindex,outputifindex"
LOSS_SLACK = COUNT // 100  # datagrams the userspace datapath may drop on a loaded machine
ARP_SLACK = 1000  # bytes a port may carry beyond the datagrams (ARP, 42-60 bytes a frame)
SOURCES = len(HOSTS) + 2  # counter samples a poll: the ports, the bridge's own port, OVS itself
EXPECTED_RATE = PPS * FRAME  # bytes/s into port 0 and out of port 1 while the traffic runs
SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>: root may exceed rmem_max


@dataclass
class Run:
    """What one run of the lab showed: the lab, the traffic, the collector, the capture."""

    lab: OvsLab
    received: int
    agents: dict[str, Any]
    rates: dict[str, list[float]]  # "ifinoctets:1793" -> the collector's values during traffic
    active: list[dict[str, Any]]  # /activeflows during traffic
    logged: list[dict[str, Any]]  # /flows once the flow ended
    captured: list[bytes] = field(repr=False)
    datapath_id: int = 0  # the bridge's, as ovs-vsctl reports it
    ofports: dict[int, int] = field(default_factory=dict)  # ifIndex -> OpenFlow port number

    def decoded(self) -> list[Datagram]:
        return [decode_datagram(d) for d in self.captured]

    def flow_key(self) -> str:
        """The datagrams' key in the ``pair`` flow (FLOW_KEYS)."""
        first, second = self.lab.ports
        return f"{first.address},{second.address},{first.if_index},{second.if_index}"


def send(lab: OvsLab, done: threading.Event) -> None:
    """``COUNT`` datagrams from host 0 to host 1, paced at ``PPS``."""
    try:
        with lab.ports[0].host.socket() as tx:
            start_t = time.monotonic()
            for i in range(COUNT):
                time.sleep(max(0.0, start_t + i / PPS - time.monotonic()))
                tx.sendto(b"x" * PAYLOAD, (lab.ports[1].address, DPORT))
    finally:
        done.set()


def receive(rx: socket.socket, until: threading.Event) -> int:
    """Datagrams arriving at host 1 until ``until`` is set and the socket is idle."""
    count = 0
    rx.settimeout(0.5)
    while True:
        try:
            rx.recv(65535)
            count += 1
        except TimeoutError:
            if until.is_set():
                return count


def watch(collector: Collector, done: threading.Event
          ) -> tuple[dict[str, list[float]], list[dict[str, Any]]]:
    """The collector's port rates and active flows, polled while the traffic runs."""
    rates: dict[str, list[float]] = {}
    active: list[dict[str, Any]] = []
    while not done.wait(0.25):
        for entry in collector.get(f"/dump/{AGENT}/ifinoctets,ifoutoctets/json"):
            rates.setdefault(f"{entry['metricName']}:{entry['dataSource']}", []).append(
                float(entry["metricValue"]))
        active = collector.get(f"/activeflows/{AGENT}/pair/json") or active
    return rates, active


def counter_samples(collector: Collector) -> int:
    return int(collector.agent(AGENT).get("sFlowCounterSamples", 0))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("ovs")
    collector = start(tmp)
    try:
        status, _ = collector.send("PUT", "/flow/pair/json",
                                   {"keys": FLOW_KEYS, "value": "bytes", "log": True, "t": 1})
        assert status in (200, 204)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as capture, \
                ovs_lab(tmp, HOSTS) as lab:
            capture.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
            capture.bind(("127.0.0.1", 0))
            lab.set_sflow([f"127.0.0.1:{collector.sflow_port}",
                           f"127.0.0.1:{capture.getsockname()[1]}"],
                          agent="lo", sampling=SAMPLING, polling=POLLING)
            # every port polled twice before the traffic: its counters' baseline, and a rate
            wait_for(lambda: counter_samples(collector) >= 2 * SOURCES, 15,
                     f"OVS counter samples at the collector\n{lab.log_text()}")
            datapath_id = int(lab.vsctl("get", "Bridge", lab.bridge, "datapath_id")
                              .strip().strip('"'), 16)
            ofports = {p.if_index: int(lab.vsctl("get", "Interface", p.name, "ofport"))
                       for p in lab.ports}
            with lab.ports[1].host.socket() as rx:
                rx.bind((lab.ports[1].address, DPORT))
                done = threading.Event()
                sender = threading.Thread(target=send, args=(lab, done))
                result: list[int] = []
                receiver = threading.Thread(target=lambda: result.append(receive(rx, done)))
                receiver.start()
                sender.start()
                rates, active = watch(collector, done)
                sender.join()
                receiver.join()
            polled = counter_samples(collector)  # two more polls: counters after the traffic
            wait_for(lambda: counter_samples(collector) >= polled + 2 * SOURCES, 15,
                     "OVS counter samples after the traffic")
            logged = wait_for(lambda: collector.get("/flows/json?name=pair"), 15,
                              "the logged flow to end")
            lab.clear_sflow()
            captured = []
            capture.settimeout(1.0)
            with contextlib.suppress(TimeoutError):
                while True:
                    captured.append(capture.recv(65535))
        wait_for(lambda: collector.agent(AGENT)["sFlowDatagramsReceived"] >= len(captured), 10,
                 "the collector to read every datagram OVS sent")
        yield Run(lab, result[0], collector.get("/agents/json"), rates, active, logged,
                  captured, datapath_id, ofports)
    finally:
        collector.stop()


def flow_samples(datagrams: list[Datagram]) -> list[FlowSample]:
    return [s for dg in datagrams for s in dg.samples if isinstance(s, FlowSample)]


def if_counters(datagrams: list[Datagram], if_index: int) -> list[IfCounters]:
    """A port's interface counters, oldest first."""
    return [r for dg in datagrams for s in dg.samples if isinstance(s, CountersSample)
            for r in s.records if isinstance(r, IfCounters) and r.if_index == if_index]


def sample_key(sample: FlowSample) -> str | None:
    """The sample's key in the ``pair`` flow, from its sampled header as the collector reads it."""
    (header,) = [r for r in sample.records if isinstance(r, SampledHeader)]
    keys = decode_header(header.header_protocol, header.header)
    if "ipsource" not in keys:
        return None
    return f"{keys['ipsource']},{keys['ipdestination']},{sample.input},{sample.output}"


def test_the_traffic_crossed_the_switch(run: Run) -> None:
    """All, or on a loaded machine nearly all: the netdev datapath polls its ports from one
    thread and may drop a few frames when it is not scheduled in time."""
    assert COUNT - LOSS_SLACK <= run.received <= COUNT


def test_the_collector_lists_the_switch_with_every_datagram_and_no_errors(run: Run) -> None:
    assert list(run.agents) == [AGENT]
    agent = run.agents[AGENT]
    decoded = run.decoded()
    counters = [s for dg in decoded for s in dg.samples if isinstance(s, CountersSample)]
    assert agent["sFlowDatagramSource"] == ["127.0.0.1"]
    assert agent["sFlowDatagramsReceived"] == len(run.captured)
    assert agent["sFlowBytesReceived"] == sum(map(len, run.captured))
    assert agent["sFlowFlowSamples"] == len(flow_samples(decoded))
    assert agent["sFlowCounterSamples"] == len(counters)
    assert [agent[f"sFlow{what}"] for what in (
        "ParseErrors", "BadSamples", "DatagramsLost", "DatagramsOutOfOrder", "FlowLostSamples",
        "CounterLostSamples")] == [0] * 6


def test_the_port_counters_become_interface_metrics(run: Run) -> None:
    """Port 0 takes the datagrams in, port 1 sends them out, at PPS x FRAME bytes/s (OVS polls
    every second; the highest rate seen is that of a window inside the traffic); the other
    directions carry ARP only."""
    first, second = (p.if_index for p in run.lab.ports)
    for metric in (f"ifinoctets:{first}", f"ifoutoctets:{second}"):
        assert 0.9 * EXPECTED_RATE <= max(run.rates[metric]) <= 1.1 * EXPECTED_RATE, metric
    for metric in (f"ifoutoctets:{first}", f"ifinoctets:{second}"):
        assert max(run.rates[metric]) < ARP_SLACK, metric


def test_flow_samples_give_the_hosts_flow_scaled_by_the_sampling_rate(run: Run) -> None:
    """While the traffic runs the flow's rate is about PPS x frame_length (a loose bound: t is
    1 s, so it averages about 125 samples). The flow's total (logged when it ended) is the
    sampled frames' lengths times the sampling rate: exactly what our codec reads in the
    capture, and the bytes sent within 25 % (1 in 8 of 4000 frames: 500 samples expected, a
    standard deviation of 4.3 %)."""
    key = run.flow_key()
    (active,) = [flow for flow in run.active if flow["key"] == key]
    assert 0.5 * PPS * (FRAME + 4) <= active["value"] <= 1.5 * PPS * (FRAME + 4)  # bytes/s
    (logged,) = run.logged
    assert (logged["agent"], logged["flowKeys"]) == (AGENT, key)
    ours = [s for s in flow_samples(run.decoded()) if sample_key(s) == key]
    assert {s.sampling_rate for s in ours} == {SAMPLING}
    total = sum(s.sampling_rate * r.frame_length for s in ours for r in s.records
                if isinstance(r, SampledHeader))
    assert logged["value"] == total
    sent = COUNT * (FRAME + 4)  # OVS's frame_length counts the 4-byte FCS it stripped
    assert 0.75 * sent <= total <= 1.25 * sent


def test_our_codec_reads_the_switch_s_datagrams_and_counters(run: Run) -> None:
    """Every datagram decodes, re-encodes byte for byte, and its port counters account for
    the datagrams (their deltas over the run, with room for ARP): at least those host 1
    received crossed both ports, at most those host 0 sent."""
    decoded = run.decoded()
    assert [encode_datagram(dg) for dg in decoded] == run.captured
    assert {dg.agent_address for dg in decoded} == {AGENT}
    first_seq = decoded[0].sequence_number
    assert [dg.sequence_number for dg in decoded] == list(
        range(first_seq, first_seq + len(decoded)))
    first, second = run.lab.ports
    for port, inward in ((first, True), (second, False)):
        polls = if_counters(decoded, port.if_index)
        octets = [p.if_in_octets if inward else p.if_out_octets for p in polls]
        packets = [p.if_in_ucast_pkts if inward else p.if_out_ucast_pkts for p in polls]
        assert run.received * FRAME <= octets[-1] - octets[0] <= COUNT * FRAME + ARP_SLACK
        assert run.received <= packets[-1] - packets[0] <= COUNT + ARP_SLACK // 42
    names = {r.name for dg in decoded for s in dg.samples if isinstance(s, CountersSample)
             for r in s.records if isinstance(r, PortName)}
    assert names == {run.lab.bridge, first.name, second.name}


def test_open_vswitch_structures_decode_to_what_ovs_reports(run: Run) -> None:
    """of_port (1004) beside each port's counters names ovs-vsctl's datapath id and OpenFlow
    port; ovs_dp_stats (2207) in the agent's own sample counts a lookup per datagram."""
    decoded = run.decoded()
    samples = [s for dg in decoded for s in dg.samples if isinstance(s, CountersSample)]
    seen = {(r.if_index, o.datapath_id, o.port_no) for s in samples
            for r in s.records if isinstance(r, IfCounters)
            for o in s.records if isinstance(o, OfPort)}
    assert {(i, run.datapath_id, port) for i, port in run.ofports.items()} <= seen
    stats = [r for s in samples for r in s.records if isinstance(r, OvsDpStats)]
    lookups = [r.hits + r.misses for r in stats]
    assert run.received <= lookups[-1] - lookups[0] <= COUNT + ARP_SLACK // 42
    assert stats[-1].lost == 0 and stats[-1].flows >= 1


def dissect(tshark: str, pcap: Path, fields: list[str]) -> list[dict[str, list[str]]]:
    """Per frame, every occurrence of each field as tshark shows it."""
    command = [tshark, "-n", "-r", str(pcap), "-T", "fields", "-E", "occurrence=a",
               "-E", "aggregator=|", "-E", "separator=/t"]
    for name in fields:
        command += ["-e", name]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    return [dict(zip(fields, (v.split("|") if v else [] for v in line.split("\t")), strict=True))
            for line in out.splitlines()]


def test_tshark_sees_what_our_codec_decodes(run: Run, tshark: str, tmp_path: Path) -> None:
    """Datagram headers agree everywhere, flow samples (rate, input, output) and counters
    samples' sources as far as tshark reads. tshark 4.0 stops at the first counter record it
    does not know (it does not skip them by their length), and OVS puts such records before
    the interface counters in every counters sample (app_resources 2203 and OVS datapath 2207
    for the agent itself; OpenFlow port 1004 for each port): every datagram it calls malformed
    has counters samples, and what it read of those is a prefix of ours."""
    pcap = tmp_path / "ovs.pcap"
    with PcapWriter(pcap) as writer:
        for i, payload in enumerate(run.captured):
            writer.write(payload, 1_700_000_000.0 + i, src=("127.0.0.1", 50000))
    samples = {"sflow.flow_sample.sampling_rate": lambda s: [s.sampling_rate],
               "sflow.flow_sample.input_interface": lambda s: [s.input],
               "sflow.flow_sample.output_interface": lambda s: [f"0x{s.output:08x}"]}
    sources = "sflow.counters_sample.source_id_index"
    headers = ["sflow_245.agent", "sflow_245.sequence_number", "sflow_245.numsamples"]
    rows = dissect(tshark, pcap, ["_ws.malformed", *headers, *samples, sources])
    decoded = run.decoded()
    assert len(rows) == len(decoded)
    compared = 0
    for row, dg in zip(rows, decoded, strict=True):
        assert [row[h] for h in headers] == [
            [dg.agent_address], [str(dg.sequence_number)], [str(len(dg.samples))]]
        flows = [s for s in dg.samples if isinstance(s, FlowSample)]
        counters = [s for s in dg.samples if isinstance(s, CountersSample)]
        assert counters or not row["_ws.malformed"]
        ours = {name: [str(v) for s in flows for v in get(s)] for name, get in samples.items()}
        ours[sources] = [str(s.source_id & 0xFFFFFF) for s in counters]
        for name, values in ours.items():
            theirs = row[name]
            assert theirs == (values[:len(theirs)] if counters else values), (dg, name)
            compared += len(theirs)
    assert compared >= 3 * COUNT // SAMPLING * 0.75  # most flow samples were read by both
