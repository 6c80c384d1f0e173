"""The hsflowd-like host: container and host counter samples, lifecycle, bridge flow samples."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

from sflowlab.agent_sim.host import FIRST_STATS_DELAY_S
from sflowlab.agent_sim.packets import TCP, Packet
from sflowlab.codec import (
    COUNTER_SAMPLES,
    ExtendedEntities,
    FlowSampleExpanded,
    HostNetIo,
    SampledHeader,
    VirtCpu,
    VirtDiskIo,
    VirtNetIo,
    VirtNode,
)
from sflowlab.codec.headers import decode_header

if TYPE_CHECKING:
    from conftest import Helpers, HostRun

CONTAINER_ORDER = [2001, 2103, 2102, 2101, 2104, 2002, 2000]
HOST_ORDER = [2100, 2001, 2010, 2009, 2008, 2007, 2005, 2004, 2003, 2006, 2000]


def formats(sample: object) -> list[int]:
    return [r.data_format & 0xFFF if hasattr(r, "data_format") else _fmt(r)
            for r in sample.records]  # type: ignore[attr-defined]


def _fmt(record: object) -> int:
    from sflowlab.codec import REGISTRY

    return next(f for f, cls in REGISTRY["counter"].items() if cls is type(record)) & 0xFFF


def record(sample: object, kind: type) -> object:
    return next(r for r in sample.records if isinstance(r, kind))  # type: ignore[attr-defined]


def containers(sim: Helpers, run: HostRun) -> list[Any]:
    """The container counter samples the run sent since the last call."""
    return [s for _, s in sim.samples(sim.decoded(run.sink), COUNTER_SAMPLES)
            if s.source_id_type == 3]


def test_stop_sample_carries_exactly_what_the_container_served(sim: Helpers) -> None:
    run = sim.host_run(replicas=2, rps=237.0, polling_s=10.0)
    run.advance(61.3)
    for cid in list(run.service.replicas):
        run.service.remove_replica(cid)
        run.host.stop_container(cid, run.now, "exited")
    run.host.tick(run.now)
    dgs = sim.decoded(run.sink)
    for cid, truth in run.service.served.items():
        c = run.host.known[cid]
        final = [s for _, s in sim.samples(dgs, COUNTER_SAMPLES)
                 if s.source_id_index == c.ds_index][-1]
        assert final.source_id_type == 3
        cpu, net = record(final, VirtCpu), record(final, VirtNetIo)
        disk = record(final, VirtDiskIo)
        assert cpu.state == 4 and cpu.cpu_time_ms == truth.cpu_ms  # type: ignore[attr-defined]
        assert (net.bytes_in, net.pkts_in, net.bytes_out, net.pkts_out) == (  # type: ignore[attr-defined]
            truth.bytes_in, truth.pkts_in, truth.bytes_out, truth.pkts_out)
        assert disk.wr_bytes == truth.log_bytes  # type: ignore[attr-defined]
    total = sum(s.requests for s in run.service.served.values())
    assert total == math.floor(237.0 * 61.3)


def test_lifecycle_first_sample_soon_final_sample_restart_at_seq_one(sim: Helpers) -> None:
    run = sim.host_run(replicas=1, rps=50.0, polling_s=20.0)
    cid = run.service.replicas[0]
    c = run.host.containers[cid]
    run.advance(70.0)
    seen = [(now, s) for now, s in sim.samples(sim.decoded(run.sink), COUNTER_SAMPLES)
            if s.source_id_type == 3]
    assert seen[0][0] == FIRST_STATS_DELAY_S and seen[0][1].sequence_number == 1
    assert [s.sequence_number for _, s in seen] == list(range(1, len(seen) + 1))
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(seen[1:])]
    assert gaps and all(abs(g - 20.0) <= 0.5 for g in gaps)
    assert all(record(s, VirtCpu).state == 1 for _, s in seen)  # type: ignore[attr-defined]

    run.service.remove_replica(cid)
    run.host.stop_container(cid, run.now, "stopped")
    run.host.tick(run.now)
    (final,) = containers(sim, run)
    assert record(final, VirtCpu).state == 5  # type: ignore[attr-defined]
    assert final.sequence_number == len(seen) + 1
    run.advance(30.0)
    assert not containers(sim, run)

    again = run.host.start_container(c.name, run.now, run.service, container_id=cid)
    run.service.add_replica(cid)
    assert again.ds_index == c.ds_index and again.ip == c.ip
    run.advance(4.0)
    first = containers(sim, run)[0]
    assert first.sequence_number == 1 and first.source_id_index == c.ds_index
    net = record(first, VirtNetIo)
    assert 0 < net.pkts_in < 50 * 4 * run.service.exchange.pkts_in  # type: ignore[attr-defined]


def test_records_follow_hsflowds_wire_order(sim: Helpers) -> None:
    run = sim.host_run(replicas=1, polling_s=5.0)
    run.advance(12.0)
    found = {s.source_id_type: s for _, s in sim.samples(sim.decoded(run.sink), COUNTER_SAMPLES)}
    assert formats(found[3]) == CONTAINER_ORDER
    assert formats(found[2]) == HOST_ORDER
    assert found[2].source_id_index == 1
    node = record(found[2], VirtNode)
    assert node.num_domains == 1 and node.cpus == 4  # type: ignore[attr-defined]
    descr = found[3].records[-1]
    assert descr.hostname == "apache.1.task1" and descr.os_name == 2


def test_sub_agent_ids_as_hsflowd_sets_them(sim: Helpers) -> None:
    run = sim.host_run(sampling=100)
    run.advance(15.0)
    assert {dg.sub_agent_id for _, _, dg in sim.decoded(run.sink)} == {100000}
    quiet = sim.host_run(sampling=0)
    quiet.advance(15.0)
    dgs = sim.decoded(quiet.sink)
    assert {dg.sub_agent_id for _, _, dg in dgs} == {100001}
    assert not list(sim.samples(dgs, (FlowSampleExpanded,)))


def test_flow_samples_scale_to_true_packets_pool_and_sequence_agree(sim: Helpers) -> None:
    rate = 50
    run = sim.host_run(replicas=3, sampling=rate, rps=400.0)
    run.advance(60.0)
    flows = [s for _, s in sim.samples(sim.decoded(run.sink), (FlowSampleExpanded,))]
    truth = sum(s.pkts_in + s.pkts_out for s in run.service.served.values())
    p = 1 / rate
    assert abs(len(flows) - truth * p) < 5 * math.sqrt(truth * p * (1 - p))
    assert [s.sequence_number for s in flows] == list(range(1, len(flows) + 1))
    pools = [s.sample_pool for s in flows]
    assert pools == sorted(pools) and pools[-1] <= truth
    assert run.host.sampler is not None and run.host.sampler.sample_pool == truth
    assert {(s.sampling_rate, s.source_id_type, s.source_id_index) for s in flows} == {(rate, 0, 3)}
    bytes_truth = sum(s.bytes_in + s.bytes_out for s in run.service.served.values())
    frame_bytes = sum(record(s, SampledHeader).frame_length - 4 for s in flows)  # type: ignore[attr-defined]
    assert abs(frame_bytes * rate - bytes_truth) < 0.1 * bytes_truth


def test_sampled_headers_are_the_real_packets_of_each_container(sim: Helpers) -> None:
    run = sim.host_run(replicas=2, sampling=20, rps=100.0,
                   client_addresses=("192.168.7.1", "192.168.7.2"))
    run.advance(20.0)
    by_index = {c.ds_index: c for c in run.host.containers.values()}
    flows = [s for _, s in sim.samples(sim.decoded(run.sink), (FlowSampleExpanded,))]
    assert len(flows) > 100
    for s in flows:
        header, ent = record(s, SampledHeader), record(s, ExtendedEntities)
        keys = decode_header(1, header.header)  # type: ignore[attr-defined]
        inbound = ent.dst_ds_class == 3  # type: ignore[attr-defined]
        c = by_index[ent.dst_ds_index if inbound else ent.src_ds_index]  # type: ignore[attr-defined]
        client = keys["ipsource"] if inbound else keys["ipdestination"]
        port = keys["tcpsourceport"] if inbound else keys["tcpdestinationport"]
        assert client in ("192.168.7.1", "192.168.7.2")
        assert (keys["ipdestination"] if inbound else keys["ipsource"]) == c.ip
        if inbound:
            assert (s.input_value, s.output_value) == (3, c.veth_ifindex)
        else:
            assert (s.input_value, s.output_value) == (c.veth_ifindex, 3)
        raw = header.header  # type: ignore[attr-defined]
        rebuilt = Packet(_mac(raw[6:12]), _mac(raw[0:6]), keys["ipsource"], keys["ipdestination"],
                         TCP, keys["tcpsourceport"], keys["tcpdestinationport"],
                         raw[47], header.frame_length - 4,  # type: ignore[attr-defined]
                         seq=int.from_bytes(raw[38:42], "big"))
        assert rebuilt.header(128) == raw, (inbound, port)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def test_host_counters_follow_the_traffic(sim: Helpers) -> None:
    run = sim.host_run(replicas=2, rps=100.0, polling_s=10.0)
    run.advance(45.0)
    host_samples = [s for _, s in sim.samples(sim.decoded(run.sink), COUNTER_SAMPLES)
                    if s.source_id_type == 2]
    assert [s.sequence_number for s in host_samples] == list(range(1, len(host_samples) + 1))
    last = host_samples[-1]
    net = record(last, HostNetIo)
    served = run.service.served.values()
    assert 0 < net.bytes_in <= sum(s.bytes_in for s in served)  # type: ignore[attr-defined]
    assert net.pkts_out <= sum(s.pkts_out for s in served)  # type: ignore[attr-defined]


def test_same_seed_same_bytes(sim: Helpers) -> None:
    def run(seed: int) -> list[bytes]:
        r = sim.host_run(seed=seed)
        r.advance(30.0)
        return [d for _, _, d in r.sink.drain()]

    assert run(11) == run(11) != run(12)


def test_bridge_interface_counters_count_whole_exchanges(sim: Helpers) -> None:
    run = sim.host_run(replicas=2, sampling=100, rps=90.0, polling_s=5.0)
    run.advance(31.0)
    bridge = [s for _, s in sim.samples(sim.decoded(run.sink), COUNTER_SAMPLES)
              if s.source_id_type == 0]
    assert [s.sequence_number for s in bridge] == list(range(1, len(bridge) + 1))
    assert len(bridge) >= 5 and {s.source_id_index for s in bridge} == {3}
    assert formats(bridge[-1]) == [1005, 1]
    ex = run.service.exchange
    for s in bridge:
        port, counters = s.records
        assert port.name == "docker0" and counters.if_index == 3
        requests = counters.if_out_ucast_pkts // ex.pkts_in
        assert (counters.if_out_octets, counters.if_out_ucast_pkts) == (
            requests * ex.bytes_in, requests * ex.pkts_in)
        assert (counters.if_in_octets, counters.if_in_ucast_pkts) == (
            requests * ex.bytes_out, requests * ex.pkts_out)
    assert 0 < requests <= sum(s.requests for s in run.service.served.values())


def test_u32_fields_wrap_and_u64_fields_do_not(sim: Helpers) -> None:
    run = sim.host_run(replicas=1, rps=10.0, polling_s=5.0)
    c = next(iter(run.host.containers.values()))
    c.counters.pkts_in = c.counters.pkts_out = (1 << 32) - 3
    c.counters.bytes_in = (1 << 40)
    c.counters.cpu_ns = ((1 << 32) - 1) * 1_000_000
    run.advance(FIRST_STATS_DELAY_S)
    first = containers(sim, run)[-1]  # at 3 s (its regular poll may have come before)
    net, cpu = record(first, VirtNetIo), record(first, VirtCpu)
    ex, n = run.service.exchange, 30  # requests served in the first 3 s at 10/s
    assert net.pkts_in == n * ex.pkts_in - 3  # type: ignore[attr-defined]
    assert net.bytes_in == (1 << 40) + n * ex.bytes_in  # type: ignore[attr-defined]
    assert cpu.cpu_time_ms == n * run.service.spec.cpu_us_per_request // 1000 - 1  # type: ignore[attr-defined]
