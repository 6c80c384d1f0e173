"""Collector throughput: in-process ingest, then loopback UDP at rising rates until loss.

1. In-process (one core): ``Engine.ingest`` over an in-order capture with analytics on (host
   and container counter metrics, the flow definitions), as samples/s and µs/sample; then
   the same through ``ShardedEngine`` (worker processes, no sockets).
2. Loopback: the collector runs as a subprocess (``sflowlab collector``), once in-process
   (pinned to one CPU, the sender to the other) and once with ``--workers 2`` (two worker
   processes, each receiving and analysing its agents' datagrams on the shared port; nothing
   pinned); for each rate the sender paces the capture over UDP to 127.0.0.1 for the whole
   step, one source socket per agent. The capture is repeated as needed (``Replay``): every
   step has agent addresses of its own, and each pass continues the sequence numbers and
   uptimes of the one before, as one longer recording of the same agents (``--churn``: fresh
   agents every pass instead). It waits until the collector's accounting stops moving, and
   reports loss from sequence accounting (``/agents/json``), what the collector counts as
   discarded (``sFlowDatagramsDiscarded``: its queue's drops and its sockets' buffer
   overflows), the kernel's receive buffer drops host-wide (``/proc/net/snmp``
   RcvbufErrors), the collector's CPU time per sample (all its processes) and the sender's
   per datagram (so a sender short of CPU shows).
   A rate is held when loss stays under 0.1 % and the backlog (queue and socket buffer)
   drains within 20 % of the step after the sender stops (a queue can hide a short overload).
   It stops at the first rate not held and prints the highest rate held.
3. sflowtool, side by side (when ``sflowtool`` is on the PATH or ``$SFLOWTOOL`` names it; there
   is no Debian package: build it from the sflow/sflowtool sources): the same steps against
   ``sflowtool -p PORT`` (its full text output to /dev/null, or with ``--sflowtool-line`` its
   one CSV line per sample, ``-l``: the same decoding with less formatting; pinned to CPU 1 as
   the in-process collector is). Its socket has the system's default receive buffer
   (net.core.rmem_default, printed), the collector's the 8 MiB it asks for, so on a busy
   machine sflowtool drops datagrams at rates far below what its CPU allows. sflowtool keeps
   no counts, so its loss is what the kernel dropped for its socket (the ``drops`` column of
   its /proc/net/udp or, as it listens dual-stack by default, /proc/net/udp6 row) and its
   backlog the socket's receive queue.
   Last, one line per receiver: the highest rate held, in datagrams/s and samples/s.

Analytics: ``--flows N`` flow definitions (default 2: ``pairs``, ipsource,ipdestination bytes,
and ``ports``, tcpdestinationport frames; 3 adds the keyless ``total``), as the in-process
figure and the collector subprocess use.

The first line names the C accelerators in use; ``SFLOWLAB_PURE_PYTHON=1`` measures the
pure-Python code (the collector subprocess inherits it).

Bounded: each step sends for ``--seconds`` (default 3) and the steps stop at the
first loss. Usage: ``.venv/bin/python bench/bench_collector.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from capture import flow_samples, host_samples

from sflowlab import accel
from sflowlab.clock import SimClock
from sflowlab.codec import Exporter
from sflowlab.codec.fast import decode_for_collector
from sflowlab.collector.engine import Engine, collect_rarely
from sflowlab.collector.flows import FlowSpec
from sflowlab.collector.shards import ShardedEngine

ROOT = Path(__file__).resolve().parents[1]
FLOWS = {
    "pairs": {"keys": "ipsource,ipdestination", "value": "bytes"},
    "ports": {"keys": "tcpdestinationport", "value": "frames"},
    "total": {"value": "bytes"},
}
LOSS_LIMIT = 0.001
LAG_LIMIT = 0.2  # a rate is held only if the backlog drains within 20 % of the step


def make_stream(datagrams: int, switches: int = 8, hosts: int = 20, seed: int = 7) -> list[bytes]:
    """In-order datagrams: switches' flow samples and hosts' counter rounds interleaved."""
    rng = random.Random(seed)
    out: list[bytes] = []
    switch_exp = [Exporter(f"192.168.0.{i + 1}", out.append) for i in range(switches)]
    host_exp = [Exporter(f"192.168.1.{i + 1}", out.append, sub_agent_id=0) for i in range(hosts)]
    flows = flow_samples(rng)
    rounds = 0
    uptime = 1000
    while len(out) < datagrams:
        uptime += 1000
        for exp in switch_exp:  # about 70 % of datagrams carry flow samples
            for _ in range(6 * 5):
                exp.add(next(flows), uptime)
            exp.flush(uptime)
        rounds += 1
        for h, exp in enumerate(host_exp):
            if (rounds + h) % 10 == 0:
                exp.add_all(host_samples(rng, h + 1, rounds), uptime)
                exp.flush(uptime)
    return out[:datagrams]


def count_samples(capture: list[bytes]) -> list[int]:
    counts = []
    for d in capture:
        dg = decode_for_collector(d)
        counts.append(len(dg.flow_samples) + len(dg.counter_samples))
    return counts


def in_process(capture: list[bytes], samples: int, flows: dict[str, Any]) -> None:
    collect_rarely()  # as the collector's analytics process does
    engine = Engine(SimClock())
    for name, spec in flows.items():
        engine.set_flow(name, FlowSpec.from_json(spec))
    start = time.perf_counter()
    for i, d in enumerate(capture):
        engine.ingest(d, ("127.0.0.1", 6343), 1000.0 + i * 1e-4)
    elapsed = time.perf_counter() - start
    engine.tick(1000.0 + len(capture) * 1e-4)
    print(f"in-process ingest (1 core): {samples / elapsed:,.0f} samples/s, "
          f"{elapsed / samples * 1e6:.2f} µs/sample, {len(capture) / elapsed:,.0f} datagrams/s "
          f"({len(engine.metrics.sources)} data sources)")


def sharded(capture: list[bytes], samples: int, workers: int, flows: dict[str, Any]) -> None:
    """The same ingest through ShardedEngine: dispatch here, analytics in worker processes."""
    engine = ShardedEngine(workers, SimClock())
    try:
        for name, spec in flows.items():
            engine.set_flow(name, FlowSpec.from_json(spec))
        start = time.perf_counter()
        for i, d in enumerate(capture):
            engine.ingest(d, ("127.0.0.1", 6343), 1000.0 + i * 1e-4)
        engine.analyzer_json()  # flushes every batch and waits for each worker to finish
        elapsed = time.perf_counter() - start
    finally:
        engine.close()
    print(f"sharded ingest ({workers} worker processes, no sockets): "
          f"{samples / elapsed:,.0f} samples/s, {len(capture) / elapsed:,.0f} datagrams/s")


_U32 = struct.Struct(">I")


@dataclass
class Replay:
    """The capture replayed pass after pass as one longer recording of the same agents: each
    pass's datagram and sample sequence numbers continue the previous pass's (per agent, per
    sampler) and its uptimes follow on, so the collector hears a stable set of agents rather
    than a new one every pass (IPv4 agents of 192.168.0-1.y only).

    ``churn`` gives every pass agents of its own instead (third address byte + 2 x pass):
    fresh agents, samplers, data sources and flow tables every pass, a worst case."""

    capture: list[bytes]
    churn: bool = False
    fields: list[list[tuple[int, int]]] = field(init=False)  # per datagram: (offset, shift)
    uptime_shift: int = field(init=False)  # ms a pass moves the uptimes on

    def __post_init__(self) -> None:
        seqs: dict[tuple[bytes, int, bytes], list[int]] = {}  # (agent, kind, source) -> seqs
        uptimes = [_U32.unpack_from(d, 20)[0] for d in self.capture]
        where = []
        for d in self.capture:
            agent = d[8:16]
            found = [(16, (agent, 0, b""))]  # the datagram sequence number
            off = 28
            for _ in range(_U32.unpack_from(d, 24)[0]):
                tag, length = struct.unpack_from(">II", d, off)
                source = d[off + 12 : off + (20 if tag in (3, 4) else 16)]
                found.append((off + 8, (agent, tag, source)))
                off += 8 + length
            for offset, key in found:
                seqs.setdefault(key, []).append(_U32.unpack_from(d, offset)[0])
            where.append(found)
        span = {key: max(v) - min(v) + 1 for key, v in seqs.items()}
        self.uptime_shift = max(uptimes) - min(uptimes) + 1000
        self.fields = [[(offset, span[key]) for offset, key in found] for found in where]

    def datagrams(self, step: int, n: int) -> list[bytes]:
        """``n`` datagrams with agent addresses moved to 10.<step>.x.y."""
        out, size = [], len(self.capture)
        for i in range(n):
            lap, k = divmod(i, size)
            b = bytearray(self.capture[k])
            if self.churn:
                b[8:11] = bytes((10, step, b[10] + 2 * lap))
            else:
                b[8:10] = bytes((10, step))
                for offset, shift in self.fields[k]:
                    _U32.pack_into(b, offset, _U32.unpack_from(b, offset)[0] + lap * shift)
                _U32.pack_into(b, 20, _U32.unpack_from(b, 20)[0] + lap * self.uptime_shift)
            out.append(bytes(b))
        return out


def rcvbuf_errors() -> int:
    lines = Path("/proc/net/snmp").read_text().splitlines()
    udp = [line.split() for line in lines if line.startswith("Udp:")]
    return int(udp[1][udp[0].index("RcvbufErrors")])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accounted(http: int, prefix: str) -> int:
    agents = get(http, "/agents/json")
    return sum(int(a["sFlowDatagramsReceived"]) for addr, a in agents.items()
               if addr.startswith(prefix))


def worker_pids(pid: int) -> list[int]:
    """Children of the collector (its shard workers; spawn also starts a resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


@dataclass
class Sent:
    datagrams: int
    samples: int
    seconds: float
    sender_cpu_s: float


def send_paced(step: int, rate: float, replay: Replay, counts: list[int], seconds: float,
               port: int) -> Sent:
    """Send at ``rate`` samples/s for ``seconds`` to 127.0.0.1:``port``, agents 10.<step>.x.y,
    one source socket per agent, as real agents send."""
    per_dg = sum(counts) / len(counts)
    n = int(rate * seconds / per_dg)
    data = replay.datagrams(step, n)
    interval = per_dg / rate
    socks: dict[bytes, socket.socket] = {}
    for d in data:
        if d[8:12] not in socks:
            socks[d[8:12]] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sends = [socks[d[8:12]].sendto for d in data]
    target = ("127.0.0.1", port)
    start, sender_cpu = time.perf_counter(), time.process_time()
    next_at = start
    for i in range(n):
        sends[i](data[i], target)
        next_at += interval
        if (i & 31) == 31:
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    sent_s = time.perf_counter() - start
    sender_cpu = time.process_time() - sender_cpu
    for sock in socks.values():
        sock.close()
    samples = sum(counts[i % len(counts)] for i in range(n))
    return Sent(n, samples, sent_s, sender_cpu)


def run_step(step: int, rate: float, replay: Replay, counts: list[int], seconds: float,
             sflow: int, http: int, pids: list[int]) -> tuple[float, float, dict[str, Any]]:
    """Send at ``rate`` samples/s to the collector; returns (achieved rate, loss, details)."""
    before = get(http, "/analyzer/json")
    kernel0, cpu0 = rcvbuf_errors(), [cpu_seconds(p) for p in pids]
    sent = send_paced(step, rate, replay, counts, seconds, sflow)
    start = time.perf_counter() - sent.seconds
    prefix = f"10.{step}."
    last, changed = -1, time.perf_counter()
    while time.perf_counter() - changed < 1.0:  # wait for the queue to drain
        got = accounted(http, prefix)
        if got != last:
            last, changed = got, time.perf_counter()
        time.sleep(0.05)
    after = get(http, "/analyzer/json")
    details = {
        "datagrams": sent.datagrams, "received": last,
        "datagrams_per_s": sent.datagrams / sent.seconds,
        "lag_s": max(0.0, changed - start - sent.seconds),
        "discarded": after["sFlowDatagramsDiscarded"] - before["sFlowDatagramsDiscarded"],
        "kernel_drops": rcvbuf_errors() - kernel0,
    }
    cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
    details["cpu_us_per_sample"] = sum(cpu) / max(1, sent.samples) * 1e6
    details["cpu_s"] = " + ".join(f"{c:.2f}" for c in cpu if c >= 0.01)
    details["sender_us_per_datagram"] = sent.sender_cpu_s / max(1, sent.datagrams) * 1e6
    return sent.samples / sent.seconds, 1 - last / sent.datagrams, details


def udp_socket_row(port: int) -> list[str] | None:
    """The /proc/net/udp or /proc/net/udp6 row of the socket bound to ``port`` (sflowtool
    listens on one dual-stack IPv6 socket unless given -4): sl, local, remote, st, tx:rx
    queue, ..., inode, ref, pointer, drops."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                return fields
    return None


def sflowtool_loopback(binary: str, replay: Replay, counts: list[int], rates: list[float],
                       seconds: float, line: bool) -> tuple[float, float] | None:
    """The loopback steps against sflowtool; (datagrams/s, samples/s) of the highest rate held."""
    rmem = Path("/proc/sys/net/core/rmem_default").read_text().strip()
    print(f"loopback UDP, sflowtool {binary} ({'-l CSV lines' if line else 'full text'} to "
          f"/dev/null; receive buffer rmem_default {rmem} bytes; pinned to CPU 1, sender on CPU 0)")
    port = free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen([binary, "-p", str(port), *(["-l"] if line else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    best: tuple[float, float] | None = None
    try:
        pin(proc.pid)
        deadline = time.time() + 10
        while udp_socket_row(port) is None:
            if time.time() > deadline or proc.poll() is not None:
                print("  sflowtool did not bind its port: skipped")
                return None
            time.sleep(0.05)
        for step, rate in enumerate(rates, start=101):
            drops0, cpu0 = int(udp_socket_row(port)[-1]), cpu_seconds(proc.pid)  # type: ignore[index]
            sent = send_paced(step, rate, replay, counts, seconds, port)
            end = time.perf_counter()
            while int(udp_socket_row(port)[4].split(":")[1], 16):  # type: ignore[index]
                time.sleep(0.01)  # the receive queue drains
            lag = time.perf_counter() - end
            drops = int(udp_socket_row(port)[-1]) - drops0  # type: ignore[index]
            loss = drops / sent.datagrams
            cpu = cpu_seconds(proc.pid) - cpu0
            achieved = sent.samples / sent.seconds
            print(f"target {rate:>9,.0f} samples/s: sent {achieved:>9,.0f}/s "
                  f"({sent.datagrams / sent.seconds:,.0f} datagrams/s), loss {loss * 100:6.3f} % "
                  f"({drops} of {sent.datagrams} datagrams dropped at its socket), backlog "
                  f"drained {lag:.2f} s after the sender stopped, sflowtool CPU "
                  f"{cpu / max(1, sent.samples) * 1e6:.1f} µs/sample")
            if loss >= LOSS_LIMIT or lag > LAG_LIMIT * seconds:
                break
            best = (sent.datagrams / sent.seconds, achieved)
        print_held(best)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return best


def print_held(best: tuple[float, float] | None) -> None:
    print("highest rate held with < {:.1%} loss: {}".format(
        LOSS_LIMIT, "none" if best is None else f"{best[1]:,.0f} samples/s"))


def pin(pid: int) -> None:
    """The receiver on CPU 1, this process (the sender) on CPU 0."""
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(pid, {1})
        os.sched_setaffinity(0, {0})


def loopback(replay: Replay, counts: list[int], rates: list[float], seconds: float,
             workers: int, flows: dict[str, Any]) -> tuple[float, float] | None:
    """The loopback steps against the collector; (datagrams/s, samples/s) of the highest rate
    held."""
    print(f"loopback UDP, collector with --workers {workers}"
          + (" (pinned to CPU 1, sender on CPU 0)" if workers == 0 else
             " (unpinned: workers and sender share the CPUs)"))
    sflow, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.toml"
        cfg.write_text("".join(
            f"[flows.{n}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in s.items())
            for n, s in flows.items()))
        proc = subprocess.Popen(
            [sys.executable, "-m", "sflowlab.cli", "collector", "--config", str(cfg),
             "--sflow-port", str(sflow), "--http-port", str(http), "--sflow-host", "127.0.0.1",
             "--workers", str(workers), "--log-level", "WARNING"], cwd=ROOT)
        try:
            if workers == 0:
                pin(proc.pid)
            elif (os.cpu_count() or 1) >= 2:
                os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
            deadline = time.time() + 15
            while True:
                try:
                    get(http, "/analyzer/json")
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
            best: tuple[float, float] | None = None
            pids = [proc.pid, *worker_pids(proc.pid)]
            for step, rate in enumerate(rates, start=1):
                achieved, loss, d = run_step(step, rate, replay, counts, seconds, sflow, http,
                                             pids)
                kept_up = d["lag_s"] <= LAG_LIMIT * seconds
                print(f"target {rate:>9,.0f} samples/s: sent {achieved:>9,.0f}/s "
                      f"({d['datagrams_per_s']:,.0f} datagrams/s), loss {loss * 100:6.3f} % ({d['received']}/{d['datagrams']} datagrams; "
                      f"discarded {d['discarded']}, kernel drops {d['kernel_drops']}), "
                      f"backlog drained {d['lag_s']:.2f} s after the sender stopped, "
                      f"collector CPU {d['cpu_us_per_sample']:.1f} µs/sample "
                      f"({d['cpu_s']} s by process); sender CPU "
                      f"{d['sender_us_per_datagram']:.1f} µs/datagram")
                if loss >= LOSS_LIMIT or not kept_up:
                    break
                best = (d["datagrams_per_s"], achieved)
            print_held(best)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=30_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="a small capture and few rates")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="collector --workers values to measure (default 0 2)")
    parser.add_argument("--rates", type=int, nargs="+",
                        help="the rates to step through (samples/s; default 10,000 to 300,000)")
    parser.add_argument("--churn", action="store_true",
                        help="fresh agents every pass over the capture (see Replay)")
    parser.add_argument("--sflowtool-line", action="store_true",
                        help="run sflowtool with -l (one CSV line per sample, not full text)")
    parser.add_argument("--flows", type=int, choices=range(len(FLOWS) + 1), default=2,
                        help=f"flow definitions (default 2, at most {len(FLOWS)})")
    args = parser.parse_args()
    flows = dict(list(FLOWS.items())[:args.flows])
    n = 4_000 if args.quick else args.datagrams
    t0 = time.perf_counter()
    capture = make_stream(n)
    counts = count_samples(capture)
    samples = sum(counts)
    load = os.getloadavg()
    print(f"C accelerators: {', '.join(accel.active()) or 'none (pure Python)'}; machine load "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(f"capture: {len(capture)} datagrams, {samples} samples "
          f"({samples / len(capture):.2f}/datagram), built in {time.perf_counter() - t0:.1f} s; "
          f"flow definitions: {', '.join(flows) or 'none'}")
    in_process(capture, samples, flows)
    for workers in (w for w in args.workers if w > 0):
        sharded(capture, samples, workers, flows)
    rates = args.rates or ([10_000, 20_000, 40_000] if args.quick else [
        10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 125_000, 150_000, 175_000, 200_000,
        225_000, 250_000, 300_000])
    replay = Replay(capture, churn=args.churn)
    print("agents: " + ("fresh every pass over the capture" if args.churn else
                        "the capture's, stable, sequence numbers continuing pass after pass"))
    held: dict[str, tuple[float, float] | None] = {}
    for workers in args.workers:
        held[f"sflowlab --workers {workers}"] = loopback(
            replay, counts, [float(r) for r in rates], args.seconds, workers, flows)
    sflowtool = os.environ.get("SFLOWTOOL") or shutil.which("sflowtool")
    if sflowtool:
        held["sflowtool" + (" -l" if args.sflowtool_line else "")] = sflowtool_loopback(
            sflowtool, replay, counts, [float(r) for r in rates], args.seconds,
            args.sflowtool_line)
    else:
        print("sflowtool: not found (no Debian package; build it from the sflow/sflowtool "
              "sources and put it on the PATH or set SFLOWTOOL): comparison skipped")
    load = os.getloadavg()
    print(f"side by side, highest rate held lossless over loopback UDP (machine load now "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}):")
    for name, best in held.items():
        print(f"  {name:<22} " + ("none" if best is None else
                                  f"{best[0]:>8,.0f} datagrams/s {best[1]:>9,.0f} samples/s"))


if __name__ == "__main__":
    main()
