"""pmacct's sfprobe (a third-party sFlow agent) sampling real HTTP traffic, read by our codec."""

from __future__ import annotations

from pathlib import Path

import pytest

from sflowlab.codec import FlowSample, SampledHeader, decode_datagram
from sflowlab.codec.headers import decode_header
from sflowlab.lab.interop.pmacct import sfprobe_lab, unavailable_reason

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.pmacct, pytest.mark.slow]

SAMPLING_RATE = 4
HTTP_PORT = 8081
SUB_AGENT = 1402  # pmacct documents 1402 as the default, but sends 0 unless configured


def test_sfprobe_datagrams_decode_to_the_lab_traffic(tmp_path: Path) -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with sfprobe_lab(tmp_path, SAMPLING_RATE, HTTP_PORT, sub_agent_id=SUB_AGENT) as lab:
        server, client = lab.server_address, lab.client_address
        wanted = {
            (client, server, "tcpdestinationport", HTTP_PORT),
            (server, client, "tcpsourceport", HTTP_PORT),
        }
        seen: set[tuple[str, str, str, int]] = set()
        agents, rates, sources = set(), set(), set()
        for payload, source, _ in lab.datagrams(timeout=30.0):
            dg = decode_datagram(payload)
            agents.add((dg.agent_address, dg.sub_agent_id))
            sources.add(source[0])
            for sample in dg.samples:
                if not isinstance(sample, FlowSample):
                    continue
                rates.add(sample.sampling_rate)
                for record in sample.records:
                    if isinstance(record, SampledHeader):
                        keys = decode_header(record.header_protocol, record.header)
                        for port_key in ("tcpdestinationport", "tcpsourceport"):
                            if port_key in keys:
                                seen.add((str(keys.get("ipsource")),
                                          str(keys.get("ipdestination")), port_key,
                                          int(keys[port_key])))
            if wanted <= seen:
                break
        log = lab.log_text()
    assert wanted <= seen, f"flows seen: {sorted(seen)[:10]}\npmacctd log:\n{log}"
    assert agents == {(lab.agent_ip, SUB_AGENT)}
    assert rates == {SAMPLING_RATE}
    assert sources == {"127.0.0.1"}
