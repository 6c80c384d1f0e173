"""The notebooks: committed with outputs cleared, and each one's code cells run as one script
against fresh runs of its scenarios: elb_analysis (the apache ramp with and without the ELB),
fabric_analysis (the DDoS and capture scenarios)."""

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


def run_notebook(name: str, out: Path, live: Path | None = None) -> dict[str, Any]:
    """Execute the notebook's code cells (Agg backend, its runs under ``out``, a live run's
    out folder in ``live``: none by default); its globals."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with pytest.MonkeyPatch.context() as env:
        env.setenv("SFLOWLAB_SCENARIO", str(ROOT / "scenarios" / "apache_load_ramp.yaml"))
        env.setenv("SFLOWLAB_SCENARIOS", str(ROOT / "scenarios"))
        env.setenv("SFLOWLAB_NOTEBOOK_OUT", str(out))
        env.setenv("SFLOWLAB_LIVE_OUT", str(live or out / "no-live-run"))
        path = ROOT / "notebooks" / f"{name}.ipynb"
        namespace: dict[str, Any] = {"__name__": name}
        exec(compile(code_of(path), str(path), "exec"), namespace)
    plt.close("all")
    return namespace


@pytest.fixture(scope="module")
def elb_analysis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_notebook("elb_analysis", tmp_path_factory.mktemp("elb"))


@pytest.fixture(scope="module")
def fabric_analysis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_notebook("fabric_analysis", tmp_path_factory.mktemp("fabric"))


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
    peak = int(elb_analysis["summary"].loc["with ELB", "max replicas"])
    with_elb = elb_analysis["loads"]["with ELB"]
    assert sorted(set(with_elb["slot"])) == [f"apache.{i}" for i in range(1, peak + 1)]
    # the seed's policy: one replica at a time, up to the peak, then back down to 1
    assert list(elb_analysis["decisions"]["to"]) == [*range(2, peak + 1), *range(peak - 1, 0, -1)]


def test_the_fabric_notebook_estimates_the_flood_and_the_suspect_pair(
        fabric_analysis: dict[str, Any]) -> None:
    summary = fabric_analysis["summary"]
    ddos, capture = summary["ddos_mitigation"], summary["emerging_threat_capture"]
    assert (ddos["switch"], capture["switch"]) == ("border1", "leaf1")
    # sampled at 1 in 10,000 (10G links): ~60 samples of a 20,000 packets/s flood over 30 s
    assert 13_000 < ddos["estimated packets/s"] < 27_000
    # sampled at 1 in 50: ~1,000 samples of the pair's 80 packets/s over 25 s
    assert 64 < capture["estimated packets/s"] < 96
    assert 0 < ddos["installed, s after the start"] <= 5
    assert 0 < capture["installed, s after the start"] <= 8
    assert 10 <= ddos["removed, s after the end"] <= 20  # hold_s 10
    assert 10 <= capture["removed, s after the end"] <= 15  # idle_s 10


def test_the_flood_is_still_sampled_while_dropped(fabric_analysis: dict[str, Any]) -> None:
    """Switches sample before their ACLs act: the border keeps reporting the flood during
    the mitigation, and nothing after the flood stops."""
    rate = fabric_analysis["flood_rate"][fabric_analysis["BORDER1"]]
    [session] = fabric_analysis["ddos_acl"]
    assert rate.loc[int(session.start) + 1:39].mean() > 10_000
    assert rate.loc[41:].sum() == 0


def test_the_elb_notebook_reads_a_live_run_s_folder(tmp_path: Path) -> None:
    """A live run's out folder (here a simulated run's files with the live run's extras:
    live.json, compare.csv) joins the analysis: its timeline, its pcap's counters (times
    from the run's t0), a summary row and the comparison."""
    from sflowlab.lab.live.compare import compare, write_compare
    from sflowlab.lab.scenario.loader import load_scenario
    from sflowlab.lab.scenario.model import Tolerances
    from sflowlab.lab.scenario.runner import run_scenario

    live = tmp_path / "live"
    rec = run_scenario(load_scenario(ROOT / "scenarios" / "apache_load_ramp.yaml"), live,
                       chart=False).recording
    (live / "live.json").write_text(json.dumps({"t0_epoch": 0.0}))
    write_compare(live / "compare.csv", compare(rec, rec, Tolerances()))
    namespace = run_notebook("elb_analysis", tmp_path / "runs", live)
    assert namespace["summary"].loc["live", "max replicas"] == 8
    assert namespace["loads"]["live"]["time_s"].between(0, 101).all()
    compared = namespace["live_compare"]
    assert set(compared["within"].dropna()) == {"yes"} and len(compared) == 9
