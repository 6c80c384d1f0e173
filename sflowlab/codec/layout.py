"""Byte layouts of declared structures, for the fast paths that read them directly.

The collector's walk (``fast.py`` and its C twin ``_walk.c``) reads sample and record fields
by offset instead of calling the compiled decoders. Its ``struct`` formats and the offsets it
hands the C walk come from here, computed from the same declarations the codec decodes with,
so neither restates a layout.

A declaration's *head* is its leading run of fixed-size fields, followed by the u32 count or
length word of the variable-size field that ends the run (when one does): the part of a
structure found at fixed offsets.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from typing import Any

from ._compile import WireField
from ._fields import Fixed

__all__ = ["ELEMENT", "LENGTH", "data_format_of", "fixed", "head", "offsets", "struct_offsets"]

LENGTH = "I"
"""The u32 count or length word that opens every variable-size XDR field."""

ELEMENT = "II"
"""A TLV element's data_format and length words."""


def _run(cls: Any, after: str | None) -> tuple[list[WireField], WireField | None]:
    """The fixed fields from the start (or after the field ``after``) up to the first
    variable-size one, and that one (None when the structure ends first)."""
    fields: tuple[WireField, ...] = cls._sflow_fields
    names = [f.name for f in fields]
    start = 0 if after is None else names.index(after) + 1
    run: list[WireField] = []
    for f in fields[start:]:
        if not isinstance(f.type, Fixed) or f.tail:
            return run, (None if f.tail else f)
        run.append(f)
    return run, None


def fixed(cls: Any, after: str | None = None) -> str:
    """The struct format (no byte order) of ``cls``'s leading fixed fields (after ``after``)."""
    run, _ = _run(cls, after)
    return "".join(_format(f) for f in run)


def head(cls: Any, after: str | None = None) -> str:
    """``fixed`` plus the length word of the variable-size field ending the run, if any."""
    _, variable = _run(cls, after)
    return fixed(cls, after) + (LENGTH if variable is not None else "")


def offsets(cls: Any, after: str | None = None) -> dict[str, int]:
    """Byte offset of each field of ``cls``'s head (the variable field: its length word),
    relative to the head's start, and ``"size"``: the head's size."""
    run, variable = _run(cls, after)
    out: dict[str, int] = {}
    fmt = ">"
    for f in [*run, *([variable] if variable is not None else [])]:
        out[f.name] = struct.calcsize(fmt)
        fmt += _format(f) if isinstance(f.type, Fixed) else LENGTH
    out["size"] = struct.calcsize(fmt)
    return out


def struct_offsets(fmt: str, names: Sequence[str]) -> dict[str, int]:
    """Byte offset of each item a big-endian struct ``fmt`` unpacks (pad bytes skipped),
    named by ``names`` in order, and ``"size"``."""
    starts: list[int] = []
    done = ">"
    for count, code in re.findall(r"(\d*)([a-zA-Z?])", fmt):
        if code == "x":
            done += count + code
            continue
        for _ in range(1 if code in "sp" or not count else int(count)):
            starts.append(struct.calcsize(done))
            done += (count if code in "sp" else "") + code
    if len(starts) != len(names):
        raise ValueError(f"{fmt!r} unpacks {len(starts)} items, not {len(names)}")
    return {**dict(zip(names, starts, strict=True)), "size": struct.calcsize(done)}


def data_format_of(cls: Any) -> int:
    """The ``data_format`` a sample or record declaration is registered with."""
    return int(cls.data_format)


def _format(f: WireField) -> str:
    assert isinstance(f.type, Fixed)
    return f.type.fmt
