"""Benchmark the simulated agents: samples per CPU second, and the largest real-time lab.

1. Samples generated per CPU second (``time.process_time``): a busy lab (20 containers serving
   4000 requests/s, 1-in-50 sampling) run in simulated time into a counting sink.
2. The largest lab one core simulates in real time: Docker hosts with 10 containers each
   (hsflowd's ``polling = 10``, ``sampling = 400``, 20 requests/s per container) on a
   leaf-spine fabric (10G host links, 40G uplinks, 1-in-N by link speed, 30 s port polling),
   doubling the hosts until a simulated second costs more than a CPU second (measured after
   5 simulated seconds of warm-up, in which routes and sample templates are built).
3. A flow sample encoded by the codec against one rendered from a ``FlowSampleTemplate`` (what
   the agents do): microseconds per sample.

Run: ``.venv/bin/python bench/bench_agents.py [--quick]``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable

from sflowlab.agent_sim.agent import FlowSampleTemplate, Sampler
from sflowlab.agent_sim.driver import run_simulated
from sflowlab.agent_sim.simulation import Lab, LabSpec
from sflowlab.agent_sim.sinks import CountingSink
from sflowlab.agent_sim.topology import FabricSpec
from sflowlab.agent_sim.workload import ServiceSpec
from sflowlab.clock import SimClock
from sflowlab.codec import FlowSampleExpanded, SampledHeader, encode_sample


def run(spec: LabSpec, seconds: float, warmup_s: float = 0.0) -> tuple[Lab, CountingSink, float]:
    """Run ``warmup_s`` unmeasured (routes and templates get built), then ``seconds``."""
    sink = CountingSink()
    clock = SimClock(0.0)
    lab = Lab(spec, sink, 0.0)
    if warmup_s:
        run_simulated(lab, clock, warmup_s, 1.0)
        for agent in lab.agents():
            agent.samples_by_kind.clear()
        sink.datagrams = sink.octets = 0
    stats = run_simulated(lab, clock, seconds, 1.0)
    return lab, sink, stats.cpu_s


def samples_per_cpu_second(seconds: float) -> None:
    spec = LabSpec(hosts=4, sampling=50, services=[
        ServiceSpec(replicas=20, rps=4000.0, capacity_rps=1000.0)])
    lab, sink, cpu = run(spec, seconds)
    kinds = lab.summary()["samples"]
    total = sum(kinds.values())
    print(f"[1] busy lab, {seconds:.0f} simulated s: {total} samples ({kinds}), "
          f"{sink.datagrams} datagrams, {sink.octets / 1e6:.1f} MB in {cpu:.2f} CPU s")
    print(f"    samples per CPU second: {total / cpu:,.0f}  (target >= 100,000)")


def lab_of(hosts: int) -> LabSpec:
    leaves = max(1, math.ceil(hosts / 24))
    fabric = FabricSpec(leaves=leaves, spines=2, hosts_per_leaf=math.ceil(hosts / leaves),
                        external_peers=1, polling_s=30.0)
    return LabSpec(hosts=hosts, sampling=400, polling_s=10.0, fabric=fabric, services=[
        ServiceSpec(replicas=hosts * 10, rps=20.0 * hosts * 10, capacity_rps=200.0)])


def largest_real_time(seconds: float, max_hosts: int) -> None:
    print(f"[2] real-time capacity, {seconds:.0f} simulated s per size "
          "(hosts x 10 containers + fabric):")
    best = None
    hosts = 4
    while hosts <= max_hosts:
        wall = time.perf_counter()
        lab, _, cpu = run(lab_of(hosts), seconds, warmup_s=5.0)
        load = cpu / seconds
        s = lab.summary()
        ports = sum(len(sw.interfaces) for sw in lab.fabric.switches.values()) if lab.fabric else 0
        rate = sum(s["samples"].values()) / seconds
        print(f"    {hosts:4d} hosts, {s['containers']:5d} containers, {s['switches']:3d} "
              f"switches ({ports} ports): {rate:8.0f} samples/s, {load:5.2f} CPU s per "
              f"simulated s (wall {time.perf_counter() - wall:.1f} s)")
        if load >= 1.0:
            break
        best = (hosts, s["containers"], s["switches"], ports, load)
        hosts *= 2
    if best:
        hosts, containers, switches, ports, load = best
        print(f"    largest real-time lab measured: {hosts} hosts x 10 = {containers} containers"
              f" + {switches} switches / {ports} ports at {load:.2f} of one core; "
              f"extrapolated ~{int(hosts / load)} hosts per core")


def sample_rendering(seconds: float) -> None:
    """Microseconds per flow sample: encoded by the codec, rendered from a template."""
    records = (SampledHeader(1, 1518, 4, bytes(128)),)
    template = FlowSampleTemplate(records)
    sampler = Sampler(0, 3, 400, random.Random(1))
    sample = FlowSampleExpanded(1, 0, 3, 400, 4000, 0, 0, 3, 0, 4, records)

    def per_call(fn: Callable[[], object]) -> float:
        calls, start = 0, time.process_time()
        while time.process_time() - start < seconds:
            for _ in range(1000):
                fn()
            calls += 1000
        return (time.process_time() - start) / calls * 1e6

    encoded = per_call(lambda: encode_sample(sample))
    rendered = per_call(lambda: bytes(template.render(sampler, 3, 4)))
    print(f"flow sample: encoded by the codec {encoded:.2f} us, rendered from a template "
          f"{rendered:.2f} us ({encoded / rendered:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, smaller labs")
    args = parser.parse_args()
    samples_per_cpu_second(20.0 if args.quick else 60.0)
    largest_real_time(20.0 if args.quick else 30.0, 64 if args.quick else 4096)
    sample_rendering(1.0 if args.quick else 3.0)


if __name__ == "__main__":
    main()
