"""Benchmark the lab doubles over loopback HTTP: requests per second a controller can make.

1. Swarm double: ``GET /services/apache`` (what the ELB reads every 2 s) and a scale
   (``POST /services/{id}/update?version=N``, read-modify-write as the ELB does it), from one
   keep-alive client, with a service of ``--replicas`` tasks.
2. Switch ACL double: ``PUT /acl/{name}`` of a two-line ERSPAN capture ACL (what the capture
   controller sends per suspicious pair), then ``GET`` of it.

Run: ``.venv/bin/python bench/bench_lab_doubles.py [--requests N] [--replicas N]``. Prints
figures (wall clock, client and server in one process sharing the GIL); asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

import requests

from sflowlab.clock import SimClock
from sflowlab.lab.doubles.swarm_api import SwarmApi
from sflowlab.lab.doubles.swarm_model import Swarm
from sflowlab.lab.doubles.switch_api import AclSwitch, SwitchApi


class NullTarget:
    def apply(self, switch: str, rule_id: str, rules: list[object]) -> None:
        pass

    def withdraw(self, switch: str, rule_id: str) -> None:
        pass


def rate(label: str, n: int, one: Callable[[int], None]) -> None:
    started = time.perf_counter()
    for i in range(n):
        one(i)
    elapsed = time.perf_counter() - started
    print(f"{label:<52} {n / elapsed:7.0f} /s  ({elapsed / n * 1e3:.2f} ms each)")


def bench_swarm(n: int, replicas: int) -> None:
    swarm = Swarm(SimClock(), random.Random(1), start_delay_s=0, stop_delay_s=0)
    spec = {"Name": "apache", "TaskTemplate": {"ContainerSpec": {"Image": "httpd:2.4"}}}
    swarm.create_service({**spec, "Mode": {"Replicated": {"Replicas": replicas}}})
    with SwarmApi(swarm) as api, requests.Session() as session:
        url = f"{api.url}/services/apache"
        rate(
            f"swarm: GET /services/apache ({replicas} tasks)",
            n,
            lambda i: session.get(url).raise_for_status(),
        )

        def scale(i: int) -> None:
            info = session.get(url).json()
            info["Spec"]["Mode"]["Replicated"]["Replicas"] = replicas + (i % 2)
            update = f"{api.url}/services/{info['ID']}/update"
            session.post(
                update, params={"version": info["Version"]["Index"]}, json=info["Spec"]
            ).raise_for_status()

        rate("swarm: scale by one, read-modify-write (2 requests)", n, scale)


def bench_switch(n: int) -> None:
    switch = AclSwitch("leaf1", "10.255.0.1", SimClock(), NullTarget())
    with SwitchApi([switch]) as api, requests.Session() as session:

        def put(i: int) -> None:
            local, remote = f"10.0.{i // 250 % 250}.{i % 250 + 1}", "192.0.2.7"
            lines = [
                "[iptables]",
                f"-A FORWARD --in-interface swp+ -s {local} -d {remote} -j ERSPAN --src-ip 10.255.0.1 --dst-ip 10.0.9.9",
                f"-A FORWARD --in-interface swp+ -s {remote} -d {local} -j ERSPAN --src-ip 10.255.0.1 --dst-ip 10.0.9.9",
            ]
            session.put(f"{api.url}/acl/cap{i}", json=lines).raise_for_status()

        rate("switch: PUT /acl/{name} (2 ERSPAN lines, parsed)", n, put)
        rate(
            "switch: GET /acl/{name}",
            n,
            lambda i: session.get(f"{api.url}/acl/cap{i}").raise_for_status(),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per figure (2000)")
    parser.add_argument("--replicas", type=int, default=10, help="tasks of the service (10)")
    args = parser.parse_args()
    bench_swarm(args.requests, args.replicas)
    bench_switch(args.requests)


if __name__ == "__main__":
    main()
