"""``sflowlab agent`` on this host's Docker engine: containers appear within 4 s of their start
and send a final sample when they stop, their CPU and memory agree with the Docker stats API,
docker0's flow samples name them, and our collector reads them like the simulated hosts'.

The image is built locally (tests/live's busybox-static context, no registry). The engine is
shared: the test takes ``engine_lock`` and removes the containers it labelled.
"""

from __future__ import annotations

import datetime
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2] / "live"))

import docker
from live_helpers import BUSYBOX, DOCKER_URL, IMAGE, engine_lock, is_static_elf
from mirror_helpers import Received, running_agent, wait_until

from sflowlab.agent_sim.dsindex import FIRST_INDEX, container_uuid, hash_uuid, uuid_text
from sflowlab.clock import SimClock
from sflowlab.codec import (
    COUNTER_SAMPLES,
    FLOW_SAMPLES,
    ExtendedEntities,
    HostDescr,
    SampledHeader,
    VirtCpu,
    VirtMemory,
)
from sflowlab.codec.headers import decode_header
from sflowlab.collector.engine import Engine
from sflowlab.lab.live.containers import container_netns, host_veth, rx_packets
from sflowlab.lab.live.image import build_small_image

pytestmark = [pytest.mark.root, pytest.mark.docker, pytest.mark.slow]

LABELS = {"sflowlab.agent": "1"}
WITHIN = 0.05


def remove_mine(client: docker.DockerClient) -> None:
    for c in client.containers.list(all=True, filters={"label": "sflowlab.agent=1"}):
        c.remove(force=True)


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    if os.geteuid() != 0:
        pytest.skip("the agent needs root")
    if not BUSYBOX.is_file() or not is_static_elf(BUSYBOX):
        pytest.skip(f"{BUSYBOX} is not a static busybox to build {IMAGE} from")
    try:
        client = docker.DockerClient(base_url=DOCKER_URL, version="auto", timeout=30)
        client.ping()
    except docker.errors.DockerException as e:
        pytest.skip(f"no Docker engine at {DOCKER_URL}: {e}")
    with engine_lock(180):
        try:
            build_small_image(client)
            remove_mine(client)
            yield client
        finally:
            remove_mine(client)
            client.close()


def container_samples(received: Received, name: str) -> list[tuple[float, Any]]:
    """(received at, sample) of the container named ``name``."""
    return [(at, s) for at, s in received.samples(COUNTER_SAMPLES) if s.source_id_type == 3
            and any(isinstance(r, HostDescr) and r.hostname == name for r in s.records)]


def started_at(container: Any) -> float:
    """The engine's ``State.StartedAt`` (RFC 3339, nanoseconds) as epoch seconds."""
    stamp = container.attrs["State"]["StartedAt"]
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    parsed = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
    return parsed.timestamp() + float(f"0.{fraction or 0}")


def record(sample: Any, kind: type) -> Any:
    return next(r for r in sample.records if isinstance(r, kind))


def test_containers_are_mirrored_like_hsflowd(engine: docker.DockerClient) -> None:
    web_name, client_name = f"agent-{os.getpid()}-web", f"agent-{os.getpid()}-client"
    with running_agent(None, "--sampling", "2", "--polling", "2", "--interface", "docker0",
                       "--docker-url", DOCKER_URL) as agent:
        agent.until("the agent's first datagram", lambda r: r.items, 10.0)
        web = engine.containers.run(IMAGE, name=web_name, detach=True, labels=LABELS)
        (_, first), *_ = agent.until(f"{web_name}'s first sample",
                                     lambda r: container_samples(r, web_name), 8.0)
        appeared = time.time()
        web.reload()
        assert appeared - started_at(web) <= 4.0  # hsflowd: the tick 3 s into its second
        # hsflowd's data-source index and UUID (no other container holds the preferred index)
        assert first.source_id_index == FIRST_INDEX + hash_uuid(container_uuid(web.id)) % 50000
        assert record(first, HostDescr).uuid == uuid_text(container_uuid(web.id))
        assert record(first, VirtCpu).state == 1

        # 20 MB in its /dev/shm (charged to its memory) and about 1 s of CPU, then idle
        code, output = web.exec_run(["/bin/busybox", "sh", "-c",
                                     "dd if=/dev/zero of=/dev/shm/m bs=1M count=20 2>&1; "
                                     "timeout 1 sh -c 'while :; do :; done'; true"])
        assert code == 0, output
        web.reload()
        ip = web.attrs["NetworkSettings"]["IPAddress"]
        client = engine.containers.run(IMAGE, name=client_name, detach=True, labels=LABELS)
        code, output = client.exec_run(["/bin/busybox", "sh", "-c",
                                        f"for i in $(seq 30); do wget -q -O /dev/null "
                                        f"http://{ip}/; done"])
        assert code == 0, output
        idle_from = time.monotonic()

        def idle(r: Received) -> tuple[Any, Any] | None:
            late = [s for at, s in container_samples(r, web_name) if at > idle_from]
            if len(late) >= 2 and record(late[-1], VirtCpu).cpu_time_ms == record(
                    late[-2], VirtCpu).cpu_time_ms:
                return late[-2], late[-1]
            return None

        _, sample = agent.until(f"two samples of the idle {web_name}", idle, 12.0)
        api = engine.api.stats(web.id, stream=False, one_shot=True)
        stats_mem = api["memory_stats"]
        expected_mem = stats_mem["usage"] - stats_mem["stats"].get(
            "total_inactive_file", stats_mem["stats"].get("inactive_file", 0))
        cpu_ms = api["cpu_stats"]["cpu_usage"]["total_usage"] / 1e6
        ours_cpu, ours_mem = record(sample, VirtCpu), record(sample, VirtMemory)
        assert ours_cpu.cpu_time_ms > 200  # the busy second counted
        assert abs(ours_cpu.cpu_time_ms - cpu_ms) <= WITHIN * cpu_ms
        assert ours_mem.memory > 20 << 20
        assert abs(ours_mem.memory - expected_mem) <= WITHIN * expected_mem
        assert ours_mem.max_memory == stats_mem["limit"]
        assert ours_cpu.nr_virt_cpu == api["cpu_stats"]["online_cpus"]

        # docker0's flow samples: the web container's veth and data source on one side
        code, iflink = web.exec_run(["/bin/busybox", "cat", "/sys/class/net/eth0/iflink"])
        veth = int(iflink)
        index = first.source_id_index
        ours = [s for _, s in agent.received.samples(FLOW_SAMPLES)
                if veth in (s.input_value, s.output_value)]
        assert ours, "no flow sample through the web container's veth"
        for s in ours:
            entities = record(s, ExtendedEntities)
            if s.output_value == veth:
                assert (entities.dst_ds_class, entities.dst_ds_index) == (3, index)
            else:
                assert (entities.src_ds_class, entities.src_ds_index) == (3, index)

        agent.until(f"{client_name}'s first sample",
                    lambda r: container_samples(r, client_name), 8.0)
        running = len(agent.received.raw)
        web.stop(timeout=5)
        stopped = time.monotonic()

        def final(r: Received) -> Any:
            return [(at, s) for at, s in container_samples(r, web_name)
                    if record(s, VirtCpu).state != 1]

        [(final_at, last)] = agent.until(f"{web_name}'s final sample", final, 5.0)
        assert final_at - stopped <= 3.0
        assert last.sequence_number == max(
            s.sequence_number for _, s in container_samples(agent.received, web_name))
        status, out, err = agent.stop()
    assert status == 0, err
    assert "sampled docker0" in out

    # our collector: both containers by name while running (a stopped one leaves its metrics)
    collector = Engine(SimClock(1000.0))
    assert all(collector.ingest(data, ("127.0.0.1", 50000), 1000.0)
               for data in agent.received.raw[:running])
    names = {str(e["metricValue"]) for e in collector.dump("ALL", "vir_host_name")}
    assert {web_name, client_name} <= names
    assert all(collector.ingest(data, ("127.0.0.1", 50000), 1000.0)
               for data in agent.received.raw[running:])
    names = {str(e["metricValue"]) for e in collector.dump("ALL", "vir_host_name")}
    assert client_name in names and web_name not in names


RATE, PAYLOAD, TRANSFER, PORT = 64, 1400, 20_000_000, 5004


def test_a_transfer_between_two_containers_on_docker0_is_estimated_within_binomial_bounds(
        engine: docker.DockerClient) -> None:
    """20 MB of UDP from one container to another, sent from sockets in their namespaces
    (busybox has no UDP client), sampled on docker0 at 1-in-64 among whatever else it carries."""
    src = engine.containers.run(IMAGE, name=f"agent-{os.getpid()}-src", detach=True,
                                labels=LABELS)
    dst = engine.containers.run(IMAGE, name=f"agent-{os.getpid()}-dst", detach=True,
                                labels=LABELS)
    dst.reload()
    dst_ip = dst.attrs["NetworkSettings"]["IPAddress"]
    src.reload()
    src_ip = src.attrs["NetworkSettings"]["IPAddress"]
    count = math.ceil(TRANSFER / PAYLOAD)
    with container_netns(src, f"agent-{os.getpid()}-src") as src_ns, \
            container_netns(dst, f"agent-{os.getpid()}-dst") as dst_ns, \
            dst_ns.socket() as sink, src_ns.socket() as sender, \
            running_agent(None, "--sampling", str(RATE), "--polling", "5", "--interface",
                          "docker0", "--docker-url", DOCKER_URL) as agent:
        sink.bind((dst_ip, PORT))
        sender.sendto(b"hello", (dst_ip, PORT))  # address resolution before the count
        agent.until("the agent's first datagram", lambda r: r.items, 10.0)
        veth = host_veth(src)
        before = rx_packets(veth)
        payload = bytes(PAYLOAD)
        for _ in range(count):
            sender.sendto(payload, (dst_ip, PORT))
        wait_until("the stream to reach docker0",
                   lambda: rx_packets(veth) - before >= count, 10.0)
        entered = rx_packets(veth) - before
        status, _, err = agent.stop()
    assert status == 0, err
    assert count <= entered <= count + 3  # nothing lost before the bridge (ARP aside)
    frame = 14 + 20 + 8 + PAYLOAD + 4  # with the FCS, as frame_length counts it
    ours = []
    for _, s in agent.received.samples(FLOW_SAMPLES):
        header = record(s, SampledHeader)
        keys = decode_header(1, header.header)
        if (keys.get("ipsource"), keys.get("ipdestination"), keys.get("udpdestinationport"),
                header.frame_length) == (src_ip, dst_ip, PORT, frame):
            ours.append(s)
            assert s.sampling_rate == RATE and s.drops == 0
    estimate = sum(s.sampling_rate * record(s, SampledHeader).frame_length for s in ours)
    truth = count * frame
    sigma = math.sqrt(count * (1 / RATE) * (1 - 1 / RATE))  # of the number of samples
    assert abs(len(ours) - count / RATE) <= 4 * sigma, (len(ours), count / RATE)
    assert abs(estimate - truth) <= 4 * sigma * RATE * frame, (estimate, truth)
