"""Capture I/O and rendering throughput: PcapWriter, read_sflow, and what ``decode`` prints.

Usage: ``python bench/bench_pcap.py [--datagrams 2000] [--seconds 2]``. The datagrams come
from ``capture.make_capture`` (deterministic). Prints datagrams/s for writing a pcap, reading
it back (classic pcap and, when editcap is installed, pcapng), and for decode + JSON lines and
decode + text, each the best of several passes on one core.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_decode import best_rate
from capture import make_capture

from sflowlab.codec import decode_datagram
from sflowlab.codec.pcap import PcapWriter, read_sflow
from sflowlab.codec.render import render_text, sample_rows


def write_pcap(capture: list[bytes]) -> bytes:
    out = io.BytesIO()
    with PcapWriter(out) as writer:
        for i, dg in enumerate(capture):
            writer.write(dg, i * 0.001, ("192.168.0.1", 6343), ("192.168.0.100", 6343))
    return out.getvalue()


def reader(data: bytes) -> Callable[[list[bytes]], None]:
    def run(_: list[bytes]) -> None:
        for _ in read_sflow(io.BytesIO(data)):
            pass
    return run


def json_lines(capture: list[bytes]) -> None:
    for dg in capture:
        for row in sample_rows(decode_datagram(dg), 0.0, ("192.168.0.1", 6343)):
            json.dumps(row)


def text(capture: list[bytes]) -> None:
    for dg in capture:
        render_text(decode_datagram(dg), 0.0, ("192.168.0.1", 6343), len(dg))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    capture = make_capture(args.datagrams)
    pcap = write_pcap(capture)
    runs: list[tuple[str, Callable[[list[bytes]], None]]] = [
        ("PcapWriter.write", write_pcap), ("read_sflow (pcap)", reader(pcap)),
    ]
    editcap = shutil.which("editcap")
    if editcap:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp, "c.pcap"), Path(tmp, "c.pcapng")
            src.write_bytes(pcap)
            subprocess.run([editcap, "-F", "pcapng", str(src), str(dst)], check=True)
            runs.append(("read_sflow (pcapng)", reader(dst.read_bytes())))
    runs += [("decode + JSON lines", json_lines), ("decode + text", text)]
    print(f"capture: {len(capture)} datagrams, {len(pcap):,} bytes of pcap")
    for name, run in runs:
        elapsed = best_rate(run, capture, args.seconds)
        print(f"{name:<22} {len(capture) / elapsed:>10,.0f} datagrams/s "
              f"{len(pcap) / elapsed / 1e6:>8.1f} MB/s of pcap")


if __name__ == "__main__":
    main()
