"""The mirror agent's datagrams read by others: our codec, Wireshark's tshark (flow samples)
and pmacct's sfacctd, all from one run of ``sflowlab agent`` on a bridge lab in namespaces.

The agent sends to sfacctd (print plugin, renormalised by the sampling rate) and records the
same datagrams with ``--pcap``; A sends B a known UDP stream across the bridge.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mirror_helpers import A_IP, B_IP, BRIDGE, bridge_lab, wait_until

from sflowlab.codec import COUNTER_SAMPLES, FLOW_SAMPLES, Datagram, SampledHeader, decode_datagram
from sflowlab.codec.headers import decode_header
from sflowlab.codec.pcap import read_sflow
from sflowlab.lab.interop.netns import stop_process, unavailable_reason
from sflowlab.lab.interop.tshark import (
    expanded_samples,
    flow_sample_fields,
    our_flow_sample_fields,
    packet_layers,
)

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.slow]

RATE = 8
PORT = 5002
COUNT = 4000
PAYLOAD = 1000
SFACCTD_PORT = 16343


@dataclass(frozen=True)
class Run:
    pcap: Path
    datagrams: list[Datagram]
    sfacctd_csv: str
    sfacctd_log: str


def _log_says(log: Path, text: str, process: subprocess.Popen[Any]) -> bool:
    assert process.poll() is None, "sfacctd exited"
    return log.exists() and text in log.read_text()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("agent_interop")
    pcap, csv, log = tmp / "agent.pcap", tmp / "flows.csv", tmp / "sfacctd.log"
    (tmp / "sfacctd.conf").write_text(
        "daemonize: false\n"
        f"sfacctd_ip: 127.0.0.1\nsfacctd_port: {SFACCTD_PORT}\n"
        "plugins: print\naggregate: src_host, dst_host, proto, dst_port\n"
        f"print_output: csv\nprint_output_file: {csv}\nprint_output_file_append: true\n"
        "print_refresh_time: 1\nsfacctd_renormalize: true\n"
        f"logfile: {log}\n")
    with bridge_lab() as lab:
        lab.udp(lab.b, A_IP, PORT, 1, 10)  # the bridge learns both MACs
        lab.udp(lab.a, B_IP, PORT, 1, 10)
        sfacctd, running_log, flows = None, "", ""
        if shutil.which("sfacctd"):
            sfacctd = lab.host.popen(["sfacctd", "-f", str(tmp / "sfacctd.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_until("sfacctd to listen",
                       lambda: _log_says(log, "waiting for sFlow data", sfacctd), 15.0)
        agent = lab.host.popen(
            [sys.executable, "-m", "sflowlab.cli", "agent", "--collector",
             f"127.0.0.1:{SFACCTD_PORT}", "--pcap", str(pcap), "--interface", BRIDGE,
             "--sampling", str(RATE), "--polling", "1", "--docker-url", "none"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            with lab.b.socket() as sink:
                sink.bind((B_IP, PORT))
                wait_until("the agent's first datagram",
                           lambda: pcap.exists() and pcap.stat().st_size > 100, 10.0)
                before = lab.link_stats(BRIDGE)["rx_packets"]
                lab.udp(lab.a, B_IP, PORT, COUNT, PAYLOAD)
                wait_until("the stream to cross the bridge",  # then the tap holds its samples
                           lambda: lab.link_stats(BRIDGE)["rx_packets"] - before >= COUNT, 10.0)
            agent.terminate()  # the agent sends what its tap holds before it exits
            _, err = agent.communicate(timeout=10)
            assert agent.returncode == 0, err
            if sfacctd is not None:  # two cache purges after the agent's last datagram
                end = log.read_text().count("Purging cache - END")
                wait_until("sfacctd to write its cache twice",
                           lambda: log.read_text().count("Purging cache - END") >= end + 2, 10.0)
            # read while it runs: not its exit's complaints, nor a file it is writing at exit
            running_log = log.read_text() if log.exists() else ""
            flows = csv.read_text() if csv.exists() else ""
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.communicate()
            if sfacctd is not None:
                stop_process(sfacctd)
    yield Run(pcap, [decode_datagram(c.payload) for c in read_sflow(str(pcap))],
              flows, running_log)


def stream_samples(datagrams: list[Datagram]) -> list[Any]:
    """Flow samples of A -> B's stream."""
    out = []
    for dg in datagrams:
        for s in dg.samples:
            if isinstance(s, FLOW_SAMPLES):
                h = next(r for r in s.records if isinstance(r, SampledHeader))
                k = decode_header(1, h.header)
                if (k.get("ipsource"), k.get("ipdestination"),
                        k.get("udpdestinationport")) == (A_IP, B_IP, PORT):
                    out.append(s)
    return out


def test_our_codec_decodes_every_datagram(run: Run) -> None:
    assert run.datagrams and all(dg.agent_address == "127.0.0.1" for dg in run.datagrams)
    assert [dg.sequence_number for dg in run.datagrams] == list(
        range(1, len(run.datagrams) + 1))
    assert {dg.sub_agent_id for dg in run.datagrams} == {100000}
    samples = stream_samples(run.datagrams)
    assert COUNT / RATE / 2 < len(samples) < COUNT / RATE * 2


@pytest.mark.tshark
def test_tshark_reads_the_flow_samples_as_we_do(run: Run) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    theirs = packet_layers(run.pcap)
    assert len(theirs) == len(run.datagrams)
    checked = 0
    for dg, layers in zip(run.datagrams, theirs, strict=True):
        assert "_ws.malformed" not in layers
        sf = layers["sflow"]
        assert (sf["sflow_245.agent"], sf["sflow_245.sequence_number"],
                sf["sflow_245.numsamples"]) == (dg.agent_address, str(dg.sequence_number),
                                                str(len(dg.samples)))
        if any(isinstance(s, COUNTER_SAMPLES) for s in dg.samples):
            continue  # tshark 4.0 loses its place after the Host sFlow counter records
        dissected = expanded_samples(sf)
        assert len(dissected) == len(dg.samples)
        for s, t in zip(dg.samples, dissected, strict=True):
            assert flow_sample_fields(t) == our_flow_sample_fields(s)
            header = next(r for r in s.records if isinstance(r, SampledHeader))
            raw = t["Raw packet header"]
            assert raw["sflow_245.header.frame_length"] == str(header.frame_length)
            keys = decode_header(1, header.header)
            tree = raw["sflow_245.header_tree"]
            if "udp" in tree:
                assert (tree["ip"]["ip.src"], tree["ip"]["ip.dst"], tree["udp"]["udp.dstport"]) \
                    == (keys["ipsource"], keys["ipdestination"], str(keys["udpdestinationport"]))
            checked += 1
    assert checked >= COUNT / RATE / 4


@pytest.mark.pmacct
def test_sfacctd_counts_the_stream_as_we_do(run: Run) -> None:
    if shutil.which("sfacctd") is None:
        pytest.skip("pmacct's sfacctd is not installed")
    assert "ERROR" not in run.sfacctd_log, run.sfacctd_log
    rows = [line.split(",") for line in run.sfacctd_csv.splitlines()]
    header = next(r for r in rows if r[0] == "SRC_IP")
    col = {name: i for i, name in enumerate(header)}
    ours = [r for r in rows if r[0] != "SRC_IP" and (r[col["SRC_IP"]], r[col["DST_IP"]],
                                                      r[col["DST_PORT"]]) == (A_IP, B_IP,
                                                                              str(PORT))]
    samples = stream_samples(run.datagrams)
    assert sum(int(r[col["PACKETS"]]) for r in ours) == sum(s.sampling_rate for s in samples)
    assert sum(int(r[col["BYTES"]]) for r in ours) == sum(
        s.sampling_rate * next(r for r in s.records if isinstance(r, SampledHeader)).frame_length
        for s in samples)
