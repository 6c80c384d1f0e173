"""The collector's decode path: one walk over a datagram, only what the engine reads.

``decode_for_collector(data)`` gives a ``CollectorDatagram`` whose flow samples keep the
sample fields, the first ``sampled_header`` and the first ``extended_switch`` (every other
flow record is skipped by its length), and whose counter samples carry their records decoded
by the compiled decoders. ``FlowSampleView.keys()`` gives the flow keys.

The C accelerator ``sflowlab.codec._walk`` (built by ``setup.py`` when a compiler is there;
``accel.load`` gives None without it or with ``SFLOWLAB_PURE_PYTHON=1``) walks the samples in
C: the same ``CollectorDatagram`` and ``FlowSampleView`` objects, the same errors at the same
offsets, the same ``bad_samples``; counter samples still go to ``_counter_sample``. It builds
the keys of every flow sample whose header has the usual Ethernet/IPv4/TCP-or-UDP layout
(``headers.eth_ip4_keys``), in any sample layout, as ``keys()`` would give them (key order
included); any other header's keys are parsed on the first ``keys()`` call. Without it
``decode_for_collector`` is ``decode_for_collector_py``, whose walk is ``_samples_py``: a
switch's usual 216-byte samples (a 128-byte sampled_header then extended_switch) are read a
run at a time by one precompiled struct that also unpacks the header's usual part, so their
keys are built right there; other flow layouts go the general way (``_flow_sample``), which
gives the same result. ``tests/codec/test_walk.py`` compares the two on every kind of input.

Speed, one core, ``bench/bench_decode.py`` with ``keys()``: flow datagrams (6 switch samples
each) 2.8 µs/sample in pure Python, 0.85 with the accelerator (0.7 of it in C, mostly building
the objects: the keys dict, the view tuple, ints, the header bytes); counter datagrams 4.3 ->
3.8; the whole capture 3.3 -> 1.5. ``bench/bench_collector.py`` in-process ingest (CPU time,
the collector's other accelerators on): 8.0 -> 5.0 µs/sample. Counter record lists go through
``_shapes.ShapeCache``: one struct per layout an agent repeats, descriptive records decoded
once per distinct bytes.

Framing errors raise ``DecodeError`` exactly where ``decode_datagram`` raises; a sample that
``decode_datagram`` would keep as ``Raw`` (unknown format, or malformed) is counted in
``bad_samples``. Expanded (and discarded_packet) input/output ``0xFFFFFFFF`` is reported
as ``INTERNAL``.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

from .. import accel
from ._compile import data_format
from ._errors import DecodeError, TruncatedError
from ._shapes import ShapeCache
from .headers import ETH_IP4_L4, IP_TOS, TCP_FLAGS, decode_header, eth_ip4_keys
from .samples import DROP_REASONS, INTERNAL

OUTPUT_IFINDEX, OUTPUT_DISCARDED, OUTPUT_MULTIPLE = 0, 1, 2

_U32 = struct.Struct(">I")
_U32x2 = struct.Struct(">II")
_U32x4 = struct.Struct(">4I")
_V5_IPV4 = struct.pack(">II", 5, 1)
_HEAD_V4 = struct.Struct(">4s4I")  # address, sub_agent_id, sequence, uptime, num_samples
_HEAD_V6 = struct.Struct(">16s4I")
_HEAD_NONE = struct.Struct(">0s4I")  # address type 0: no address
_FLOW = struct.Struct(">8I")  # compact flow sample: 7 fields + num_records
_FLOW_X = struct.Struct(">11I")  # expanded flow sample: 10 fields + num_records
_DISCARD = struct.Struct(">8I")  # discarded_packet: 7 fields + num_records
_COUNTERS = struct.Struct(">2I")  # compact counters sample before its record list
_COUNTERS_X = struct.Struct(">3I")
_FLOW_HEADER = struct.Struct(">8I2I4I")  # compact flow sample + sampled_header's fixed part
_SWITCH = struct.Struct(">2I4I")  # extended_switch with its tag and length
# the whole sample when the header has 128 bytes, the header's usual first 48 bytes unpacked
_SWITCH_SAMPLE = struct.Struct(">2I8I2I4I" + ETH_IP4_L4 + "80x2I4I")
_ALL_ONES = 0xFFFFFFFF
_MAX_VLAN = 4095
_new = tuple.__new__

DESCRIPTIVE_RECORDS = frozenset(data_format(0, f) for f in (1005, 2000, 2001, 2002))
"""Counter records that describe a data source rather than count (port_name, host_descr,
host_adapters, host_parent): agents repeat the same bytes every poll, so the fast path
decodes each distinct body once (a bounded memo; the decoded records are immutable)."""
_described: dict[int, dict[bytes, Any]] = {tag: {} for tag in DESCRIPTIVE_RECORDS}
_shapes = ShapeCache(_described)
_agent_texts: dict[bytes, str] = {}
_AGENT_LIMIT = 1 << 12

_OUTPUT_KEYS: dict[int, str] = {OUTPUT_DISCARDED: "discard", OUTPUT_MULTIPLE: "multiple"}


class _FlowSampleFields(NamedTuple):
    source_id_type: int
    source_id_index: int
    sequence_number: int
    sampling_rate: int
    sample_pool: int
    drops: int
    input: int
    output: int
    output_format: int
    header_protocol: int
    frame_length: int
    stripped: int
    header: bytes
    src_vlan: int | None
    dst_vlan: int | None
    discarded: bool
    reason: int | None


class FlowSampleView(_FlowSampleFields):
    """One flow sample (0,1 / 0,3) or discarded packet (0,5, ``discarded=True``).

    ``input``/``output`` are ifIndex values (``INTERNAL`` for the device itself) unless
    ``output_format`` says discarded (value = reason) or multiple (value = count).
    ``header`` is ``b""`` and ``frame_length`` 0 when the sample has no sampled_header.
    """

    def keys(self) -> dict[str, int | str]:
        """Flow keys: the header's plus inputifindex, outputifindex, vlan fallback, reason.

        Computed once (at decode for a usual header: in C for any sample layout, in pure
        Python for the switch's 216-byte samples; else on first call) and cached; the dict is
        shared, so treat it as read-only.
        """
        keys: dict[str, int | str] | None = getattr(self, "_keys", None)
        if keys is None:
            (_, _, _, _, _, _, inp, out, out_format, header_protocol, _, _, header, src_vlan,
             _, _, reason) = self
            keys = self._keys = _sample_keys(
                decode_header(header_protocol, header) if header else {}, inp, out, out_format,
                src_vlan, reason)
        return keys


def _sample_keys(keys: dict[str, int | str], inp: int, out: int, out_format: int,
                 src_vlan: int | None, reason: int | None) -> dict[str, int | str]:
    """Adds the sample's keys to the header's ``keys``; returns them."""
    keys["inputifindex"] = inp
    keys["outputifindex"] = out if out_format == OUTPUT_IFINDEX else _OUTPUT_KEYS.get(
        out_format, out)
    if src_vlan is not None and src_vlan <= _MAX_VLAN and "vlan" not in keys:
        keys["vlan"] = src_vlan  # the ingress VLAN from extended_switch (0xFFFFFFFF: unknown)
    if reason is not None:
        keys["reason"] = DROP_REASONS.get(reason, str(reason))
    return keys


class CounterSampleView(NamedTuple):
    """One counters sample (0,2 / 0,4) with its records decoded (unknown ones as ``Raw``)."""

    source_id_type: int
    source_id_index: int
    sequence_number: int
    records: tuple[Any, ...]


class CollectorDatagram(NamedTuple):
    """What the collector needs from one datagram."""

    agent_address: str
    sub_agent_id: int
    sequence_number: int
    uptime_ms: int
    flow_samples: list[FlowSampleView]
    counter_samples: list[CounterSampleView]
    bad_samples: int


_Walk = Callable[[bytes, int, int, int, str, int, int, int], CollectorDatagram]
"""``_samples_py``'s signature: ``(buf, off, end, count, agent, sub_agent_id, sequence,
uptime)``, the samples after the datagram header (the accelerator's ``samples`` too)."""


def decode_for_collector_py(data: bytes | bytearray | memoryview) -> CollectorDatagram:
    """Decode one datagram for the collector; raises ``DecodeError`` on framing errors.

    Pure Python: ``decode_for_collector`` is this one when the accelerator is not loaded.
    """
    buf = data if type(data) is bytes else bytes(data)
    try:
        if buf.startswith(_V5_IPV4) and len(buf) >= 28:  # the usual: version 5, IPv4 agent
            address, sub_agent_id, sequence, uptime, count = _HEAD_V4.unpack_from(buf, 8)
            return _samples_py(buf, 28, len(buf), count,
                               _agent_texts.get(address) or _agent_text(address), sub_agent_id,
                               sequence, uptime)
        return _decode(buf, _samples_py)
    except (struct.error, IndexError, ValueError, UnicodeError) as e:  # defensive boundary
        raise DecodeError(f"malformed datagram: {e}", -1, "datagram") from e


def _decode(buf: bytes, walk: _Walk) -> CollectorDatagram:
    """Any other datagram header (``decode_for_collector`` reads the usual one itself), then
    its samples by ``walk``."""
    end = len(buf)
    if end < 4:
        raise DecodeError("datagram shorter than its version word", 0, "datagram")
    (version,) = _U32.unpack_from(buf, 0)
    if version != 5:
        raise DecodeError(f"unsupported sFlow version {version}", 0, "datagram/version")
    if end < 8:
        raise TruncatedError("length word runs past the end of its element", 4,
                             "datagram/agent_address")
    (kind,) = _U32.unpack_from(buf, 4)
    to_text: Callable[[bytes], str]
    if kind == 1:
        head, size, to_text = _HEAD_V4, 28, socket.inet_ntoa
    elif kind == 2:
        head, size, to_text = _HEAD_V6, 40, _ipv6_text
    elif kind == 0:
        head, size, to_text = _HEAD_NONE, 24, _no_address
    else:
        raise DecodeError(f"unknown address type {kind}", 4, "datagram/agent_address")
    if end < size:
        raise TruncatedError("field runs past the end of its element", 8, "datagram")
    address, sub_agent_id, sequence, uptime, count = head.unpack_from(buf, 8)
    return walk(buf, size, end, count, to_text(address), sub_agent_id, sequence, uptime)


def _samples_py(buf: bytes, off: int, end: int, count: int, agent: str, sub_agent_id: int,
                sequence: int, uptime: int) -> CollectorDatagram:
    """Walk the ``count`` samples from ``off``: the datagram after its header (pure Python;
    the C accelerator's ``samples`` gives the same objects and raises the same errors)."""
    if count > (end - off) // 8:
        raise TruncatedError(f"list of {count} elements runs past the end of its element",
                             off, "datagram/samples")
    flows: list[FlowSampleView] = []
    flows_append = flows.append
    counters: list[CounterSampleView] = []
    bad = 0
    i = 0
    while i < count:
        if off + 8 > end:
            raise TruncatedError("element header runs past the end of its element", off,
                                 f"datagram/samples[{i}]")
        tag, length = _U32x2.unpack_from(buf, off)
        if tag == 1 and length == 208:  # maybe a run of switch samples of the usual layout
            taken = _switch_samples(buf, off, min(count - i, (end - off) // 216), flows_append)
            if taken:
                i += taken
                off += 216 * taken
                continue
        off += 8
        stop = off + length
        if stop > end:
            raise TruncatedError(
                f"element length {length} runs past the end of its container", off - 4,
                f"datagram/samples[{i}]",
            )
        i += 1
        if tag == 1 and length >= 80:
            # the switch layout: compact sample, sampled_header, then extended_switch
            (seq, source_id, rate, pool, drops, inp, out, nrec, rtag, rlen, hp, fl, st,
             hlen) = _FLOW_HEADER.unpack_from(buf, off)
            at = off + 40 + rlen  # the second record
            if (nrec == 2 and rtag == 1 and 16 + ((hlen + 3) & ~3) <= rlen
                    and at + 24 <= stop):
                stag, slen, src_vlan, _, dst_vlan, _ = _SWITCH.unpack_from(buf, at)
                if stag == 1001 and 16 <= slen <= stop - at - 8:
                    flows_append(_new(FlowSampleView, (
                        source_id >> 24, source_id & 0xFFFFFF, seq, rate, pool, drops,
                        inp & 0x3FFFFFFF, out & 0x3FFFFFFF, out >> 30, hp, fl, st,
                        buf[off + 56 : off + 56 + hlen], src_vlan, dst_vlan, False, None)))
                    off = stop
                    continue
        if tag == 1 or tag == 3 or tag == 5:
            view = _flow_sample(buf, off, stop, tag)
            if view is None:
                bad += 1
            else:
                flows_append(view)
        elif tag == 2 or tag == 4:
            counter_view = _counter_sample(buf, off, stop, tag)
            if counter_view is None:
                bad += 1
            else:
                counters.append(counter_view)
        else:
            bad += 1
        off = stop
    return _new(CollectorDatagram, (agent, sub_agent_id, sequence, uptime, flows, counters,
                                    bad))


def _switch_samples(buf: bytes, off: int, run: int,
                    flows_append: Callable[[FlowSampleView], None]) -> int:
    """Up to ``run`` consecutive switch samples of the usual 216 bytes (tag and length words
    included: a 128-byte sampled_header, then extended_switch) at ``off``, unpacked in one pass;
    returns how many there were (the first sample of another layout ends the run)."""
    taken = 0
    for (tag, length, seq, source_id, rate, pool, drops, inp, out, nrec, rtag, rlen, hp, fl,
         st, hlen, mac_dst, mac_src, etype, vihl, tos, total, frag, ttl, proto, sip, dip, sport,
         dport, off_ns, flags, stag, slen, src_vlan, _, dst_vlan, _
         ) in _SWITCH_SAMPLE.iter_unpack(memoryview(buf)[off : off + 216 * run]):
        if not (tag == 1 and length == 208 and nrec == 2 and rtag == 1 and rlen == 144
                and hlen == 128 and stag == 1001 and slen == 16):
            break
        inp &= 0x3FFFFFFF
        out_format, out = out >> 30, out & 0x3FFFFFFF
        view = _new(FlowSampleView, (
            source_id >> 24, source_id & 0xFFFFFF, seq, rate, pool, drops, inp, out, out_format,
            hp, fl, st, buf[off + 64 : off + 192], src_vlan, dst_vlan, False, None))
        if hp == 1:  # keys now: the header's usual part is unpacked already
            keys = eth_ip4_keys(mac_dst, mac_src, etype, vihl, tos, total, frag, ttl, proto,
                                sip, dip, sport, dport, off_ns, flags)
            if keys is not None:  # _sample_keys inline: an untagged header, no drop reason
                keys["inputifindex"] = inp
                keys["outputifindex"] = out if out_format == OUTPUT_IFINDEX else (
                    _OUTPUT_KEYS.get(out_format, out))
                if src_vlan <= _MAX_VLAN:
                    keys["vlan"] = src_vlan
                view._keys = keys
        flows_append(view)
        off += 216
        taken += 1
    return taken


def _ipv6_text(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


def _no_address(raw: bytes) -> str:
    return ""


def _agent_text(raw: bytes) -> str:
    """An IPv4 agent address as text, remembered (a collector hears from few agents)."""
    if len(_agent_texts) >= _AGENT_LIMIT:
        _agent_texts.clear()
    text = _agent_texts[raw] = socket.inet_ntoa(raw)
    return text


def _flow_sample(buf: bytes, off: int, stop: int, tag: int) -> FlowSampleView | None:
    """A flow sample body in ``buf[off:stop]``; None when malformed."""
    discarded = False
    reason = None
    if tag == 1:
        if off + 32 > stop:
            return None
        seq, source_id, rate, pool, drops, inp, out, nrec = _FLOW.unpack_from(buf, off)
        off += 32
        kind, index = source_id >> 24, source_id & 0xFFFFFF
        inp &= 0x3FFFFFFF
        out_format, out = out >> 30, out & 0x3FFFFFFF
    elif tag == 3:
        if off + 44 > stop:
            return None
        (seq, kind, index, rate, pool, drops, _in_format, inp, out_format, out,
         nrec) = _FLOW_X.unpack_from(buf, off)
        off += 44
    else:
        if off + 32 > stop:
            return None
        seq, kind, index, drops, inp, out, reason, nrec = _DISCARD.unpack_from(buf, off)
        off += 32
        rate, pool, out_format, discarded = 1, 0, OUTPUT_IFINDEX, True
    if tag != 1:  # expanded ifIndex fields: all ones also means the device itself
        if inp == _ALL_ONES:
            inp = INTERNAL
        if out == _ALL_ONES:
            out = INTERNAL
    if nrec > (stop - off) // 8:
        return None
    header_protocol = frame_length = stripped = 0
    header = b""
    src_vlan = dst_vlan = None
    seen_header = seen_switch = False
    for _ in range(nrec):
        if off + 8 > stop:
            return None
        rtag, rlen = _U32x2.unpack_from(buf, off)
        off += 8
        rend = off + rlen
        if rend > stop:
            return None
        if rtag == 1 and not seen_header and rlen >= 16:
            hp, fl, st, hlen = _U32x4.unpack_from(buf, off)
            if 16 + ((hlen + 3) & ~3) <= rlen:
                header_protocol, frame_length, stripped = hp, fl, st
                header = buf[off + 16 : off + 16 + hlen]
                seen_header = True
        elif rtag == 1001 and not seen_switch and rlen >= 16:
            src_vlan, _src_priority, dst_vlan, _dst_priority = _U32x4.unpack_from(buf, off)
            seen_switch = True
        off = rend
    return _new(FlowSampleView, (kind, index, seq, rate, pool, drops, inp, out, out_format,
                                 header_protocol, frame_length, stripped, header, src_vlan,
                                 dst_vlan, discarded, reason))


def _counter_sample(buf: bytes, off: int, stop: int, tag: int) -> CounterSampleView | None:
    """A counters sample body in ``buf[off:stop]``; None when malformed."""
    if tag == 2:
        if off + 8 > stop:
            return None
        seq, source_id = _COUNTERS.unpack_from(buf, off)
        kind, index = source_id >> 24, source_id & 0xFFFFFF
        off += 8
    else:
        if off + 12 > stop:
            return None
        seq, kind, index = _COUNTERS_X.unpack_from(buf, off)
        off += 12
    try:
        records = _shapes.decode(buf, off, stop)
    except DecodeError:
        return None
    return _new(CounterSampleView, (kind, index, seq, records))


# ---------------------------------------------------------------- the C accelerator

_walk: Any = accel.load("sflowlab.codec._walk")
"""``sflowlab.codec._walk`` or None: ``samples`` is ``_samples_py`` in C and ``usual_datagram``
the usual header (version 5, IPv4 agent) and its samples; ``configure`` hands it the objects."""
if _walk is not None:
    _walk.configure(
        flow_view=FlowSampleView, datagram=CollectorDatagram, truncated_error=TruncatedError,
        counter_sample=_counter_sample, tcp_flags=TCP_FLAGS, ip_tos=IP_TOS,
        drop_reasons=DROP_REASONS, output_keys=_OUTPUT_KEYS, internal=INTERNAL)
    _usual_datagram_c: Callable[[bytes], CollectorDatagram | None] = _walk.usual_datagram
    _samples_c: _Walk = _walk.samples

    def decode_for_collector(data: bytes | bytearray | memoryview) -> CollectorDatagram:
        """Decode one datagram for the collector; raises ``DecodeError`` on framing errors."""
        buf = data if type(data) is bytes else bytes(data)
        try:
            dg = _usual_datagram_c(buf)  # None unless version 5 with an IPv4 agent
            return dg if dg is not None else _decode(buf, _samples_c)
        except (struct.error, IndexError, ValueError, UnicodeError) as e:  # defensive boundary
            raise DecodeError(f"malformed datagram: {e}", -1, "datagram") from e
else:
    decode_for_collector = decode_for_collector_py
