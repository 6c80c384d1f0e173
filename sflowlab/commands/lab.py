"""``sflowlab lab``: run a lab double standalone, on the wall clock, until SIGINT or SIGTERM.

``sflowlab lab swarm-api --port P --service apache=1`` serves the Docker Engine API double (a
swarm; point ``docker -H tcp://HOST:P`` or ``docker.DockerClient`` at it);
``sflowlab lab switch-api --port P --switch leaf1=10.255.0.1`` serves the Cumulus ACL REST API
double and prints each ACL it commits or withdraws. Each prints its URL(s) first.
"""

from __future__ import annotations

import argparse
import random
import signal
import threading
from collections.abc import Callable
from typing import Any

from sflowlab.http import ServedApi
from sflowlab.lab.doubles.acl_rules import ParsedRule
from sflowlab.lab.doubles.scheduler import RealTimeScheduler
from sflowlab.lab.doubles.swarm_api import SwarmApi
from sflowlab.lab.doubles.swarm_model import Swarm, SwarmError
from sflowlab.lab.doubles.switch_api import AclSwitch, SwitchApi

DEFAULT_IMAGE = "httpd:2.4"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "lab",
        help="run a lab double (Docker swarm API, switch ACL API)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    doubles = p.add_subparsers(dest="double", required=True, metavar="DOUBLE")

    swarm = doubles.add_parser("swarm-api", help="the Docker Engine API double (swarm services)")
    _listen_options(swarm, 2375)
    _repeatable(swarm, "--service", _service, "NAME=REPLICAS[,IMAGE]",
                f"create a replicated service at start (image {DEFAULT_IMAGE})")
    _repeatable(swarm, "--node", _pair, "HOSTNAME=ADDRESS",
                "a swarm node, the first one the leader (default swarm-1=127.0.0.1)")
    swarm.add_argument("--seed", type=int, default=1, metavar="N", help="random seed for ids (1)")
    _delay(swarm, "--start-delay", 1.0, "a task runs S seconds after it is created")
    _delay(swarm, "--stop-delay", 0.5, "a task stops S seconds after it is told to")
    swarm.set_defaults(func=run_swarm_api)

    switch = doubles.add_parser("switch-api", help="the Cumulus Linux ACL REST API double")
    _listen_options(switch, 8080)
    _repeatable(switch, "--switch", _pair, "NAME=AGENT",
                "a switch and its sFlow agent address (default switch=127.0.0.1)")
    _delay(switch, "--apply-delay", 0.5,
           "ACL changes are committed S seconds after they are accepted")
    switch.set_defaults(func=run_switch_api)


def _listen_options(p: argparse.ArgumentParser, port: int) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=port, help=f"port to listen on ({port}; 0: any free port)"
    )


def _repeatable(p: argparse.ArgumentParser, flag: str, parse: Callable[[str], Any],
                metavar: str, what: str) -> None:
    p.add_argument(flag, action="append", default=[], type=parse, metavar=metavar,
                   help=f"{what}; repeatable")


def _delay(p: argparse.ArgumentParser, flag: str, default: float, what: str) -> None:
    p.add_argument(flag, type=float, default=default, metavar="S", help=f"{what} ({default:g})")


def _pair(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not (key and eq and value):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key, value


def _service(text: str) -> tuple[str, int, str]:
    name, replicas_image = _pair(text)
    replicas, _, image = replicas_image.partition(",")
    if not replicas.isdigit():
        raise argparse.ArgumentTypeError(f"replicas must be a whole number, got {replicas!r}")
    return name, int(replicas), image or DEFAULT_IMAGE


def _serve_until_signalled(api: ServedApi, scheduler: RealTimeScheduler) -> int:
    """Block until SIGINT or SIGTERM, then stop ``api`` and ``scheduler``."""
    done = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: done.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        done.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        api.stop()
        scheduler.close()
    return 0


def run_swarm_api(args: argparse.Namespace) -> int:
    scheduler = RealTimeScheduler()
    swarm = Swarm(
        scheduler,
        random.Random(args.seed),
        dict(args.node) or None,
        args.start_delay,
        args.stop_delay,
    )
    try:
        for name, replicas, image in args.service:
            swarm.create_service(
                {
                    "Name": name,
                    "TaskTemplate": {"ContainerSpec": {"Image": image}},
                    "Mode": {"Replicated": {"Replicas": replicas}},
                }
            )
    except SwarmError as exc:
        scheduler.close()
        raise SystemExit(f"sflowlab lab swarm-api: {exc.message}") from None
    api = SwarmApi(swarm, args.host, args.port).start()
    print(
        f"Docker Engine API (swarm) on {api.url} (docker -H {api.url.replace('http://', 'tcp://')})",
        flush=True,
    )

    return _serve_until_signalled(api, scheduler)


class PrintTarget:
    """An ``AclTarget`` that prints what a switch commits."""

    def apply(self, switch: str, rule_id: str, rules: list[ParsedRule]) -> None:
        print(f"{switch}: applied ACL {rule_id} ({len(rules)} rules)", flush=True)
        for rule in rules:
            print(f"{switch}:   {rule.line}", flush=True)

    def withdraw(self, switch: str, rule_id: str) -> None:
        print(f"{switch}: withdrew ACL {rule_id}", flush=True)


def run_switch_api(args: argparse.Namespace) -> int:
    scheduler = RealTimeScheduler()
    target = PrintTarget()
    pairs = args.switch or [("switch", "127.0.0.1")]
    switches = [
        AclSwitch(name, agent, scheduler, target, args.apply_delay) for name, agent in pairs
    ]
    api = SwitchApi(switches, args.host, args.port).start()
    for switch in switches:
        print(
            f"ACL API of {switch.name} (agent {switch.agent}) on {api.url_for(switch)}/acl/",
            flush=True,
        )

    return _serve_until_signalled(api, scheduler)
