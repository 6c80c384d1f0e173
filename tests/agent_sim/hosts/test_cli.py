"""``sflowlab agents``: options or a lab file, pcap and UDP sinks, progress and summary."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from sflowlab.cli import main
from sflowlab.codec import decode_datagram
from sflowlab.codec.pcap import read_sflow


def test_simulated_run_writes_a_pcap_and_summarises(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "out.pcap"
    assert main(["agents", "--simulated", "--duration", "30", "--hosts", "2",
                 "--containers", "3", "--switches", "3", "--sampling", "50", "--polling", "5",
                 "--seed", "4", "--pcap", str(path)]) == 0
    out, err = capsys.readouterr()
    got = [decode_datagram(c.payload) for c in read_sflow(str(path))]
    assert len(got) > 10
    assert f"datagrams: {len(got)}" in out
    assert "agents: 5 (2 hosts, 3 switches), containers: 6" in out
    assert "simulated: 30.0 s" in out and "flow" in out and "counters" in out
    assert "\r" not in err  # not a terminal: no in-place redraw


def test_collectors_receive_the_datagrams(tmp_path: Path) -> None:
    socks = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        socks.append(s)
    lab = tmp_path / "lab.json"
    lab.write_text(json.dumps({"hosts": 1, "services": [{"name": "web", "replicas": 1,
                                                         "rps": 20}]}))
    args = ["agents", "--lab", str(lab), "--simulated", "--duration", "15"]
    for s in socks:
        args += ["--collector", f"127.0.0.1:{s.getsockname()[1]}"]
    assert main(args) == 0
    for s in socks:
        s.settimeout(5)
        first = decode_datagram(s.recv(65535))
        assert first.agent_address == "10.0.0.1" and first.sequence_number == 1
        s.close()


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["agents", "--simulated", "--duration", "5"])
    assert e.value.code == 2 and "--collector" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["agents", "--simulated", "--pcap", str(tmp_path / "x.pcap")])
    bad = tmp_path / "bad.toml"
    bad.write_text("hosts = 'many'\nfoo = 1\n")
    assert main(["agents", "--lab", str(bad), "--simulated", "--duration", "5",
                 "--pcap", str(tmp_path / "y.pcap")]) == 2
    assert "unknown keys ['foo']" in capsys.readouterr().err


def test_real_time_run_ticks_on_the_wall_clock(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rt.pcap"
    assert main(["agents", "--duration", "1.2", "--step", "0.4", "--hosts", "1",
                 "--containers", "1", "--pcap", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ticks: 3" in out
    stamps = [c.timestamp for c in read_sflow(str(path))]
    assert stamps and stamps[-1] - stamps[0] <= 1.3
