"""``--record-dir`` and ``--replay`` when a collector is killed: what was received is on disk,
and the capture it leaves (cut inside a record) replays up to the cut."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from collector_helpers import counters, datagram, recorded, start, wait_for

from sflowlab.codec import IfCounters
from sflowlab.codec.pcap import PcapWriter


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "2-workers"])
def test_recording_survives_kill_9(tmp_path: Path, workers: int) -> None:
    """Five datagrams, then kill -9: the five are in the file (flushed per batch)."""
    rec = tmp_path / "rec"
    c = start(tmp_path, "--record-dir", str(rec), "--workers", str(workers))
    sent = [datagram("10.31.0.1", s, s, [counters(s, 0, 1, IfCounters(1))]) for s in range(1, 6)]
    try:
        c.udp(*sent)
        wait_for(lambda: c.agent("10.31.0.1").get("sFlowDatagramsReceived") == 5,
                 what="the datagrams")
        wait_for(lambda: len(recorded(rec)) == 5, 5, "the datagrams on disk")
    finally:
        c.proc.send_signal(signal.SIGKILL)
        c.proc.wait(timeout=10)
    assert recorded(rec) == sent


def test_replay_reads_a_cut_capture_up_to_the_cut(tmp_path: Path) -> None:
    agent = "10.31.0.2"
    pcap = tmp_path / "cut.pcap"
    with PcapWriter(pcap) as w:
        for i in range(3):
            w.write(datagram(agent, i + 1, i * 30_000, [counters(i + 1, 0, 2, IfCounters(2))]),
                    1_700_000_000 + 30 * i, src=(agent, 6343), dst=("127.0.0.1", 6343))
    pcap.write_bytes(pcap.read_bytes()[:-7])  # the last record cut short
    c = start(tmp_path, "--replay", str(pcap), ready=False)
    try:
        wait_for(lambda: "event=replay_done datagrams=2" in c.log(), 15, "the replay")
        assert "event=replay_truncated" in c.log()
        assert c.agent(agent)["sFlowDatagramsReceived"] == 2
    finally:
        assert c.stop() == 0
