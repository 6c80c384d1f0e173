"""Benchmark loading a large blocklist the way the capture controller does.

A 300,000-line list (IPv4 hosts and /24s, some IPv6 prefixes, comments, 1 % bad lines) is
written to a file and served over loopback HTTP; the figures are the wall time of:
parsing the text, a ``Blocklists.refresh`` from the file and from HTTP (fetch + parse), and
the engine's group build from the result (``GroupSet.set``: what ``api.set_group`` costs),
then lookups per second of addresses in and out of the group.

Run: ``.venv/bin/python bench/bench_blocklist.py [--entries N]``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import http.server
import logging
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sflowlab.collector.groups import GroupSet
from sflowlab.controllers.blocklist import Blocklists, parse_blocklist


def make_list(entries: int, rng: random.Random) -> str:
    lines = ["# Emerging Threats (synthetic) block list", ""]
    for i in range(entries):
        r = rng.random()
        if r < 0.01:
            lines.append(f"not-an-address-{i}")
        elif r < 0.05:
            lines.append(f"2001:db8:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::/64")
        elif r < 0.30:
            lines.append(f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.0/24")
        else:
            a = rng.getrandbits(32) | 1 << 24
            lines.append(f"{a >> 24 & 255}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}"
                         + ("  # seen scanning" if i % 50 == 0 else ""))
    return "\n".join(lines) + "\n"


def timed(label: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    result = fn()
    print(f"{label:<44} {time.perf_counter() - t0:8.3f} s")
    return result


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=300_000)
    args = parser.parse_args()
    rng = random.Random(7)
    text = make_list(args.entries, rng)
    log = logging.getLogger("bench.blocklist")
    log.setLevel(logging.ERROR)  # the invalid-lines warning is expected here
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "threats.txt"
        path.write_text(text)
        print(f"{args.entries} lines, {len(text) / 1e6:.1f} MB")
        parsed = timed("parse_blocklist", lambda: parse_blocklist(text))
        print(f"  entries {len(parsed.cidrs)}, invalid lines {parsed.invalid}")
        timed("Blocklists.refresh (file)", Blocklists([str(path)], log).refresh)
        server, url = serve(Path(tmp))
        try:
            timed("Blocklists.refresh (loopback HTTP)",
                  Blocklists([f"{url}/threats.txt"], log).refresh)
        finally:
            server.shutdown()
        groups = GroupSet()
        timed("GroupSet.set (what api.set_group builds)",
              lambda: groups.set("blocklist", parsed.cidrs))
        probes = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}."
                  f"{rng.randrange(256)}" for _ in range(100_000)]
        hits = 0
        t0 = time.perf_counter()
        for address in probes:
            hits += groups.match("blocklist", address) is not None
        elapsed = time.perf_counter() - t0
        print(f"{'group lookups (distinct addresses)':<44} {len(probes) / elapsed:8.0f} /s"
              f"  ({hits} hits)")


if __name__ == "__main__":
    main()
