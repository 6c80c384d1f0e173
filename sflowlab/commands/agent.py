"""``sflowlab agent``: mirror this Linux host into sFlow like hsflowd (needs root).

Interface counters and link events (rtnetlink), packet samples of docker0 and docker_gwbridge
or the interfaces named with ``--interface`` (AF_PACKET with the kernel's random filter, promiscuous), Docker
containers (events and stats from the engine) and the host's counters (/proc) go to the
collectors and/or a pcap file. Runs until SIGTERM or Ctrl-C (or ``--duration``), then prints a
summary. Options override the ``--config`` file (hsflowd.conf's essentials in TOML, see
``sflowlab.agent_sim.mirror.config``); e.g.::

    sudo sflowlab agent --collector 127.0.0.1:6343 --sampling 400 --polling 20
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO, TypeVar

from sflowlab.agent_sim.sinks import CountingSink, PcapSink, Sink, TeeSink, UdpSink, parse_endpoint
from sflowlab.clock import SystemClock

T = TypeVar("T")
EXIT_USAGE = 2
DOCKER_SOCKET = Path("/var/run/docker.sock")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "agent", help="mirror this host (interfaces, bridges, containers) into sFlow",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="TOML file (hsflowd.conf's essentials)")
    p.add_argument("--collector", action="append", default=[], metavar="HOST:PORT",
                   help="send datagrams here (repeatable)")
    p.add_argument("--pcap", metavar="FILE", help="also write the datagrams to this pcap file")
    p.add_argument("--sampling", type=int, metavar="N", help="1-in-N packet sampling (400)")
    p.add_argument("--polling", type=int, metavar="S", help="counter polling interval (20 s)")
    p.add_argument("--interface", action="append", metavar="NAME",
                   help="interface to sample, repeatable (docker0 and docker_gwbridge, when "
                        "they exist)")
    p.add_argument("--docker-url", metavar="URL",
                   help="Docker engine (default unix:///var/run/docker.sock when it exists; "
                        "'none': no containers)")
    p.add_argument("--agent-ip", metavar="ADDRESS",
                   help="agent address in the datagrams (default: the source address towards "
                        "the first collector, the default route's when that is loopback)")
    p.add_argument("--header-bytes", type=int, metavar="N", help="sampled header size (128)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.set_defaults(func=run, parser=p)


def _pick(default: T, *values: T | None) -> T:
    """The first value given (not None), else ``default``."""
    return next((v for v in values if v is not None), default)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from sflowlab.agent_sim.mirror.agent import MirrorSettings, agent_address, run_agent
    from sflowlab.agent_sim.mirror.config import FileConfig, load_config

    out, err = out or sys.stdout, err or sys.stderr
    try:
        file = load_config(args.config) if args.config else FileConfig()
        collectors = [parse_endpoint(c) for c in args.collector] or file.collectors
        if not collectors and not args.pcap:
            args.parser.error("give --collector HOST:PORT (or [[collector]] in --config) "
                              "and/or --pcap FILE")
        docker_url = args.docker_url or file.docker_url
        if docker_url is None and not file.docker_disabled and DOCKER_SOCKET.exists():
            docker_url = f"unix://{DOCKER_SOCKET}"
        if docker_url in ("none", ""):
            docker_url = None
        settings = MirrorSettings(
            sampling=_pick(400, args.sampling, file.sampling),
            polling_s=_pick(20, args.polling, file.polling_s),
            interfaces=tuple(args.interface or file.interfaces or MirrorSettings.interfaces),
            docker_url=docker_url,
            header_bytes=_pick(128, args.header_bytes, file.header_bytes),
        )
        first = collectors[0] if collectors else ("127.0.0.1", 6343)
        address = args.agent_ip or file.agent_ip or agent_address(first)
        sinks: list[Sink] = []
        if collectors:
            sinks.append(UdpSink(collectors))
        if args.pcap:
            sinks.append(PcapSink(args.pcap, collector=first))
    except (OSError, ValueError) as e:
        err.write(f"sflowlab agent: {e}\n")
        return EXIT_USAGE
    tee = TeeSink(*sinks)
    counter = CountingSink(tee)
    stop = threading.Event()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    previous_fd = signal.set_wakeup_fd(wake_w)
    handlers = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM,
                                                                     signal.SIGINT)}
    try:
        agent = run_agent(settings, counter, SystemClock(), stop, address, args.duration,
                          wake_r)
    except (OSError, ValueError) as e:
        err.write(f"sflowlab agent: {e}\n")
        return 1
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(previous_fd)
        os.close(wake_r)
        os.close(wake_w)
        tee.close()
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(agent.agent.samples_by_kind.items()))
    out.write(f"agent {address}: datagrams {counter.datagrams} ({counter.octets} bytes), "
              f"samples: {kinds or 'none'}\n")
    for name, (samples, drops, pool) in agent.sampled.items():
        out.write(f"sampled {name}: 1-in-{settings.sampling}, {samples} samples of {pool} "
                  f"frames, {drops} dropped\n")
    if agent.errors:
        out.write(f"errors: {agent.errors}\n")
    return 0
