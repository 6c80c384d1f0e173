"""End to end: the seed's experiment in simulated time.

agent_sim's hsflowd hosts run the swarm double's containers (SwarmLabBridge), 4 concurrent
clients load ``apache``, the hosts' sFlow reaches the engine in-process each simulated
second, and the ELB with the seed policy scales the service through the docker SDK: up under
load, back to 1 after the load stops (elb.js's log: 1 -> 8 in ~40 s, back to 1 in ~20 s).
"""

from __future__ import annotations

from elb_helpers import START, ElbLab

from sflowlab.agent_sim.simulation import Lab


def test_seed_policy_follows_the_load_up_and_back_to_one(
        workload_lab: tuple[ElbLab, Lab]) -> None:
    elb_lab, lab = workload_lab
    elb_lab.swarm.create_service({"Name": "apache",
                                  "TaskTemplate": {"ContainerSpec": {"Image": "httpd:2.4"}},
                                  "Mode": {"Replicated": {"Replicas": 1}}})
    elb = elb_lab.elb(enabled=True)
    elb_lab.step_to(START + 120)
    steps = [(d["from"], d["to"]) for d in elb.decisions]
    # per container: X(k) / k requests/s of 6,120 bytes with X(k) = 4 / (0.05 + 4 / (200 k)):
    # 349 kB/s at 1 replica, 111 kB/s at 4, 91 kB/s at 5, 76 kB/s at 6. The seed steps by one
    # whenever metricN == replicas, on rates measured over each container's last 10 s poll,
    # which may predate the newest replica: it can overshoot by one.
    assert steps[0] == (1, 2)
    assert all(b == a + 1 for a, b in steps)
    peak = steps[-1][1]
    assert 5 <= peak <= 6
    assert elb_lab.running() == peak
    apache = lab.services["apache"]
    assert sorted(apache.replicas) == sorted(t.container_id for t in elb_lab.swarm.running())
    metrics = elb.services["apache"].metrics
    assert metrics is not None and metrics["n"] == peak
    assert 50_000 < metrics["bytes"] < 100_000  # settled inside the seed's band
    assert 0.5 < metrics["util"] < 1.0

    apache.set_load(clients=0)
    stopped_at = elb_lab.clock.now()
    elb_lab.step_to(START + 180)
    downs = [(d["from"], d["to"]) for d in elb.decisions][len(steps):]
    assert downs == [(k, k - 1) for k in range(peak, 1, -1)]
    assert elb.decisions[-1]["time"] - stopped_at <= 30
    assert (elb_lab.replicas(), elb_lab.running(), len(apache.replicas)) == (1, 1, 1)
    assert elb.docker.errors == elb.docker.conflicts == 0
