"""The flow keys of HTTP request records (0,2206), as sFlow-RT names them, decoded on demand.

The collector's decode path (``fast.py``, in C or Python) skips every flow record but the
sampled header and extended_switch. For each datagram the collector then calls
``with_http(data, samples)``: a second walk over that datagram finds each flow sample's
first http_request record and adds its keys to the sample's (the others are left as they
are). Keys, after sFlow-RT's (sFlow blog, "HTTP analytics", 2016): ``httpmethod`` (``GET``...),
``httpprotocol`` (``HTTP/1.1``), ``httpurl`` (the request URI as sent), ``httphost``,
``httpreferer``, ``httpuseragent``, ``httpxff``, ``httpauthuser``, ``httpmimetype`` (each
absent when the agent sent it empty), ``httpstatus``, ``req_bytes``, ``resp_bytes``,
``duration`` (microseconds) and ``requests`` (1: ``value: requests`` is requests per
second). A transaction sample with no sampled header (mod-sflow's, hsflowd's) counts
``req_bytes + resp_bytes`` as its ``bytes``. A malformed http_request record adds no keys.
"""

from __future__ import annotations

from typing import Any

from ._errors import DecodeError
from .fast import (
    _DISCARD,
    _DISCARD_TAG,
    _FLOW,
    _FLOW_TAG,
    _FLOW_TAGS,
    _FLOW_X,
    _U32,
    FlowSampleView,
    _decode,
    _flow_sample,
    _new,
    _U32x2,
)
from .flow_records import HTTP_METHODS, HttpRequest
from .layout import data_format_of

HTTP_KEYS = frozenset({
    "httpmethod", "httpprotocol", "httpurl", "httphost", "httpreferer", "httpuseragent",
    "httpxff", "httpauthuser", "httpmimetype", "httpstatus", "req_bytes", "resp_bytes",
    "duration", "requests"})
"""The keys ``with_http`` adds."""

_HTTP_TAG = data_format_of(HttpRequest)
_HTTP_TAG_BYTES = _U32.pack(_HTTP_TAG)
_HEAD_SIZE = {_FLOW_TAG: _FLOW.size, _DISCARD_TAG: _DISCARD.size}
_FRAME_LENGTH = FlowSampleView._fields.index("frame_length")
_TEXTS = (("httpurl", "uri"), ("httphost", "host"), ("httpreferer", "referer"),
          ("httpuseragent", "useragent"), ("httpxff", "xff"), ("httpauthuser", "authuser"),
          ("httpmimetype", "mime_type"))


def http_keys(req: HttpRequest) -> dict[str, int | str]:
    """One http_request record's flow keys (see the module's docstring)."""
    method, protocol = req.method, req.protocol
    keys: dict[str, int | str] = {
        "httpmethod": HTTP_METHODS[method] if method < len(HTTP_METHODS) else "OTHER",
        "httpprotocol": f"HTTP/{protocol // 1000}.{protocol % 1000}"}
    for name, attribute in _TEXTS:
        text = getattr(req, attribute)
        if text:
            keys[name] = text
    keys.update(httpstatus=req.status, req_bytes=req.req_bytes, resp_bytes=req.resp_bytes,
                duration=req.duration_us, requests=1)
    return keys


def with_http(data: bytes, samples: list[FlowSampleView]) -> list[FlowSampleView]:
    """``samples`` (``decode_for_collector(data).flow_samples``) with the keys of their
    http_request records added: a sample that has one is replaced by a view with those keys
    (and its ``frame_length`` when it has no sampled header); ``samples`` is not changed."""
    buf = data if type(data) is bytes else bytes(data)
    if not _has_http_tag(buf):  # a switch's datagram: no walk
        return samples
    records = _decode(buf, _http_records)
    if len(records) != len(samples):  # cannot be: both walks keep the same flow samples
        return samples
    out = samples
    for i, at in enumerate(records):
        if at is None:
            continue
        try:
            req: HttpRequest = HttpRequest._sflow_decode(buf, *at)[0]  # type: ignore[attr-defined]
        except DecodeError:
            continue
        view = samples[i]
        keys = {**view.keys(), **http_keys(req)}
        fields = list(view)
        if not view.header:
            fields[_FRAME_LENGTH] = req.req_bytes + req.resp_bytes
        view = _new(FlowSampleView, fields)
        view._keys = keys
        if out is samples:
            out = list(samples)
        out[i] = view
    return out


def _has_http_tag(buf: bytes) -> bool:
    """Whether the http_request tag's bytes are in ``buf`` (maybe in a header's bytes: the walk
    tells). Its last byte is looked for first: ``in`` with the whole tag is slower than the
    walk's gain, its leading zero bytes matching everywhere in padded headers."""
    last, find = _HTTP_TAG_BYTES[3:], buf.find
    at = find(last, 3)
    while at != -1:
        if buf[at - 3 : at + 1] == _HTTP_TAG_BYTES:
            return True
        at = find(last, at + 1)
    return False


def _http_records(buf: bytes, off: int, end: int, count: int, *_: Any
                  ) -> list[tuple[int, int] | None]:
    """Per flow sample the fast walk keeps (in its order): the (start, end) of its first
    http_request record's body, or None. The datagram's framing was checked by that walk."""
    found: list[tuple[int, int] | None] = []
    for _i in range(count):
        tag, length = _U32x2.unpack_from(buf, off)
        off += 8
        stop = off + length
        if tag in _FLOW_TAGS and _flow_sample(buf, off, stop, tag) is not None:
            found.append(_first_record(buf, off + _HEAD_SIZE.get(tag, _FLOW_X.size), stop))
        off = stop
    return found


def _first_record(buf: bytes, off: int, stop: int) -> tuple[int, int] | None:
    """The body of the first http_request in the record list ending a flow sample's head at
    ``off`` (its last word is the number of records)."""
    (count,) = _U32.unpack_from(buf, off - 4)
    for _i in range(count):
        tag, length = _U32x2.unpack_from(buf, off)
        off += 8
        if tag == _HTTP_TAG:
            return off, off + length
        off += length
    return None
