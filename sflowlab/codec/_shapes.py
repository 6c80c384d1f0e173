"""Counter record lists decoded by one struct per layout ("shape"), learnt from the traffic.

An agent sends the same counter layout every poll: the same records, in the same order, with
the same lengths (only the values change). ``ShapeCache.decode(buf, off, stop)`` decodes the
record list at ``off`` (its count word) exactly as ``decode_tlvs(..., memo)`` does, but once a
layout has been seen twice it compiles the whole list into one ``struct.Struct`` (record headers
included) and a generated function that checks every count, tag and length word against the
layout's (chained comparisons: cheaper than an ``itemgetter`` and a tuple compare), then
builds each one-struct record from a slice of the unpacked tuple; any other record is carried
as bytes and decoded by its compiled decoder (descriptive ones through the memo). A list that does not match its layout, or whose record fails to decode, goes the general
way, so the result (``Raw`` records and ``FAILURES`` included) is the same.

Layouts are found by the list's byte length and its first 12 bytes (count, first tag and
length), at most ``PER_KEY`` per key and ``LIMIT`` keys (then the cache starts again); a key is
compiled only the second time it is seen, and only while the compile budget lasts: compiling
a layout costs about a millisecond, as much as ``COMPILE_COST`` lists decoded the general way,
and each list decoded the general way earns one unit back. Traffic that never settles into
layouts thus spends at most about as long compiling as decoding.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from . import _compile
from ._compile import FIXED_LAYOUTS, REGISTRY, Raw, decode_tlvs
from ._errors import DecodeError

Records = tuple[Any, ...]
ShapeDecoder = Callable[[bytes, int], Records | None]

_U32x2 = struct.Struct(">II")
LIMIT = 1 << 10
PER_KEY = 4
COMPILE_COST = 200
BUDGET = 8 * COMPILE_COST  # the most the budget holds (and its start): eight layouts at once


class ShapeCache:
    """Compiled counter record layouts and the descriptive records' memo they share."""

    def __init__(self, memo: dict[int, dict[bytes, Any]]) -> None:
        self.memo = memo
        self.shapes: dict[tuple[int, bytes], list[ShapeDecoder]] = {}
        self.budget = BUDGET

    def decode(self, buf: bytes, off: int, stop: int) -> Records:
        """The records of the list at ``off``; raises ``DecodeError`` as ``decode_tlvs`` does."""
        key = (stop - off, buf[off : off + 12])
        known = self.shapes.get(key)
        if known:
            for shape in known:
                records = shape(buf, off)
                if records is not None:
                    return records
        records = decode_tlvs(buf, off, stop, "counter", "records", self.memo)[0]
        if known is None:
            if len(self.shapes) >= LIMIT:
                self.shapes.clear()
            self.shapes[key] = []  # seen once: compiled if it comes again
        elif len(known) < PER_KEY and self.budget >= COMPILE_COST:
            self.budget -= COMPILE_COST
            known.append(self._compile(buf, off, stop))
        if self.budget < BUDGET:
            self.budget += 1
        return records

    def _compile(self, buf: bytes, off: int, stop: int) -> ShapeDecoder:
        """A decoder for lists laid out as the (well-framed) one at ``off``."""
        (count,) = struct.unpack_from(">I", buf, off)
        fmt, pos, words, expected = [">I"], off + 4, [0], [count]
        env: dict[str, Any] = {"_new": tuple.__new__, "_DecodeError": DecodeError,
                               "_remember": self._remember}
        items, index = [], 1
        for i in range(count):
            tag, length = _U32x2.unpack_from(buf, pos)
            pos += 8 + length
            words += [index, index + 1]
            expected += [tag, length]
            index += 2
            fixed = FIXED_LAYOUTS["counter"].get(tag)
            cls = REGISTRY["counter"].get(tag, Raw)
            env[f"_C{i}"] = cls
            if fixed is not None and length >= fixed[2]:
                st: struct.Struct = cls._sflow_struct  # type: ignore[attr-defined]
                fmt.append("II" + st.format.lstrip(">") + f"{length - fixed[2]}x")
                n = len(cls._fields)  # type: ignore[attr-defined]
                items.append(f"_new(_C{i}, t[{index}:{index + n}])")
                index += n
                continue
            fmt.append(f"II{length}s")
            if cls is Raw:
                items.append(f"_new(_C{i}, ({tag}, t[{index}], ''))")
            elif tag in self.memo:
                env[f"_M{i}"] = self.memo[tag]
                items.append(f"(_x if (_x := _M{i}.get(t[{index}])) is not None"
                             f" else _remember(_M{i}, _C{i}, t[{index}]))")
            else:
                items.append(f"_C{i}._sflow_decode(t[{index}], 0, {length})[0]")
            index += 1
        env["_S"] = struct.Struct("".join(fmt))
        frame = " or ".join(f"t[{w}] != {v}" for w, v in zip(words, expected, strict=True))
        source = "\n".join([
            "def shape(buf, off):",
            "    t = _S.unpack_from(buf, off)",
            f"    if {frame}:",
            "        return None",
            "    try:",
            f"        return ({', '.join(items)}{',' if items else ''})",
            "    except _DecodeError:",
            "        return None",
        ])
        exec(source, env)  # noqa: S102 - generated from the declarations and a seen layout
        shape: ShapeDecoder = env["shape"]
        return shape

    @staticmethod
    def _remember(seen: dict[bytes, Any], cls: Any, body: bytes) -> Any:
        """Decode a descriptive record's body and remember it (bounded as in ``decode_tlvs``)."""
        item = cls._sflow_decode(body, 0, len(body))[0]
        if len(seen) >= _compile.MEMO_LIMIT:
            seen.clear()
        seen[body] = item
        return item
