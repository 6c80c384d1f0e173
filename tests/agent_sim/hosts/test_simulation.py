"""The lab: composition from options and files, scheduled changes, fabric, determinism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sflowlab.agent_sim.driver import run_simulated, tick_times
from sflowlab.agent_sim.simulation import Change, Lab, LabSpec, lab_spec_from_dict, load_lab_spec
from sflowlab.agent_sim.sinks import MemorySink, PcapSink, TeeSink
from sflowlab.agent_sim.topology import FabricSpec
from sflowlab.agent_sim.workload import ServiceSpec
from sflowlab.clock import SimClock
from sflowlab.codec import COUNTER_SAMPLES, FlowSampleExpanded, HostDescr, VirtCpu

if TYPE_CHECKING:
    from conftest import Helpers


def run_lab(spec: LabSpec, seconds: float, sink: MemorySink | TeeSink,
            start: float = 1000.0) -> Lab:
    clock = SimClock(start)
    lab = Lab(spec, sink, start)
    run_simulated(lab, clock, seconds, 1.0)
    return lab


def test_default_lab_spreads_replicas_and_names_tasks_like_swarm() -> None:
    lab = Lab(LabSpec(hosts=3, containers=2), MemorySink())
    assert [len(h.containers) for h in lab.hosts.values()] == [2, 2, 2]
    names = sorted(c.name for h in lab.hosts.values() for c in h.containers.values())
    assert [n.split(".")[:2] for n in names] == [["apache", str(i)] for i in range(1, 7)]
    assert all(len(n.split(".")[2]) == 25 for n in names)
    assert [h.spec.address for h in lab.hosts.values()] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_same_seed_gives_byte_identical_pcaps(tmp_path: Path) -> None:
    def pcap(name: str, seed: int) -> bytes:
        path = tmp_path / name
        with PcapSink(str(path)) as sink:
            run_lab(LabSpec(seed=seed, hosts=2, containers=2, sampling=50, switches=4), 40.0,
                    sink)  # type: ignore[arg-type]
        return path.read_bytes()

    first = pcap("a.pcap", 5)
    assert len(first) > 10_000
    assert pcap("b.pcap", 5) == first
    assert pcap("c.pcap", 6) != first


def test_schedule_scales_and_changes_load(sim: Helpers) -> None:
    spec = LabSpec(hosts=2, services=[ServiceSpec(name="web", replicas=2, rps=50.0)],
                   schedule=[Change(at=10, service="web", replicas=4),
                             Change(at=20, service="web", rps=400.0),
                             Change(at=30, service="web", replicas=1)], polling_s=5.0)
    sink = MemorySink()
    lab = run_lab(spec, 40.0, sink)
    web = lab.services["web"]
    assert len(web.replicas) == 1
    assert sum(s.requests for s in web.served.values()) == 50 * 20 + 400 * 20
    stopped = [s for _, s in sim.samples(sim.decoded(sink), COUNTER_SAMPLES)
               if s.source_id_type == 3 and next(
                   r for r in s.records if isinstance(r, VirtCpu)).state == 4]
    assert len(stopped) == 3
    assert {next(r for r in s.records if isinstance(r, HostDescr)).hostname.split(".")[1]
            for s in stopped} == {"2", "3", "4"}


def test_fabric_lab_puts_hosts_on_the_fabric_and_carries_their_traffic(sim: Helpers) -> None:
    sink = MemorySink()
    lab = run_lab(LabSpec(hosts=3, containers=1, switches=4, sampling=100,
                          services=[ServiceSpec(replicas=3, rps=3000.0)]), 30.0, sink)
    assert lab.fabric is not None and len(lab.fabric.switches) == 4
    assert {h.spec.address for h in lab.hosts.values()} == {
        p.ip for p in lab.fabric.hosts.values()} & {h.spec.address for h in lab.hosts.values()}
    dgs = sim.decoded(sink)
    agents = {a for _, a, _ in dgs}
    switch_addresses = {sw.address for sw in lab.fabric.switches.values()}
    assert switch_addresses <= agents
    assert any(a in switch_addresses for _, a, dg in dgs
               for s in dg.samples if type(s).__name__ in ("FlowSample", "FlowSampleExpanded"))
    s = lab.summary()
    assert s["agents"] == 7 and s["containers"] == 3 and s["samples"]["flow"] > 0


def test_summary_counts_every_sample_sent(sim: Helpers) -> None:
    sink = MemorySink()
    lab = run_lab(LabSpec(hosts=2, containers=2, sampling=20), 25.0, sink)
    dgs = sim.decoded(sink)
    s = lab.summary()
    assert s["datagrams"] == len(dgs)
    assert s["samples"]["flow"] == len(list(sim.samples(dgs, (FlowSampleExpanded,))))
    assert s["samples"]["counters"] == len(list(sim.samples(dgs, COUNTER_SAMPLES)))


def test_lab_files_in_json_and_toml(tmp_path: Path) -> None:
    data = {"seed": 3, "hosts": 2, "sampling": 100,
            "fabric": {"leaves": 2, "spines": 1, "hosts_per_leaf": 2},
            "services": [{"name": "api", "replicas": 3, "clients": 8,
                          "client_addresses": ["198.51.100.7"]}],
            "schedule": [{"at": 30, "service": "api", "replicas": 5}]}
    (tmp_path / "lab.json").write_text(json.dumps(data))
    (tmp_path / "lab.toml").write_text(
        'seed = 3\nhosts = 2\nsampling = 100\n[fabric]\nleaves = 2\nspines = 1\n'
        'hosts_per_leaf = 2\n[[services]]\nname = "api"\nreplicas = 3\nclients = 8\n'
        'client_addresses = ["198.51.100.7"]\n[[schedule]]\nat = 30\nservice = "api"\n'
        'replicas = 5\n')
    a, b = load_lab_spec(tmp_path / "lab.json"), load_lab_spec(tmp_path / "lab.toml")
    assert a == b
    assert a.services[0].clients == 8 and a.services[0].client_addresses == ("198.51.100.7",)
    assert a.fabric is not None and a.fabric.leaves == 2
    assert load_lab_spec(tmp_path / "lab.json", hosts=4, seed=None).hosts == 4


@pytest.mark.parametrize(("data", "message"), [
    ({"hostz": 2}, "unknown keys"),
    ({"services": [{"name": "a", "rpz": 1}]}, r"services\[0\]: unknown keys"),
    ({"schedule": [{"at": 1, "service": "nope"}]}, "unknown services"),
    ({"hosts": 0}, "at least one host"),
    ({"switches": 2}, "at least 3"),
])
def test_bad_lab_descriptions_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lab_spec_from_dict(data)


def test_unparsable_lab_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: cannot parse"):
        load_lab_spec(path)


def test_tick_times_cover_the_duration_exactly() -> None:
    assert tick_times(10.0, 2.5, 1.0) == [11.0, 12.0, 12.5]
    assert tick_times(0.0, 0.0, 1.0) == []
    with pytest.raises(ValueError):
        tick_times(0.0, 1.0, 0.0)


def test_lab_leaves_its_spec_untouched_and_checks_the_fabric_size() -> None:
    spec = LabSpec(hosts=1, services=[ServiceSpec(name="web", rps=10.0)],
                   schedule=[Change(at=1, service="web", rps=99.0)])
    run_lab(spec, 3.0, MemorySink())
    assert spec.services[0].rps == 10.0
    with pytest.raises(ValueError, match="fewer than the lab's 5 hosts"):
        Lab(LabSpec(hosts=5, fabric=FabricSpec(leaves=1, spines=1, hosts_per_leaf=2)),
            MemorySink())


def test_lab_files_in_yaml(tmp_path: Path) -> None:
    pytest.importorskip("yaml", reason="PyYAML (the lab extra) is not installed")
    (tmp_path / "lab.yaml").write_text(
        "hosts: 3\nswitches: 4\nservices:\n  - name: shop\n    replicas: 6\n    rps: 250\n")
    spec = load_lab_spec(tmp_path / "lab.yaml", seed=9)
    assert (spec.hosts, spec.switches, spec.seed) == (3, 4, 9)
    assert spec.services[0].name == "shop" and spec.services[0].rps == 250


def test_an_orchestrator_places_and_stops_replicas(sim: Helpers) -> None:
    sink = MemorySink()
    lab = Lab(LabSpec(hosts=2, services=[ServiceSpec(name="web", replicas=0, rps=40.0)]), sink,
              0.0)
    cid = lab.start_replica("web", "web.1.abcdefghijklmnopqrstuvwxy", "host2", 0.0)
    assert lab.placement[cid] == "host2" and lab.services["web"].replicas == [cid]
    for t in range(1, 11):
        lab.tick(float(t))
    lab.stop_replica(cid, 10.0, "exited")
    lab.tick(11.0)
    served = lab.services["web"].served[cid].requests
    assert served == 400 and lab.services["web"].replicas == []
    final = [s for _, s in sim.samples(sim.decoded(sink), COUNTER_SAMPLES)
             if s.source_id_type == 3][-1]
    assert next(r for r in final.records if isinstance(r, VirtCpu)).state == 4
    lab.scale("web", 1, 11.0)  # the emptiest host now is host1
    assert lab.placement[lab.services["web"].replicas[0]] == "host1"


def test_fabric_carries_the_packets_the_replicas_exchanged() -> None:
    spec = LabSpec(hosts=3, switches=4, services=[ServiceSpec(
        replicas=5, rps=333.0, client_addresses=("203.0.113.5", "203.0.113.6"))])
    lab = run_lab(spec, 20.0, MemorySink())
    assert lab.fabric is not None
    served = lab.services["apache"].served.values()
    inbound = sum(st.packets for st in lab.fabric.flows.values() if st.flow.dst_port == 80)
    outbound = sum(st.packets for st in lab.fabric.flows.values() if st.flow.src_port == 80)
    flows = len(lab.fabric.flows)
    assert abs(inbound - sum(s.pkts_in for s in served)) <= flows
    assert abs(outbound - sum(s.pkts_out for s in served)) <= flows
