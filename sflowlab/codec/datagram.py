"""Datagram-level API: decode, encode, and the exporter that packs samples like an agent."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ._compile import FAILURES, Raw, encode_tlvs
from ._errors import CodecError, DecodeError, EncodeError
from ._fields import Tlv
from .samples import Datagram

_U32 = struct.Struct(">I")

DEFAULT_MAX_DATAGRAM = 1400
MAX_SAMPLES_PER_DATAGRAM = 64


def decode_datagram(data: bytes | bytearray | memoryview) -> Datagram:
    """Decode one sFlow v5 datagram.

    Framing errors (a length or count past the end of the datagram, a bad version or agent
    address type) raise ``DecodeError`` with the offset and the element path. A sample or
    record whose body fails inside its declared length becomes ``Raw`` with the error text,
    which names the full path (``datagram/samples[1]:flow_sample/records[0]:...``).
    """
    buf = bytes(data)
    if len(buf) < 4:
        raise DecodeError("datagram shorter than its version word", 0, "datagram")
    (version,) = _U32.unpack_from(buf, 0)
    if version != 5:
        raise DecodeError(f"unsupported sFlow version {version}", 0, "datagram/version")
    failures = FAILURES[0]
    try:
        dg: Datagram = Datagram._sflow_decode(buf, 0, len(buf))[0]  # type: ignore[attr-defined]
    except CodecError as e:
        raise e.within("datagram") from None
    except (struct.error, IndexError, ValueError, UnicodeError) as e:  # defensive boundary
        raise DecodeError(f"malformed datagram: {e}", -1, "datagram") from e
    if FAILURES[0] != failures:
        dg = dg._replace(samples=tuple(_full_paths(i, s) for i, s in enumerate(dg.samples)))
    return dg  # trailing bytes after the declared samples are ignored, as agents may pad


def _full_paths(index: int, sample: Any) -> Any:
    """Prefix the errors of ``Raw`` elements in one sample with the path from the datagram."""
    if type(sample) is Raw:
        return sample._replace(error=f"datagram/{sample.error}") if sample.error else sample
    prefix = f"datagram/samples[{index}]:{sample.sflow_name}/"
    lists = {
        f.name: tuple(
            r._replace(error=prefix + r.error) if type(r) is Raw and r.error else r
            for r in getattr(sample, f.name)
        )
        for f in sample._sflow_fields
        if isinstance(f.type, Tlv)
    }
    return sample._replace(**lists)


def encode_datagram(dg: Datagram) -> bytes:
    """Encode a datagram with exact lengths and zero padding; ``EncodeError`` names the field."""
    out = bytearray()
    try:
        Datagram._sflow_encode(dg, out)  # type: ignore[attr-defined]
    except CodecError as e:
        raise e.within("datagram") from None
    return bytes(out)


def encode_sample(s: Any) -> bytes:
    """Encode one sample as its TLV (``data_format``, length, body), ready to pack."""
    out = bytearray()
    encode_tlvs(out, (s,), "sample", "sample")
    return bytes(out[4:])


def header_bytes(agent_address: str, sub_agent_id: int, sequence: int, uptime_ms: int,
                 num_samples: int) -> bytes:
    """The datagram header for an agent, ready to prefix encoded samples."""
    out = bytearray(
        encode_datagram(Datagram(5, agent_address, sub_agent_id, sequence, uptime_ms & 0xFFFFFFFF))
    )
    _U32.pack_into(out, len(out) - 4, num_samples)
    return bytes(out)


@dataclass
class Exporter:
    """Packs encoded samples into datagrams of at most ``max_datagram`` bytes, as agents do.

    ``send(datagram_bytes)`` receives each datagram. Sequence numbers start at 1 and rise by
    one per datagram; ``uptime_ms`` is passed at each flush (the agent owns its clock).
    """

    agent_address: str
    send: Callable[[bytes], None]
    sub_agent_id: int = 0
    max_datagram: int = DEFAULT_MAX_DATAGRAM
    max_samples: int = MAX_SAMPLES_PER_DATAGRAM
    sequence_number: int = 0
    datagrams_sent: int = 0
    samples_sent: int = 0
    _pending: list[bytes] = field(default_factory=list)
    _pending_size: int = 0

    def __post_init__(self) -> None:
        self._header_size = len(header_bytes(self.agent_address, self.sub_agent_id, 0, 0, 0))

    def add(self, sample: Any, uptime_ms: int) -> None:
        """Queue a sample (object or encoded bytes); flush first if it would not fit."""
        data = sample if isinstance(sample, bytes) else encode_sample(sample)
        if self._header_size + len(data) > self.max_datagram:
            raise EncodeError(
                f"sample of {len(data)} bytes cannot fit a {self.max_datagram}-byte datagram"
            )
        if (
            self._header_size + self._pending_size + len(data) > self.max_datagram
            or len(self._pending) >= self.max_samples
        ):
            self.flush(uptime_ms)
        self._pending.append(data)
        self._pending_size += len(data)

    def add_all(self, samples: Iterable[Any], uptime_ms: int) -> None:
        for s in samples:
            self.add(s, uptime_ms)

    def flush(self, uptime_ms: int) -> None:
        """Send the pending samples as one datagram (nothing if none are pending)."""
        if not self._pending:
            return
        self.sequence_number = (self.sequence_number + 1) & 0xFFFFFFFF
        head = header_bytes(self.agent_address, self.sub_agent_id, self.sequence_number,
                            uptime_ms, len(self._pending))
        self.send(head + b"".join(self._pending))
        self.datagrams_sent += 1
        self.samples_sent += len(self._pending)
        self._pending.clear()
        self._pending_size = 0


def is_raw(obj: Any) -> bool:
    """True for samples and records the codec kept as raw bytes."""
    return isinstance(obj, Raw)
