"""Address-group build time and lookup rate for a blocklist-sized group.

Usage: ``python bench/bench_groups.py [--prefixes 300000] [--lookups 200000] [--seed 1]``.
Builds one group of random prefixes (90 % IPv4, mostly /32 and /24 as in real blocklists,
10 % IPv6) plus a small ``internal`` group, then prints the build time, and lookups/s for
``match`` (one group, as ``group:ipdestination:blocklist``) and ``lookup`` (most specific
group across all) on random addresses (mostly misses), on addresses inside the prefixes, and
on 1,100 addresses repeated (as traffic repeats them; answers are remembered).
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import time
from collections.abc import Callable

from sflowlab.collector.groups import GroupSet


def random_prefixes(rng: random.Random, count: int) -> list[str]:
    lengths4 = [32] * 60 + [24] * 25 + list(range(8, 32))
    out = []
    for _ in range(count):
        if rng.random() < 0.9:
            length = rng.choice(lengths4)
            net = ipaddress.IPv4Network((rng.getrandbits(32), length), strict=False)
        else:
            length = rng.choice((32, 48, 56, 64, 128))
            net = ipaddress.IPv6Network((rng.getrandbits(128), length), strict=False)
        out.append(str(net))
    return out


def inside(rng: random.Random, cidr: str) -> str:
    net = ipaddress.ip_network(cidr)
    return str(net.network_address + rng.randrange(net.num_addresses))


def rate(fn: Callable[[str], object], addresses: list[str]) -> float:
    start = time.perf_counter()
    for a in addresses:
        fn(a)
    return len(addresses) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, default=300_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cidrs = random_prefixes(rng, args.prefixes)
    groups = GroupSet()
    groups.set("internal", ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8"])
    start = time.perf_counter()
    groups.set("blocklist", cidrs)
    build = time.perf_counter() - start
    start = time.perf_counter()
    groups.lookup("10.0.0.1")  # builds the combined table
    combined = time.perf_counter() - start
    misses = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(args.lookups)]
    hits = [inside(rng, rng.choice(cidrs)) for _ in range(args.lookups // 10)]
    repeats = [rng.choice(misses[:1000] + hits[:100]) for _ in range(args.lookups)]
    print(f"prefixes {len(cidrs):,}: set() {build:.2f} s, combined table {combined:.2f} s")
    match = lambda a: groups.match("blocklist", a)  # noqa: E731
    for name, fn in (("match", match), ("lookup", groups.lookup)):
        for kind, addresses in (("random", misses), ("inside", hits), ("repeat", repeats)):
            r = rate(fn, addresses)
            print(f"{name:<7} {kind:<7} {r:>12,.0f} lookups/s {1e6 / r:>6.2f} us/lookup")


if __name__ == "__main__":
    main()
