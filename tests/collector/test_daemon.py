"""The collector as a subprocess: real UDP sockets in, REST over HTTP out.

Each test uses its own agent addresses, so one collector process serves most of them.
Conditions are polled with a deadline, never waited for with fixed sleeps.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_helpers import Collector, container, counters, datagram, flow, start, tcp, wait_for

from sflowlab.codec import IfCounters
from sflowlab.codec.pcap import PcapWriter, read_sflow


@pytest.fixture(scope="module", params=[0, 2], ids=["in-process", "2-workers"])
def collector(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    tmp = tmp_path_factory.mktemp("collector")
    c = start(tmp, "--state-dir", str(tmp / "state"), "--workers", str(request.param))
    yield c
    assert c.stop() == 0
    assert "event=stopped" in c.log()


def test_interface_rate_exact_over_udp(collector: Collector) -> None:
    agent = "10.10.0.1"
    collector.udp(
        datagram(agent, 1, 100_000, [counters(1, 0, 3, IfCounters(3, if_speed=10**8,
                                                                   if_in_octets=5_000))]),
        datagram(agent, 2, 110_000, [counters(2, 0, 3, IfCounters(3, if_speed=10**8,
                                                                   if_in_octets=5_000 + 6_250_000,
                                                                   if_out_octets=1_000))]))
    query = f"/dump/{agent}/ifinoctets,ifinutilization/json"
    dump = wait_for(lambda: len(collector.get(query)) == 2 and collector.get(query),
                    what="interface metrics")
    assert [(d["metricName"], d["metricValue"]) for d in dump] == [
        ("ifinoctets", 625_000.0), ("ifinutilization", 5.0)]
    stats = collector.agent(agent)
    assert (stats["sFlowDatagramsReceived"], stats["sFlowCounterSamples"]) == (2, 2)
    assert stats["sFlowDatagramSource"] == ["127.0.0.1"]


def test_ipv6_socket_receives(collector: Collector) -> None:
    collector.udp(datagram("10.10.0.6", 1, 0, [counters(1, 0, 1, IfCounters(1))]), host="::1")
    assert wait_for(lambda: collector.agent("10.10.0.6"), what="the IPv6 datagram")[
        "sFlowDatagramSource"] == ["::1"]


def test_agents_without_address_keyed_by_udp_source(collector: Collector) -> None:
    """Address type 0 (no agent address): each source is an agent of its own, never one agent
    "" that merges them (with workers: the sub-agents of one source, steered by sub-agent to
    different workers, still make one entry)."""
    before = collector.get("/analyzer/json")["sFlowDatagramsNoAgentAddress"]
    for sub_agent in (0, 1):
        collector.udp(datagram("", 1, 1000, [counters(1, 0, 7, IfCounters(7))], sub_agent))
        collector.udp(datagram("", 1, 1000, [counters(1, 0, 7, IfCounters(7))], sub_agent),
                      host="::1")
    agents = wait_for(lambda: (a := collector.get("/agents/json"))["::1"][
        "sFlowDatagramsReceived"] == 2 and a["127.0.0.1"]["sFlowDatagramsReceived"] == 2 and a,
        what="both sources as agents")
    assert "" not in agents
    for source in ("127.0.0.1", "::1"):
        assert sorted(agents[source]["subAgents"]) == [0, 1]
        assert agents[source]["sFlowCounterSamples"] == 2
        assert agents[source]["sFlowDatagramSource"] == [source]
    assert collector.get("/analyzer/json")["sFlowDatagramsNoAgentAddress"] == before + 4
    assert "7.ifindex" in collector.get("/metric/::1/json")


def test_metric_n_follows_container_start_and_stop(collector: Collector) -> None:
    agent = "10.10.0.2"
    q = f"/metric/{agent}/avg:vir_cpu_utilization/json?vir_host_name=app.*"
    collector.udp(datagram(agent, 1, 0, [container(1, i, f"app.{i}", 0) for i in (1, 2, 3)]))
    collector.udp(datagram(agent, 2, 10_000, [container(2, i, f"app.{i}", 1000 * i)
                                              for i in (1, 2, 3)]))
    first = wait_for(lambda: collector.get(q)[0]["metricN"] == 3 and collector.get(q)[0],
                     what="three containers")
    assert first["metricValue"] == pytest.approx(20.0)  # 10, 20, 30 %
    collector.udp(datagram(agent, 3, 11_000, [container(3, 3, "app.3", 3000, state=4)]))
    after = wait_for(lambda: collector.get(q)[0]["metricN"] == 2 and collector.get(q)[0],
                     what="the stopped container to leave")
    assert after["metricValue"] == pytest.approx(15.0)


def test_malformed_flood_never_hides_valid_datagrams(collector: Collector) -> None:
    agent, n = "10.10.0.3", 300
    before = collector.get("/analyzer/json")["sFlowParseErrors"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for seq in range(1, n + 1):
            good = datagram(agent, seq, seq * 1000, [counters(seq, 0, 9, IfCounters(9))])
            s.sendto(good, ("127.0.0.1", collector.sflow_port))
            for bad in (good[: len(good) // 2], b"\x00\x00\x00\x04nope", os.urandom(64)):
                s.sendto(bad, ("127.0.0.1", collector.sflow_port))
    stats = wait_for(lambda: collector.agent(agent).get("sFlowDatagramsReceived") == n
                     and collector.agent(agent), what="every valid datagram")
    assert (stats["sFlowDatagramsLost"], stats["sFlowCounterSamples"]) == (0, n)
    analyzer = wait_for(lambda: collector.get("/analyzer/json")["sFlowParseErrors"]
                        - before == 3 * n and collector.get("/analyzer/json"),
                        what="every bad datagram counted")
    assert analyzer["sFlowDatagramsDiscarded"] == 0
    assert analyzer["sFlowReceiveBufferBytes"] > 0
    assert collector.get("/version") == "0.1.0"


def test_top_flows_scaled_and_deduplicated_across_agents(collector: Collector) -> None:
    name = "pairs_t1"
    status, _ = collector.send("PUT", f"/flow/{name}/json",
                               {"keys": "ipsource,ipdestination", "value": "frames", "t": 10})
    assert status == 200
    pkt = tcp("10.66.0.1", "10.66.0.2")
    for agent, port in (("10.10.0.4", 1), ("10.10.0.5", 2)):
        collector.udp(*(datagram(agent, s, s * 10, [flow(s, port, pkt, rate=1000)])
                        for s in range(1, 6)))
    agents = "10.10.0.4;10.10.0.5"
    for agent in agents.split(";"):
        wait_for(lambda a=agent: collector.agent(a).get("sFlowFlowSamples") == 5,
                 what="every flow sample")
    top_sum = collector.get(f"/activeflows/{agents}/{name}/json?aggMode=sum")
    top_max = collector.get(f"/activeflows/{agents}/{name}/json?aggMode=max")
    assert [f["key"] for f in top_max] == ["10.66.0.1,10.66.0.2"]
    assert len(top_max) == 1
    assert top_sum[0]["value"] == pytest.approx(2 * top_max[0]["value"], rel=0.05)


def test_threshold_events_long_poll(collector: Collector) -> None:
    assert collector.send("PUT", "/flow/udp_t2/json",
                          {"value": "bytes", "filter": "ipsource=10.77.0.1", "t": 1})[0] == 200
    assert collector.send("PUT", "/threshold/udp_t2_high/json",
                          {"metric": "udp_t2", "value": 1000})[0] == 200
    pkt = tcp("10.77.0.1", "10.77.0.2", length=1500)
    collector.udp(*(datagram("10.10.0.7", s, s * 10, [flow(s, 4, pkt, rate=100)])
                    for s in range(1, 11)))
    events = wait_for(lambda: collector.get(
        "/events/json?thresholdID=udp_t2_high&eventID=-1&timeout=2"), what="the event")
    assert events[0]["agent"] == "10.10.0.7" and events[0]["value"] > 1000
    assert events[0]["metric"] == "udp_t2"


def test_forwarding_re_exports_datagrams(collector: Collector) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(10)
        port = peer.getsockname()[1]
        assert collector.send("PUT", "/forwarding/peer/json",
                              {"address": "127.0.0.1", "port": port})[0] == 200
        d = datagram("10.10.0.8", 1, 0, [counters(1, 0, 1, IfCounters(1))])
        collector.udp(d)
        assert peer.recvfrom(65535)[0] == d
        assert collector.send("DELETE", "/forwarding/peer/json")[0] == 200


def test_bad_rest_input(collector: Collector) -> None:
    assert collector.send("GET", "/no/such/path")[0] == 404
    status, body = collector.send("GET", "/metric/ALL/bogus:load_one/json")
    assert status == 400 and "aggregation" in body["error"]
    req = urllib.request.Request(collector.url("/flow/x/json"), data=b"{", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    with e.value:
        assert e.value.code == 400


def test_definitions_survive_restart_and_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text("""
controllers = ["elb"]
[groups]
lan = ["10.0.0.0/8"]
[flows.web]
keys = "ipsource"
value = "bytes"
[thresholds.webhigh]
metric = "web"
value = 100
""")
    state = tmp_path / "state"
    c = start(tmp_path, "--config", str(cfg), "--state-dir", str(state))
    try:
        assert c.get("/groups/json") == {"lan": {"lan": ["10.0.0.0/8"]}}
        assert c.get("/flow/web/json")["keys"] == "ipsource"
        assert c.get("/threshold/webhigh/json")["value"] == 100
        assert c.get("/app/json")["elb"]["errors"] == {}
        assert "event=controller_started name=elb" in c.log()
        assert c.send("PUT", "/group/dmz/json", ["192.0.2.0/24"])[0] == 200
    finally:
        assert c.stop() == 0
    c = start(tmp_path, "--config", str(cfg), "--state-dir", str(state))
    try:
        assert c.get("/groups/json") == {"lan": {"lan": ["10.0.0.0/8"]},
                                         "dmz": {"dmz": ["192.0.2.0/24"]}}
    finally:
        c.stop()


def test_wide_bind_requires_token(tmp_path: Path) -> None:
    c = start(tmp_path, "--http-host", "0.0.0.0", ready=False)
    assert c.proc.wait(timeout=15) == 2
    assert "token" in c.log()


@pytest.mark.parametrize("workers", ["0", "2"], ids=["in-process", "2-workers"])
@pytest.mark.parametrize("kind", ["sflow", "http"])
def test_port_in_use_is_a_one_line_error(tmp_path: Path, kind: str, workers: str) -> None:
    udp = kind == "sflow"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        if not udp:
            s.listen()
        port = s.getsockname()[1]
        c = start(tmp_path, f"--{kind}-port", str(port), "--workers", workers, ready=False)
        assert c.proc.wait(timeout=30) == 2
    expected = (f"sflowlab collector: cannot receive sFlow on UDP port {port}: " if udp else
                f"sflowlab collector: cannot serve HTTP on 127.0.0.1:{port}: ")
    assert expected + "[Errno 98] Address already in use\n" in c.log()
    assert "Traceback" not in c.log()


def test_replay_uses_capture_clock_then_serves(tmp_path: Path) -> None:
    pcap = tmp_path / "in.pcap"
    agent = "10.20.0.1"
    with PcapWriter(pcap) as w:
        for i in range(3):  # datagrams 30 s apart, the agent's uptime 30 s apart too
            w.write(datagram(agent, i + 1, i * 30_000, [counters(
                i + 1, 0, 2, IfCounters(2, if_speed=10**9, if_in_octets=i * 3_000_000))]),
                1_700_000_000 + 30 * i, src=(agent, 6343), dst=("127.0.0.1", 6343))
    c = start(tmp_path, "--replay", str(pcap), ready=False)
    try:
        wait_for(lambda: "event=replay_done datagrams=3" in c.log(), 15, "the replay")
        [entry] = c.get(f"/dump/{agent}/ifinoctets/json")
        assert entry["metricValue"] == 100_000.0
        assert entry["lastUpdate"] == 0  # the clock rests at the last timestamp
        assert c.get("/analyzer/json")["uptime"] == 60_000
    finally:
        assert c.stop() == 0


def test_recording_reads_back(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    c = start(tmp_path, "--record-dir", str(rec))
    sent = [datagram("10.30.0.1", s, s, [counters(s, 0, 1, IfCounters(1))]) for s in range(1, 21)]
    try:
        c.udp(*sent)
        wait_for(lambda: c.agent("10.30.0.1").get("sFlowDatagramsReceived") == 20,
                 what="the datagrams")
    finally:
        assert c.stop() == 0
    got = [d.payload for f in sorted(rec.glob("sflow-*.pcap")) for d in read_sflow(f, port=None)]
    assert got == sent
