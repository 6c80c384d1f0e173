"""A simulated lab's pcap read by tshark 4.0: datagram headers and flow samples agree with us.

Debian's tshark 4.0 does not know the Host sFlow counter records (2000-2104) and, misreading
them, loses its place in the rest of the datagram: only the first counter sample of a datagram
is compared (at the sample level). Flow samples are compared down to the Ethernet, IPv4 and TCP
headers it dissects inside the sampled_header (it skips extended_entities, unknown to it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sflowlab.agent_sim.driver import run_simulated
from sflowlab.agent_sim.simulation import Lab, LabSpec
from sflowlab.agent_sim.sinks import PcapSink
from sflowlab.clock import SimClock
from sflowlab.codec import COUNTER_SAMPLES, FLOW_SAMPLES, SampledHeader, decode_datagram
from sflowlab.codec.headers import decode_header
from sflowlab.codec.pcap import read_sflow
from sflowlab.lab.interop.tshark import (
    expanded_samples,
    flow_sample_fields,
    our_flow_sample_fields,
    packet_layers,
)

pytestmark = pytest.mark.tshark


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    path = tmp_path_factory.mktemp("tshark") / "lab.pcap"
    with PcapSink(str(path)) as sink:
        clock = SimClock(1_700_000_000.0)
        lab = Lab(LabSpec(hosts=2, containers=2, sampling=40, polling_s=5.0), sink, clock.now())
        run_simulated(lab, clock, 20.0)
    return path


def _tshark(path: Path) -> list[dict[str, Any]]:
    return [layers["sflow"] for layers in packet_layers(path)]


def test_tshark_reads_datagram_headers_and_flow_samples_as_we_do(capture: Path) -> None:
    ours = [decode_datagram(c.payload) for c in read_sflow(str(capture))]
    theirs = _tshark(capture)
    assert len(ours) == len(theirs) > 10
    flows_checked = 0
    for dg, sf in zip(ours, theirs, strict=True):
        assert (sf["sflow_245.version"], sf["sflow_245.agent"], sf["sflow_245.sub_agent_id"],
                sf["sflow_245.sequence_number"], sf["sflow_245.sysuptime"],
                sf["sflow_245.numsamples"]) == (
            "5", dg.agent_address, str(dg.sub_agent_id), str(dg.sequence_number),
            str(dg.uptime_ms), str(len(dg.samples)))
        dissected = expanded_samples(sf)
        if isinstance(dg.samples[0], COUNTER_SAMPLES):
            t = dissected[0]
            assert (t["sflow.counters_sample.sequence_number"],
                    t["sflow.counters_sample.source_id_type"],
                    t["sflow.counters_sample.source_id_index"]) == (
                str(dg.samples[0].sequence_number), str(dg.samples[0].source_id_type),
                str(dg.samples[0].source_id_index))
        if any(isinstance(s, COUNTER_SAMPLES) for s in dg.samples):
            continue  # tshark 4.0 misreads Host sFlow counter records and loses its place
        assert len(dissected) == len(dg.samples)
        for s, t in zip(dg.samples, dissected, strict=True):
            assert isinstance(s, FLOW_SAMPLES)
            assert flow_sample_fields(t) == our_flow_sample_fields(s)
            header = next(r for r in s.records if isinstance(r, SampledHeader))
            raw = t["Raw packet header"]
            assert raw["sflow_245.header.frame_length"] == str(header.frame_length)
            tree = raw["sflow_245.header_tree"]
            keys = decode_header(1, header.header)
            assert (tree["ip"]["ip.src"], tree["ip"]["ip.dst"], tree["tcp"]["tcp.srcport"],
                    tree["tcp"]["tcp.dstport"]) == (
                keys["ipsource"], keys["ipdestination"], str(keys["tcpsourceport"]),
                str(keys["tcpdestinationport"]))
            assert tree["ip"]["ip.checksum.status"] in ("2", "1")  # unverified or good
            flows_checked += 1
    assert flows_checked > 100


def test_tshark_validates_the_sampled_ip_header_checksums(capture: Path) -> None:
    out = subprocess.run(
        ["tshark", "-r", str(capture), "-o", "ip.check_checksum:TRUE", "-T", "fields",
         "-e", "ip.checksum.status"], capture_output=True, check=True, timeout=120,
        text=True).stdout
    statuses = [s for line in out.split() for s in line.split(",")]
    assert len(statuses) > 100 and set(statuses) == {"1"}  # 1: good
