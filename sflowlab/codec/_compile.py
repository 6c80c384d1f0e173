"""Compile one structure declaration into its decoder and encoder, and keep the registries.

A declaration is a ``NamedTuple`` whose fields are annotated with field types from
``_fields``. At import, ``compile_structure`` generates two straight-line functions for it:

- ``_sflow_decode(buf, off, end) -> (obj, new_off)``: every read is bounds-checked against
  ``end``; consecutive fixed fields are read by one precompiled ``struct.Struct``.
- ``_sflow_encode(obj, out: bytearray)``: appends exact bytes with zero padding.

Registries map each namespace (samples, flow records, counter records: their numbers
collide) to ``{data_format: class}``; unknown formats decode to ``Raw`` and re-encode
byte for byte. A body that fails to decode also becomes ``Raw``, carrying the error.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple, get_args, get_origin, get_type_hints

from ._errors import CodecError, DecodeError, EncodeError, TruncatedError
from ._fields import Address, Array, FieldType, Fixed, Opaque, String, Tail, Tlv

NAMESPACES = ("sample", "flow", "counter")
REGISTRY: dict[str, dict[int, type]] = {ns: {} for ns in NAMESPACES}
BY_NAME: dict[str, type] = {}

FIXED_LAYOUTS: dict[str, dict[int, tuple[type, Callable[[Any, int], tuple[Any, ...]], int]]] = {
    ns: {} for ns in NAMESPACES
}
"""Per namespace, tags whose body is one struct with no conversions: ``(cls, unpack_from,
size)``, so ``decode_tlvs`` builds them inline (what their compiled decoder does, minus a call).
"""

FAILURES = [0]
"""How many elements became ``Raw`` because their body failed to decode (only ever grows).

``decode_datagram`` compares it before and after a datagram and, only when it moved, walks
the result to give those ``Raw`` errors their full path; the happy path pays nothing.
"""

_U32 = struct.Struct(">I")
_tuple_new = tuple.__new__
_U32x2 = struct.Struct(">II")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")

Decoder = Callable[[bytes, int, int], tuple[Any, int]]
Encoder = Callable[[Any, bytearray], None]

# errors a value of the wrong type or range raises inside struct, str.encode, inet_pton, ...
_VALUE_ERRORS = (struct.error, ValueError, TypeError, OverflowError, OSError, AttributeError)


class WireField(NamedTuple):
    """One declared field: its name, its wire type, and whether it opens the optional tail."""

    name: str
    type: FieldType
    tail: bool


def data_format(enterprise: int, fmt: int) -> int:
    """The 32-bit ``data_format`` tag: 20-bit enterprise, 12-bit format."""
    return (enterprise << 12) | fmt


class Raw(NamedTuple):
    """A sample or record the codec does not know (or could not decode): kept byte for byte."""

    data_format: int
    data: bytes
    error: str = ""

    @property
    def enterprise(self) -> int:
        return self.data_format >> 12

    @property
    def format(self) -> int:
        return self.data_format & 0xFFF

    @property
    def sflow_name(self) -> str:
        return f"unknown_{self.enterprise}_{self.format}"


def _raw_encode(obj: Raw, out: bytearray) -> None:
    out += obj.data


Raw._sflow_encode = staticmethod(_raw_encode)  # type: ignore[attr-defined]

_MEMBERS: dict[str, set[type]] = {ns: {Raw} for ns in NAMESPACES}
"""The classes an encoder accepts in each namespace's TLV lists."""


# ---------------------------------------------------------------- decoding helpers


def _truncated(off: int, name: str, what: str = "field") -> TruncatedError:
    return TruncatedError(f"{what} runs past the end of its element", off, name)


def _dcount(buf: bytes, off: int, end: int, name: str) -> tuple[int, int]:
    if off + 4 > end:
        raise _truncated(off, name, "length word")
    return _U32.unpack_from(buf, off)[0], off + 4


def _dbytes(buf: bytes, off: int, end: int, name: str) -> tuple[bytes, int]:
    if off + 4 > end:
        raise _truncated(off, name, "length word")
    (n,) = _U32.unpack_from(buf, off)
    off += 4
    padded = off + ((n + 3) & ~3)
    if padded > end:
        raise _truncated(off, name, f"{n}-byte value")
    return buf[off : off + n], padded


def _dstr(buf: bytes, off: int, end: int, name: str) -> tuple[str, int]:
    raw, off = _dbytes(buf, off, end, name)
    return raw.decode("utf-8", "surrogateescape"), off


def _daddr(buf: bytes, off: int, end: int, name: str) -> tuple[str, int]:
    kind, off = _dcount(buf, off, end, name)
    if kind == 1:
        if off + 4 > end:
            raise _truncated(off, name, "IPv4 address")
        return socket.inet_ntop(socket.AF_INET, buf[off : off + 4]), off + 4
    if kind == 2:
        if off + 16 > end:
            raise _truncated(off, name, "IPv6 address")
        return socket.inet_ntop(socket.AF_INET6, buf[off : off + 16]), off + 16
    if kind == 0:
        return "", off
    raise DecodeError(f"unknown address type {kind}", off - 4, name)


def _darr_fixed(
    buf: bytes, off: int, end: int, st: struct.Struct, conv: Callable[[Any], Any] | None, name: str
) -> tuple[tuple[Any, ...], int]:
    n, off = _dcount(buf, off, end, name)
    size = st.size
    if n * size > end - off:
        raise _truncated(off, name, f"array of {n}")
    if n == 1:  # the usual case (one MAC per adapter): skip the iterator machinery
        (v,) = st.unpack_from(buf, off)
        return (v if conv is None else conv(v),), off + size
    if conv is None:
        items = tuple([v for (v,) in st.iter_unpack(buf[off : off + n * size])])
    else:
        items = tuple([conv(v) for (v,) in st.iter_unpack(buf[off : off + n * size])])
    return items, off + n * size


def _darr_struct(
    buf: bytes, off: int, end: int, dec: Decoder, name: str
) -> tuple[tuple[Any, ...], int]:
    n, off = _dcount(buf, off, end, name)
    if n > (end - off) // 4:
        raise _truncated(off, name, f"array of {n}")
    items = []
    for i in range(n):
        try:
            item, off = dec(buf, off, end)
        except DecodeError as e:
            raise e.within(f"{name}[{i}]") from None
        items.append(item)
    return tuple(items), off


MEMO_LIMIT = 1 << 14
"""Bodies each ``decode_tlvs`` memo remembers before it starts again."""


def decode_tlvs(
    buf: bytes, off: int, end: int, namespace: str, name: str,
    memo: dict[int, dict[bytes, Any]] | None = None,
) -> tuple[tuple[Any, ...], int]:
    """Decode a counted TLV list; a body that fails becomes ``Raw`` with its error.

    ``memo`` maps tags whose bodies repeat (records that describe a data source) to a dict
    that remembers each decoded body, so the same bytes are decoded once.
    """
    table: dict[int, Any] = REGISTRY[namespace]
    fixed = FIXED_LAYOUTS[namespace]
    n, off = _dcount(buf, off, end, name)
    if n > (end - off) // 8:
        raise _truncated(off, name, f"list of {n} elements")
    items: list[Any] = []
    append = items.append
    for i in range(n):
        if off + 8 > end:
            raise _truncated(off, f"{name}[{i}]", "element header")
        tag, length = _U32x2.unpack_from(buf, off)
        off += 8
        stop = off + length
        if stop > end:
            raise TruncatedError(
                f"element length {length} runs past the end of its container", off - 4,
                f"{name}[{i}]",
            )
        layout = fixed.get(tag)
        if layout is not None and length >= layout[2]:
            append(_tuple_new(layout[0], layout[1](buf, off)))
            off = stop
            continue
        cls = table.get(tag)
        if cls is None:
            append(Raw(tag, buf[off:stop]))
            off = stop
            continue
        seen = memo.get(tag) if memo else None
        if seen is not None:
            body = buf[off:stop]
            item = seen.get(body)
            if item is not None:
                append(item)
                off = stop
                continue
        try:
            item = cls._sflow_decode(buf, off, stop)[0]
        except DecodeError as e:
            e.within(f"{name}[{i}]:{cls.sflow_name}")
            append(Raw(tag, buf[off:stop], str(e)))
            FAILURES[0] += 1
        else:
            append(item)
            if seen is not None:
                if len(seen) >= MEMO_LIMIT:
                    seen.clear()
                seen[body] = item
        off = stop
    return tuple(items), off


# ---------------------------------------------------------------- encoding helpers


def _ebytes(out: bytearray, raw: bytes, limit: int, name: str) -> None:
    n = len(raw)
    if limit and n > limit:
        raise EncodeError(f"{n} bytes exceed the maximum of {limit}", len(out), name)
    out += _U32.pack(n)
    out += raw
    out += _PAD[n & 3]


def _estr(out: bytearray, text: str, limit: int, name: str) -> None:
    _ebytes(out, text.encode("utf-8", "surrogateescape"), limit, name)


def _eaddr(out: bytearray, text: str, name: str) -> None:
    if not text:
        out += _U32.pack(0)
    elif ":" in text:
        out += _U32.pack(2)
        out += socket.inet_pton(socket.AF_INET6, text)
    else:
        out += _U32.pack(1)
        out += socket.inet_pton(socket.AF_INET, text)


def _earr_fixed(
    out: bytearray, items: Any, st: struct.Struct, conv: Callable[[Any], Any] | None
) -> None:
    out += _U32.pack(len(items))
    for item in items:
        out += st.pack(conv(item) if conv else item)


def _earr_struct(out: bytearray, items: Any, enc: Encoder, name: str) -> None:
    out += _U32.pack(len(items))
    for i, item in enumerate(items):
        try:
            enc(item, out)
        except CodecError as e:
            raise e.within(f"{name}[{i}]") from None


def encode_tlvs(out: bytearray, items: Any, namespace: str, name: str) -> None:
    """Append a counted TLV list, writing each element's exact body length.

    Every element must be ``Raw`` or a structure declared in ``namespace`` (a counter record
    in a flow sample would come back as an unknown flow record).
    """
    allowed = _MEMBERS[namespace]
    out += _U32.pack(len(items))
    i, item = 0, None
    try:
        for item in items:
            if type(item) not in allowed:
                raise EncodeError(f"{type(item).__name__} is not a {namespace} element", len(out))
            pos = len(out)
            out += _U32x2.pack(item.data_format, 0)
            item._sflow_encode(item, out)
            _U32.pack_into(out, pos + 4, len(out) - pos - 8)
            i += 1
    except CodecError as e:
        raise e.within(f"{name}[{i}]:{_element_name(item)}") from None


def _element_name(item: Any) -> str:
    return str(getattr(item, "sflow_name", type(item).__name__))


def _field_encoder(ftype: FieldType, name: str) -> Encoder:
    """Encode one field on its own: used to find the culprit once a generated encoder failed."""
    if isinstance(ftype, Fixed):
        st, conv = _element_struct(ftype), ftype.from_value
        return lambda v, out: _earr_fixed_one(out, v, st, conv)
    if isinstance(ftype, String):
        return lambda v, out: _estr(out, v, ftype.max, name)
    if isinstance(ftype, Opaque):
        return lambda v, out: _ebytes(out, v, ftype.max, name)
    if isinstance(ftype, Address):
        return lambda v, out: _eaddr(out, v, name)
    if isinstance(ftype, Array):
        elem = ftype.element
        if isinstance(elem, Fixed):
            st, conv = _element_struct(elem), elem.from_value
            return lambda v, out: _earr_fixed(out, v, st, conv)
        return lambda v, out: _earr_struct(out, v, elem._sflow_encode, name)
    return lambda v, out: encode_tlvs(out, v, ftype.namespace, name)


def _earr_fixed_one(
    out: bytearray, value: Any, st: struct.Struct, conv: Callable[[Any], Any] | None
) -> None:
    out += st.pack(conv(value) if conv else value)


def _encode_failure(cls: type, obj: Any, exc: Exception | None, offset: int) -> EncodeError:
    """Name the field of ``obj`` that made ``cls``'s generated encoder raise ``exc``."""
    fields: tuple[WireField, ...] = cls._sflow_fields  # type: ignore[attr-defined]
    if not isinstance(obj, tuple) or len(obj) != len(fields):
        return EncodeError(f"expected {cls.__name__}, got {type(obj).__name__}", offset)
    values = dict(zip((f.name for f in fields), obj, strict=True))
    tail_absent = False
    for f in fields:
        value = values[f.name]
        if f.tail:
            tail_absent = value is None
        if tail_absent:
            if value is not None:
                return EncodeError("a tail field is set while the tail's first is None",
                                   offset, f.name)
            continue
        try:
            _field_encoder(f.type, f.name)(value, bytearray())
        except CodecError as e:
            return EncodeError(e.message, offset, e.path)
        except _VALUE_ERRORS as e:
            return EncodeError(f"{value!r}: {e}", offset, f.name)
    return EncodeError(f"cannot encode {cls.__name__}: {exc}", offset)


# ---------------------------------------------------------------- the compiler


def _field_type(hint: Any) -> tuple[Any, bool]:
    if get_origin(hint) is not Annotated:
        raise TypeError(f"field annotation {hint!r} carries no wire type")
    extras = get_args(hint)[1:]
    tail = any(isinstance(x, Tail) for x in extras)
    kinds = [x for x in extras if not isinstance(x, Tail)]
    if len(kinds) != 1:
        raise TypeError(f"field annotation {hint!r} must carry exactly one wire type")
    return kinds[0], tail


def _element_struct(ftype: Fixed) -> struct.Struct:
    return struct.Struct(">" + ftype.fmt)


def compile_structure(cls: type) -> None:
    """Generate ``cls._sflow_decode`` and ``cls._sflow_encode`` from its annotations."""
    hints = get_type_hints(cls, include_extras=True)
    names: tuple[str, ...] = cls._fields  # type: ignore[attr-defined]
    env: dict[str, Any] = {
        "_new": tuple.__new__, "_cls": cls, "_trunc": _truncated, "_dstr": _dstr,
        "_dbytes": _dbytes, "_daddr": _daddr, "_darr_fixed": _darr_fixed,
        "_darr_struct": _darr_struct, "_dtlv": decode_tlvs, "_ebytes": _ebytes,
        "_estr": _estr, "_eaddr": _eaddr, "_earr_fixed": _earr_fixed,
        "_earr_struct": _earr_struct, "_etlv": encode_tlvs, "_CodecError": CodecError,
        "_VALUE_ERRORS": _VALUE_ERRORS, "_fail": _encode_failure,
    }
    fields: list[WireField] = []
    dec: list[str] = ["def _sflow_decode(buf, off, end):"]
    enc: list[str] = ["def _sflow_encode(obj, out):", "  try:"]
    if names:
        enc.append(f"    ({', '.join(names)},) = obj")
    run: list[tuple[str, Fixed]] = []
    run_is_tail = False
    counter = 0
    seen_tail = False

    def flush_run() -> None:
        nonlocal counter, run, run_is_tail
        if not run:
            return
        counter += 1
        st = struct.Struct(">" + "".join(f.fmt for _, f in run))
        env[f"_S{counter}"] = st
        targets = ", ".join(n for n, _ in run) + ","
        first = run[0][0]
        body = [
            f"{targets} = _S{counter}.unpack_from(buf, off)",
            f"off += {st.size}",
        ]
        for n, f in run:
            if f.to_value:
                env[f"_to_{n}"] = f.to_value
                body.append(f"{n} = _to_{n}({n})")
        if run_is_tail:
            dec.append(f"    if off + {st.size} <= end:")
            dec.extend("        " + line for line in body)
            dec.append("    else:")
            dec.append(f"        {' = '.join(n for n, _ in run)} = None")
        else:
            dec.append(f"    if off + {st.size} > end: raise _trunc(off, {first!r})")
            dec.extend("    " + line for line in body)
        args = []
        for n, f in run:
            if f.from_value:
                env[f"_from_{n}"] = f.from_value
                args.append(f"_from_{n}({n})")
            else:
                args.append(n)
        indent = "    "
        if run_is_tail:
            enc.append(f"    if {first} is not None:")
            indent = "        "
        enc.append(f"{indent}out += _S{counter}.pack({', '.join(args)})")
        if run_is_tail and len(run) > 1:  # a half-set tail would be dropped silently
            rest = " or ".join(f"{n} is not None" for n, _ in run[1:])
            enc.append(f"    elif {rest}:")
            enc.append("        raise _fail(_cls, obj, None, len(out))")
        run = []
        run_is_tail = False

    for name in names:
        ftype, tail = _field_type(hints[name])
        fields.append(WireField(name, ftype, tail))
        if seen_tail and not tail and not isinstance(ftype, Fixed):
            raise TypeError(f"{cls.__name__}.{name}: only fixed fields may follow a tail")
        if isinstance(ftype, Fixed):
            if tail:
                flush_run()
                run_is_tail = seen_tail = True
            run.append((name, ftype))
            continue
        if seen_tail:
            raise TypeError(f"{cls.__name__}.{name}: a tail run must end the structure")
        flush_run()
        if isinstance(ftype, String):
            dec.append(f"    {name}, off = _dstr(buf, off, end, {name!r})")
            enc.append(f"    _estr(out, {name}, {ftype.max}, {name!r})")
        elif isinstance(ftype, Opaque):
            dec.append(f"    {name}, off = _dbytes(buf, off, end, {name!r})")
            enc.append(f"    _ebytes(out, {name}, {ftype.max}, {name!r})")
        elif isinstance(ftype, Address):
            dec.append(f"    {name}, off = _daddr(buf, off, end, {name!r})")
            enc.append(f"    _eaddr(out, {name}, {name!r})")
        elif isinstance(ftype, Array):
            elem = ftype.element
            if isinstance(elem, Fixed):
                env[f"_E_{name}"] = _element_struct(elem)
                env[f"_to_{name}"] = elem.to_value
                env[f"_from_{name}"] = elem.from_value
                dec.append(
                    f"    {name}, off = _darr_fixed(buf, off, end, _E_{name}, _to_{name}, {name!r})"
                )
                enc.append(f"    _earr_fixed(out, {name}, _E_{name}, _from_{name})")
            else:
                env[f"_D_{name}"] = elem._sflow_decode
                env[f"_N_{name}"] = elem._sflow_encode
                dec.append(f"    {name}, off = _darr_struct(buf, off, end, _D_{name}, {name!r})")
                enc.append(f"    _earr_struct(out, {name}, _N_{name}, {name!r})")
        elif isinstance(ftype, Tlv):
            dec.append(
                f"    {name}, off = _dtlv(buf, off, end, {ftype.namespace!r}, {name!r})"
            )
            enc.append(f"    _etlv(out, {name}, {ftype.namespace!r}, {name!r})")
        else:  # pragma: no cover - guarded by _field_type
            raise TypeError(f"{cls.__name__}.{name}: unsupported wire type {ftype!r}")
    flush_run()
    if len(dec) == 4 and dec[1].startswith("    if off +") and "_to_" not in "".join(dec):
        # one struct, no conversions: a single unpack straight into the tuple
        size = env[f"_S{counter}"].size
        dec = [dec[0], dec[1], f"    return _new(_cls, _S{counter}.unpack_from(buf, off)), off + {size}"]
        cls._sflow_struct = env[f"_S{counter}"]  # type: ignore[attr-defined]
    else:
        cls._sflow_struct = None  # type: ignore[attr-defined]
        dec.append(f"    return _new(_cls, ({', '.join(names)}{',' if names else ''})), off")
    if len(enc) == 2:
        enc.append("    pass")
    enc += [
        "  except _CodecError as e:",
        "    e.offset = len(out) if e.offset < 0 else e.offset",
        "    raise",
        "  except _VALUE_ERRORS as e:",
        "    raise _fail(_cls, obj, e, len(out)) from None",
    ]
    exec("\n".join(dec) + "\n\n" + "\n".join(enc), env)  # noqa: S102 - generated from declarations
    cls._sflow_decode = staticmethod(env["_sflow_decode"])  # type: ignore[attr-defined]
    cls._sflow_encode = staticmethod(env["_sflow_encode"])  # type: ignore[attr-defined]
    cls._sflow_source = "\n".join(dec) + "\n\n" + "\n".join(enc)  # type: ignore[attr-defined]
    cls._sflow_fields = tuple(fields)  # type: ignore[attr-defined]


def structure(cls: type) -> type:
    """Declare a nested structure (an array element) with no tag of its own."""
    compile_structure(cls)
    return cls


def _registered(namespace: str, enterprise: int, fmt: int, name: str) -> Callable[[type], type]:
    def register(cls: type) -> type:
        tag = data_format(enterprise, fmt)
        if tag in REGISTRY[namespace]:
            raise TypeError(f"{namespace} format ({enterprise},{fmt}) declared twice")
        compile_structure(cls)
        cls.data_format = tag  # type: ignore[attr-defined]
        cls.enterprise = enterprise  # type: ignore[attr-defined]
        cls.format = fmt  # type: ignore[attr-defined]
        cls.sflow_name = name  # type: ignore[attr-defined]
        cls.namespace = namespace  # type: ignore[attr-defined]
        REGISTRY[namespace][tag] = cls
        if cls._sflow_struct is not None:  # type: ignore[attr-defined]
            st = cls._sflow_struct  # type: ignore[attr-defined]
            FIXED_LAYOUTS[namespace][tag] = (cls, st.unpack_from, st.size)
        _MEMBERS[namespace].add(cls)
        BY_NAME[f"{namespace}:{name}"] = cls
        return cls

    return register


def sample(enterprise: int, fmt: int, name: str) -> Callable[[type], type]:
    """Declare a sample type (datagram-level TLV)."""
    return _registered("sample", enterprise, fmt, name)


def flow_record(enterprise: int, fmt: int, name: str) -> Callable[[type], type]:
    """Declare a flow record type."""
    return _registered("flow", enterprise, fmt, name)


def counter_record(enterprise: int, fmt: int, name: str) -> Callable[[type], type]:
    """Declare a counter record type."""
    return _registered("counter", enterprise, fmt, name)
