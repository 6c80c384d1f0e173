"""Golden datagrams written by hand from the reference layouts, checked against their expected decode.

Each ``golden/NAME.hex`` holds one datagram as annotated hex (one field per line, ``#`` starts
a comment, spaces inside a line are ignored); ``golden/NAME.json`` is the expected decode in
``to_jsonable`` form, also written by hand. Neither comes from this codec's encoder, so a
shared misreading of the spec in the encoder and decoder cannot pass here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sflowlab.codec import decode_datagram, encode_datagram
from sflowlab.codec.render import to_jsonable

GOLDEN = Path(__file__).parent / "golden"
NAMES = sorted(p.stem for p in GOLDEN.glob("*.hex") if "." not in p.stem)


def load_hex(path: Path) -> bytes:
    """The bytes of an annotated hex file."""
    digits = "".join("".join(line.split("#", 1)[0].split()) for line in path.read_text().splitlines())
    return bytes.fromhex(digits)


def without_flow_keys(value: Any) -> Any:
    """Drop the header parser's derived ``flow_keys``: the golden files check the wire layout."""
    if isinstance(value, dict):
        return {k: without_flow_keys(v) for k, v in value.items() if k != "flow_keys"}
    if isinstance(value, list):
        return [without_flow_keys(v) for v in value]
    return value


def test_every_golden_datagram_has_its_expected_decode() -> None:
    assert NAMES
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_golden_datagram_decodes_to_its_json(name: str) -> None:
    raw = load_hex(GOLDEN / f"{name}.hex")
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    assert without_flow_keys(to_jsonable(decode_datagram(raw))) == expected


@pytest.mark.parametrize("name", NAMES)
def test_golden_datagram_reencodes_to_its_canonical_bytes(name: str) -> None:
    """Re-encoding gives the same bytes, except vendor padding the known layout drops."""
    raw = load_hex(GOLDEN / f"{name}.hex")
    canonical = GOLDEN / f"{name}.canonical.hex"
    expected = load_hex(canonical) if canonical.exists() else raw
    assert encode_datagram(decode_datagram(raw)) == expected


def test_annotated_hex_ignores_comments_and_spacing(tmp_path: Path) -> None:
    path = tmp_path / "x.hex"
    path.write_text("# header\n00000005  # version\n0a 0b # two bytes # more\n\n  0c0d\n")
    assert load_hex(path) == bytes.fromhex("000000050a0b0c0d")
