"""pytest plugin shipped with sflowlab (entry point ``pytest11``): ``pytest --live
scenarios/apache_load_ramp.yaml`` runs scenario files live (``run_live``) instead of
simulated; each is one test (markers ``docker`` and ``live``) that fails with the assertion
summary and the comparison with the simulated run. Scenarios a live run cannot drive (not
exactly one service with ``clients`` load) are skipped with the reason; so is every one
without root or a Docker engine. Without ``--live`` the scenario plugin runs them simulated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sflowlab.lab.scenario.pytest_plugin import ScenarioFailed, ScenarioItem

SCENARIO_FOLDER = "scenarios"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--live", action="store_true",
                     help="run scenario files live: the local Docker engine's swarm, sflowlab "
                          "agent and collector, locust (root)")


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.File | None:
    if (parent.config.getoption("--live") and file_path.suffix in (".yaml", ".yml")
            and file_path.parent.name == SCENARIO_FOLDER):
        return LiveScenarioFile.from_parent(parent, path=file_path)
    return None


class LiveScenarioFile(pytest.File):
    """A scenario file run live: one test item."""

    def collect(self) -> Iterator[pytest.Item]:
        item = LiveScenarioItem.from_parent(self, name=f"{self.path.stem}[live]")
        item.add_marker(pytest.mark.docker)
        item.add_marker(pytest.mark.live)
        yield item


class LiveScenarioItem(ScenarioItem):
    """Runs one scenario live and checks its assertions and the comparison."""

    def runtest(self) -> None:
        from sflowlab.lab.live.lab import loaded_service
        from sflowlab.lab.live.load import LoadProfile
        from sflowlab.lab.live.runner import live_summary, run_live
        from sflowlab.lab.scenario.loader import load_scenario
        from sflowlab.lab.scenario.model import ScenarioError
        from sflowlab.lab.scenario.runner import summary

        try:
            scenario = load_scenario(self.path)
        except ScenarioError as e:
            raise ScenarioFailed(str(e)) from None
        try:
            LoadProfile.of(loaded_service(scenario), scenario.duration)
        except ValueError as e:
            pytest.skip(f"cannot run live: {e}")
        if os.geteuid() != 0:
            pytest.skip("the live lab's agent samples packets: needs root")
        factory = self.config._tmp_path_factory  # type: ignore[attr-defined]
        result = run_live(scenario, factory.mktemp(f"{scenario.name}_live"))
        if not result.passed:
            raise ScenarioFailed(summary(result) + "\n"  # type: ignore[arg-type]
                                 + live_summary(result))
