"""Flow engine ingest rate: samples/s through FlowEngine.ingest with typical definitions.

Usage: ``python bench/bench_flows.py [--datagrams 2000] [--seconds 2] [--profile]``. Flow
samples come from ``capture.make_capture`` (deterministic), decoded once by the collector's
fast path with their keys parsed, so only the flow engine is timed. Prints samples/s and
microseconds per sample for 0, 1 and 4 flow definitions (the 4: a keyless total, a
source/destination pair, a masked /24 with a filter, and a logged group lookup against a
10,000-prefix group).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from capture import make_capture

from sflowlab.codec.fast import decode_for_collector
from sflowlab.collector.flows import FlowEngine, FlowSpec
from sflowlab.collector.groups import GroupSet

DEFINITIONS: dict[str, dict[str, Any]] = {
    "total": {"value": "bytes"},
    "pair": {"keys": "ipsource,ipdestination", "value": "bytes"},
    "subnet": {"keys": "mask:ipsource:24,or:tcpdestinationport:udpdestinationport",
               "value": "frames", "filter": "ipprotocol=6,17&direction!=egress"},
    "blocked": {"keys": "ipsource,ipdestination,group:ipdestination:blocklist",
                "value": "bytes", "log": True},
}


def engine(names: list[str]) -> FlowEngine:
    rng = random.Random(1)
    groups = GroupSet()
    groups.set("blocklist", [f"{rng.randrange(1, 224)}.{rng.randrange(256)}."
                             f"{rng.randrange(256)}.0/24" for _ in range(10_000)])
    fe = FlowEngine(groups)
    for name in names:
        fe.define(name, FlowSpec.from_json(DEFINITIONS[name]))
    return fe


def run(fe: FlowEngine, samples: list[tuple[str, Any]], now: float) -> None:
    ingest = fe.ingest
    for agent, sample in samples:
        ingest(agent, sample, now)
    fe.tick(now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    samples = []
    for data in make_capture(args.datagrams, 1):
        dg = decode_for_collector(data)
        for s in dg.flow_samples:
            s.keys()
            samples.append((dg.agent_address, s))
    print(f"{len(samples):,} flow samples")
    for names in ([], ["pair"], list(DEFINITIONS)):
        fe = engine(names)
        best, now = float("inf"), 0.0
        deadline = time.perf_counter() + args.seconds
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            run(fe, samples, now)
            best = min(best, time.perf_counter() - start)
            now += 1.0
        label = ",".join(names) or "(no flows)"
        print(f"{label:<28} {len(samples) / best:>10,.0f} samples/s "
              f"{best / len(samples) * 1e6:>6.2f} us/sample")
    if args.profile:
        fe = engine(list(DEFINITIONS))
        profiler = cProfile.Profile()
        profiler.runcall(run, fe, samples, 0.0)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
