"""``sflowlab lab``: run a lab double standalone, on the wall clock, until SIGINT or SIGTERM.

``sflowlab lab swarm-api --port P --service apache=1`` serves the Docker Engine API double (a
swarm; point ``docker -H tcp://HOST:P`` or ``docker.DockerClient`` at it);
``sflowlab lab switch-api --port P --switch leaf1=10.255.0.1`` serves the Cumulus ACL REST API
double and prints each ACL it commits or withdraws. Each prints its URL(s) first.

``sflowlab lab up`` brings the live lab up in the background (``sflowlab.lab.live.lab``: the
local Docker engine's swarm, the scenario's service, ``sflowlab agent``, ``sflowlab
collector`` on :8008 with the scenario's controllers, optionally locust's web UI) and returns
once it is ready; ``sflowlab lab down`` stops it and removes everything it made.
"""

from __future__ import annotations

import argparse
import random
import signal
import threading
from collections.abc import Callable
from pathlib import Path
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
        help="run a lab double (Docker swarm API, switch ACL API) or the live lab (up, down)",
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

    up = doubles.add_parser("up", help="bring the live lab up (real swarm, agent, collector)")
    up.add_argument("--scenario", type=Path, default=Path("scenarios/apache_load_ramp.yaml"),
                    help="the scenario whose service and controllers to run "
                         "(scenarios/apache_load_ramp.yaml)")
    up.add_argument("--http-port", type=int, default=8008, help="collector REST port (8008)")
    up.add_argument("--sflow-port", type=int, default=6343, help="collector sFlow port (6343)")
    up.add_argument("--locust-ui", type=int, metavar="PORT",
                    help="also run locust's web UI on 127.0.0.1:PORT against the service")
    _state_dir(up)
    up.add_argument("--foreground", action="store_true",
                    help="stay in the foreground until SIGINT or SIGTERM")
    up.set_defaults(func=run_up)

    down = doubles.add_parser("down", help="stop the live lab and remove what it made")
    _state_dir(down)
    down.set_defaults(func=run_down)


def _state_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", type=Path, default=Path("out/lab"),
                   help="the lab's files: lab.json, logs, locust's CSVs (out/lab)")


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


def run_up(args: argparse.Namespace) -> int:
    from sflowlab.lab.live import lab
    from sflowlab.lab.scenario.loader import load_scenario
    from sflowlab.lab.scenario.model import ScenarioError

    try:
        scenario = load_scenario(args.scenario)
        lab.loaded_service(scenario)
        if args.foreground:
            return lab.serve(scenario, args.state_dir, args.http_port, args.sflow_port,
                             args.locust_ui)
        state = lab.up(args.scenario, args.state_dir, args.http_port, args.sflow_port,
                       args.locust_ui)
    except (ScenarioError, ValueError, RuntimeError, TimeoutError) as e:
        raise SystemExit(f"sflowlab lab up: {e}") from None
    print(f"lab up (pid {state['pid']}): collector {state['collector']}, sFlow "
          f"{state['sflow']}, service {state['service']} (targets in {state['targets']})"
          + (f", locust {state['locust']}" if state["locust"] else "")
          + f"; `sflowlab lab down --state-dir {args.state_dir}` stops it", flush=True)
    return 0


def run_down(args: argparse.Namespace) -> int:
    from sflowlab.lab.live import lab

    try:
        left = lab.down(args.state_dir)
    except (RuntimeError, TimeoutError) as e:
        raise SystemExit(f"sflowlab lab down: {e}") from None
    if left:
        print(f"lab down: removed leftovers: {', '.join(left)}", flush=True)
    else:
        print("lab down: everything stopped and removed", flush=True)
    return 0
