"""HTTP request keys: what decoding them costs, and what it costs datagrams without them.

Usage: ``python bench/bench_http_keys.py [--datagrams 2000] [--seconds 2]``. Two captures:
switch datagrams (``capture.make_capture``, no http_request record) and web server datagrams
(4 mod-sflow transaction samples each: socket and http_request records, random hosts, URLs
and statuses; deterministic). Prints ``with_http`` per datagram of each, then
``Engine.ingest`` per flow sample (counter samples included in the time) with a
source/destination flow, then with an HTTP flow too (``httphost`` requests filtered on
``uri:httpurl:extension``), best of the runs within ``--seconds``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from capture import make_capture

from sflowlab.clock import SimClock
from sflowlab.codec import Datagram, ExtendedSocketIpv4, FlowSample, HttpRequest, encode_datagram
from sflowlab.codec.fast import decode_for_collector
from sflowlab.codec.http_keys import with_http
from sflowlab.collector.engine import Engine
from sflowlab.collector.flows import FlowSpec


def web_capture(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        samples = tuple(FlowSample(
            4 * i + j, 3, 10, 40 * i + 10 * j, 0, 0, 0, (
                ExtendedSocketIpv4(6, "10.0.0.1", f"10.1.{rng.randrange(256)}.1", 80, 40000),
                HttpRequest(method=rng.choice((2, 4)), host=f"www{rng.randrange(20)}.example",
                            uri=f"/p{rng.randrange(100)}/f.{rng.choice(('php', 'css', 'png'))}"
                            f"?id={rng.randrange(1000)}", useragent="Mozilla/5.0",
                            mime_type="text/html", req_bytes=rng.randrange(100, 1000),
                            resp_bytes=rng.randrange(100, 100_000),
                            duration_us=rng.randrange(100, 50_000),
                            status=rng.choice((200, 200, 200, 304, 404)))))
            for j in range(4))
        out.append(encode_datagram(Datagram(5, f"10.9.{i % 50}.1", 0, i // 50 + 1, 1000 * i,
                                            samples)))
    return out


def best_of(seconds: float, run: Callable[[], None], setup: Callable[[], None] = lambda: None
            ) -> float:
    """The shortest ``run()`` (each after an untimed ``setup()``) within ``seconds``."""
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        setup()
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _engine(http: bool) -> Engine:
    """An engine with a source/destination flow, and an HTTP flow if ``http``."""
    engine = Engine(SimClock(start=0.0))
    engine.set_flow("pairs", FlowSpec(keys="ipsource,ipdestination", value="bytes"))
    if http:
        engine.set_flow("php", FlowSpec(keys="httphost", value="requests",
                                        filter="uri:httpurl:extension=php"))
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    switch = [d for d in make_capture(args.datagrams, 1) if decode_for_collector(d).flow_samples]
    captures = {"switch": switch, "web": web_capture(args.datagrams)}
    for name, capture in captures.items():
        decoded = [(d, decode_for_collector(d).flow_samples) for d in capture]
        samples = sum(len(s) for _, s in decoded)

        def walk(decoded: list[tuple[bytes, list[Any]]] = decoded) -> None:
            for data, views in decoded:
                with_http(data, views)
        took = best_of(args.seconds, walk)
        print(f"with_http, {name} datagrams ({samples / len(capture):.1f} flow samples each): "
              f"{took / len(capture) * 1e6:.2f} us/datagram")
    for http in (False, True):
        for name, capture in captures.items():
            samples = sum(len(decode_for_collector(d).flow_samples) for d in capture)
            engines: list[Engine] = []

            def ingest(capture: list[bytes] = capture, engines: list[Engine] = engines) -> None:
                engine = engines.pop()
                for data in capture:
                    engine.ingest(data, ("192.0.2.1", 6343), 1.0)
            took = best_of(args.seconds, ingest,
                           lambda h=http, e=engines: e.append(_engine(h)))  # type: ignore[misc]
            print(f"Engine.ingest (a fresh engine each pass), {name} datagrams, "
                  f"{'with an HTTP flow' if http else 'no HTTP flow'}: "
                  f"{took / samples * 1e6:.2f} us/flow sample")


if __name__ == "__main__":
    main()
