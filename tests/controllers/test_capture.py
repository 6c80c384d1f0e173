"""The triggered ERSPAN capture controller in the fabric lab: sFlow from sampling switches,
ACLs through the switch ACL double over HTTP, mirrored packets read from the analyser pcap."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from acl_lab import ANALYZER, START, AclLab, FlakyClient, TextServer, erspan_packets

from sflowlab.agent_sim.traffic import TrafficFlow
from sflowlab.controllers.acl_client import AclClient
from sflowlab.controllers.capture import TriggeredCapture

BAD = "198.51.100.66"  # listed
BAD_NET = "203.0.113.0/24"  # listed as a prefix
GOOD = "198.51.100.99"  # not listed
BAD6 = "2001:db8::66"
BLOCKLIST = f"# test threats\n{BAD}\n{BAD_NET}  # a prefix\n{BAD6}\nnot-an-address\n"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[AclLab]:
    lab = AclLab(tmp_path)
    yield lab
    lab.close()


@pytest.fixture
def blocklist(tmp_path: Path) -> Path:
    path = tmp_path / "threats.txt"
    path.write_text(BLOCKLIST)
    return path


def capture(lab: AclLab, blocklist: Path | str, **params: Any) -> TriggeredCapture:
    params.setdefault("switches", lab.urls())
    params.setdefault("idle_s", 10.0)
    controller = TriggeredCapture(ANALYZER, [str(blocklist)], **params)
    lab.runtime.add("capture", controller)
    return controller


def talk(lab: AclLab, host: str, remote: str, pps: float = 40.0, port: int = 443,
         start: float = START) -> tuple[int, int]:
    """A TCP conversation: ``host`` to ``remote`` and the answers back; the flow ids."""
    out = TrafficFlow(host, remote, "tcp", 40000, port, pps, 300, start_s=start)
    back = TrafficFlow(remote, host, "tcp", port, 40000, pps, 900, start_s=start)
    return lab.fabric.add_flow(out), lab.fabric.add_flow(back)


def sessions(lab: AclLab) -> list[dict[str, Any]]:
    return list(lab.http("capture")["sessions"])


def test_a_host_talking_to_a_listed_address_is_captured_on_the_switch_that_saw_it(
        lab: AclLab, blocklist: Path) -> None:
    leaf1 = lab.agent("leaf1")
    ctl = capture(lab, blocklist, switches=lab.urls("leaf1"))  # only leaf1 has an ACL API
    assert lab.engine.group_specs()["blocklist"] == {"blocklist": [BAD, BAD_NET, BAD6]}
    talk(lab, "host1", BAD)
    talk(lab, "host2", GOOD)  # unlisted: never captured
    talk(lab, "host3", "host5")  # internal: never captured
    started = lab.run_until(lambda: lab.acls("leaf1"), within_s=5)
    assert started - START <= 4
    [session] = sessions(lab)
    assert (session["local"], session["remote"], session["agent"], session["id"]) == (
        lab.ip("host1"), BAD, leaf1, "emrg0")
    lab.step_to(started + 1)
    assert lab.all_acls() == {"leaf1": {"emrg0": "applied"}}
    h1 = lab.ip("host1")
    assert lab.switches["leaf1"].get("emrg0") == [
        "[iptables]", f"# triggered capture {h1} <-> {BAD}",
        f"-A FORWARD --in-interface swp+ -s {h1} -d {BAD} -j ERSPAN --src-ip {leaf1}"
        f" --dst-ip {ANALYZER}",
        f"-A FORWARD --in-interface swp+ -s {BAD} -d {h1} -j ERSPAN --src-ip {leaf1}"
        f" --dst-ip {ANALYZER}"]
    assert sessions(lab)[0]["state"] == "active"
    lab.step_to(START + 30)
    assert [s["id"] for s in sessions(lab)] == ["emrg0"]  # repeated records: still one session
    stats = lab.http("capture", "GET", "stats")
    assert stats["records"] > 5 and stats["sessions_opened"] == 1
    assert stats["blocklist"]["entries"] == 3 and stats["blocklist"]["sources"][0][
        "invalidLines"] == 1
    assert ctl.stats.unknown_switch > 0  # other switches saw it too, without an ACL API


def test_one_session_per_pair_whichever_switches_and_directions_report_it(
        lab: AclLab, blocklist: Path) -> None:
    capture(lab, blocklist)  # every switch has an ACL API
    talk(lab, "host1", BAD)
    inbound_only = TrafficFlow("203.0.113.7", "host6", "udp", 53, 5353, 40, 200)
    lab.fabric.add_flow(inbound_only)  # a listed source sending to a local host
    lab.step_to(START + 20)
    pairs = {(s["local"], s["remote"]): s for s in sessions(lab)}
    assert set(pairs) == {(lab.ip("host1"), BAD), (lab.ip("host6"), "203.0.113.7")}
    out = TrafficFlow("host1", BAD, "tcp", 40000, 443)
    assert pairs[(lab.ip("host1"), BAD)]["agent"] in lab.path_agents(out)
    assert pairs[(lab.ip("host6"), "203.0.113.7")]["agent"] in lab.path_agents(inbound_only)
    assert sum(len(acls) for acls in lab.all_acls().values()) == 2


def mirror_suspect_pair(lab: AclLab, blocklist: Path) -> tuple[int, int]:
    """Capture host1 <-> BAD among other traffic for 10 s after the ACL commits on an edge
    switch; the packets each direction sent meanwhile (the pcap is closed)."""
    edges = lab.urls("leaf1", "leaf2", "border1")  # edge switches see both directions
    capture(lab, blocklist, switches=edges)
    out_id, back_id = talk(lab, "host1", BAD, pps=25)
    talk(lab, "host2", GOOD, pps=25)
    lab.fabric.add_flow(TrafficFlow("host1", "host5", "udp", 1000, 2000, 30, 200))
    lab.run_until(lambda: lab.all_acls(), within_s=5)
    # the ACL commits 0.5 s into the next step; the fabric mirrors from that step's traffic on
    sent_before = {i: lab.fabric.flows[i].packets for i in (out_id, back_id)}
    lab.step_to(lab.clock.now() + 10)
    lab.capture.close()
    return (lab.fabric.flows[out_id].packets - sent_before[out_id],
            lab.fabric.flows[back_id].packets - sent_before[back_id])


def test_the_analyser_receives_the_suspect_pair_both_ways_and_nothing_else(
        lab: AclLab, blocklist: Path) -> None:
    sent_out, sent_back = mirror_suspect_pair(lab, blocklist)
    mirrored = erspan_packets(lab.pcap_path)
    h1 = lab.ip("host1")
    out = [p for p in mirrored if p[:2] == (h1, BAD)]
    back = [p for p in mirrored if p[:2] == (BAD, h1)]
    assert len(out) + len(back) == len(mirrored)  # nothing else
    assert len(out) == sent_out == 250 and len(back) == sent_back == 250
    assert {p[2:4] for p in out} == {(6, 40000)} and {p[2:4] for p in back} == {(6, 443)}
    assert len({p[4] for p in out}) == len({p[4] for p in back}) == 1  # a session per rule


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_reads_the_same_mirrored_packets(lab: AclLab, blocklist: Path) -> None:
    sent_out, sent_back = mirror_suspect_pair(lab, blocklist)
    done = subprocess.run(["tshark", "-r", str(lab.pcap_path), "-T", "fields", "-e", "ip.src",
                           "-e", "ip.dst", "-e", "frame.protocols"],
                          capture_output=True, text=True, timeout=60, check=True)
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    [session] = sessions(lab)
    agent, h1 = session["agent"], lab.ip("host1")
    inner = [tuple(r[0].split(",")[1:] + r[1].split(",")[1:]) for r in rows]
    assert inner.count((h1, BAD)) == sent_out and inner.count((BAD, h1)) == sent_back
    assert len(rows) == sent_out + sent_back
    assert {r[0].split(",")[0] for r in rows} == {agent}  # from the switch that saw it
    assert {r[1].split(",")[0] for r in rows} == {ANALYZER}
    assert all(r[2].startswith("eth:ethertype:ip:gre:erspan:eth:ethertype:ip:tcp") for r in rows)


def test_ipv6_pairs_get_ip6tables_rules(lab: AclLab, blocklist: Path) -> None:
    capture(lab, blocklist, switches=lab.urls("leaf1"))
    lab.fabric.add_flow(TrafficFlow("host1", BAD6, "udp", 5000, 53, 40, 200))
    lab.run_until(lambda: lab.acls("leaf1"), within_s=5)
    [session] = sessions(lab)
    h1 = lab.ip("host1", ipv6=True)
    assert (session["local"], session["remote"]) == (h1, BAD6)
    lines = lab.switches["leaf1"].get(session["id"])
    assert lines is not None and lines[0] == "[ip6tables]" and f"-s {h1} -d {BAD6}" in lines[2]
    lab.step_to(lab.clock.now() + 2)
    assert lab.acls("leaf1") == {session["id"]: "applied"}


def test_a_session_ends_when_the_pair_goes_quiet(lab: AclLab, blocklist: Path) -> None:
    ctl = capture(lab, blocklist, idle_s=10.0)
    ids = talk(lab, "host1", BAD)
    lab.run_until(lambda: lab.all_acls(), within_s=5)
    lab.step_to(START + 30)
    stopped = lab.clock.now()
    for flow_id in ids:
        lab.fabric.remove_flow(flow_id)
    ended = lab.run_until(lambda: not lab.all_acls(), within_s=30)
    assert 10 < ended - stopped <= 14  # idle_s after the last sample, then DELETE
    assert sessions(lab) == [] and ctl.stats.sessions_closed == {"idle": 1}


def test_a_session_ends_after_its_maximum_duration_and_waits_for_quiet_to_return(
        lab: AclLab, blocklist: Path) -> None:
    ctl = capture(lab, blocklist, idle_s=8.0, max_duration_s=20.0)
    ids = talk(lab, "host1", BAD)
    opened = lab.run_until(lambda: lab.all_acls(), within_s=5)
    ended = lab.run_until(lambda: not lab.all_acls(), within_s=30)
    assert ended - opened == 20 and ctl.stats.sessions_closed == {"max_duration": 1}
    lab.step_to(ended + 20)  # still talking: not captured again
    assert lab.all_acls() == {} and ctl.stats.sessions_opened == 1
    for flow_id in ids:
        lab.fabric.remove_flow(flow_id)
    lab.step_to(lab.clock.now() + 20)  # quiet for longer than idle_s
    talk(lab, "host1", BAD, start=lab.clock.now())
    lab.run_until(lambda: lab.all_acls(), within_s=6)
    assert [s["id"] for s in sessions(lab)] == ["emrg1"]


def test_the_session_limit_queues_then_refuses(lab: AclLab, blocklist: Path) -> None:
    ctl = capture(lab, blocklist, max_sessions=1, max_queue=1, idle_s=8.0)
    first = talk(lab, "host1", BAD)
    lab.step_to(START + 3)
    talk(lab, "host2", "203.0.113.2", start=START + 3)
    lab.step_to(START + 6)
    talk(lab, "host3", "203.0.113.3", start=START + 6)
    lab.step_to(START + 12)
    status = lab.http("capture")
    assert [(s["local"], s["remote"]) for s in status["sessions"]] == [(lab.ip("host1"), BAD)]
    assert [(q["local"], q["remote"]) for q in status["queued"]] == [
        (lab.ip("host2"), "203.0.113.2")]
    assert ctl.stats.refused >= 1 and ctl.stats.queued == 1
    assert sum(len(a) for a in lab.all_acls().values()) == 1
    for flow_id in first:
        lab.fabric.remove_flow(flow_id)
    lab.run_until(lambda: [s["local"] for s in sessions(lab)] == [lab.ip("host2")], within_s=15)
    assert sum(len(a) for a in lab.all_acls().values()) == 1


def test_failed_acl_calls_are_retried_and_stay_accounted(lab: AclLab, blocklist: Path) -> None:
    client = FlakyClient()
    client.down = True
    ctl = capture(lab, blocklist, switches=lab.urls("leaf1"), client=client, retry_s=5.0)
    ids = talk(lab, "host1", BAD)
    lab.run_until(lambda: sessions(lab), within_s=5)
    assert sessions(lab)[0]["state"] == "installing" and lab.all_acls() == {}
    lab.step_to(lab.clock.now() + 6)
    assert ctl.book.failures == 2 and sessions(lab)[0]["state"] == "installing"
    client.down = False
    lab.step_to(lab.clock.now() + 6)
    assert sessions(lab)[0]["state"] == "active" and list(lab.acls("leaf1")) == ["emrg0"]
    client.down = True
    for flow_id in ids:
        lab.fabric.remove_flow(flow_id)
    lab.run_until(lambda: sessions(lab) and sessions(lab)[0]["state"] == "removing",
                  within_s=20)
    assert list(lab.acls("leaf1")) == ["emrg0"]  # still on the switch, still accounted
    client.down = False
    lab.run_until(lambda: not sessions(lab), within_s=6)
    assert lab.acls("leaf1") == {}


def test_sessions_survive_a_restart_when_their_acls_do(lab: AclLab, blocklist: Path) -> None:
    capture(lab, blocklist, switches=lab.urls("leaf1"))
    talk(lab, "host1", BAD)
    talk(lab, "host2", "203.0.113.2")
    lab.run_until(lambda: len(lab.acls("leaf1")) == 2, within_s=6)
    by_remote = {s["remote"]: s for s in sessions(lab)}
    gone = by_remote["203.0.113.2"]["id"]
    AclClient().delete(lab.urls("leaf1")[lab.agent("leaf1")], gone)  # removed behind its back
    lab.restart_runtime()
    capture(lab, blocklist, switches=lab.urls("leaf1"))
    [kept] = sessions(lab)
    assert (kept["id"], kept["remote"], kept["since"]) == (
        by_remote[BAD]["id"], BAD, by_remote[BAD]["since"])
    lab.step_to(lab.clock.now() + 10)  # the dropped pair is still talking: a new session
    assert {s["remote"]: s["id"] for s in sessions(lab)} == {BAD: kept["id"],
                                                             "203.0.113.2": "emrg2"}


def test_http_delete_ends_a_session(lab: AclLab, blocklist: Path) -> None:
    capture(lab, blocklist, switches=lab.urls("leaf1"))
    talk(lab, "host1", BAD)
    lab.run_until(lambda: lab.acls("leaf1"), within_s=5)
    assert lab.http("capture", "DELETE", "sessions", "emrg0") == {"id": "emrg0",
                                                                   "state": "removed"}
    assert sessions(lab) == [] and lab.acls("leaf1") == {}
    lab.step_to(lab.clock.now() + 5)
    assert sessions(lab) == []  # dismissed while the pair keeps talking
    with pytest.raises(Exception, match="no capture session 'emrg9'"):
        lab.http("capture", "DELETE", "sessions", "emrg9")


def test_blocklist_refresh_over_http_changes_the_group_and_failures_keep_it(
        lab: AclLab) -> None:
    server = TextServer(f"{BAD}\n")
    try:
        ctl = capture(lab, server.url, refresh_s=10.0, retry_s=3.0)
        assert lab.engine.group_specs()["blocklist"] == {"blocklist": [BAD]}
        talk(lab, "host1", "203.0.113.5")
        lab.step_to(START + 5)
        assert sessions(lab) == []  # not listed yet
        server.text = f"{BAD}\n203.0.113.0/24\n"
        lab.run_until(lambda: sessions(lab), within_s=15)
        assert lab.engine.group_specs()["blocklist"] == {"blocklist": [BAD, "203.0.113.0/24"]}
        server.status = 500
        lab.step_to(lab.clock.now() + 12)
        assert lab.engine.group_specs()["blocklist"] == {"blocklist": [BAD, "203.0.113.0/24"]}
        stats = ctl.stats_json()["blocklist"]
        assert stats["failures"] >= 1 and "HTTP Error 500" in stats["sources"][0]["lastError"]
        requests_before = server.requests
        lab.step_to(lab.clock.now() + 3)
        assert server.requests == requests_before + 1  # retried after retry_s, not refresh_s
    finally:
        server.stop()
