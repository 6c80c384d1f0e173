"""pytest plugin shipped with sflowlab: scenario files as tests, and fixtures for lab tests.

Installed with the package (entry point ``pytest11``):

- every ``*.yaml`` / ``*.yml`` file in a folder named ``scenarios`` is collected as one test
  that runs the scenario (its out folder under pytest's temporary directory) and fails with
  the assertion summary; ``pytest scenarios/`` runs them all (``pytest --live``: live, by
  ``sflowlab.lab.live.pytest_plugin``);
- fixtures: ``sim_clock`` (a ``SimClock`` at t=0), ``engine`` (a collector engine on it),
  ``lab_scenario`` (a small scenario: two hosts on a leaf-spine fabric, a ``web`` service with
  one replica; override it in your conftest), ``lab`` (a ``LabRun`` of ``lab_scenario`` on
  ``sim_clock`` and ``engine``: ``lab.run_until(t)``, ``lab.finish()``), ``swarm`` (its swarm
  double) and ``fabric`` (its agent_sim fabric).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sflowlab.clock import SimClock

if TYPE_CHECKING:  # the lab is imported when a fixture or scenario needs it, not by pytest
    from sflowlab.agent_sim.fabric import Fabric
    from sflowlab.collector.engine import Engine
    from sflowlab.lab.doubles.swarm_model import Swarm
    from sflowlab.lab.scenario.model import Scenario
    from sflowlab.lab.scenario.runner import LabRun

SCENARIO_FOLDER = "scenarios"


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.File | None:
    if parent.config.getoption("--live", default=False):
        return None  # pytest --live: the live lab's plugin runs them (sflowlab.lab.live)
    if file_path.suffix in (".yaml", ".yml") and file_path.parent.name == SCENARIO_FOLDER:
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    """A scenario file: one test item."""

    def collect(self) -> Iterator[pytest.Item]:
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioFailed(Exception):
    """A scenario's assertions failed (or it could not be built)."""


class ScenarioItem(pytest.Item):
    """Runs one scenario and checks its assertions."""

    def runtest(self) -> None:
        from sflowlab.lab.scenario.loader import load_scenario
        from sflowlab.lab.scenario.model import ScenarioError
        from sflowlab.lab.scenario.runner import run_scenario, summary

        try:
            scenario = load_scenario(self.path)
        except ScenarioError as e:
            raise ScenarioFailed(str(e)) from None
        # pytest keeps tmp_path_factory on the config and offers items no public accessor
        factory = self.config._tmp_path_factory  # type: ignore[attr-defined]
        result = run_scenario(scenario, factory.mktemp(scenario.name))
        if not result.passed:
            raise ScenarioFailed(summary(result))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.name}"


@pytest.fixture
def sim_clock() -> SimClock:
    """Simulated time starting at 0; advance it with ``advance_to``/``advance``."""
    return SimClock()


@pytest.fixture
def engine(sim_clock: SimClock) -> Engine:
    """A collector engine whose clock is ``sim_clock``."""
    from sflowlab.collector.engine import Engine

    return Engine(sim_clock)


@pytest.fixture
def lab_scenario() -> Scenario:
    """The lab the ``lab`` fixture builds; override it to test your own."""
    from sflowlab.agent_sim.topology import FabricSpec
    from sflowlab.lab.scenario.model import Scenario, ScenarioService

    return Scenario(name="lab", duration=60.0, hosts=2,
                    fabric=FabricSpec(leaves=2, spines=1, hosts_per_leaf=1),
                    services=[ScenarioService(name="web", replicas=1)])


@pytest.fixture
def lab(lab_scenario: Scenario, sim_clock: SimClock, engine: Engine,
        tmp_path: Path) -> Iterator[LabRun]:
    """``lab_scenario`` built on ``sim_clock`` and ``engine`` (its files in ``tmp_path``)."""
    from sflowlab.lab.scenario.runner import LabRun

    run = LabRun(lab_scenario, tmp_path / "out", clock=sim_clock, engine=engine)
    try:
        yield run
    finally:
        run.close()


@pytest.fixture
def swarm(lab: LabRun) -> Swarm:
    """The lab's swarm double (``swarm.scale(name, n)``; its API at ``lab.swarm_api.url``)."""
    return lab.swarm


@pytest.fixture
def fabric(lab: LabRun) -> Fabric:
    """The lab's leaf-spine fabric (``add_flow``, ``install_rule``, switch agents)."""
    if lab.lab.fabric is None:
        pytest.fail("the lab_scenario has no fabric: give it one (FabricSpec) to use `fabric`")
    return lab.lab.fabric
