"""The notebooks: committed with outputs cleared, and elb_analysis's code cells run as one
script against fresh runs of the apache scenario (with and without the ELB)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import pytest

ROOT = Path(__file__).parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def code_of(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_outputs_are_cleared(notebook: Path) -> None:
    cells = json.loads(notebook.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code, "a notebook without code"
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)


@pytest.fixture(scope="module")
def elb_analysis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with pytest.MonkeyPatch.context() as env:
        env.setenv("SFLOWLAB_SCENARIO", str(ROOT / "scenarios" / "apache_load_ramp.yaml"))
        env.setenv("SFLOWLAB_NOTEBOOK_OUT", str(tmp_path_factory.mktemp("notebook")))
        path = ROOT / "notebooks" / "elb_analysis.ipynb"
        namespace: dict[str, Any] = {"__name__": "elb_analysis"}
        exec(compile(code_of(path), str(path), "exec"), namespace)
    plt.close("all")
    return namespace


def test_the_elb_spreads_the_same_traffic_over_more_containers(
        elb_analysis: dict[str, Any]) -> None:
    summary = elb_analysis["summary"]
    with_elb, without = summary.loc["with ELB"], summary.loc["without ELB"]
    assert (with_elb["max replicas"], without["max replicas"]) == (8, 1)
    assert without["replica-seconds"] == 100  # one replica for the whole run
    assert with_elb["peak bytes/s per container"] < 0.6 * without["peak bytes/s per container"]
    assert with_elb["mean bytes/s per container"] < 0.3 * without["mean bytes/s per container"]
    assert with_elb["seconds over 100 kB/s"] < without["seconds over 100 kB/s"]
    served = with_elb["requests served"] / without["requests served"]
    assert 0.9 < served < 1.2  # about the same requests: the clients bound them


def test_loads_from_the_pcap_agree_with_the_collector(elb_analysis: dict[str, Any]) -> None:
    """The single container's steady load, derived from the raw counters in sflow.pcap,
    is what the collector averaged (one container: the average is its value)."""
    pcap = elb_analysis["loads"]["without ELB"]
    timeline = elb_analysis["timeline"]["without ELB"]
    assert set(pcap["slot"]) == {"apache.1"}
    assert pcap["bytes_per_s"].max() == pytest.approx(timeline["apache.avg_vir_bytes"].max(),
                                                      abs=1.0)
    with_elb = elb_analysis["loads"]["with ELB"]
    assert sorted(set(with_elb["slot"])) == [f"apache.{i}" for i in range(1, 9)]
    decisions = elb_analysis["decisions"]
    assert list(decisions["to"]) == [*range(2, 9), *range(7, 0, -1)]
