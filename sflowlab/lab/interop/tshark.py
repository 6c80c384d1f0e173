"""Wireshark's reading of a capture, for tests that compare it with ours (needs ``tshark``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["packet_layers"]


def _keep_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose repeated keys (tshark repeats a field per occurrence) are kept as
    ``key``, ``key#2``, ``key#3``..."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        k, n = key, 1
        while k in out:
            n += 1
            k = f"{key}#{n}"
        out[k] = value
    return out


def packet_layers(pcap: Path, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Each packet's dissected layers (``tshark -T json``), repeated fields kept."""
    out = subprocess.run(["tshark", "-r", str(pcap), "-T", "json"], capture_output=True,
                         check=True, timeout=timeout_s).stdout
    return [p["_source"]["layers"] for p in json.loads(out, object_pairs_hook=_keep_duplicates)]
