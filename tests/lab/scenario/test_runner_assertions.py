"""Assertion kinds evaluated over hand-made recordings: exact verdicts and messages."""

from __future__ import annotations

from typing import Any

import pytest

from sflowlab.lab.scenario.assertions import evaluate
from sflowlab.lab.scenario.kinds import KINDS
from sflowlab.lab.scenario.loader import scenario_from_dict
from sflowlab.lab.scenario.outputs import Accounting, Recording

SERVICE = {"name": "web", "replicas": 1, "load": [{"clients": 4, "start": 2, "duration": 6}]}


def recording(replicas: list[int], **columns: list[float]) -> Recording:
    """A timeline of web (and columns given as ``<service>__<column>``), one row a second."""
    rows = []
    for i, r in enumerate(replicas):
        row = {"time_s": float(i + 1), "web.replicas": float(r), "web.tasks": float(r),
               "web.seen": float(r), "web.running": float(r), "web.avg_vir_bytes": 0.0,
               "web.avg_vir_cpu_utilization": 0.0}
        row.update({k.replace("__", "."): float(v[i]) for k, v in columns.items()})
        rows.append(row)
    s = scenario_from_dict({"name": "t", "duration": len(replicas),
                            "services": [SERVICE, {**SERVICE, "name": "other"}]})
    return Recording(s, rows, [], [], [], [], [], [], Accounting(10, 10, 0, 0, 0, 0), None, 0.0)


def check(kind: str, rec: Recording, **params: Any) -> tuple[bool, str]:
    s = scenario_from_dict({"name": "t", "services": [SERVICE, {**SERVICE, "name": "other"}],
                            "assertions": [{kind: params}]})
    [outcome] = evaluate(s, rec)
    return outcome.passed, outcome.message


def test_every_kind_is_registered() -> None:
    assert set(KINDS) >= {"replicas", "returns_to_min", "max_flaps", "per_container_load",
                          "compare_policies", "metricN_follows_live", "capture_installed",
                          "capture_removed", "mitigated", "released", "analyser_pcap",
                          "no_lost_datagrams"}


def test_replicas_reached_in_time_or_not() -> None:
    rec = recording([1, 1, 2, 3, 4, 4, 3, 1, 1, 1])
    assert check("replicas", rec, service="web", reaches=4, within=3) == (
        True, "web reached 4 replicas at t=5.0 s (needed 4 within 3 s of load_start at "
              "t=2.0 s); max 4")
    assert check("replicas", rec, service="web", reaches=4, within=2) == (
        False, "FAILED: web reached 4 replicas only at t=5.0 s, 3.0 s after load_start "
               "(needed 4 within 2 s of load_start at t=2.0 s)")
    assert check("replicas", rec, service="web", at_most=3) == (
        False, "FAILED: web reached 4 replicas at t=5.0 s, more than 3")


def test_returns_to_min_after_the_load() -> None:
    rec = recording([1, 1, 2, 3, 4, 4, 3, 2, 1, 1])
    assert check("returns_to_min", rec, service="web", within=1) == (
        True, "web back to 1 replicas at t=9.0 s, 1.0 s after load_end (allowed 1 s)")
    assert check("returns_to_min", rec, service="web", within=0.5)[0] is False
    stuck = recording([1, 1, 2, 3, 4, 4, 3, 2, 2, 2])
    assert check("returns_to_min", stuck, service="web", within=10) == (
        False, "FAILED: web had 2 replicas at the end (t=10.0 s), not back to 1 after "
               "load_end at t=8.0 s")


def test_flaps_count_direction_changes() -> None:
    rec = recording([1, 2, 2, 3, 2, 3, 3, 2, 1, 1])
    assert check("max_flaps", rec, service="web", max=3) == (
        True, "web changed direction 3 times (at 5, 6, 8 s); allowed 3")
    assert check("max_flaps", rec, service="web", max=2)[0] is False
    assert check("max_flaps", recording([1, 2, 3, 3, 1]), service="web", max=0)[0] is False
    assert check("max_flaps", recording([1, 2, 3, 3, 3]), service="web", max=0)[0] is True


def test_per_container_load_while_scaled_or_during_the_load() -> None:
    rec = recording([1, 1, 2, 2, 2, 1, 1, 1, 1, 1],
                    web__avg_vir_bytes=[9e5, 9e5, 2e5, 9e4, 8e4, 0, 0, 0, 0, 0])
    assert check("per_container_load", rec, service="web", below=1e5) == (
        False, "FAILED: web avg_vir_bytes below 100000 in 67% of 3 s scaled (needed 100%); "
               "max 2e+05 at t=3.0 s")
    assert check("per_container_load", rec, service="web", below=1e5, share=0.6)[0]
    assert check("per_container_load", rec, service="web", below=1e6, **{"while": "load"})[0]
    with pytest.raises(AssertionError):
        assert check("per_container_load", rec, service="web", below=1e5,
                     **{"while": "sometimes"})[0]


def test_compare_policies_counts_seconds_over_target_and_flaps() -> None:
    rec = recording([1, 1, 4, 4, 4, 4, 4, 1, 1, 1],
                    web__avg_vir_bytes=[0, 3e5, 2e5, 9e4, 9e4, 9e4, 9e4, 0, 0, 0],
                    other__replicas=[1, 1, 2, 3, 2, 3, 4, 4, 1, 1],
                    other__avg_vir_bytes=[0, 3e5, 3e5, 2e5, 2e5, 2e5, 1e5, 0, 0, 0])
    assert check("compare_policies", rec, better="web", than="other", target=1e5) == (
        True, "avg_vir_bytes over 100000 during the load: web 2 s, other 5 s (+3 s); flaps "
              "1 vs 3; replica-seconds 25 vs 22")
    assert check("compare_policies", rec, better="other", than="web", target=1e5)[0] is False


def test_metric_n_follows_the_live_count_within_a_lag() -> None:
    rec = recording([1, 1, 3, 3, 3, 3, 3, 3, 3, 3],
                    web__running=[1, 1, 1, 1, 2, 3, 3, 3, 2, 3],
                    web__seen=[1, 1, 1, 1, 3, 3, 3, 3, 3, 3])
    assert check("metricN_follows_live", rec, service="web", lag=3, count="running") == (
        False, "FAILED: web: the collector counted 2 (running) but 3 were live at t=9.0 s, "
               "1 s out of step beyond 3 s")
    assert check("metricN_follows_live", rec, service="web", lag=1) == (
        True, "web: the collector's count (seen) followed the live count within 1 s over 10 s")
    assert check("metricN_follows_live", rec, service="web", lag=0)[0] is False
    rec.timeline[8]["web.running"] = 3.0
    assert check("metricN_follows_live", rec, service="web", lag=3, count="running")[0]
    assert check("metricN_follows_live", rec, service="web", lag=1, count="running")[0] is False


def test_accounting_and_missing_things() -> None:
    rec = recording([1, 1])
    assert check("no_lost_datagrams", rec)[0] is True
    rec.accounting = Accounting(10, 9, 0, 1, 0, 0)
    assert check("no_lost_datagrams", rec) == (
        False, "FAILED: agents sent 10 datagrams; the collector received 9, 0 undecodable, "
               "1 lost in sequence, 0 duplicate, 0 discarded")
    assert check("analyser_pcap", rec, only_flow=["10.0.0.1", "10.0.0.2"]) == (
        False, "FAILED: the scenario has no fabric, so no analyser")
    for service in rec.scenario.services:  # a recording without the moment validated
        service.load.clear()
    assert check("returns_to_min", rec, service="web", within=5) == (
        False, "FAILED: could not evaluate: the scenario has no moment 'load_end'; it has "
               "['end', 'start']")
