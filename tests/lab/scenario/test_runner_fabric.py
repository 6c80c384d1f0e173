"""The runner with a fabric: the capture and DDoS controllers through the switch ACL double,
ACL commits recorded, the analyser's pcap, and the assertions that read them."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

from sflowlab.lab.scenario.loader import load_scenario
from sflowlab.lab.scenario.runner import run_scenario

FABRIC = "{leaves: 2, spines: 1, hosts_per_leaf: 1, sampling_rate: 100, polling_s: 10}"


def write(folder: Path, text: str) -> Path:
    path = folder / "scenario.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_capture_of_a_blocklisted_peer(tmp_path: Path) -> None:
    (tmp_path / "blocklist.txt").write_text("# emerging threats\n203.0.113.0/24\n")
    path = write(tmp_path, f"""\
        duration: 45
        fabric: {FABRIC}
        traffic:
          - name: suspect
            flow: {{src: host1, dst: 203.0.113.9, protocol: tcp, src_port: 40000,
                    dst_port: 443, rate_pps: 200, start_s: 5, stop_s: 25}}
          - flow: {{src: 203.0.113.9, dst: host1, protocol: tcp, src_port: 443,
                    dst_port: 40000, rate_pps: 200, start_s: 5, stop_s: 25}}
          - flow: {{src: host2, dst: 198.51.100.7, protocol: udp, src_port: 5000,
                    dst_port: 53, rate_pps: 300}}
        controllers:
          - name: capture
            use: capture
            params: {{analyzer: 10.0.0.250, blocklists: ["${{scenario_dir}}/blocklist.txt"],
                      local: [10.0.0.0/8], idle_s: 5}}
        assertions:
          - capture_installed: {{within: 5, from: suspect_start}}
          - capture_removed: {{within: 15, after: suspect_end}}
          - analyser_pcap: {{only_flow: [10.0.1.1, 203.0.113.9], min_packets: 1000}}
          - capture_installed: {{within: 5, switch: spine1}}
        """)
    result = run_scenario(load_scenario(path), tmp_path / "out", chart=False)
    installed, removed, pcap, wrong_switch = result.outcomes
    assert installed.passed and removed.passed and pcap.passed, result.outcomes
    assert "the analyser received" in pcap.message and "all of 10.0.1.1 <-> 203.0.113.9" \
        in pcap.message
    assert not wrong_switch.passed
    assert wrong_switch.message.startswith("FAILED: no capture rule was installed on spine1 "
                                           "(installed on ")
    with (tmp_path / "out" / "acl.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["action"] for r in rows] == ["put", "delete"]
    assert "-j ERSPAN" in rows[0]["lines"] and "--dst-ip 10.0.0.250" in rows[0]["lines"]
    assert (tmp_path / "out" / "analyser.pcap").stat().st_size > 1000 * 60


def test_mitigation_of_an_amplification_flood(tmp_path: Path) -> None:
    path = write(tmp_path, f"""\
        duration: 50
        fabric: {FABRIC}
        traffic:
          - name: flood
            amplification_flood: {{target: host2, sources: 8, rate_pps: 20000, start_s: 10,
                                   stop_s: 25}}
          - flow: {{src: host1, dst: host2, protocol: tcp, dst_port: 80, rate_pps: 100}}
        controllers:
          - {{name: ddos, use: ddos, params: {{protected: [10.0.2.1/32], hold_s: 5}}}}
        assertions:
          - mitigated: {{within: 5, from: flood_start, switch: leaf2}}
          - released: {{within: 15, after: flood_end}}
          - released: {{within: 1, after: flood_end}}
          - capture_installed: {{within: 60}}
          - no_lost_datagrams: {{}}
        """)
    result = run_scenario(load_scenario(path), tmp_path / "out", chart=False)
    mitigated, released, too_slow, no_capture, accounting = result.outcomes
    assert mitigated.passed and released.passed and accounting.passed, result.outcomes
    assert mitigated.message.startswith("mitigation ddos0 installed on leaf2 at t=")
    assert not too_slow.passed and "after flood_end (allowed 1 s)" in too_slow.message
    assert (no_capture.passed, no_capture.message) == (
        False, "FAILED: no capture rule was installed")
    drops = [a for a in result.recording.acl if a.action == "put"]
    assert {a.switch for a in drops} >= {"leaf2"}
    assert all(a.targets == {"DROP"} for a in drops)
