"""Decoded sFlow as data and as text: JSON-able dicts and a sflowtool-like listing.

``to_jsonable`` turns any decoded structure (datagram, sample, record, ``Raw``, nested
structures) into dicts, lists and scalars: samples carry ``"sample": name``, records
``"record": name`` (their ``sflow_name``), both with ``enterprise`` and ``format``; bytes
become hex; non-finite floats become ``None``. A ``sampled_header`` also gets ``flow_keys``
(sFlow-RT key names, from ``codec.headers`` when present). ``sample_rows`` gives the one
object per sample that ``sflowlab decode --json`` prints; ``render_text`` the listing.
Nothing here prints.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

from ._compile import Raw
from .samples import COUNTER_SAMPLES, Datagram, data_source

__all__ = ["render_text", "sample_rows", "to_jsonable"]

_KIND_OF_LIST = {"samples": "sample", "records": "record"}


@functools.cache
def _flow_key_decoder() -> Callable[[int, bytes], dict[str, int | str]] | None:
    try:
        from .headers import decode_header
    except ImportError:  # the header parser is optional for rendering
        return None
    return decode_header


def _text(value: str) -> str:
    """A string safe to write as UTF-8 (undecodable bytes shown as ``\\xNN``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return value


def _tagged(obj: Any, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {kind: obj.sflow_name, "enterprise": obj.enterprise,
                           "format": obj.format}
    if isinstance(obj, Raw):
        out["data"] = obj.data.hex()
        if obj.error:
            out["error"] = obj.error
        return out
    if hasattr(obj, "source_id_type"):
        out["data_source"] = data_source(obj)
    out.update(_fields(obj))
    if obj.sflow_name == "sampled_header":
        decode = _flow_key_decoder()
        if decode is not None:
            out["flow_keys"] = decode(obj.header_protocol, obj.header)
    return out


def _fields(obj: Any) -> dict[str, Any]:
    return {
        name: ([_convert(item, _KIND_OF_LIST[name]) for item in value]
               if name in _KIND_OF_LIST else to_jsonable(value))
        for name, value in zip(obj._fields, obj, strict=True)
    }


def _convert(obj: Any, kind: str) -> Any:
    if hasattr(obj, "sflow_name"):
        return _tagged(obj, kind)
    return to_jsonable(obj)


def to_jsonable(obj: Any) -> Any:
    """Dicts, lists, str, int, float, bool and None for any decoded structure."""
    if obj is None or isinstance(obj, bool | int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str):
        return _text(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).hex()
    if hasattr(obj, "sflow_name"):
        return _tagged(obj, "sample" if getattr(obj, "namespace", "") == "sample" else "record")
    if hasattr(obj, "_fields"):
        return _fields(obj)
    if isinstance(obj, tuple | list):
        return [to_jsonable(item) for item in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    raise TypeError(f"cannot render {type(obj).__name__}")


def _endpoint(source: tuple[str, int] | None) -> str | None:
    if source is None:
        return None
    host, port = source
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def sample_rows(dg: Datagram, timestamp: float | None = None,
                source: tuple[str, int] | None = None) -> Iterator[dict[str, Any]]:
    """One dict per sample: datagram context (agent, sub_agent, sequence...) then the sample."""
    context = {
        "agent": dg.agent_address, "sub_agent": dg.sub_agent_id,
        "datagram_sequence": dg.sequence_number, "uptime_ms": dg.uptime_ms,
        "timestamp": timestamp, "source": _endpoint(source),
    }
    for sample in dg.samples:
        yield {**context, **_convert(sample, "sample")}


# ---------------------------------------------------------------- text


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value if value.isprintable() else json.dumps(value, ensure_ascii=False)[1:-1]
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def _lines(prefix: str, value: Any, out: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _lines(f"{prefix}.{key}" if prefix else key, item, out)
    elif isinstance(value, list):
        if not value:
            out.append(f"{prefix} -")
        elif all(not isinstance(v, dict | list) for v in value):
            out.append(f"{prefix} {','.join(_scalar(v) for v in value)}")
        else:
            for i, item in enumerate(value):
                _lines(f"{prefix}.{i}", item, out)
    else:
        out.append(f"{prefix} {_scalar(value)}")


def _element_lines(element: dict[str, Any], kind: str, tag_name: str, out: list[str]) -> None:
    out.append(f"{tag_name} {element['enterprise']}:{element['format']}")
    out.append(f"{kind} {element[kind]}")
    for key, value in element.items():
        if key in (kind, "enterprise", "format", "records"):
            continue
        _lines(key, value, out)


def render_text(dg: Datagram, timestamp: float | None = None,
                source: tuple[str, int] | None = None, size: int | None = None) -> str:
    """A sflowtool-like listing: ``startDatagram``/``startSample`` blocks of key value lines."""
    out = ["startDatagram ================================="]
    if source is not None:
        out.append(f"datagramSourceIP {source[0]}")
        out.append(f"datagramSourcePort {source[1]}")
    if size is not None:
        out.append(f"datagramSize {size}")
    if timestamp is not None:
        out.append(f"unixSecondsUTC {timestamp:.6f}")
    out += [f"datagramVersion {dg.version}", f"agent {dg.agent_address}",
            f"agentSubId {dg.sub_agent_id}", f"packetSequenceNo {dg.sequence_number}",
            f"sysUpTime {dg.uptime_ms}", f"samplesInPacket {len(dg.samples)}"]
    for sample in dg.samples:
        row = _convert(sample, "sample")
        out.append("startSample ----------------------")
        _element_lines(row, "sample", "sampleType_tag", out)
        block = "counterBlock_tag" if isinstance(sample, COUNTER_SAMPLES) else "flowBlock_tag"
        for record in row.get("records", ()):
            _element_lines(record, "record", block, out)
        out.append("endSample   ----------------------")
    out.append("endDatagram   =================================")
    return "\n".join(out) + "\n"
