"""HTTP request flow keys (codec.http_keys): sFlow-RT's names and values, read from datagrams
built with the codec, the same after the C walk and the pure-Python one, and equal to what
the general decoder finds in each sample."""

from __future__ import annotations

from typing import Any

import pytest

from sflowlab.codec import (
    Datagram,
    DiscardedPacket,
    ExtendedSocketIpv4,
    FlowSample,
    FlowSampleExpanded,
    HttpRequest,
    IfCounters,
    Raw,
    SampledHeader,
    data_format,
    decode_datagram,
    encode_datagram,
)
from sflowlab.codec.fast import decode_for_collector, decode_for_collector_py
from sflowlab.codec.http_keys import HTTP_KEYS, http_keys, with_http
from sflowlab.codec.samples import CountersSample

REQ = HttpRequest(method=2, protocol=1001, uri="/shop/cart.php?id=7", host="www.example.com",
                  referer="http://www.example.com/", useragent="curl/7.88", xff="",
                  authuser="", mime_type="text/html", req_bytes=300, resp_bytes=4_700,
                  duration_us=2_500, status=404)
SOCKET = ExtendedSocketIpv4(6, "10.1.0.1", "10.1.0.2", 80, 40000)
HEADER = SampledHeader(1, 1518, 4, bytes(64))


def test_keys_named_and_valued_as_sflow_rt() -> None:
    assert http_keys(REQ) == {
        "httpmethod": "GET", "httpprotocol": "HTTP/1.1", "httpurl": "/shop/cart.php?id=7",
        "httphost": "www.example.com", "httpreferer": "http://www.example.com/",
        "httpuseragent": "curl/7.88", "httpmimetype": "text/html", "httpstatus": 404,
        "req_bytes": 300, "resp_bytes": 4_700, "duration": 2_500, "requests": 1}
    assert set(http_keys(REQ)) | {"httpxff", "httpauthuser"} == HTTP_KEYS
    other = http_keys(REQ._replace(method=99, protocol=2000, xff="10.9.9.9", authuser="bob"))
    assert (other["httpmethod"], other["httpprotocol"]) == ("OTHER", "HTTP/2.0")
    assert (other["httpxff"], other["httpauthuser"]) == ("10.9.9.9", "bob")


def _samples() -> list[Any]:
    """Every kind of flow sample, with and without an http_request, a malformed one, and
    samples the fast walk does not keep between them (a counters sample, a bad flow sample)."""
    bad_http = Raw(data_format(0, 2206), b"\x00\x00\x00\x02")  # method only: truncated
    return [
        FlowSample(1, 7, 10, 10, 0, 7, 0, (SOCKET, REQ)),  # mod-sflow: no sampled header
        CountersSample(1, 7, (IfCounters(7),)),
        FlowSample(2, 7, 10, 20, 0, 7, 0, (HEADER, REQ._replace(status=200, uri="/a.css"))),
        Raw(data_format(0, 1), bytes(8)),  # a flow sample too short: counted bad
        FlowSample(3, 7, 10, 30, 0, 7, 0, (HEADER,)),
        FlowSampleExpanded(4, 0, 9, 5, 50, 0, 0, 9, 0, 0, (REQ._replace(method=4),)),
        DiscardedPacket(5, 0, 9, 0, 9, 0, 258, (SOCKET, REQ)),
        FlowSample(6, 7, 10, 60, 0, 7, 0, (bad_http, REQ)),  # the first http_request counts
    ]


@pytest.mark.parametrize("agent", ["192.0.2.5", "2001:db8::5"])
@pytest.mark.parametrize("decode", [decode_for_collector, decode_for_collector_py],
                         ids=["fast", "pure-python"])
def test_with_http_adds_each_samples_record(agent: str, decode: Any) -> None:
    data = encode_datagram(Datagram(5, agent, 0, 1, 1000, tuple(_samples())))
    dg = decode(data)
    assert dg.bad_samples == 1
    plain = [(v, dict(v.keys())) for v in dg.flow_samples]
    out = with_http(data, dg.flow_samples)
    assert [v.sequence_number for v in out] == [1, 2, 3, 4, 5, 6]
    assert [(v, dict(v.keys())) for v in dg.flow_samples] == plain  # input left alone
    assert out[2] is dg.flow_samples[2]  # no http_request: the same view
    assert out[5].keys() == plain[5][1]  # a malformed first http_request: no keys
    general = [s for s in decode_datagram(data).samples if not isinstance(s, Raw | CountersSample)]
    for view, (before, keys), sample in zip(out, plain, general, strict=True):
        reqs = [r for r in sample.records if isinstance(r, HttpRequest)]
        if view is before:
            continue
        assert view.keys() == {**keys, **http_keys(reqs[0])}
        assert view[:10] + view[11:] == before[:10] + before[11:]
        assert view.frame_length == (
            before.frame_length if before.header else reqs[0].req_bytes + reqs[0].resp_bytes)
    assert [v.keys().get("httpstatus") for v in out] == [404, 200, None, 404, 404, None]
    assert [v.frame_length for v in out] == [5_000, 1518, 1518, 5_000, 5_000, 0]
    assert out[3].keys()["httpmethod"] == "POST" and out[4].keys()["reason"]


@pytest.mark.parametrize("header", [bytes(64), bytes(61) + b"\x08\x9e\x9e",
                                    b"\x9e" + bytes(59) + b"\x00\x00\x08\x9e"],
                         ids=["zeros", "the tag's last bytes", "the whole tag"])
def test_without_http_records_the_samples_are_returned_as_they_are(header: bytes) -> None:
    """Also when a header holds the tag's bytes (the quick test then walks and finds none)."""
    data = encode_datagram(Datagram(5, "192.0.2.5", 0, 1, 1000, (
        FlowSample(1, 7, 10, 10, 0, 7, 0, (HEADER._replace(header=header), SOCKET)),)))
    samples = decode_for_collector(data).flow_samples
    assert with_http(data, samples) is samples
