"""Wireshark's reading of the fabric's datagrams: nothing malformed, the flows it finds are ours."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sflowlab.agent_sim.sinks import PcapSink
from sflowlab.agent_sim.topology import FabricSpec
from sflowlab.agent_sim.traffic import TrafficFlow

pytestmark = [
    pytest.mark.tshark,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
]

FLOWS = [
    TrafficFlow("host1", "host5", "tcp", 40001, 443, 500, 1500, vlan=10),
    TrafficFlow("host7", "host3", "udp", 5000, 5001, 300, 200, ipv6=True),
    TrafficFlow("host4", "198.51.100.20", "tcp", 50000, 80, 300, 400),
    TrafficFlow("2001:db8::9", "host6", "udp", 53, 33000, 300, 512),
    TrafficFlow("host8", "leaf2", "tcp", 33001, 179, 100, 120),
    TrafficFlow("host2", "host1", "icmp", rate_pps=200, packet_bytes=98),
]
Pairs = list[tuple[str, Any]]


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in tshark's JSON, duplicates kept, depth first."""
    if isinstance(node, list):
        for item in node:
            if isinstance(item, tuple):
                yield item
                yield from _walk(item[1])
            else:
                yield from _walk(item)


def _first(pairs: Pairs, *names: str) -> Any:
    return next((v for k, v in _walk(pairs) if k in names), None)


def tshark_json(path: Path) -> Pairs:
    out = subprocess.run(["tshark", "-r", str(path), "-T", "json"], capture_output=True,
                         text=True, timeout=120, check=True)
    assert "malformed" not in out.stderr.lower(), out.stderr
    parsed: Pairs = json.loads(out.stdout, object_pairs_hook=list)
    return parsed


@pytest.mark.parametrize(
    "spec",
    [FabricSpec(sampling_rate=64, polling_s=3),
     FabricSpec(sampling_rate=64, polling_s=3, expanded=True, ipv6_agents=True,
                raw_ip_headers=True)],
    ids=["compact-ethernet", "expanded-rawip-ipv6agents"],
)
def test_tshark_reads_every_datagram_and_finds_our_flows(
        spec: FabricSpec, tmp_path: Path, run_fabric: Callable[..., Any]) -> None:
    pcap = tmp_path / "fabric.pcap"
    with PcapSink(str(pcap)) as sink:
        r = run_fabric(spec, FLOWS, until=10, sink=sink)
    packets = tshark_json(pcap)
    assert len(packets) == len(r.datagrams) > 20
    keys = [k for k, _ in _walk(packets)]
    assert not [k for k in keys if k.startswith("_ws.")], "tshark raised expert/malformed items"
    expected_samples = sum(len(dg.samples) for _, _, dg in r.datagrams)
    assert keys.count("sflow_245.sampletype") == expected_samples
    seen = set()
    for key, tree in _walk(packets):
        if key != "sflow_245.header_tree":
            continue
        src = _first(tree, "ip.src", "ipv6.src")
        dst = _first(tree, "ip.dst", "ipv6.dst")
        sport = _first(tree, "tcp.srcport", "udp.srcport") or 0
        dport = _first(tree, "tcp.dstport", "udp.dstport") or 0
        proto = _first(tree, "ip.proto", "ipv6.nxt")
        seen.add((src, dst, int(proto), int(sport), int(dport)))
    assert seen == set(r.flow_keys())  # every flow sampled, and nothing else
