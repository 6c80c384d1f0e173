"""``sflowlab agents``: run simulated sFlow agents (hsflowd hosts with containers, a fabric).

The lab comes from options or a file (``--lab``; options given on the command line override
the file). Datagrams go to UDP collectors and/or a pcap file, in real time or, with
``--simulated``, as fast as the CPU allows. Progress goes to stderr (redrawn in place on a
terminal), a summary to stdout at the end.

A lab file (.json, .toml or .yaml with the same keys), in TOML for example::

    seed = 7
    hosts = 4
    sampling = 400
    polling_s = 10
    switches = 4                  # or a [fabric] table with FabricSpec's fields
    [[services]]
    name = "apache"
    replicas = 6
    clients = 4                   # closed loop like ab -c 4 (or rps = 300: open loop)
    client_addresses = ["192.168.100.10"]
    [[schedule]]
    at = 300
    service = "apache"
    replicas = 9                  # or rps / clients
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from sflowlab.agent_sim.driver import (
    SIMULATED_EPOCH,
    RunStats,
    run_realtime,
    run_simulated,
)
from sflowlab.agent_sim.simulation import Lab, LabSpec, lab_spec_from_dict, load_lab_spec
from sflowlab.agent_sim.sinks import CountingSink, PcapSink, Sink, TeeSink, UdpSink, parse_endpoint
from sflowlab.clock import SimClock, SystemClock

EXIT_USAGE = 2


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "agents", help="run simulated sFlow agents (hosts, containers, switches)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lab", metavar="FILE",
                   help="lab description (.json, .toml, .yaml): seed, hosts, containers, "
                        "sampling, polling_s, switches or fabric, services, schedule")
    p.add_argument("--hosts", type=int, metavar="N", help="Docker hosts running hsflowd (2)")
    p.add_argument("--containers", type=int, metavar="N",
                   help="replicas per host of the default service (2)")
    p.add_argument("--switches", type=int, metavar="N",
                   help="leaf-spine switches, >= 3 with the border leaf (0: no fabric)")
    p.add_argument("--sampling", type=int, metavar="N", help="hosts' 1-in-N sampling (400)")
    p.add_argument("--polling", type=float, metavar="S", help="polling interval in s (10)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed (1)")
    p.add_argument("--collector", action="append", default=[], metavar="HOST:PORT",
                   help="send datagrams here (repeatable)")
    p.add_argument("--pcap", metavar="FILE", help="write datagrams to this pcap file")
    p.add_argument("--simulated", action="store_true",
                   help="simulated time, as fast as possible (needs --duration)")
    p.add_argument("--duration", type=float, metavar="S",
                   help="seconds to run (real time: until Ctrl-C when omitted)")
    p.add_argument("--step", type=float, default=1.0, metavar="S", help="tick length (1 s)")
    p.add_argument("--start", type=float, default=SIMULATED_EPOCH, metavar="EPOCH",
                   help=f"simulated start time (default {SIMULATED_EPOCH:.0f})")
    p.set_defaults(func=run, parser=p)


def _spec(args: argparse.Namespace) -> LabSpec:
    overrides = {"hosts": args.hosts, "containers": args.containers, "switches": args.switches,
                 "sampling": args.sampling, "polling_s": args.polling, "seed": args.seed}
    if args.lab:
        return load_lab_spec(args.lab, **overrides)
    return lab_spec_from_dict({}, **overrides)


def _sinks(args: argparse.Namespace) -> list[Sink]:
    sinks: list[Sink] = []
    if args.collector:
        sinks.append(UdpSink([parse_endpoint(c) for c in args.collector]))
    if args.pcap:
        sinks.append(PcapSink(args.pcap))
    return sinks


class Progress:
    """A status line on stderr: redrawn in place on a TTY, else a line every ``every_s``."""

    def __init__(self, lab: Lab, counter: CountingSink, err: TextIO, every_s: float = 10.0):
        self.lab, self.counter, self.err = lab, counter, err
        self.tty = err.isatty()
        self.every_s = 0.5 if self.tty else every_s
        self._last = time.perf_counter()
        self._last_counts = (0, 0)

    def __call__(self, now: float) -> None:
        wall = time.perf_counter()
        if wall - self._last < self.every_s:
            return
        samples = sum(self.lab.summary()["samples"].values())
        dgrams = self.counter.datagrams
        dt = wall - self._last
        rates = ((dgrams - self._last_counts[0]) / dt, (samples - self._last_counts[1]) / dt)
        self._last, self._last_counts = wall, (dgrams, samples)
        line = (f"t={now - self.lab.start:8.1f}s  agents={len(self.lab.agents())}  "
                f"datagrams/s={rates[0]:9.1f}  samples/s={rates[1]:9.1f}")
        self.err.write(f"\r{line}" if self.tty else f"{line}\n")
        self.err.flush()

    def close(self) -> None:
        if self.tty:
            self.err.write("\n")


def _report(lab: Lab, counter: CountingSink, stats: RunStats, out: TextIO) -> None:
    s = lab.summary()
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(s["samples"].items())) or "none"
    out.write(
        f"agents: {s['agents']} ({s['hosts']} hosts, {s['switches']} switches), "
        f"containers: {s['containers']}\n"
        f"datagrams: {counter.datagrams}  bytes: {counter.octets}\n"
        f"samples: {sum(s['samples'].values())} ({kinds})\n"
        f"simulated: {stats.simulated_s:.1f} s  wall: {stats.wall_s:.2f} s  "
        f"cpu: {stats.cpu_s:.2f} s  ticks: {stats.ticks}\n")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    if not args.collector and not args.pcap:
        args.parser.error("give --collector HOST:PORT and/or --pcap FILE")
    if args.simulated and args.duration is None:
        args.parser.error("--simulated needs --duration")
    if args.step <= 0 or (args.duration is not None and args.duration < 0):
        args.parser.error("--step must be > 0 and --duration >= 0")
    try:
        spec = _spec(args)
        sinks = _sinks(args)
    except (OSError, ValueError) as e:
        err.write(f"sflowlab agents: {e}\n")
        return EXIT_USAGE
    tee = TeeSink(*sinks)
    counter = CountingSink(tee)
    try:
        clock = SimClock(args.start) if args.simulated else SystemClock()
        lab = Lab(spec, counter, clock.now())
        progress = Progress(lab, counter, err)
        if isinstance(clock, SimClock):
            stats = run_simulated(lab, clock, args.duration, args.step, progress)
        else:
            stats = run_realtime(lab, args.duration, args.step, clock, progress)
        progress.close()
    except ValueError as e:
        err.write(f"sflowlab agents: {e}\n")
        return EXIT_USAGE
    finally:
        tee.close()
    _report(lab, counter, stats, out)
    return 0
