"""``sflowlab run``: replay a scenario file and check its assertions.

Builds the scenario's lab on one simulated clock, replays it as fast as it goes (``--realtime``:
in wall-clock time over real UDP and HTTP), writes the out folder (timeline.csv, containers.csv,
decisions.csv, acl.csv, events.csv, assertions.json, sflow.pcap, controller.log, chart.png) and
prints every assertion's outcome. ``--live`` runs it on the local Docker engine's swarm
instead (``sflowlab.lab.live``: the real agent, the production collector, locust; root),
writes the same out folder (default ``out/<name>_live/``) plus locust's CSVs and
``compare.csv``, and prints the comparison with the simulated run. Exit status: 0 when all pass, 1 when one fails, 2 when the
scenario cannot be read or built.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TextIO

from sflowlab.lab.scenario.loader import json_schema, load_scenario
from sflowlab.lab.scenario.model import Scenario, ScenarioError
from sflowlab.lab.scenario.runner import run_scenario, summary

EXIT_FAILED = 1
EXIT_BAD_SCENARIO = 2


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("run", help="replay a scenario file and check its assertions",
                              description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("file", metavar="SCENARIO", nargs="?",
                   help="scenario YAML file (scenarios/*.yaml)")
    p.add_argument("--schema", action="store_true",
                   help="print the JSON Schema of scenario files and exit")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help="output folder (default: out/<scenario name>/)")
    p.add_argument("--realtime", action="store_true",
                   help="run in wall-clock time over real UDP and HTTP")
    p.add_argument("--live", action="store_true",
                   help="run on the local Docker engine's swarm with the real agent, collector "
                        "and locust (root)")
    p.add_argument("--duration", type=float, metavar="S",
                   help="override the scenario's duration (simulated seconds)")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run, parser=p)


class ProgressBar:
    """A progress bar on a stream: redrawn in place on a terminal, a few dots otherwise."""

    def __init__(self, stream: TextIO, width: int = 40) -> None:
        self.stream, self.width = stream, width
        self.tty = stream.isatty()
        self._dots = 0

    def __call__(self, now: float, duration: float) -> None:
        done = min(now / duration, 1.0)
        if self.tty:
            filled = int(done * self.width)
            self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] "
                              f"{now:6.0f}/{duration:.0f} s")
        else:
            dots = int(done * 10)
            self.stream.write("." * (dots - self._dots))
            self._dots = dots
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def run(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(json_schema(), indent=2))
        return 0
    if args.file is None:
        args.parser.error("a scenario file is needed (or --schema)")
    try:
        scenario = load_scenario(args.file)
        overrides = {k: v for k, v in (("duration", args.duration), ("seed", args.seed))
                     if v is not None}
        if overrides:
            scenario = dataclasses.replace(scenario, **overrides)
    except ScenarioError as e:
        print(f"sflowlab run: {e}", file=sys.stderr)
        return EXIT_BAD_SCENARIO
    if args.live:
        return run_live(args, scenario)
    out = args.out or Path("out") / scenario.name
    bar = None if args.quiet else ProgressBar(sys.stderr)
    try:
        result = run_scenario(scenario, out, realtime=args.realtime, progress=bar)
    except ValueError as e:
        print(f"sflowlab run: {scenario.source}: {e}", file=sys.stderr)
        return EXIT_BAD_SCENARIO
    finally:
        if bar is not None:
            bar.close()
    print(summary(result))
    return 0 if result.passed else EXIT_FAILED


def run_live(args: argparse.Namespace, scenario: Scenario) -> int:
    from sflowlab.lab.live.runner import live_summary, run_live

    out = args.out or Path("out") / f"{scenario.name}_live"
    bar = None if args.quiet else ProgressBar(sys.stderr)
    try:
        result = run_live(scenario, out, progress=bar)
    except ValueError as e:
        print(f"sflowlab run --live: {scenario.source}: {e}", file=sys.stderr)
        return EXIT_BAD_SCENARIO
    except (RuntimeError, TimeoutError, OSError) as e:
        print(f"sflowlab run --live: {e}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if bar is not None:
            bar.close()
    print(summary(result))  # type: ignore[arg-type]  # a LiveResult reads the same
    print(live_summary(result))
    return 0 if result.passed else EXIT_FAILED
