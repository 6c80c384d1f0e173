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
switch's usual samples (a ``USUAL_HEADER_BYTES`` sampled_header then extended_switch) are read
a run at a time by one precompiled struct that also unpacks the header's usual part, so their
keys are built right there; other flow layouts go the general way (``_flow_sample``), which
gives the same result. ``tests/codec/test_walk.py`` compares the two on every kind of input;
``docs/accelerators.md`` lists every such pair.

Layouts: every struct and offset here, and those the C walk reads (``_C_LAYOUT``, handed to
``configure``), come from the sample and record declarations through ``layout.py``. Speed:
``bench/bench_decode.py`` prints both walks' figures. Counter record lists go through
``_shapes.ShapeCache``: one struct per layout an agent repeats, descriptive records decoded
once per distinct bytes.

Framing errors raise ``DecodeError`` exactly where ``decode_datagram`` raises; a sample that
``decode_datagram`` would keep as ``Raw`` (unknown format, or malformed) is counted in
``bad_samples``. Expanded (and discarded_packet) input/output ``0xFFFFFFFF`` is reported
as ``INTERNAL``.
"""

from __future__ import annotations

import inspect
import socket
import struct
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from .. import accel
from ._compile import data_format
from ._errors import DecodeError, TruncatedError
from ._shapes import ShapeCache
from .flow_records import ExtendedSwitch, SampledHeader
from .headers import ETH_IP4_L4, IP_TOS, TCP_FLAGS, decode_header, eth_ip4_keys
from .layout import ELEMENT, data_format_of, fixed, head, offsets, struct_offsets
from .samples import (
    DROP_REASONS,
    INTERNAL,
    CountersSample,
    CountersSampleExpanded,
    Datagram,
    DiscardedPacket,
    FlowSample,
    FlowSampleExpanded,
)

OUTPUT_IFINDEX, OUTPUT_DISCARDED, OUTPUT_MULTIPLE = 0, 1, 2

# every layout below comes from the declarations (layout.head / layout.fixed)
_U32 = struct.Struct(">I")
_U32x2 = struct.Struct(">" + ELEMENT)
_U32x4 = struct.Struct(">" + head(SampledHeader))
_EXTENDED_SWITCH = struct.Struct(">" + fixed(ExtendedSwitch))
_V5_IPV4 = struct.pack(">II", 5, 1)  # version 5, address type 1 (IPv4)
_AFTER_ADDRESS = head(Datagram, after="agent_address")  # sub_agent_id ... num_samples
_HEAD_V4 = struct.Struct(">4s" + _AFTER_ADDRESS)
_HEAD_V6 = struct.Struct(">16s" + _AFTER_ADDRESS)
_HEAD_NONE = struct.Struct(">0s" + _AFTER_ADDRESS)  # address type 0: no address
_USUAL_HEAD = 8 + _HEAD_V4.size  # version, address type, then _HEAD_V4
_FLOW = struct.Struct(">" + head(FlowSample))  # compact flow sample: 7 fields + num_records
_FLOW_X = struct.Struct(">" + head(FlowSampleExpanded))  # 10 fields + num_records
_DISCARD = struct.Struct(">" + head(DiscardedPacket))  # 7 fields + num_records
_COUNTERS = struct.Struct(">" + fixed(CountersSample))  # before its record list
_COUNTERS_X = struct.Struct(">" + fixed(CountersSampleExpanded))
_ELEMENT_SIZE = _U32x2.size
_HEADER_HEAD = _U32x4.size  # sampled_header before its bytes
_FIRST_RECORD = _FLOW.size + _ELEMENT_SIZE  # a compact flow sample's first record body
# compact flow sample + sampled_header's fixed part
_FLOW_HEADER = struct.Struct(">" + head(FlowSample) + ELEMENT + head(SampledHeader))
_SWITCH = struct.Struct(">" + ELEMENT + fixed(ExtendedSwitch))  # with its tag and length
USUAL_HEADER_BYTES = 128
"""The sampled header size of a switch's usual samples (hsflowd's and most switches' default)."""
_USUAL_PART = struct.calcsize(">" + ETH_IP4_L4)
# a whole usual switch sample (tag and length words included): the header's usual part unpacked
_SWITCH_SAMPLE = struct.Struct(
    ">" + ELEMENT + _FLOW_HEADER.format[1:] + ETH_IP4_L4
    + f"{USUAL_HEADER_BYTES - _USUAL_PART}x" + _SWITCH.format[1:])
_SWITCH_BODY = _SWITCH_SAMPLE.size - _ELEMENT_SIZE  # its length word
_HEADER_RECORD = _HEADER_HEAD + USUAL_HEADER_BYTES  # its sampled_header's length word
_SWITCH_HEADER_AT = _ELEMENT_SIZE + _FLOW_HEADER.size  # its header bytes
_MIN_SWITCH_LAYOUT = _FLOW_HEADER.size + _SWITCH.size  # the smallest body of that layout
_FLOW_TAG, _COUNTERS_TAG = data_format_of(FlowSample), data_format_of(CountersSample)
_FLOW_X_TAG = data_format_of(FlowSampleExpanded)
_COUNTERS_X_TAG = data_format_of(CountersSampleExpanded)
_DISCARD_TAG = data_format_of(DiscardedPacket)
_HEADER_TAG, _SWITCH_TAG = data_format_of(SampledHeader), data_format_of(ExtendedSwitch)
_FLOW_TAGS = frozenset((_FLOW_TAG, _FLOW_X_TAG, _DISCARD_TAG))
_COUNTER_TAGS = frozenset((_COUNTERS_TAG, _COUNTERS_X_TAG))
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
        if buf.startswith(_V5_IPV4) and len(buf) >= _USUAL_HEAD:  # version 5, IPv4 agent
            address, sub_agent_id, sequence, uptime, count = _HEAD_V4.unpack_from(buf, 8)
            return _samples_py(buf, _USUAL_HEAD, len(buf), count,
                               _agent_texts.get(address) or _agent_text(address), sub_agent_id,
                               sequence, uptime)
        return _decode(buf, _samples_py)
    except (struct.error, IndexError, ValueError, UnicodeError) as e:  # defensive boundary
        raise DecodeError(f"malformed datagram: {e}", -1, "datagram") from e


_T = TypeVar("_T")


def _decode(buf: bytes, walk: Callable[[bytes, int, int, int, str, int, int, int], _T]) -> _T:
    """Any datagram header (``decode_for_collector`` reads the usual one itself), then its
    samples by ``walk`` (``_Walk``'s arguments; ``http_keys`` walks with its own)."""
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
        layout, to_text = _HEAD_V4, socket.inet_ntoa
    elif kind == 2:
        layout, to_text = _HEAD_V6, _ipv6_text
    elif kind == 0:
        layout, to_text = _HEAD_NONE, _no_address
    else:
        raise DecodeError(f"unknown address type {kind}", 4, "datagram/agent_address")
    size = 8 + layout.size
    if end < size:
        raise TruncatedError("field runs past the end of its element", 8, "datagram")
    address, sub_agent_id, sequence, uptime, count = layout.unpack_from(buf, 8)
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
        if tag == _FLOW_TAG and length == _SWITCH_BODY:  # maybe a run of usual switch samples
            taken = _switch_samples(buf, off, min(count - i, (end - off) // _SWITCH_SAMPLE.size),
                                    flows_append)
            if taken:
                i += taken
                off += _SWITCH_SAMPLE.size * taken
                continue
        off += 8
        stop = off + length
        if stop > end:
            raise TruncatedError(
                f"element length {length} runs past the end of its container", off - 4,
                f"datagram/samples[{i}]",
            )
        i += 1
        if tag == _FLOW_TAG and length >= _MIN_SWITCH_LAYOUT:
            # the switch layout: compact sample, sampled_header, then extended_switch
            (seq, source_id, rate, pool, drops, inp, out, nrec, rtag, rlen, hp, fl, st,
             hlen) = _FLOW_HEADER.unpack_from(buf, off)
            at = off + _FIRST_RECORD + rlen  # the second record
            if (nrec == 2 and rtag == _HEADER_TAG and _HEADER_HEAD + ((hlen + 3) & ~3) <= rlen
                    and at + _SWITCH.size <= stop):
                stag, slen, src_vlan, _, dst_vlan, _ = _SWITCH.unpack_from(buf, at)
                if (stag == _SWITCH_TAG
                        and _EXTENDED_SWITCH.size <= slen <= stop - at - _ELEMENT_SIZE):
                    header_at = off + _FLOW_HEADER.size
                    flows_append(_new(FlowSampleView, (
                        source_id >> 24, source_id & 0xFFFFFF, seq, rate, pool, drops,
                        inp & 0x3FFFFFFF, out & 0x3FFFFFFF, out >> 30, hp, fl, st,
                        buf[header_at : header_at + hlen], src_vlan, dst_vlan, False, None)))
                    off = stop
                    continue
        if tag in _FLOW_TAGS:
            view = _flow_sample(buf, off, stop, tag)
            if view is None:
                bad += 1
            else:
                flows_append(view)
        elif tag in _COUNTER_TAGS:
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
    """Up to ``run`` consecutive usual switch samples (``_SWITCH_SAMPLE``: a compact flow
    sample with a ``USUAL_HEADER_BYTES`` sampled_header, then extended_switch) at ``off``,
    unpacked in one pass; returns how many there were (another layout ends the run)."""
    size = _SWITCH_SAMPLE.size
    taken = 0
    for (tag, length, seq, source_id, rate, pool, drops, inp, out, nrec, rtag, rlen, hp, fl,
         st, hlen, mac_dst, mac_src, etype, vihl, tos, total, frag, ttl, proto, sip, dip, sport,
         dport, off_ns, flags, stag, slen, src_vlan, _, dst_vlan, _
         ) in _SWITCH_SAMPLE.iter_unpack(memoryview(buf)[off : off + size * run]):
        if not (tag == _FLOW_TAG and length == _SWITCH_BODY and nrec == 2
                and rtag == _HEADER_TAG and rlen == _HEADER_RECORD
                and hlen == USUAL_HEADER_BYTES and stag == _SWITCH_TAG
                and slen == _EXTENDED_SWITCH.size):
            break
        inp &= 0x3FFFFFFF
        out_format, out = out >> 30, out & 0x3FFFFFFF
        view = _new(FlowSampleView, (
            source_id >> 24, source_id & 0xFFFFFF, seq, rate, pool, drops, inp, out, out_format,
            hp, fl, st, buf[off + _SWITCH_HEADER_AT : off + _SWITCH_HEADER_AT + USUAL_HEADER_BYTES],
            src_vlan, dst_vlan, False, None))
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
        off += size
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
    if tag == _FLOW_TAG:
        if off + _FLOW.size > stop:
            return None
        seq, source_id, rate, pool, drops, inp, out, nrec = _FLOW.unpack_from(buf, off)
        off += _FLOW.size
        kind, index = source_id >> 24, source_id & 0xFFFFFF
        inp &= 0x3FFFFFFF
        out_format, out = out >> 30, out & 0x3FFFFFFF
    elif tag == _FLOW_X_TAG:
        if off + _FLOW_X.size > stop:
            return None
        (seq, kind, index, rate, pool, drops, _in_format, inp, out_format, out,
         nrec) = _FLOW_X.unpack_from(buf, off)
        off += _FLOW_X.size
    else:
        if off + _DISCARD.size > stop:
            return None
        seq, kind, index, drops, inp, out, reason, nrec = _DISCARD.unpack_from(buf, off)
        off += _DISCARD.size
        rate, pool, out_format, discarded = 1, 0, OUTPUT_IFINDEX, True
    if tag != _FLOW_TAG:  # expanded ifIndex fields: all ones also means the device itself
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
        if rtag == _HEADER_TAG and not seen_header and rlen >= _HEADER_HEAD:
            hp, fl, st, hlen = _U32x4.unpack_from(buf, off)
            if _HEADER_HEAD + ((hlen + 3) & ~3) <= rlen:
                header_protocol, frame_length, stripped = hp, fl, st
                header = buf[off + _HEADER_HEAD : off + _HEADER_HEAD + hlen]
                seen_header = True
        elif rtag == _SWITCH_TAG and not seen_switch and rlen >= _EXTENDED_SWITCH.size:
            src_vlan, _src_priority, dst_vlan, _dst_priority = _EXTENDED_SWITCH.unpack_from(
                buf, off)
            seen_switch = True
        off = rend
    return _new(FlowSampleView, (kind, index, seq, rate, pool, drops, inp, out, out_format,
                                 header_protocol, frame_length, stripped, header, src_vlan,
                                 dst_vlan, discarded, reason))


def _counter_sample(buf: bytes, off: int, stop: int, tag: int) -> CounterSampleView | None:
    """A counters sample body in ``buf[off:stop]``; None when malformed."""
    if tag == _COUNTERS_TAG:
        if off + _COUNTERS.size > stop:
            return None
        seq, source_id = _COUNTERS.unpack_from(buf, off)
        kind, index = source_id >> 24, source_id & 0xFFFFFF
        off += _COUNTERS.size
    else:
        if off + _COUNTERS_X.size > stop:
            return None
        seq, kind, index = _COUNTERS_X.unpack_from(buf, off)
        off += _COUNTERS_X.size
    try:
        records = _shapes.decode(buf, off, stop)
    except DecodeError:
        return None
    return _new(CounterSampleView, (kind, index, seq, records))


# ---------------------------------------------------------------- the C accelerator


def _c_layout() -> dict[str, int]:
    """What the C walk reads, by ``"<declaration>.<field>"``: each field's byte offset from
    the structure's start (a variable-size field: its length word), ``.size`` (the head's
    size) and ``.tag``; the datagram's fields from its start with an IPv4 agent address;
    ``usual.<argument>``: where each of ``eth_ip4_keys``'s arguments sits in a header, as
    ``ETH_IP4_L4`` unpacks them."""
    out: dict[str, int] = {}
    declared: tuple[Any, ...] = (FlowSample, FlowSampleExpanded, DiscardedPacket,
                                 CountersSample, CountersSampleExpanded, SampledHeader,
                                 ExtendedSwitch)
    for cls in declared:
        name = str(cls.sflow_name)
        out.update({f"{name}.{field}": at for field, at in offsets(cls).items()})
        out[f"{name}.tag"] = data_format_of(cls)
    address_end = 12  # version, address type, the IPv4 address
    out.update({f"datagram.{field}": address_end + at
                for field, at in offsets(Datagram, after="agent_address").items()})
    arguments = list(inspect.signature(eth_ip4_keys).parameters)
    out.update({f"usual.{name}": at
                for name, at in struct_offsets(ETH_IP4_L4, arguments).items()})
    return out


_C_LAYOUT = _c_layout()

_walk: Any = accel.load("sflowlab.codec._walk")
"""``sflowlab.codec._walk`` or None: ``samples`` is ``_samples_py`` in C and ``usual_datagram``
the usual header (version 5, IPv4 agent) and its samples; ``configure`` hands it the objects."""
_WALK_CONFIGURATION: dict[str, Any] = {
    "flow_view": FlowSampleView, "datagram": CollectorDatagram,
    "truncated_error": TruncatedError, "counter_sample": _counter_sample,
    "tcp_flags": TCP_FLAGS, "ip_tos": IP_TOS, "drop_reasons": DROP_REASONS,
    "output_keys": _OUTPUT_KEYS, "internal": INTERNAL, "layout": _C_LAYOUT}
"""What ``_walk.configure`` is given."""
if _walk is not None:
    _walk.configure(**_WALK_CONFIGURATION)
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
