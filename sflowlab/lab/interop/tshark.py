"""Wireshark's reading of a capture, for tests that compare it with ours (needs ``tshark``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from sflowlab.codec import FlowSample, FlowSampleExpanded

__all__ = ["FLOW_SAMPLE_FIELDS", "expanded_samples", "flow_sample_fields",
           "our_flow_sample_fields", "packet_layers"]


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


FLOW_SAMPLE_FIELDS = ("sequence_number", "source_id_index", "sampling_rate", "sample_pool",
                      "dropped_packets", "input_interface_value", "output_interface_value")
"""The flow sample header fields tshark's sFlow dissector shows, in ``flow_sample_fields``'s
order."""


def expanded_samples(sflow: dict[str, Any]) -> list[dict[str, Any]]:
    """The samples of one datagram's ``sflow`` layer, in order."""
    return [v for k, v in sflow.items() if k.startswith("Expanded ")]


def flow_sample_fields(dissected: dict[str, Any]) -> tuple[str, ...]:
    """A dissected flow sample's header fields (``FLOW_SAMPLE_FIELDS``) as tshark shows them."""
    fields = {k.rsplit(".", 1)[-1]: v for k, v in dissected.items() if isinstance(v, str)}
    return tuple(fields[name] for name in FLOW_SAMPLE_FIELDS)


def our_flow_sample_fields(sample: FlowSample | FlowSampleExpanded) -> tuple[str, ...]:
    """The same fields of one of our samples, as tshark would show them."""
    return tuple(str(v) for v in (sample.sequence_number, sample.source_id_index,
                                  sample.sampling_rate, sample.sample_pool, sample.drops,
                                  sample.input_value, sample.output_value))
