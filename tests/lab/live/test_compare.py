"""The comparison of a live run with the simulated one, on real simulated recordings."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from sflowlab.lab.live.compare import compare, table, time_back, time_to_peak, write_compare
from sflowlab.lab.scenario.loader import load_scenario
from sflowlab.lab.scenario.model import Tolerances
from sflowlab.lab.scenario.outputs import Recording
from sflowlab.lab.scenario.runner import run_scenario

SCENARIO = Path(__file__).parents[3] / "scenarios" / "apache_load_ramp.yaml"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    scenario = load_scenario(SCENARIO)
    return run_scenario(scenario, tmp_path_factory.mktemp("sim"), chart=False).recording


def shifted(rec: Recording, delay: float, extra: float = 0.0) -> Recording:
    """``rec`` with its replicas ``delay`` seconds later and ``extra`` more while scaled."""
    series = dict(rec.series("apache.replicas"))
    rows = []
    for row in rec.timeline:
        before = series.get(row["time_s"] - delay, 1.0)
        rows.append({**row, "apache.replicas": before + (extra if before > 1 else 0.0)})
    return dataclasses.replace(rec, timeline=rows)


def test_a_run_compared_with_itself_is_within_every_tolerance(simulated: Recording) -> None:
    rows = compare(simulated, simulated, Tolerances())
    judged = {r.measure: (r.simulated, r.live, r.within) for r in rows}
    assert judged["peak replicas during load"] == (8, 8, True)
    assert judged["replicas at the end of before load"] == (1, 1, True)
    assert judged["replicas at the end of after load"] == (1, 1, True)
    assert judged["time to peak from load start (s)"] == (48, 48, True)
    assert judged["time back to 1 from load end (s)"] == (20, 20, True)
    rps = judged["requests/s during load"]
    assert rps[0] == rps[1] and 50 < rps[0] < 65 and rps[2] is None  # informative only
    assert len(rows) == 9


def test_a_later_higher_run_is_judged_against_the_tolerances(simulated: Recording) -> None:
    later = shifted(simulated, 10.0, extra=1.0)
    rows = {r.measure: r for r in compare(simulated, later, Tolerances(replicas=1,
                                                                      time_to_peak_s=5))}
    assert rows["time to peak from load start (s)"].difference == 10
    assert rows["time to peak from load start (s)"].within is False
    assert rows["peak replicas during load"].live == 9
    assert rows["peak replicas during load"].within is True
    assert time_back(later, "apache", 1) == 30
    assert time_to_peak(later, "apache") == 58
    never = dataclasses.replace(later, timeline=[{**r, "apache.replicas": 3.0}
                                                 for r in later.timeline])
    back = next(r for r in compare(simulated, never, Tolerances())
                if r.measure.startswith("time back"))
    assert (back.live, back.difference, back.within) == (None, None, False)


def test_compare_csv_and_table(simulated: Recording, tmp_path: Path) -> None:
    rows = compare(simulated, shifted(simulated, 2.0), Tolerances())
    write_compare(tmp_path / "compare.csv", rows)
    with (tmp_path / "compare.csv").open(newline="") as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == ["service", "measure", "simulated", "live", "difference",
                                "tolerance", "within"]
    peak = next(r for r in written if r["measure"] == "time to peak from load start (s)")
    assert peak == {"service": "apache", "measure": "time to peak from load start (s)",
                    "simulated": "48", "live": "50", "difference": "2", "tolerance": "20",
                    "within": "yes"}
    text = table(rows).splitlines()
    assert text[0].split() == ["service", "measure", "simulated", "live", "difference",
                               "tolerance", "within"]
    assert len(text) == len(rows) + 1
