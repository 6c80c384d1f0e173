"""Regenerate ``sflowlab/data/sample.pcap``, the capture the README decodes.

Two parts, merged by time:

1. Real third-party datagrams: pmacct's sfprobe sampling HTTP traffic between two network
   namespaces (``sflowlab.lab.interop.pmacct``), kept byte for byte, including one pmacct counter
   sample. Needs root and pmacct; ``--synthetic-only`` leaves this part out.
2. hsflowd-like datagrams, deterministic (fixed seed and times), from agent_sim's host model:
   one Docker host (host counters, data source 2.1), two web containers (3.N, indexed as
   hsflowd does), and flow samples of their HTTP packets on the bridge, for 30 s.

The payloads are written with ``PcapWriter``, UDP from each agent's address to a collector at
10.199.0.100:6343, timestamps from ``BASE_TIME``.

    sudo .venv/bin/python ci/make_sample_capture.py [--synthetic-only] [--out PATH]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

from sflowlab.agent_sim.host import HostAgent, HostSpec
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.agent_sim.workload import Service, ServiceSpec
from sflowlab.codec import CountersSample, decode_datagram
from sflowlab.codec.pcap import PcapWriter
from sflowlab.lab.interop.pmacct import sfprobe_lab, unavailable_reason

OUT = Path(__file__).resolve().parent.parent / "sflowlab" / "data" / "sample.pcap"
BASE_TIME = 1_700_000_000.0
COLLECTOR = ("10.199.0.100", 6343)
HOST_AGENT = "10.199.1.10"
PMACCT_DATAGRAMS = 12

Timed = list[tuple[float, str, bytes]]  # (time since start, agent address, payload)


def pmacct_datagrams(timeout: float = 60.0) -> Timed:
    """The first flow datagrams from pmacct's sfprobe and the first with a counter sample."""
    kept: Timed = []
    have_counters = False
    with tempfile.TemporaryDirectory() as tmp, sfprobe_lab(Path(tmp)) as lab:
        start = None
        for payload, _source, received_at in lab.datagrams(timeout):
            start = received_at if start is None else start
            dg = decode_datagram(payload)
            counters = any(isinstance(s, CountersSample) for s in dg.samples)
            if len(kept) < PMACCT_DATAGRAMS or (counters and not have_counters):
                kept.append((received_at - start, dg.agent_address, payload))
            have_counters = have_counters or counters
            if have_counters and len(kept) >= PMACCT_DATAGRAMS:
                break
    if not have_counters:
        raise RuntimeError(f"no counter sample from pmacct within {timeout}s")
    return kept


def host_agent_datagrams(seed: int = 6343, duration_s: int = 30) -> Timed:
    """hsflowd on a Docker host serving HTTP from two containers (agent_sim's model)."""
    sink = MemorySink()
    host = HostAgent(HostSpec("docker-host-1", HOST_AGENT, sampling=400, polling_s=10.0),
                     sink, random.Random(seed))
    service = Service(ServiceSpec(name="web", replicas=2, rps=50.0,
                                  client_addresses=("192.0.2.77", "198.51.100.9")))
    for name in ("web-1", "web-2"):
        service.add_replica(host.start_container(name, 0.0, service).id)
    for t in range(1, duration_s + 1):
        for replica, requests, first_connection in service.step(1.0):
            host.serve(replica, requests, first_connection, float(t))
        host.tick(float(t))
    return sink.drain()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--synthetic-only", action="store_true",
                        help="leave out pmacct's datagrams (no root or pmacct needed)")
    args = parser.parse_args()
    timed = host_agent_datagrams()
    if not args.synthetic_only:
        reason = unavailable_reason()
        if reason:
            print(f"cannot capture pmacct's datagrams: {reason}", file=sys.stderr)
            return 2
        timed += [(0.5 + t, agent, payload) for t, agent, payload in pmacct_datagrams()]
    timed.sort(key=lambda item: item[0])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with PcapWriter(args.out) as writer:
        for t, agent, payload in timed:
            writer.write(payload, BASE_TIME + t, (agent, 6343), COLLECTOR)
    print(f"wrote {len(timed)} datagrams to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
