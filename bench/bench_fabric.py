"""Switch fabric simulation speed: flow samples (and datagrams) produced per CPU second.

Usage: ``python bench/bench_fabric.py [--leaves 4] [--hosts 16] [--flows 200] [--flood 500]
[--rate 100] [--seconds 30] [--tick 0.5] [--seed 1]``. Runs east-west TCP flows between
random hosts plus an NTP amplification flood from many external sources to one host, at
1-in-``rate`` sampling, into a counting sink, and prints samples and datagrams per CPU second
(``time.process_time``), with and without the expanded sample form.
"""

from __future__ import annotations

import argparse
import random
import time

from sflowlab.agent_sim.fabric import Fabric
from sflowlab.agent_sim.sinks import CountingSink
from sflowlab.agent_sim.topology import FabricSpec
from sflowlab.agent_sim.traffic import TrafficFlow, amplification_flood


def build(args: argparse.Namespace, expanded: bool) -> tuple[Fabric, CountingSink]:
    sink = CountingSink()
    spec = FabricSpec(leaves=args.leaves, hosts_per_leaf=args.hosts, sampling_rate=args.rate,
                      polling_s=10, expanded=expanded)
    fabric = Fabric(spec, sink, random.Random(args.seed))
    rng = random.Random(args.seed)
    names = list(fabric.hosts)
    for i in range(args.flows):
        src, dst = rng.sample(names, 2)
        fabric.add_flow(TrafficFlow(src, dst, "tcp", 10_000 + i, 443, rng.uniform(100, 5000),
                                    rng.choice((100, 800, 1500))))
    for flow in amplification_flood(names[0], args.flood, 200_000.0,
                                    source_prefix="198.18.0.0/15"):
        fabric.add_flow(flow)
    return fabric, sink


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=4)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--flows", type=int, default=200)
    parser.add_argument("--flood", type=int, default=500)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--tick", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for expanded in (False, True):
        fabric, sink = build(args, expanded)
        steps = round(args.seconds / args.tick)
        start = time.process_time()
        for k in range(1, steps + 1):
            fabric.tick(k * args.tick)
        cpu = time.process_time() - start
        samples = sum(sw.agent.samples_sent for sw in fabric.switches.values())
        form = "expanded" if expanded else "compact"
        print(f"{form:8}: {len(fabric.flows)} flows, {args.seconds:g} s simulated in "
              f"{cpu:.2f} CPU s: {samples / cpu:,.0f} samples/s, "
              f"{sink.datagrams / cpu:,.0f} datagrams/s ({samples:,} samples)")


if __name__ == "__main__":
    main()
