"""Decode throughput on one core: the full decoder and the collector's fast path.

Usage: ``python bench/bench_decode.py [--datagrams 2000] [--seconds 2] [--cpu N] [--profile]
[--tshark]``. The capture comes from ``capture.make_capture`` (deterministic). Pinned to one
core, it prints for each path datagrams/s, samples/s and microseconds per sample (the best CPU
time of repeated passes), then the collector path on flow and on counter datagrams alone, with
the C walk (``sflowlab.codec._walk``, when built) and in pure Python, and the ratio; last, a
host_descr UUID as text through ``uuid.UUID`` and as the codec builds it.
``--profile`` prints the top cProfile entries of the collector path; ``--tshark`` also times
``tshark -V`` (whole process, full dissection and printing) on the same capture, for scale.
Target: the collector path at 300,000 samples/s or more (issue 2's target for decoding alone;
`bench_collector.py` compares the whole collector with sflowtool over UDP).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from capture import make_capture

from sflowlab.codec import decode_datagram, fast
from sflowlab.codec._fields import uuid_to_str
from sflowlab.codec.fast import decode_for_collector, decode_for_collector_py
from sflowlab.codec.pcap import PcapWriter


def full_decode(capture: list[bytes]) -> None:
    for dg in capture:
        decode_datagram(dg)


def collector_path(capture: list[bytes]) -> None:
    for dg in capture:
        for sample in decode_for_collector(dg).flow_samples:
            sample.keys()


def collector_path_py(capture: list[bytes]) -> None:
    for dg in capture:
        for sample in decode_for_collector_py(dg).flow_samples:
            sample.keys()


def best_rate(run: Callable[[list[bytes]], None], capture: list[bytes], seconds: float) -> float:
    """Best CPU time of one pass over the capture, repeated for about ``seconds``.

    CPU time (not wall time) so that other processes sharing the core do not count.
    """
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        start = time.thread_time()
        run(capture)
        elapsed = time.thread_time() - start
        best = min(best, elapsed)
        if time.perf_counter() >= deadline:
            return best


def uuid_text(seconds: float) -> None:
    """Microseconds per UUID as text: through ``uuid.UUID`` and the codec's ``uuid_to_str``."""
    raw = bytes(range(16))

    def per_call(fn: Callable[[bytes], str]) -> float:
        calls, start = 0, time.thread_time()
        while time.thread_time() - start < seconds:
            for _ in range(10_000):
                fn(raw)
            calls += 10_000
        return (time.thread_time() - start) / calls * 1e6

    stdlib = per_call(lambda b: str(uuid.UUID(bytes=b)))
    codec = per_call(uuid_to_str)
    print(f"uuid text: uuid.UUID {stdlib:.3f} us, the codec's {codec:.3f} us "
          f"({stdlib / codec:.1f}x)")


def report(name: str, elapsed: float, datagrams: int, samples: int) -> None:
    print(f"{name:<28} {datagrams / elapsed:>10,.0f} datagrams/s {samples / elapsed:>11,.0f} "
          f"samples/s {elapsed / samples * 1e6:>7.2f} us/sample")


def time_tshark(capture: list[bytes], samples: int) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        print("tshark: not installed")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "capture.pcap")
        with PcapWriter(path) as writer:
            for i, dg in enumerate(capture):
                writer.write(dg, i * 0.001, ("192.168.0.1", 6343), ("192.168.0.100", 6343))
        start = time.perf_counter()
        subprocess.run([tshark, "-n", "-r", path, "-V"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
    report("tshark -V (whole process)", elapsed, len(capture), samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--cpu", type=int, default=None, help="core to pin to (default: last)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--tshark", action="store_true")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1] if args.cpu is None else args.cpu})

    capture = make_capture(args.datagrams)
    decoded = [decode_for_collector(dg) for dg in capture]
    flows = sum(len(d.flow_samples) for d in decoded)
    counters = sum(len(d.counter_samples) for d in decoded)
    samples = flows + counters
    flow_dgs = sum(1 for d in decoded if d.flow_samples)
    print(f"capture: {len(capture)} datagrams ({flow_dgs} flow, {len(capture) - flow_dgs} "
          f"counter), {sum(map(len, capture)):,} bytes, {flows} flow + {counters} counter "
          f"samples; pinned to cpu {sorted(os.sched_getaffinity(0))[0]}")
    report("full decode_datagram", best_rate(full_decode, capture, args.seconds),
           len(capture), samples)
    flow_only = [dg for dg, d in zip(capture, decoded, strict=True) if d.flow_samples]
    counter_only = [dg for dg, d in zip(capture, decoded, strict=True) if d.counter_samples]
    paths = [("pure Python", collector_path_py)]
    if fast._walk is not None:
        paths.insert(0, ("C walk", collector_path))
    else:
        print("collector path: the C walk is not built (or SFLOWLAB_PURE_PYTHON=1)")
    timings: dict[str, list[float]] = {}
    for label, path in paths:
        print(f"collector path + keys(), {label}:")
        timings[label] = []
        for name, part, count in (("whole capture", capture, samples),
                                  ("flow datagrams", flow_only, flows),
                                  ("counter datagrams", counter_only, counters)):
            elapsed = best_rate(path, part, args.seconds)
            timings[label].append(elapsed / count)
            report(f"  {name}", elapsed, len(part), count)
    if len(timings) == 2:
        ratios = ", ".join(f"{name} {py / c:.2f}x" for name, py, c in zip(
            ("whole capture", "flow", "counter"), timings["pure Python"], timings["C walk"],
            strict=True))
        print(f"C walk speed-up over pure Python: {ratios}")
    uuid_text(min(args.seconds, 1.0))
    if args.tshark:
        time_tshark(capture, samples)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(collector_path, capture)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
