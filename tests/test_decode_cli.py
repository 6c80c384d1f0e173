"""``sflowlab decode`` run as a real process: the bundled capture, written captures, stdin, UDP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sflowlab.agent_sim.packets import TCP_SYN, Packet
from sflowlab.codec import (
    CountersSampleExpanded,
    Datagram,
    FlowSample,
    HostCpu,
    IfCounters,
    SampledHeader,
    decode_datagram,
    encode_datagram,
)
from sflowlab.codec.pcap import PcapWriter, read_sflow

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sflowlab" / "data" / "sample.pcap"
HEADER = Packet("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2",
                src_port=40000, dst_port=80, tcp_flags=TCP_SYN, length=54).frame()


def decode(*args: str, stdin: Path | None = None) -> subprocess.CompletedProcess[str]:
    with open(stdin or "/dev/null", "rb") as source:
        return subprocess.run([sys.executable, "-m", "sflowlab.cli", "decode", *args],
                              cwd=ROOT, stdin=source, capture_output=True, text=True,
                              timeout=60, check=False)


def good_datagram(sequence: int) -> bytes:
    return encode_datagram(Datagram(5, "192.0.2.1", 7, sequence, 1000 * sequence, (
        FlowSample(sequence, 3, 256, 2560, 0, 3, 4, (SampledHeader(1, 44, 4, HEADER),)),
        CountersSampleExpanded(sequence, 2, 1, (HostCpu(0.5, cpu_num=2), IfCounters(3))),
    )))


def bad_datagram() -> bytes:
    data = bytearray(good_datagram(9))
    data[28 + 4 : 28 + 8] = (10_000).to_bytes(4, "big")  # first sample's length runs past the end
    return bytes(data)


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.pcap"
    with PcapWriter(path) as w:
        w.write(good_datagram(1), 1700000000.0, ("192.0.2.1", 50000))
        w.write(bad_datagram(), 1700000001.0, ("192.0.2.1", 50000))
        w.write(good_datagram(2), 1700000002.0, ("192.0.2.1", 50000))
    return path


def test_bundled_sample_decodes_completely() -> None:
    captured = list(read_sflow(SAMPLE))
    datagrams = [decode_datagram(c.payload) for c in captured]
    done = decode(str(SAMPLE))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout
    assert out.count("startDatagram ") == len(captured) >= 20
    assert out.count("startSample ") == sum(len(d.samples) for d in datagrams)
    agents = Counter(line.split()[1] for line in out.splitlines() if line.startswith("agent "))
    assert set(agents) == {"10.199.0.2", "10.199.1.10"}  # pmacct's sfprobe, hsflowd-like host
    for needle in ("record host_cpu", "record virt_cpu", "record if_counters",
                   "record extended_entities", "flow_keys.tcpdestinationport 8080",
                   "flow_keys.stack eth.ip.tcp", "sampling_rate 4"):
        assert needle in out


def test_json_lines_one_per_sample() -> None:
    done = decode("--json", str(SAMPLE))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    samples = [s for c in read_sflow(SAMPLE) for s in decode_datagram(c.payload).samples]
    assert len(rows) == len(samples)
    for row in rows:
        assert {"agent", "sub_agent", "datagram_sequence", "uptime_ms", "timestamp", "source",
                "sample", "enterprise", "format", "records"} <= set(row)
        assert all("record" in r for r in row["records"])
    pmacct = [r for r in rows if r["agent"] == "10.199.0.2" and r["sample"] == "flow_sample"]
    assert pmacct and {r["sampling_rate"] for r in pmacct} == {4}
    assert pmacct[0]["source"] == "10.199.0.2:6343"


def test_written_capture_with_a_bad_datagram(capture: Path) -> None:
    done = decode("--json", str(capture))
    assert done.returncode == 1
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["datagram_sequence"], r["sample"]) for r in rows] == [
        (1, "flow_sample"), (1, "counters_sample_expanded"),
        (2, "flow_sample"), (2, "counters_sample_expanded")]
    first = rows[0]
    assert (first["agent"], first["sub_agent"], first["uptime_ms"], first["timestamp"],
            first["source"]) == ("192.0.2.1", 7, 1000, 1700000000.0, "192.0.2.1:50000")
    (header,) = [r for r in first["records"] if r["record"] == "sampled_header"]
    assert header["flow_keys"]["ipsource"] == "10.0.0.1"
    assert header["flow_keys"]["tcpdestinationport"] == 80
    assert header["header"] == HEADER.hex()
    counters = rows[1]
    assert counters["data_source"] == "2.1"
    assert [r["record"] for r in counters["records"]] == ["host_cpu", "if_counters"]
    errors = done.stderr.splitlines()
    assert len(errors) == 1
    assert errors[0].startswith("sflowlab decode: datagram 1 from 192.0.2.1:50000: ")
    assert "offset" in errors[0] and "datagram/samples[0]" in errors[0]


def test_stdin_gives_the_same_text_as_the_file(capture: Path) -> None:
    from_file = decode(str(capture))
    from_stdin = decode("-", stdin=capture)
    assert from_file.returncode == from_stdin.returncode == 1
    assert from_stdin.stdout == from_file.stdout
    assert from_file.stdout.count("startDatagram ") == 2
    assert "agentSubId 7\n" in from_file.stdout and "record host_cpu\n" in from_file.stdout


def test_port_option_selects_the_udp_port(tmp_path: Path) -> None:
    path = tmp_path / "port.pcap"
    with PcapWriter(path) as w:
        w.write(good_datagram(1), 1.0, ("192.0.2.1", 50000), ("192.0.2.9", 6343))
        w.write(good_datagram(2), 2.0, ("192.0.2.1", 50000), ("192.0.2.9", 9999))
        w.write(b"\x12\x34\x01\x00" + bytes(30), 3.0, ("192.0.2.1", 5353), ("192.0.2.9", 53))
    found = decode(str(path))  # by default, sFlow on any port, what else there is skipped
    assert found.stdout.count("startDatagram ") == 2
    assert found.stderr == "sflowlab decode: sFlow found on UDP port 6343, 9999\n"
    assert found.returncode == 0
    assert decode("--port", "6343", str(path)).stdout.count("startDatagram ") == 1
    assert "packetSequenceNo 2\n" in decode("--port", "9999", str(path)).stdout
    every = decode("--port", "0", str(path))  # every UDP datagram, the DNS one refused
    assert (every.stdout.count("startDatagram "), every.returncode) == (2, 1)
    assert "unsupported sFlow version" in every.stderr


def test_recording_on_another_port_is_found_or_said(tmp_path: Path) -> None:
    """A recording of a collector on port 7000 decodes without --port; a capture with no
    sFlow says so and names the ports it holds, instead of printing nothing."""
    path = tmp_path / "rec.pcap"
    with PcapWriter(path) as w:
        for seq in (1, 2, 3):
            w.write(good_datagram(seq), float(seq), ("192.0.2.1", 50000), ("127.0.0.1", 7000))
    done = decode(str(path))
    assert done.stdout.count("startDatagram ") == 3
    assert "sFlow found on UDP port 7000" in done.stderr
    other = tmp_path / "dns.pcap"
    with PcapWriter(other) as w:
        w.write(b"\x12\x34\x01\x00" + bytes(30), 1.0, ("192.0.2.1", 5353), ("192.0.2.9", 53))
    done = decode(str(other))
    assert (done.returncode, done.stdout) == (0, "")
    assert "no sFlow v5 found (UDP destination ports: 53;" in done.stderr


def test_listen_decodes_live_datagrams_until_count() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sflowlab.cli", "decode", "--json", "--listen", "127.0.0.1:0",
         "--count", "2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        announced = proc.stderr.readline()
        assert announced.startswith("sflowlab decode: listening on UDP 127.0.0.1:")
        port = int(announced.rsplit(":", 1)[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for seq in (1, 2, 3):
                s.sendto(good_datagram(seq), ("127.0.0.1", port))
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["datagram_sequence"] for r in rows] == [1, 1, 2, 2]
    assert rows[0]["source"].startswith("127.0.0.1:")


@pytest.mark.parametrize(("content", "message"), [
    (None, "No such file or directory"),
    (b"root:x:0:0:root:/root:/bin/bash\n", "not a pcap or pcapng file"),
    (b"", "empty input"),
])
def test_unreadable_input_exits_2_with_one_line(tmp_path: Path, content: bytes | None,
                                                message: str) -> None:
    path = tmp_path / "input"
    if content is not None:
        path.write_bytes(content)
    done = decode(str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"sflowlab decode: cannot read {path}: ") and message in line


def test_truncated_capture_prints_what_precedes_then_exits_2(capture: Path) -> None:
    cut = capture.with_suffix(".cut")
    cut.write_bytes(capture.read_bytes()[:-20])
    done = decode("-", stdin=cut)
    assert done.returncode == 2
    assert done.stdout.count("startDatagram ") == 1  # the second datagram is the bad one
    assert "file truncated" in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr


def test_usage_errors() -> None:
    for args in ((), ("--listen", "6343", "x.pcap"), ("--count", "2", "x.pcap")):
        done = decode(*args)
        assert done.returncode == 2
        assert "usage:" in done.stderr
