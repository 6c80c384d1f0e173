"""``sflowlab agent`` run in-process: usage errors, a bad configuration, a short run recorded
with ``--pcap`` (this host's interfaces and /proc counters, no sampling, no Docker)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from sflowlab.cli import main
from sflowlab.codec import HostDescr, HostNetIo, IfCounters, decode_datagram
from sflowlab.codec.pcap import read_sflow


def test_without_a_destination_it_says_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["agent"])
    assert exit_.value.code == 2
    assert "give --collector HOST:PORT" in capsys.readouterr().err


def test_a_bad_config_is_named_and_refused(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("sampling = 400\npolling = 20\ncolector = 1\n")
    assert main(["agent", "--config", str(config), "--pcap", str(tmp_path / "x.pcap")]) == 2
    err = capsys.readouterr().err
    assert "agent.toml" in err and "unknown settings ['colector']" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="reads every link's counters as root would")
def test_a_short_run_records_the_hosts_counters(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    pcap = tmp_path / "agent.pcap"
    assert main(["agent", "--pcap", str(pcap), "--polling", "1", "--sampling", "0",
                 "--docker-url", "none", "--agent-ip", "192.0.2.7", "--duration", "2.5"]) == 0
    out = capsys.readouterr().out
    datagrams = [decode_datagram(c.payload) for c in read_sflow(str(pcap))]
    assert datagrams and {(d.agent_address, d.sub_agent_id) for d in datagrams} == {
        ("192.0.2.7", 100001)}  # no sampling: hsflowd's poll-only sub-agent
    assert f"datagrams {len(datagrams)}" in out
    records = [r for d in datagrams for s in d.samples for r in s.records]
    (descr,) = {r for r in records if isinstance(r, HostDescr)}
    assert descr.hostname == socket.gethostname()[:64] and descr.os_name == 2
    assert any(isinstance(r, HostNetIo) for r in records)
    polled = {r.if_index for r in records if isinstance(r, IfCounters)}
    assert polled and 1 not in polled  # every interface but loopback (ifIndex 1 here)
