"""Scenario replay speed: simulated seconds per wall-clock second for each scenario file.

Usage: ``python bench/bench_scenarios.py [SCENARIO.yaml ...] [--repeat 3] [--no-chart]``
(default: every ``*.yaml`` in ``scenarios/``). Each scenario runs ``--repeat`` times into a
temporary out folder; the table gives the best wall times of building the lab (servers
included), replaying it, closing it, and of the whole ``sflowlab run`` path (plus assertions,
the out folder's files and the chart); simulated seconds per wall second of the replay and of
the whole; and whether the assertions passed.
Target: the apache ramp (about 90 simulated seconds of load) in under 3 s of wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sflowlab.lab.scenario.assertions import evaluate
from sflowlab.lab.scenario.loader import load_scenario
from sflowlab.lab.scenario.model import Scenario
from sflowlab.lab.scenario.outputs import write_outputs
from sflowlab.lab.scenario.runner import LabRun

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
TARGET = ("apache_load_ramp", 3.0)  # scenario, wall seconds


@dataclass
class Timing:
    build_s: float
    run_s: float
    close_s: float
    total_s: float  # + assertions, files, chart
    passed: bool


def run_once(scenario: Scenario, out_dir: Path, chart: bool) -> Timing:
    t0 = time.perf_counter()
    lab = LabRun(scenario, out_dir)
    t1 = time.perf_counter()
    try:
        recording = lab.run()
        t2 = time.perf_counter()
    finally:
        lab.close()
    t3 = time.perf_counter()
    outcomes = evaluate(scenario, recording)
    write_outputs(out_dir, recording, outcomes)
    if chart:
        from sflowlab.lab.scenario.chart import render_chart

        render_chart(out_dir)
    return Timing(t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t0,
                  all(o.passed for o in outcomes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args()
    paths = args.scenarios or sorted(SCENARIOS.glob("*.yaml"))
    print(f"{'scenario':24} {'sim s':>5} {'build s':>7} {'run s':>6} {'close s':>7} "
          f"{'total s':>7} {'sim/wall run':>12} {'sim/wall total':>14}  assertions")
    for path in paths:
        scenario = load_scenario(path)
        with tempfile.TemporaryDirectory() as tmp:
            runs = [run_once(scenario, Path(tmp) / str(i), not args.no_chart)
                    for i in range(args.repeat)]
        build, run, close, total = (min(getattr(r, f) for r in runs)
                                    for f in ("build_s", "run_s", "close_s", "total_s"))
        verdict = "pass" if all(r.passed for r in runs) else "FAIL"
        d = scenario.duration
        print(f"{scenario.name:24} {d:5.0f} {build:7.3f} {run:6.3f} {close:7.3f} {total:7.3f} "
              f"{d / run:12.0f} {d / total:14.0f}  {verdict}")
        if scenario.name == TARGET[0]:
            met = "met" if total < TARGET[1] else "MISSED"
            print(f"{'':24} target: whole run under {TARGET[1]:g} s wall: {met}")


if __name__ == "__main__":
    main()
