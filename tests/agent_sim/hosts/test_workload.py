"""The service model: exchanges, open and closed loop, round robin, exact accounting."""

from __future__ import annotations

import pytest

from sflowlab.agent_sim.workload import (
    EPHEMERAL_FIRST,
    MSS,
    SYN_FRAME,
    TCP_FRAME,
    Exchange,
    Service,
    ServiceSpec,
)


def test_exchange_counts_every_packet_of_one_connection() -> None:
    ex = Exchange.http(180, 3 * MSS + 100)
    # in: SYN, ACK, request, 2 ACKs of 4 response segments, FIN
    assert ex.pkts_in == 6
    assert ex.bytes_in == SYN_FRAME + TCP_FRAME * 5 + 180
    # out: SYN-ACK, ACK of request, 4 response segments, FIN, last ACK
    assert ex.pkts_out == 8
    assert ex.bytes_out == SYN_FRAME + TCP_FRAME * 7 + 3 * MSS + 100
    assert len(ex.segments) == ex.pkts_in + ex.pkts_out


def make(replicas: int = 3, **kw: object) -> Service:
    svc = Service(ServiceSpec(replicas=replicas, **kw))  # type: ignore[arg-type]
    for i in range(replicas):
        svc.add_replica(f"r{i}")
    return svc


def test_open_loop_serves_offered_load_up_to_capacity_exactly() -> None:
    svc = make(rps=250.0, capacity_rps=100.0)
    total = sum(n for _ in range(40) for _, n, _ in svc.step(0.25))
    assert total == 250 * 10
    svc.set_load(rps=1000.0)
    served = sum(n for _ in range(10) for _, n, _ in svc.step(1.0))
    assert served == 300 * 10 and svc.rejected == 700 * 10


def test_closed_loop_throughput_rises_and_saturates() -> None:
    svc = make(replicas=2, capacity_rps=500.0, latency_s=0.01, rps=None, clients=1)
    assert svc.throughput_rps() == pytest.approx(1 / (0.01 + 1 / 1000))
    rates = []
    for n in (1, 4, 16, 64, 1024):
        svc.set_load(clients=n)
        rates.append(svc.throughput_rps())
        assert svc.latency_s() == pytest.approx(n / rates[-1])
    assert rates == sorted(rates) and rates[-1] < 1000 and rates[-1] > 0.9 * 1000


def test_round_robin_spreads_requests_evenly_with_connection_numbers() -> None:
    svc = make(replicas=3, rps=10.0)
    out = svc.step(1.0) + svc.step(0.2) + svc.step(0.2)
    per: dict[str, int] = {}
    for key, n, _ in out:
        per[key] = per.get(key, 0) + n
    assert sum(per.values()) == 14 and max(per.values()) - min(per.values()) <= 1
    firsts = [first for _, _, first in out]
    assert firsts == sorted(firsts) and firsts[0] == 0 and svc.connections == 14


def test_served_ground_truth_is_requests_times_the_exchange() -> None:
    svc = make(replicas=2, rps=100.0, cpu_us_per_request=1500, log_bytes_per_request=10)
    for _ in range(30):
        svc.step(1.0)
    s = svc.served["r0"]
    assert s.requests == 1500
    assert s.cpu_ns == 1500 * 1_500_000 and s.cpu_ms == 2250
    assert (s.pkts_in, s.bytes_in) == (1500 * svc.exchange.pkts_in, 1500 * svc.exchange.bytes_in)
    assert s.bytes_out == 1500 * svc.exchange.bytes_out and s.log_bytes == 15000


def test_removing_replicas_keeps_round_robin_going() -> None:
    svc = make(replicas=3, rps=3.0)
    svc.step(1.0)
    svc.remove_replica("r1")
    out = svc.step(2.0)
    assert {k for k, _, _ in out} == {"r0", "r2"} and sum(n for _, n, _ in out) == 6
    svc.remove_replica("r0")
    svc.remove_replica("r2")
    assert svc.step(1.0) == [] and svc.throughput_rps() == 0.0


def test_clients_take_turns_and_ports_cycle() -> None:
    svc = make(client_addresses=("10.9.0.1", "10.9.0.2"))
    assert svc.client_of(0) == ("10.9.0.1", EPHEMERAL_FIRST)
    assert svc.client_of(1) == ("10.9.0.2", EPHEMERAL_FIRST)
    assert svc.client_of(2) == ("10.9.0.1", EPHEMERAL_FIRST + 1)


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="capacity_rps"):
        ServiceSpec(capacity_rps=0)
    with pytest.raises(ValueError, match="client address"):
        ServiceSpec(client_addresses=())
